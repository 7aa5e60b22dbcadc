//! What a stream's PayloadParts carry, in the server-sent-event formats of
//! the two dialects: TGI/LMI's `data:{"token":…,"generated_text":…,"details":…}`
//! (the last with the whole text and `details.generated_tokens`) and OpenAI
//! chat completion chunks (`data: {"choices":[{"delta":{"content":…}}]}`, then
//! a `usage` chunk and `data: [DONE]`). A part of several tokens carries their
//! text in one event, as servers that batch their output send it.
//!
//! Every generated token is a four-character word, so the four-characters-a-
//! token rule of thumb counts the simulator's output exactly.

use serde_json::{Value, json};

use super::request::{Dialect, Ending, Generation};

/// The simulated vocabulary: four characters a token.
const WORDS: [&str; 8] = [" the", " cat", " sat", " mat", " and", " ran", " far", " off"];

/// The text of the token at `index` (from 0).
fn token_text(index: u32) -> &'static str {
    WORDS[index as usize % WORDS.len()]
}

/// The text of `count` tokens from `first`.
fn text_of(first: u32, count: u32) -> String {
    (first..first + count).map(token_text).collect()
}

/// One server-sent event.
fn event(separator: &str, value: &Value) -> Vec<u8> {
    format!("data:{separator}{value}\n\n").into_bytes()
}

/// Writes the parts of one request's stream.
pub struct Chunks {
    generation: Generation,
    /// The chat completion's id and creation time, the same in every chunk.
    id: String,
    created: u64,
}

impl Chunks {
    pub fn new(generation: Generation, id: String, created: u64) -> Chunks {
        Chunks { generation, id, created }
    }

    /// The content type the model server answers with.
    pub fn content_type(&self) -> &'static str {
        "text/event-stream"
    }

    /// The part carrying `count` tokens from token `first` (from 0).
    pub fn tokens(&self, first: u32, count: u32) -> Vec<u8> {
        let last = first + count >= self.generation.lengths.output;
        match &self.generation.dialect {
            Dialect::Tgi => event("", &self.tgi_tokens(first, count, last)),
            Dialect::Chat { model } => event(" ", &self.chat_delta(model, first, count, last)),
        }
    }

    /// What follows the last token: OpenAI's usage and end marker; nothing for TGI.
    pub fn end(&self) -> Option<Vec<u8>> {
        let Dialect::Chat { model } = &self.generation.dialect else { return None };
        let lengths = self.generation.lengths;
        let usage = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": lengths.prompt,
                "completion_tokens": lengths.output,
                "total_tokens": lengths.prompt + lengths.output,
            },
        });
        let mut bytes = event(" ", &usage);
        bytes.extend_from_slice(b"data: [DONE]\n\n");
        Some(bytes)
    }

    fn tgi_tokens(&self, first: u32, count: u32, last: bool) -> Value {
        let text = text_of(first, count);
        let token = json!({"id": first + count - 1, "text": text, "logprob": -0.25, "special": false});
        if !last {
            return json!({"token": token, "generated_text": null, "details": null});
        }
        let lengths = self.generation.lengths;
        let finish_reason = match self.generation.ending {
            Ending::Length => "length",
            Ending::Stop => "eos_token",
        };
        json!({
            "token": token,
            "generated_text": text_of(0, lengths.output),
            "details": {
                "finish_reason": finish_reason,
                "generated_tokens": lengths.output,
                "input_length": lengths.prompt,
                "seed": null,
            },
        })
    }

    fn chat_delta(&self, model: &str, first: u32, count: u32, last: bool) -> Value {
        // The first chunk names the role, as OpenAI's does.
        let delta = match first {
            0 => json!({"role": "assistant", "content": text_of(first, count)}),
            _ => json!({"content": text_of(first, count)}),
        };
        let finish_reason = match (last, self.generation.ending) {
            (false, _) => Value::Null,
            (true, Ending::Length) => "length".into(),
            (true, Ending::Stop) => "stop".into(),
        };
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::llm::Lengths;
    use crate::simulator::streaming::request::CHARACTERS_PER_TOKEN;

    fn chunks(dialect: Dialect, output: u32, ending: Ending) -> Chunks {
        Chunks::new(Generation { dialect, lengths: Lengths { prompt: 7, output }, ending }, "chatcmpl-1".into(), 1_700_000_000)
    }

    /// The JSON of each `data:` event in a part.
    fn events(part: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(part).unwrap();
        assert!(text.ends_with("\n\n"), "{text:?}");
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data:").expect("an SSE data line").trim())
            .filter(|data| *data != "[DONE]")
            .map(|data| serde_json::from_str(data).unwrap())
            .collect()
    }

    #[test]
    fn every_token_is_four_characters() {
        assert!(WORDS.iter().all(|w| w.chars().count() == CHARACTERS_PER_TOKEN));
        assert_eq!(text_of(6, 3), " far off the");
    }

    #[test]
    fn tgi_parts_carry_their_tokens_and_the_last_the_details() {
        let tgi = chunks(Dialect::Tgi, 5, Ending::Length);
        let first = events(&tgi.tokens(0, 3));
        assert_eq!(first.len(), 1, "several tokens, one event");
        assert_eq!(first[0]["token"]["text"], " the cat sat");
        assert_eq!((&first[0]["generated_text"], &first[0]["details"]), (&Value::Null, &Value::Null));
        let last = &events(&tgi.tokens(3, 2))[0];
        assert_eq!(last["token"]["text"], " mat and");
        assert_eq!(last["generated_text"], " the cat sat mat and");
        assert_eq!(last["details"]["generated_tokens"], 5);
        assert_eq!(last["details"]["input_length"], 7);
        assert_eq!(last["details"]["finish_reason"], "length");
        assert!(tgi.tokens(0, 1).starts_with(b"data:{"), "TGI writes no space after `data:`");
        assert_eq!(tgi.end(), None);
        let stopped = &events(&chunks(Dialect::Tgi, 1, Ending::Stop).tokens(0, 1))[0];
        assert_eq!(stopped["details"]["finish_reason"], "eos_token", "a model that stopped on its own");
    }

    #[test]
    fn chat_chunks_carry_deltas_then_usage_and_done() {
        let chat = chunks(Dialect::Chat { model: "m".into() }, 4, Ending::Stop);
        let first = &events(&chat.tokens(0, 2))[0];
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(first["choices"][0]["delta"], json!({"role": "assistant", "content": " the cat"}));
        assert_eq!(first["choices"][0]["finish_reason"], Value::Null);
        let last = &events(&chat.tokens(2, 2))[0];
        assert_eq!(last["choices"][0]["delta"], json!({"content": " sat mat"}));
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
        let end = chat.end().unwrap();
        assert!(end.ends_with(b"data: [DONE]\n\n"));
        let usage = &events(&end)[0]["usage"];
        assert_eq!(*usage, json!({"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}));
        assert_eq!(events(&end)[0]["id"], first["id"], "one id for the whole completion");
    }
}
