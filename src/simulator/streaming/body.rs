//! One response stream once it has started: it waits for its request's
//! tokens, cuts them into PayloadParts of `tokens_per_chunk`, fails midway
//! when its plan says so (or its time is up), and — however it ends, the
//! client hanging up included — records what it really sent and when: the
//! simulator's own truth, against which a client's measurements are checked.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use tokio::time::Instant;

use super::chunk::Chunks;
use super::frame::{self, StreamFailure};
use crate::simulator::llm::{EngineGone, Tokens};
use crate::simulator::metrics::{Outcome, StreamServed};
use crate::simulator::runtime::{Claim, StreamRecorder};

/// How a stream will go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Tokens the whole answer has.
    pub output_tokens: u32,
    pub tokens_per_chunk: u32,
    /// Fail this way once this many tokens were sent (fewer than the output).
    pub failure: Option<(u32, StreamFailure)>,
    /// Unfinished by then: ModelInvocationTimeExceeded.
    pub deadline: Instant,
}

/// What the stream sent and when.
struct Truth {
    received: Instant,
    model_start: Instant,
    input_tokens: u32,
    sent_tokens: u32,
    first_part: Option<Instant>,
    last_part: Option<Instant>,
    token_gaps: Vec<Duration>,
    ended: Option<(Instant, Outcome)>,
}

impl Truth {
    /// A part of `tokens` tokens went out at `at`: after the first, its gap
    /// from the part before is spread over its tokens.
    fn part(&mut self, tokens: u32, at: Instant) {
        if let Some(before) = self.last_part {
            let gap = (at - before) / tokens.max(1);
            self.token_gaps.extend(std::iter::repeat_n(gap, tokens as usize));
        } else {
            self.first_part = Some(at);
        }
        self.last_part = Some(at);
        self.sent_tokens += tokens;
    }

    fn end(&mut self, at: Instant, outcome: Outcome) {
        self.ended.get_or_insert((at, outcome));
    }

    /// The stream as recorded. One that never ended was dropped by its
    /// client: the model served it until then, and it is no error of the
    /// model's.
    fn served(&mut self) -> StreamServed {
        let (ended, outcome) = self.ended.unwrap_or_else(|| (Instant::now(), Outcome::Success));
        StreamServed {
            outcome,
            model: ended.saturating_duration_since(self.model_start),
            overhead: self.model_start - self.received,
            first_token: self.first_part.map(|at| at - self.received),
            token_gaps: std::mem::take(&mut self.token_gaps),
            input_tokens: self.input_tokens,
            output_tokens: self.sent_tokens,
        }
    }
}

/// Where the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Tokens,
    /// Every token is out; what follows them is next.
    Closing,
    Done,
}

/// A stream that has started: the first token of its request exists.
pub struct ResponseStream {
    tokens: Tokens,
    chunks: Chunks,
    plan: Plan,
    stage: Stage,
    truth: Truth,
    recorder: StreamRecorder,
    /// The place on the instance, held until the stream ends.
    _claim: Claim,
}

/// What a started stream is made of.
pub struct Parts {
    pub tokens: Tokens,
    pub chunks: Chunks,
    pub plan: Plan,
    pub recorder: StreamRecorder,
    pub claim: Claim,
    pub received: Instant,
    pub model_start: Instant,
    pub input_tokens: u32,
}

impl ResponseStream {
    pub fn new(parts: Parts) -> ResponseStream {
        let Parts { tokens, chunks, plan, recorder, claim, received, model_start, input_tokens } = parts;
        let truth = Truth {
            received,
            model_start,
            input_tokens,
            sent_tokens: 0,
            first_part: None,
            last_part: None,
            token_gaps: Vec::new(),
            ended: None,
        };
        ResponseStream { tokens, chunks, plan, stage: Stage::Tokens, truth, recorder, _claim: claim }
    }

    /// The HTTP body: one event-stream message per part, each handed to the
    /// connection as soon as it exists.
    pub fn into_body(self) -> Body {
        Body::from_stream(futures::stream::unfold(self, |mut stream| async move {
            let frame = stream.next_frame().await?;
            Some((Ok::<_, Infallible>(frame), stream))
        }))
    }

    /// The next message of the stream; None once it has ended.
    async fn next_frame(&mut self) -> Option<Bytes> {
        match self.stage {
            Stage::Tokens => Some(self.next_tokens().await),
            Stage::Closing => {
                self.stage = Stage::Done;
                self.chunks.end().map(frame::payload_part)
            }
            Stage::Done => None,
        }
    }

    /// The next part of tokens, or the failure that ends the stream here.
    async fn next_tokens(&mut self) -> Bytes {
        let sent = self.truth.sent_tokens;
        let mut upto = sent.saturating_add(self.plan.tokens_per_chunk).min(self.plan.output_tokens);
        if let Some((after, failure)) = self.plan.failure {
            if sent >= after {
                return self.fail(failure);
            }
            upto = upto.min(after);
        }
        match tokio::time::timeout_at(self.plan.deadline, self.tokens.reach(upto)).await {
            Err(_) => self.fail(StreamFailure::TimeExceeded),
            // The instance went away under the stream.
            Ok(Err(EngineGone)) => self.fail(StreamFailure::Internal),
            Ok(Ok(_)) => {
                let part = self.chunks.tokens(sent, upto - sent);
                let now = Instant::now();
                self.truth.part(upto - sent, now);
                if upto == self.plan.output_tokens {
                    self.stage = Stage::Closing;
                    self.truth.end(now, Outcome::Success);
                }
                frame::payload_part(part)
            }
        }
    }

    fn fail(&mut self, failure: StreamFailure) -> Bytes {
        self.stage = Stage::Done;
        self.truth.end(Instant::now(), Outcome::ServerError);
        frame::failure(failure)
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        self.recorder.record(self.truth.served());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(received: Instant) -> Truth {
        Truth {
            received,
            model_start: received + Duration::from_millis(1),
            input_tokens: 10,
            sent_tokens: 0,
            first_part: None,
            last_part: None,
            token_gaps: Vec::new(),
            ended: None,
        }
    }

    #[test]
    fn a_part_of_several_tokens_counts_as_several_with_its_gap_spread() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut truth = truth(t0);
        truth.part(3, t0 + ms(50));
        truth.part(3, t0 + ms(80));
        truth.part(1, t0 + ms(90));
        truth.end(t0 + ms(90), Outcome::Success);
        truth.end(t0 + ms(99), Outcome::ServerError);
        let served = truth.served();
        assert_eq!(served.first_token, Some(ms(50)));
        assert_eq!(served.token_gaps, vec![ms(10), ms(10), ms(10), ms(10)], "the first part's tokens have no gap");
        assert_eq!((served.output_tokens, served.input_tokens), (7, 10));
        assert_eq!((served.model, served.outcome), (ms(89), Outcome::Success), "the first end counts");
        assert_eq!(served.overhead, ms(1));
    }
}
