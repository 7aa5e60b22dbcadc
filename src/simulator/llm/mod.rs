//! The capacity model of a large language model served with response
//! streaming, per instance: a TGI/vLLM-style server with continuous batching.
//!
//! Waiting requests join the running batch in arrival order while it has
//! fewer than `max_batch` sequences and the KV cache can hold the
//! newcomer's prompt and output tokens; beyond `queue_limit` waiting, a
//! request is refused. Joining costs a prefill proportional to the prompt
//! (the batch pauses for it) which yields the first token; then each decode
//! step, longer the larger the batch, gives every sequence one more token.
//! So time to first token grows with the queue and the prompt, and the time
//! per token with the batch. The profile's `[llm]` section
//! ([`crate::simulator::profile::LlmBehaviour`]) sets the numbers.
//!
//! - `batch`: the queue and the batch as pure bookkeeping;
//! - `engine`: the batch in time — a core driven by any clock (tests use a
//!   virtual one) and the task that runs it on the real one.
//!
//! The runtime starts an instance's [`Engine`] with its first stream; the
//! streaming endpoint ([`crate::simulator::streaming`]) submits requests to
//! it and reads their tokens.

mod batch;
mod engine;

pub use batch::{Lengths, QueueFull};
pub use engine::{Engine, EngineGone, Tokens};
