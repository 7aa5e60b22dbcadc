//! Synthetic prompts for streaming (LLM) endpoints: request bodies whose
//! prompt is a given number of tokens long and whose answer is limited to a
//! given number of output tokens, in the shape of TGI/LMI
//! (`{"inputs", "parameters": {"max_new_tokens"}}`) or of OpenAI chat
//! completions (`{"messages", "max_tokens", "stream": true}`). With a spread,
//! the lengths vary uniformly around their centre over a fixed set of
//! variants drawn from the run's seed, so a step can be repeated exactly.
//!
//! Prompt text is plain English words, as many characters as the tokens
//! asked for at the run's characters a token: counted with the same rule the
//! stream's tokens are estimated by.

use rand::{Rng, SeedableRng};
use serde_json::json;

use super::payload::{Payload, PayloadError, PayloadMix};

/// Bodies built when lengths vary: enough to spread the mix, few enough to preflight.
const VARIANTS_WITH_SPREAD: usize = 16;
const WORDS: [&str; 12] = ["time", "year", "people", "way", "day", "man", "thing", "woman", "life", "child", "world", "school"];

/// The API shape of the request bodies (and so of the stream that answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// Text Generation Inference / Large Model Inference: inputs + parameters.max_new_tokens.
    Tgi,
    /// OpenAI-style chat completions: messages + max_tokens.
    Chat,
}

impl std::str::FromStr for StreamFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<StreamFormat, String> {
        match s {
            "tgi" | "lmi" => Ok(StreamFormat::Tgi),
            "chat" | "openai" => Ok(StreamFormat::Chat),
            other => Err(format!("`{other}` is not a stream format: use tgi (TGI/LMI) or chat (OpenAI chat completions)")),
        }
    }
}

/// Prompts of `prompt_tokens` asking for `output_tokens`, each varying by up
/// to ±`spread_percent`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticPrompts {
    pub prompt_tokens: u32,
    pub output_tokens: u32,
    pub spread_percent: f64,
    pub format: StreamFormat,
    pub characters_per_token: f64,
    pub seed: u64,
}

impl SyntheticPrompts {
    /// The payload mix: one body, or a set of equally weighted variants.
    pub fn mix(&self) -> Result<PayloadMix, PayloadError> {
        let variants = if self.spread_percent > 0.0 { VARIANTS_WITH_SPREAD } else { 1 };
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        let payloads = (0..variants)
            .map(|i| {
                let prompt = self.vary(self.prompt_tokens, &mut rng);
                let output = self.vary(self.output_tokens, &mut rng);
                Payload::new(format!("synthetic-{i}-{prompt}in-{output}out"), self.body(prompt, output), 1.0)
            })
            .collect();
        PayloadMix::new(payloads)
    }

    /// `centre` moved uniformly by up to the spread, at least one.
    fn vary(&self, centre: u32, rng: &mut impl Rng) -> u32 {
        if self.spread_percent <= 0.0 {
            return centre;
        }
        let spread = f64::from(centre) * self.spread_percent / 100.0;
        (f64::from(centre) + rng.random_range(-spread..=spread)).round().max(1.0) as u32
    }

    fn body(&self, prompt_tokens: u32, output_tokens: u32) -> Vec<u8> {
        let text = prompt_text((f64::from(prompt_tokens) * self.characters_per_token).round() as usize);
        let body = match self.format {
            StreamFormat::Tgi => json!({"inputs": text, "parameters": {"max_new_tokens": output_tokens, "details": true}}),
            StreamFormat::Chat => json!({
                "model": "perfsize",
                "messages": [{"role": "user", "content": text}],
                "max_tokens": output_tokens,
                "stream": true,
                "stream_options": {"include_usage": true},
            }),
        };
        serde_json::to_vec(&body).expect("a JSON value serializes")
    }
}

/// Plain words, exactly `characters` long.
fn prompt_text(characters: usize) -> String {
    let mut text = String::with_capacity(characters + 8);
    for word in WORDS.iter().cycle() {
        if text.len() >= characters {
            break;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(word);
    }
    text.truncate(characters);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stream_invoke::events::prompt_characters;

    fn prompts(spread_percent: f64, format: StreamFormat) -> SyntheticPrompts {
        SyntheticPrompts { prompt_tokens: 100, output_tokens: 20, spread_percent, format, characters_per_token: 4.0, seed: 7 }
    }

    #[test]
    fn a_prompt_is_as_many_tokens_long_as_asked_in_either_shape() {
        let tgi = prompts(0.0, StreamFormat::Tgi).mix().unwrap();
        assert_eq!(tgi.payloads().len(), 1);
        let body: serde_json::Value = serde_json::from_slice(&tgi.payloads()[0].body).unwrap();
        assert_eq!(body["parameters"]["max_new_tokens"], 20);
        assert_eq!(prompt_characters(&tgi.payloads()[0].body), 400);
        let chat = prompts(0.0, StreamFormat::Chat).mix().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&chat.payloads()[0].body).unwrap();
        assert_eq!((body["max_tokens"].as_u64(), body["stream"].as_bool()), (Some(20), Some(true)));
        assert_eq!(prompt_characters(&chat.payloads()[0].body), 400);
    }

    #[test]
    fn a_spread_varies_lengths_around_their_centre_the_same_way_every_time() {
        let mix = prompts(50.0, StreamFormat::Tgi).mix().unwrap();
        let lengths: Vec<usize> = mix.payloads().iter().map(|p| prompt_characters(&p.body) / 4).collect();
        assert_eq!(lengths.len(), VARIANTS_WITH_SPREAD);
        assert!(lengths.iter().all(|&n| (50..=150).contains(&n)), "{lengths:?}");
        assert!(lengths.iter().any(|&n| n != 100), "{lengths:?}");
        let again = prompts(50.0, StreamFormat::Tgi).mix().unwrap();
        assert_eq!(mix.payloads()[3].body, again.payloads()[3].body, "seeded");
    }
}
