//! What a streaming request asks of the model, read from its body as the
//! two common LLM server APIs shape it: TGI/LMI
//! (`{"inputs": "…", "parameters": {"max_new_tokens": N}}`) and OpenAI chat
//! completions (`{"messages": [...], "max_tokens": N}`). The shape picks the
//! stream format too.
//!
//! Prompts are counted without a tokenizer, at four characters a token (the
//! common rule of thumb). A count the request does not give — no prompt text,
//! no output limit — is drawn from the profile's distribution, and the model
//! then stops on its own (an end-of-sequence token) rather than at a limit.

use rand_distr::Distribution;
use serde_json::Value;

use crate::simulator::llm::Lengths;
use crate::simulator::profile::{LlmProfile, LogNormalFit};

/// The rule of thumb prompts are counted by.
pub const CHARACTERS_PER_TOKEN: usize = 4;

/// The API a request speaks, which its stream answers in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialect {
    /// Text Generation Inference and the Large Model Inference container:
    /// `data:{"token":…}` server-sent events.
    Tgi,
    /// OpenAI-style chat completions: `data: {"choices":[{"delta":…}]}` chunks,
    /// a `usage` chunk and `data: [DONE]`.
    Chat { model: String },
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// At the request's own limit.
    Length,
    /// On an end-of-sequence token, before any limit.
    Stop,
}

/// What the model will do for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub dialect: Dialect,
    pub lengths: Lengths,
    pub ending: Ending,
}

/// A request the model server refuses, as TGI does with 422.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

/// What the request in `body` asks for; `max_total_tokens` is the model's context.
pub fn read(body: &[u8], llm: &LlmProfile, max_total_tokens: u32) -> Result<Generation, Invalid> {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let asked = Asked::of(&json)?;
    // Drawn counts leave room for at least one output token.
    let prompt = asked.prompt.unwrap_or_else(|| draw(&llm.prompt_tokens).min(max_total_tokens.saturating_sub(1).max(1)));
    let (output, ending) = match asked.max_output {
        Some(limit) => (limit, Ending::Length),
        None => (draw(&llm.output_tokens).min(max_total_tokens.saturating_sub(prompt)).max(1), Ending::Stop),
    };
    if u64::from(prompt) + u64::from(output) > u64::from(max_total_tokens) {
        return Err(Invalid(format!(
            "Input validation error: `inputs` tokens + `{}` must be <= {max_total_tokens}. Given: {prompt} `inputs` tokens and {output} `{0}`",
            asked.limit_key
        )));
    }
    Ok(Generation { dialect: asked.dialect, lengths: Lengths { prompt, output }, ending })
}

/// What the body itself says.
struct Asked {
    dialect: Dialect,
    prompt: Option<u32>,
    max_output: Option<u32>,
    /// The name the dialect gives its output limit, for messages.
    limit_key: &'static str,
}

impl Asked {
    fn of(json: &Value) -> Result<Asked, Invalid> {
        match json.get("messages") {
            Some(messages) => Ok(Asked {
                dialect: Dialect::Chat { model: json["model"].as_str().unwrap_or("simulated-llm").to_string() },
                prompt: count_tokens(&chat_text(messages)),
                max_output: positive(json, &["max_completion_tokens", "max_tokens"])?,
                limit_key: "max_tokens",
            }),
            None => Ok(Asked {
                dialect: Dialect::Tgi,
                prompt: json["inputs"].as_str().and_then(count_tokens),
                max_output: positive(&json["parameters"], &["max_new_tokens"])?,
                limit_key: "max_new_tokens",
            }),
        }
    }
}

/// The text of every message: `content` as a string, or its text parts.
fn chat_text(messages: &Value) -> String {
    let content_text = |content: &Value| match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts.iter().filter_map(|part| part["text"].as_str()).collect(),
        _ => String::new(),
    };
    messages.as_array().into_iter().flatten().map(|message| content_text(&message["content"])).collect()
}

/// Tokens in `text` by the rule of thumb; None for no text.
fn count_tokens(text: &str) -> Option<u32> {
    let characters = text.chars().count();
    (characters > 0).then(|| u32::try_from(characters.div_ceil(CHARACTERS_PER_TOKEN)).unwrap_or(u32::MAX))
}

/// The first of `keys` that `object` sets, which must be a positive whole number.
fn positive(object: &Value, keys: &[&str]) -> Result<Option<u32>, Invalid> {
    let Some((key, value)) = keys.iter().find_map(|key| object.get(*key).filter(|v| !v.is_null()).map(|v| (key, v))) else {
        return Ok(None);
    };
    match value.as_u64().and_then(|n| u32::try_from(n).ok()).filter(|&n| n > 0) {
        Some(n) => Ok(Some(n)),
        None => Err(Invalid(format!("Input validation error: `{key}` must be strictly positive, got {value}"))),
    }
}

/// A token count drawn from `fit`, at least one.
fn draw(fit: &LogNormalFit) -> u32 {
    let drawn = fit.sampler().map_or(fit.median, |dist| dist.sample(&mut rand::rng()));
    (drawn.round() as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::profile::Profile;

    fn llm() -> LlmProfile {
        Profile::builtin().llm
    }

    fn generation(body: &str) -> Result<Generation, Invalid> {
        read(body.as_bytes(), &llm(), 8192)
    }

    #[test]
    fn a_tgi_request_gives_its_prompt_and_its_output_limit() {
        let g = generation(r#"{"inputs": "What is the capital of France?", "parameters": {"max_new_tokens": 64}}"#).unwrap();
        // 30 characters: 8 tokens at 4 a token.
        assert_eq!(g, Generation { dialect: Dialect::Tgi, lengths: Lengths { prompt: 8, output: 64 }, ending: Ending::Length });
    }

    #[test]
    fn a_chat_request_counts_every_message_and_names_its_model() {
        let g = generation(
            r#"{"model": "llama3", "messages": [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi there!"}]}], "max_tokens": 10, "stream": true}"#,
        )
        .unwrap();
        assert_eq!(g.dialect, Dialect::Chat { model: "llama3".into() });
        assert_eq!(g.lengths, Lengths { prompt: 5, output: 10 }, "9 + 9 characters");
        let newer = generation(r#"{"messages": [{"role": "user", "content": "abcd"}], "max_completion_tokens": 3}"#).unwrap();
        assert_eq!((newer.lengths.output, newer.dialect), (3, Dialect::Chat { model: "simulated-llm".into() }));
    }

    #[test]
    fn counts_a_request_does_not_give_are_drawn_and_end_on_their_own() {
        for body in ["not json at all", r#"{"inputs": ""}"#, "{}"] {
            let g = generation(body).unwrap();
            assert_eq!((g.dialect.clone(), g.ending), (Dialect::Tgi, Ending::Stop), "{body}");
            assert!(g.lengths.prompt >= 1 && g.lengths.output >= 1, "{g:?}");
            assert!(g.lengths.prompt + g.lengths.output <= 8192, "drawn counts stay within the context: {g:?}");
        }
    }

    #[test]
    fn what_the_server_would_refuse_is_invalid() {
        let too_long = generation(r#"{"inputs": "abcd", "parameters": {"max_new_tokens": 9000}}"#).unwrap_err();
        assert!(too_long.0.contains("must be <= 8192") && too_long.0.contains("max_new_tokens"), "{too_long:?}");
        for zero in [r#"{"inputs": "a", "parameters": {"max_new_tokens": 0}}"#, r#"{"messages": [], "max_tokens": -2}"#] {
            assert!(generation(zero).unwrap_err().0.contains("strictly positive"), "{zero}");
        }
    }
}
