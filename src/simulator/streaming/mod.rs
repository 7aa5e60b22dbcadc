//! InvokeEndpointWithResponseStream (`POST /endpoints/{name}/invocations-response-stream`):
//! a request served by the LLM capacity model ([`crate::simulator::llm`]) and
//! answered as an event stream of PayloadParts, each carrying one or more
//! tokens in the stream format the request's shape asks for.
//!
//! Before the stream starts, SageMaker's usual errors: a request the model
//! server refuses (ModelError 424, its 422 inside), the profile's
//! `error_rate` (ModelError), a serverless endpoint (ValidationError: no
//! LLM engine behind it), a full queue (503 ServiceUnavailable), no first
//! token within the container timeout (ModelError). Once the first token
//! exists the answer is 200 and the stream runs; it may still fail midway —
//! ModelStreamError (ModelInvocationTimeExceeded past the stream timeout,
//! StreamBroken at the profile's `stream_broken_rate`) or InternalStreamFailure
//! (`internal_failure_rate`) — as an exception message in the stream.
//!
//! - `request`: what the body asks for and which dialect it speaks;
//! - `chunk`: the bytes of each part in that dialect;
//! - `frame`: the binary event-stream framing around them;
//! - `body`: a started stream, and the truth it records when it ends.

mod body;
mod chunk;
mod frame;
mod request;

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::StatusCode;
use rand::Rng;
use tokio::time::Instant;

use super::llm::{EngineGone, QueueFull, Tokens};
use super::metrics::{Outcome, Served};
use super::profile::{LlmBehaviour, Profile};
use super::runtime::{self, ServingVariant};
use super::wire::{self, AwsError};
use body::{Parts, Plan, ResponseStream};
use chunk::Chunks;
use frame::StreamFailure;
use request::Generation;

/// A stream that has started: its body and the model server's content type
/// (which SageMaker passes on in `X-Amzn-SageMaker-Content-Type`).
pub struct Started {
    pub body: Body,
    pub content_type: &'static str,
}

/// Serves one streaming request on `variant`: the stream once its first
/// token exists, or the error SageMaker answers before any. `received` is
/// when the request reached the simulator.
pub async fn invoke(
    variant: &ServingVariant,
    profile: &Profile,
    body: &[u8],
    received: Instant,
    endpoint: &str,
) -> Result<Started, AwsError> {
    // A serverless variant has no LLM engine to stream from.
    let Some(llm) = variant.llm() else {
        return Err(AwsError::new(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            format!(
                "Endpoint {endpoint} is a serverless endpoint: the simulator streams responses from instance-based endpoints only."
            ),
        ));
    };
    let refused = |outcome: Outcome, model_start: Option<Instant>, error: AwsError| {
        variant.record(Served {
            outcome,
            model: model_start.map(|start| start.elapsed()),
            overhead: model_start.map(|start| start - received),
            busy: Duration::ZERO,
        });
        Err(error)
    };
    let model_start = Instant::now();
    let generation = match request::read(body, &profile.llm, llm.max_total_tokens) {
        Ok(generation) => generation,
        Err(invalid) => {
            // The model server answers 422; SageMaker wraps it in a ModelError.
            let error = runtime::model_error(&invalid.0, Some(422), endpoint);
            return refused(Outcome::ClientError, Some(model_start), error);
        }
    };
    if let Some((outcome, error)) = variant.drawn_model_error(endpoint) {
        return refused(outcome, Some(model_start), error);
    }
    let claim = variant.route();
    let mut tokens = match claim.engine(llm).submit(generation.lengths) {
        Ok(tokens) => tokens,
        Err(QueueFull) => return refused(Outcome::ServerError, None, runtime::service_unavailable()),
    };
    let deadline = received + profile.llm.stream_timeout;
    let first_token_deadline = deadline.min(received + profile.container_timeout);
    if let Err(error) = first_token(&mut tokens, first_token_deadline, endpoint).await {
        return refused(Outcome::ServerError, Some(model_start), error);
    }
    let plan = Plan {
        output_tokens: generation.lengths.output,
        tokens_per_chunk: profile.llm.tokens_per_chunk,
        failure: drawn_failure(llm, generation.lengths.output),
        deadline,
    };
    let input_tokens = generation.lengths.prompt;
    let chunks = chunks_for(generation);
    let content_type = chunks.content_type();
    let stream = ResponseStream::new(Parts {
        tokens,
        chunks,
        plan,
        recorder: variant.stream_recorder(),
        claim,
        received,
        model_start,
        input_tokens,
    });
    Ok(Started { body: stream.into_body(), content_type })
}

/// Waits for the request's first token: the answer starts once it exists.
/// The error SageMaker answers when it does not exist by `deadline`.
async fn first_token(tokens: &mut Tokens, deadline: Instant, endpoint: &str) -> Result<(), AwsError> {
    match tokio::time::timeout_at(deadline, tokens.reach(1)).await {
        Ok(Ok(_)) => Ok(()),
        // The stream's claim keeps its instance, and so the engine, alive:
        // should it go all the same, SageMaker answers its own failure.
        Ok(Err(EngineGone)) => {
            Err(AwsError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", "An internal error occurred."))
        }
        Err(_elapsed) => Err(runtime::container_timed_out(endpoint)),
    }
}

/// The parts of a generation, with an id and a creation time of its own.
fn chunks_for(generation: Generation) -> Chunks {
    let created = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Chunks::new(generation, format!("chatcmpl-{}", wire::uuid().replace('-', "")), created)
}

/// Whether and where a stream of `output_tokens` fails midway, drawn from
/// the profile's rates. Midway means after a token and before the last.
fn drawn_failure(llm: &LlmBehaviour, output_tokens: u32) -> Option<(u32, StreamFailure)> {
    if output_tokens < 2 {
        return None;
    }
    let mut rng = rand::rng();
    let failure = if rng.random_bool(llm.stream_broken_rate) {
        StreamFailure::Broken
    } else if rng.random_bool(llm.internal_failure_rate) {
        StreamFailure::Internal
    } else {
        return None;
    };
    Some((rng.random_range(1..output_tokens), failure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drawn_failure_falls_after_a_token_and_before_the_last() {
        let mut llm = Profile::builtin().llm.behaviour("ml.g5.xlarge").unwrap();
        assert_eq!(drawn_failure(&llm, 50), None, "no failure rate, no failure");
        llm.stream_broken_rate = 1.0;
        for _ in 0..100 {
            let (after, failure) = drawn_failure(&llm, 3).unwrap();
            assert!((1..3).contains(&after), "{after}");
            assert_eq!(failure, StreamFailure::Broken);
        }
        assert_eq!(drawn_failure(&llm, 1), None, "a single token cannot fail midway");
        llm.stream_broken_rate = 0.0;
        llm.internal_failure_rate = 1.0;
        assert_eq!(drawn_failure(&llm, 2), Some((1, StreamFailure::Internal)));
    }
}
