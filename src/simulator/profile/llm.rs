//! The `[llm]` section of a simulator profile: how a large language model
//! served with response streaming behaves on each instance type — the
//! continuous-batching engine's limits and timings ([`LlmBehaviour`]) — and
//! what the stream looks like and what requests ask for when they do not say
//! ([`LlmProfile`]).
//!
//! It layers as the rest of the profile does: for instance type X and key k
//! the first of the file's `[llm.instance_types."X"]`, the file's
//! `[llm.default]`, the shipped `[llm.instance_types."X"]` and the shipped
//! `[llm.default]` that sets k wins. A type taken from a `[llm.default]` has
//! `max_batch`, `kv_cache_tokens` and `queue_limit` scaled by its GPU count
//! (resources/instances.json; a type without GPUs counts as one): a model
//! sharded over more GPUs leaves more memory to the KV cache. The top-level
//! `[llm]` keys fall back key by key to the shipped profile.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::layers::{Layered, layered, types_over};
use super::{LogNormalFit, duration_seconds};
use crate::catalog;

// Used when neither the file nor the shipped profile sets the key.
const DEFAULT_TOKENS_PER_CHUNK: u32 = 1;
const DEFAULT_PROMPT_TOKENS: LogNormalFit = LogNormalFit { median: 250.0, p99: 2000.0 };
const DEFAULT_OUTPUT_TOKENS: LogNormalFit = LogNormalFit { median: 200.0, p99: 800.0 };
const DEFAULT_STREAM_TIMEOUT_SECONDS: f64 = 300.0;
const DEFAULT_MAX_BATCH: usize = 16;
const DEFAULT_KV_CACHE_TOKENS: u32 = 16_384;
const DEFAULT_MAX_TOTAL_TOKENS: u32 = 8_192;
const DEFAULT_PREFILL_MS_PER_TOKEN: f64 = 0.2;
const DEFAULT_DECODE_STEP_MS: f64 = 28.0;
const DEFAULT_DECODE_STEP_MS_PER_SEQUENCE: f64 = 0.8;
const DEFAULT_QUEUE_LIMIT: usize = 128;
const DEFAULT_WEIGHTS_MEMORY_PERCENT: f64 = 67.0;

/// The engine's clock: how long a prefill and a decode step take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlmTiming {
    /// Prefill time per prompt token: prefill is compute-bound, so it grows
    /// with the tokens it reads.
    pub prefill_per_token: Duration,
    /// A decode step with a batch of one: reading the weights once.
    pub decode_step: Duration,
    /// What each further sequence in the batch adds to a decode step.
    pub decode_per_sequence: Duration,
}

impl LlmTiming {
    /// The prefill of prompts totalling `prompt_tokens` tokens.
    pub fn prefill(&self, prompt_tokens: u32) -> Duration {
        self.prefill_per_token * prompt_tokens
    }

    /// One decode step of a batch of `batch` sequences, each of which gains a token.
    pub fn decode_step(&self, batch: usize) -> Duration {
        let further = u32::try_from(batch.saturating_sub(1)).unwrap_or(u32::MAX);
        self.decode_step + self.decode_per_sequence * further
    }
}

/// How the model behaves on one instance type, after the layers were applied.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmBehaviour {
    /// The instance type's GPUs (0 for none): GPU metrics range to 100 × this.
    pub gpus: u32,
    /// Sequences decoded together at most (continuous batching).
    pub max_batch: usize,
    /// Tokens the KV cache holds; a sequence holds its prompt and output tokens
    /// from admission to its last token.
    pub kv_cache_tokens: u32,
    /// The most prompt + output tokens one request may ask for (the context
    /// length); never more than the KV cache, so every request fits alone.
    pub max_total_tokens: u32,
    pub timing: LlmTiming,
    /// Requests waiting for the batch per instance; one more is refused (503).
    pub queue_limit: usize,
    /// GPU memory the weights take, percent of the GPUs' memory; the KV cache
    /// has the rest.
    pub weights_memory_percent: f64,
    /// Fraction of streams whose connection to the model breaks midway
    /// (ModelStreamError StreamBroken).
    pub stream_broken_rate: f64,
    /// Fraction of streams that fail midway inside SageMaker (InternalStreamFailure).
    pub internal_failure_rate: f64,
}

/// The validated `[llm]` section.
#[derive(Debug, Clone)]
pub struct LlmProfile {
    /// Tokens one PayloadPart carries at most (the last may carry fewer).
    pub tokens_per_chunk: u32,
    /// Prompt length of a request whose prompt text says nothing.
    pub prompt_tokens: LogNormalFit,
    /// Output length of a request that sets no max_new_tokens / max_tokens.
    pub output_tokens: LogNormalFit,
    /// A stream not finished by then (from its arrival) ends with
    /// ModelStreamError ModelInvocationTimeExceeded.
    pub stream_timeout: Duration,
    default: LlmEntryFile,
    default_gpus: u32,
    types: BTreeMap<String, LlmEntryFile>,
}

/// `[llm]` as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LlmFile {
    tokens_per_chunk: Option<u32>,
    prompt_tokens: Option<LogNormalFit>,
    output_tokens: Option<LogNormalFit>,
    stream_timeout_seconds: Option<f64>,
    #[serde(default)]
    default: LlmEntryFile,
    #[serde(default)]
    instance_types: BTreeMap<String, LlmEntryFile>,
}

/// `[llm.default]` or one `[llm.instance_types."…"]` table. `gpus` belongs to
/// `[llm.default]` only (a listed type's GPUs come from the catalog).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LlmEntryFile {
    gpus: Option<u32>,
    max_batch: Option<usize>,
    kv_cache_tokens: Option<u32>,
    max_total_tokens: Option<u32>,
    prefill_ms_per_token: Option<f64>,
    decode_step_ms: Option<f64>,
    decode_step_ms_per_sequence: Option<f64>,
    queue_limit: Option<usize>,
    weights_memory_percent: Option<f64>,
    stream_broken_rate: Option<f64>,
    internal_failure_rate: Option<f64>,
}

layered!(LlmEntryFile {
    gpus,
    max_batch,
    kv_cache_tokens,
    max_total_tokens,
    prefill_ms_per_token,
    decode_step_ms,
    decode_step_ms_per_sequence,
    queue_limit,
    weights_memory_percent,
    stream_broken_rate,
    internal_failure_rate,
});

impl LlmEntryFile {
    /// What is wrong with the keys this entry sets, if anything.
    fn problem(&self) -> Option<String> {
        let fraction = |key: &str, value: Option<f64>| {
            value.filter(|v| !(0.0..=1.0).contains(v)).map(|v| format!("`{key}` is a fraction between 0 and 1, got {v}"))
        };
        let non_negative_ms = |key: &str, value: Option<f64>| {
            value
                .filter(|v| !(v.is_finite() && *v >= 0.0))
                .map(|v| format!("`{key}` must be a non-negative number of milliseconds, got {v}"))
        };
        if self.max_batch == Some(0) {
            Some("`max_batch` must be at least 1".to_string())
        } else if self.kv_cache_tokens == Some(0) {
            Some("`kv_cache_tokens` must be at least 1".to_string())
        } else if self.max_total_tokens.is_some_and(|n| n < 2) {
            Some("`max_total_tokens` must be at least 2 (a prompt token and an output token)".to_string())
        } else if let Some(step) = self.decode_step_ms
            && !(step.is_finite() && step > 0.0)
        {
            // Every token takes some time: a zero step would generate a whole
            // answer at one instant.
            Some(format!("`decode_step_ms` must be a positive number of milliseconds, got {step}"))
        } else if let Some(m) = self.weights_memory_percent
            && !(0.0..100.0).contains(&m)
        {
            Some(format!("`weights_memory_percent` must be at least 0 and below 100, got {m}"))
        } else {
            non_negative_ms("prefill_ms_per_token", self.prefill_ms_per_token)
                .or_else(|| non_negative_ms("decode_step_ms_per_sequence", self.decode_step_ms_per_sequence))
                .or_else(|| fraction("stream_broken_rate", self.stream_broken_rate))
                .or_else(|| fraction("internal_failure_rate", self.internal_failure_rate))
        }
    }
}

impl LlmFile {
    /// This file's section laid over `base` (see the module documentation).
    pub(super) fn over(self, base: LlmFile) -> LlmFile {
        let types = types_over(self.instance_types, base.instance_types, &self.default);
        LlmFile {
            tokens_per_chunk: self.tokens_per_chunk.or(base.tokens_per_chunk),
            prompt_tokens: self.prompt_tokens.or(base.prompt_tokens),
            output_tokens: self.output_tokens.or(base.output_tokens),
            stream_timeout_seconds: self.stream_timeout_seconds.or(base.stream_timeout_seconds),
            default: self.default.over(base.default),
            instance_types: types,
        }
    }
}

/// A token-count distribution's problem, if any: counts are at least one token.
fn token_count_problem(key: &str, fit: &LogNormalFit) -> Option<String> {
    (!(fit.median >= 1.0 && fit.is_ordered()))
        .then(|| format!("`llm.{key}` needs 1 <= median <= p99 tokens, got median {} and p99 {}", fit.median, fit.p99))
}

impl LlmProfile {
    /// Validates a complete (merged) `[llm]` section; the message names the key.
    pub(super) fn build(file: LlmFile) -> Result<LlmProfile, String> {
        let tokens_per_chunk = file.tokens_per_chunk.unwrap_or(DEFAULT_TOKENS_PER_CHUNK);
        if tokens_per_chunk == 0 {
            return Err("`llm.tokens_per_chunk` must be at least 1".to_string());
        }
        let prompt_tokens = file.prompt_tokens.unwrap_or(DEFAULT_PROMPT_TOKENS);
        let output_tokens = file.output_tokens.unwrap_or(DEFAULT_OUTPUT_TOKENS);
        if let Some(problem) =
            token_count_problem("prompt_tokens", &prompt_tokens).or_else(|| token_count_problem("output_tokens", &output_tokens))
        {
            return Err(problem);
        }
        let stream_timeout = duration_seconds(
            "llm.stream_timeout_seconds",
            file.stream_timeout_seconds.unwrap_or(DEFAULT_STREAM_TIMEOUT_SECONDS),
            false,
        )?;
        let default_gpus = match file.default.gpus {
            None => 1,
            Some(gpus) if gpus >= 1 => gpus,
            Some(_) => return Err("`llm.default.gpus` must be at least 1".to_string()),
        };
        if let Some(problem) = file.default.problem() {
            return Err(format!("`llm.default`: {problem}"));
        }
        for (name, entry) in &file.instance_types {
            let key = format!("llm.instance_types.\"{name}\"");
            if catalog::spec(name).is_none() {
                return Err(format!("`{key}`: {}", catalog::UnknownInstanceType { name: name.clone() }));
            }
            if entry.gpus.is_some() {
                return Err(format!(
                    "`{key}`: `gpus` belongs in `[llm.default]` only; the GPUs of {name} come from resources/instances.json"
                ));
            }
            if let Some(problem) = entry.problem() {
                return Err(format!("`{key}`: {problem}"));
            }
        }
        Ok(LlmProfile {
            tokens_per_chunk,
            prompt_tokens,
            output_tokens,
            stream_timeout,
            default: file.default,
            default_gpus,
            types: file.instance_types,
        })
    }

    /// How the model behaves on `instance_type`: its own (merged) entry where
    /// it sets a key, otherwise the (merged) `[llm.default]`, its capacities
    /// scaled by GPUs. None for a type the catalog does not know.
    pub fn behaviour(&self, instance_type: &str) -> Option<LlmBehaviour> {
        let gpus = catalog::spec(instance_type)?.gpus;
        let own = self.types.get(instance_type).cloned().unwrap_or_default();
        let base = &self.default;
        let ratio = f64::from(gpus.max(1)) / f64::from(self.default_gpus);
        let scaled = |n: usize| (n as f64 * ratio).round() as usize;
        let ms = |value: f64| Duration::from_secs_f64(value / 1000.0);
        let kv_cache_tokens = own.kv_cache_tokens.unwrap_or_else(|| {
            let base = base.kv_cache_tokens.unwrap_or(DEFAULT_KV_CACHE_TOKENS);
            u32::try_from(scaled(base as usize)).unwrap_or(u32::MAX).max(1)
        });
        let max_total_tokens = own.max_total_tokens.or(base.max_total_tokens).unwrap_or(DEFAULT_MAX_TOTAL_TOKENS);
        Some(LlmBehaviour {
            gpus,
            max_batch: own.max_batch.unwrap_or_else(|| scaled(base.max_batch.unwrap_or(DEFAULT_MAX_BATCH)).max(1)),
            kv_cache_tokens,
            max_total_tokens: max_total_tokens.min(kv_cache_tokens),
            timing: LlmTiming {
                prefill_per_token: ms(own
                    .prefill_ms_per_token
                    .or(base.prefill_ms_per_token)
                    .unwrap_or(DEFAULT_PREFILL_MS_PER_TOKEN)),
                decode_step: ms(own.decode_step_ms.or(base.decode_step_ms).unwrap_or(DEFAULT_DECODE_STEP_MS)),
                decode_per_sequence: ms(own
                    .decode_step_ms_per_sequence
                    .or(base.decode_step_ms_per_sequence)
                    .unwrap_or(DEFAULT_DECODE_STEP_MS_PER_SEQUENCE)),
            },
            queue_limit: own.queue_limit.unwrap_or_else(|| scaled(base.queue_limit.unwrap_or(DEFAULT_QUEUE_LIMIT))),
            weights_memory_percent: own
                .weights_memory_percent
                .or(base.weights_memory_percent)
                .unwrap_or(DEFAULT_WEIGHTS_MEMORY_PERCENT),
            stream_broken_rate: own.stream_broken_rate.or(base.stream_broken_rate).unwrap_or(0.0),
            internal_failure_rate: own.internal_failure_rate.or(base.internal_failure_rate).unwrap_or(0.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Profile;
    use super::*;

    fn llm(text: &str) -> LlmProfile {
        Profile::parse(text, "llm.toml").expect("valid profile").llm
    }

    fn error(text: &str) -> String {
        Profile::parse(text, "llm.toml").unwrap_err().to_string()
    }

    #[test]
    fn the_shipped_profile_serves_the_gpu_types_llm_users_size() {
        let shipped = Profile::builtin().llm;
        let one_a10g = shipped.behaviour("ml.g5.xlarge").unwrap();
        let four_a10g = shipped.behaviour("ml.g5.12xlarge").unwrap();
        let eight_a100 = shipped.behaviour("ml.p4d.24xlarge").unwrap();
        assert_eq!((one_a10g.gpus, four_a10g.gpus, eight_a100.gpus), (1, 4, 8));
        assert!(one_a10g.max_batch < four_a10g.max_batch && four_a10g.max_batch < eight_a100.max_batch);
        assert!(one_a10g.kv_cache_tokens < four_a10g.kv_cache_tokens);
        assert!(eight_a100.timing.decode_step(1) < one_a10g.timing.decode_step(1));
        assert!(one_a10g.max_total_tokens <= one_a10g.kv_cache_tokens);
        assert_eq!(shipped.tokens_per_chunk, 1, "TGI sends a token per event");
    }

    #[test]
    fn a_decode_step_grows_with_the_batch_and_a_prefill_with_the_prompt() {
        let timing = LlmTiming {
            prefill_per_token: Duration::from_micros(100),
            decode_step: Duration::from_millis(20),
            decode_per_sequence: Duration::from_millis(1),
        };
        assert_eq!(timing.decode_step(1), Duration::from_millis(20));
        assert_eq!(timing.decode_step(8), Duration::from_millis(27));
        assert_eq!(timing.decode_step(0), Duration::from_millis(20), "an empty batch is never stepped, but is not negative");
        assert_eq!(timing.prefill(1000), Duration::from_millis(100));
    }

    #[test]
    fn unlisted_types_scale_the_default_by_gpus() {
        let p =
            llm("[llm.default]\ngpus = 1\nmax_batch = 8\nkv_cache_tokens = 10000\nqueue_limit = 10\nmax_total_tokens = 4096\n");
        let four = p.behaviour("ml.g6.12xlarge").unwrap();
        assert_eq!((four.gpus, four.max_batch, four.kv_cache_tokens, four.queue_limit), (4, 32, 40000, 40));
        assert_eq!(four.max_total_tokens, 4096, "the context does not grow with GPUs");
        let cpu = p.behaviour("ml.c5.large").unwrap();
        assert_eq!((cpu.gpus, cpu.max_batch, cpu.kv_cache_tokens), (0, 8, 10000), "a type without GPUs counts as one");
        assert!(p.behaviour("ml.nope.large").is_none());
    }

    #[test]
    fn layers_apply_key_by_key_as_in_the_rest_of_the_profile() {
        let shipped = Profile::builtin().llm;
        let g5 = shipped.behaviour("ml.g5.12xlarge").unwrap();
        // One key of one type: the rest of the shipped entry stays.
        let p = llm("[llm.instance_types.\"ml.g5.12xlarge\"]\nmax_batch = 3\n");
        assert_eq!(p.behaviour("ml.g5.12xlarge").unwrap(), LlmBehaviour { max_batch: 3, ..g5.clone() });
        // A file's [llm.default] beats the shipped entries, key by key.
        let p = llm("[llm.default]\nstream_broken_rate = 0.5\n");
        assert_eq!(p.behaviour("ml.g5.12xlarge").unwrap(), LlmBehaviour { stream_broken_rate: 0.5, ..g5 });
        // Top-level keys fall back one by one.
        let p = llm("[llm]\ntokens_per_chunk = 4\n");
        assert_eq!((p.tokens_per_chunk, p.output_tokens, p.stream_timeout), (4, shipped.output_tokens, shipped.stream_timeout));
    }

    #[test]
    fn the_context_never_exceeds_the_kv_cache() {
        let p = llm("[llm.instance_types.\"ml.g5.xlarge\"]\nkv_cache_tokens = 1000\nmax_total_tokens = 4096\n");
        assert_eq!(p.behaviour("ml.g5.xlarge").unwrap().max_total_tokens, 1000);
    }

    #[test]
    fn malformed_llm_keys_are_named() {
        for (text, expected) in [
            ("[llm]\ntokens_per_chunk = 0\n", "llm.tokens_per_chunk"),
            ("[llm]\noutput_tokens = { median = 0.0, p99 = 5.0 }\n", "llm.output_tokens"),
            ("[llm]\nprompt_tokens = { median = 50.0, p99 = 5.0 }\n", "llm.prompt_tokens"),
            ("[llm]\nstream_timeout_seconds = 0\n", "llm.stream_timeout_seconds"),
            ("[llm.default]\ngpus = 0\n", "llm.default.gpus"),
            ("[llm.default]\ndecode_step_ms = 0.0\n", "decode_step_ms"),
            ("[llm.instance_types.\"ml.g5.xlarge\"]\nmax_batch = 0\n", "max_batch"),
            ("[llm.instance_types.\"ml.g5.xlarge\"]\nstream_broken_rate = 2.0\n", "stream_broken_rate"),
            ("[llm.instance_types.\"ml.g5.xlarge\"]\nweights_memory_percent = 100.0\n", "weights_memory_percent"),
            ("[llm.instance_types.\"ml.g5.xlarge\"]\ngpus = 2\n", "`gpus` belongs in `[llm.default]`"),
            ("[llm.instance_types.\"ml.bogus.large\"]\n", "unknown instance type"),
            ("[llm.default]\nmax_btach = 2\n", "unknown field `max_btach`"),
        ] {
            let err = error(text);
            assert!(err.contains("llm.toml") && err.contains(expected), "{text}: {err}");
        }
    }
}
