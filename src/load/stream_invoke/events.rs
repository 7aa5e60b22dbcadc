//! What a stream's PayloadParts say, without a tokenizer: the text each part
//! carries (TGI/LMI `token.text`, OpenAI `choices[].delta.content` or
//! `choices[].text`, or plain text), and the token counts the container
//! reports at the end (TGI/LMI `details.generated_tokens` and
//! `details.input_length`, OpenAI `usage`). Parts are read as lines —
//! server-sent events (`data:` lines) and JSON lines alike — and a line cut
//! between two parts is read once its end has come.
//!
//! Text becomes tokens at a number of characters a token (4 by default, the
//! common rule of thumb), which the user can calibrate for their tokenizer.

use serde_json::Value;

/// Characters a token when the user says nothing.
pub const DEFAULT_CHARACTERS_PER_TOKEN: f64 = 4.0;

/// Counts the container reported in its stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reported {
    pub output: Option<u32>,
    pub prompt: Option<u32>,
}

impl Reported {
    /// Takes the counts `other` reports, keeping those it does not.
    pub fn merge_from(&mut self, other: Reported) {
        self.output = other.output.or(self.output);
        self.prompt = other.prompt.or(self.prompt);
    }
}

/// What one part carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartText {
    /// Characters of generated text.
    pub characters: usize,
    pub reported: Reported,
}

/// Reads one stream's parts in order.
#[derive(Debug, Default)]
pub struct PartReader {
    /// The start of a line whose end has not come yet.
    pending: Vec<u8>,
}

impl PartReader {
    /// What `bytes`, the next part of the stream, carried.
    pub fn part(&mut self, bytes: &[u8]) -> PartText {
        self.pending.extend_from_slice(bytes);
        let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') else { return PartText::default() };
        let complete: Vec<u8> = self.pending.drain(..=end).collect();
        let mut part = PartText::default();
        for line in String::from_utf8_lossy(&complete).lines() {
            let line = line.trim_end_matches('\r');
            // `event:`, `id:` and comment lines carry no text.
            let data = match line.strip_prefix("data:") {
                Some(data) => data.trim_start(),
                None if line.starts_with("event:") || line.starts_with("id:") || line.starts_with(':') => continue,
                None => line,
            };
            let line_part = read_line(data);
            part.characters += line_part.characters;
            part.reported.merge_from(line_part.reported);
        }
        part
    }

    /// What is left once the stream ended: a last line with no newline.
    pub fn finish(&mut self) -> PartText {
        if self.pending.is_empty() {
            return PartText::default();
        }
        self.pending.push(b'\n');
        let rest = std::mem::take(&mut self.pending);
        self.part(&rest)
    }
}

/// One line's data: a JSON event, OpenAI's `[DONE]`, or plain text.
fn read_line(data: &str) -> PartText {
    if data.is_empty() || data == "[DONE]" {
        return PartText::default();
    }
    match serde_json::from_str::<Value>(data) {
        Ok(json) if json.is_object() => PartText { characters: text_of(&json).chars().count(), reported: reported_in(&json) },
        _ => PartText { characters: data.chars().count(), reported: Reported::default() },
    }
}

/// The generated text a JSON event carries. TGI's last event repeats the
/// whole text in `generated_text`: never counted.
fn text_of(json: &Value) -> String {
    let token = &json["token"];
    if token.is_object() {
        let special = token["special"].as_bool().unwrap_or(false);
        return if special { String::new() } else { token["text"].as_str().unwrap_or_default().to_string() };
    }
    let Some(choices) = json["choices"].as_array() else { return String::new() };
    choices.iter().filter_map(|choice| choice["delta"]["content"].as_str().or_else(|| choice["text"].as_str())).collect()
}

/// Token counts a JSON event reports.
fn reported_in(json: &Value) -> Reported {
    let count = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
    let details = &json["details"];
    let usage = &json["usage"];
    Reported {
        output: count(&details["generated_tokens"]).or_else(|| count(&usage["completion_tokens"])),
        prompt: count(&details["input_length"]).or_else(|| count(&usage["prompt_tokens"])),
    }
}

/// The prompt text of a request body in either API's shape (TGI/LMI
/// `inputs`, OpenAI `messages` or `prompt`), for estimating its tokens.
pub fn prompt_characters(body: &[u8]) -> usize {
    let Ok(json) = serde_json::from_slice::<Value>(body) else { return 0 };
    let content = |content: &Value| match content {
        Value::String(text) => text.chars().count(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).map(|t| t.chars().count()).sum(),
        _ => 0,
    };
    if let Some(messages) = json["messages"].as_array() {
        return messages.iter().map(|m| content(&m["content"])).sum();
    }
    json["inputs"].as_str().or_else(|| json["prompt"].as_str()).map_or(0, |t| t.chars().count())
}

/// Tokens in `characters` of text at `per_token` characters a token: at
/// least one for any text at all.
pub fn estimate_tokens(characters: usize, per_token: f64) -> u32 {
    if characters == 0 {
        return 0;
    }
    ((characters as f64 / per_token).round() as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tgi_parts_give_their_text_and_the_last_its_counts() {
        let mut reader = PartReader::default();
        let first = reader.part(
            br#"data:{"token":{"id":3,"text":" the cat sat","special":false},"generated_text":null,"details":null}

"#,
        );
        assert_eq!(first, PartText { characters: 12, reported: Reported::default() });
        let last = reader.part(
            br#"data:{"token":{"id":5,"text":" mat","special":false},"generated_text":" the cat sat mat","details":{"generated_tokens":4,"input_length":7}}

"#,
        );
        assert_eq!(last.characters, 4, "generated_text repeats the whole answer and is not counted");
        assert_eq!(last.reported, Reported { output: Some(4), prompt: Some(7) });
        let special = reader.part(b"data:{\"token\":{\"text\":\"</s>\",\"special\":true}}\n\n");
        assert_eq!(special.characters, 0, "special tokens are not text");
    }

    #[test]
    fn chat_chunks_give_their_deltas_then_usage_and_done_carries_nothing() {
        let mut reader = PartReader::default();
        let part = reader.part(b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\" hi yo\"}}]}\n\n");
        assert_eq!(part.characters, 6);
        let end =
            reader.part(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n");
        assert_eq!(end, PartText { characters: 0, reported: Reported { output: Some(2), prompt: Some(9) } });
        let completion = reader.part(b"data: {\"choices\":[{\"text\":\"abcd\"}]}\n\n");
        assert_eq!(completion.characters, 4, "the completions API's text");
    }

    #[test]
    fn a_line_cut_between_parts_counts_once_its_end_comes() {
        let mut reader = PartReader::default();
        assert_eq!(reader.part(br#"{"token":{"text":" ab"#).characters, 0);
        assert_eq!(reader.part(b"cd\"}}\n").characters, 5, "JSON lines, LMI's default");
        assert_eq!(reader.part(b"plain text").characters, 0);
        assert_eq!(reader.finish().characters, 10, "a plain-text stream counts its characters");
    }

    #[test]
    fn prompts_are_read_from_either_api_shape() {
        assert_eq!(prompt_characters(br#"{"inputs":"abcdefgh","parameters":{"max_new_tokens":4}}"#), 8);
        let chat =
            br#"{"messages":[{"role":"system","content":"abcd"},{"role":"user","content":[{"type":"text","text":"ef"}]}]}"#;
        assert_eq!(prompt_characters(chat), 6);
        assert_eq!(prompt_characters(b"not json"), 0);
    }

    #[test]
    fn estimates_round_and_count_any_text_as_a_token() {
        assert_eq!(estimate_tokens(0, 4.0), 0);
        assert_eq!(estimate_tokens(1, 4.0), 1);
        assert_eq!(estimate_tokens(12, 4.0), 3);
        assert_eq!(estimate_tokens(12, 3.0), 4);
    }
}
