//! The load manager: drives traffic at an endpoint for a duration and
//! measures it honestly — open-model at a target rate, or closed-loop with a
//! fixed number of requests in flight.
//!
//! goose is closed-loop and its throttle is a cap, not a schedule, so pacing
//! is ours: the [`pacer`] releases each request of the open-model
//! [`schedule`] at its due time (or, closed-loop, the next one the moment
//! one ends) to a worker — a goose user carrying a share of the in-flight
//! slots ([`workers`]) — which sends it, reads the whole answer and records
//! completion minus *intended* start into a [`recorder`] lane of its own, as
//! wrk2 does. A request due while every slot is busy is a late start; one
//! the generator could not even release (it was at its own maximum) is
//! counted unsent; neither is ever silently dropped.
//!
//! Each kind of target is a [`Driver`]: signed InvokeEndpoint
//! ([`InvokeEndpoint`], SigV4 by [`signer`]), any HTTP model server
//! ([`HttpEndpoint`], `--url`), asynchronous inference through S3
//! ([`InvokeAsync`]), and response streams of LLM endpoints read event by
//! event ([`InvokeStream`]: time to first token, every inter-token gap,
//! tokens, goodput), with synthetic [`prompts`] of given token lengths. [`preflight`] sends each payload once before the first
//! step, so a model that rejects a payload is one clear error rather than a
//! step full of 4xx. [`shard`] splits one step over several processes.

mod async_invoke;
mod http_target;
mod invoke;
mod pacer;
pub mod payload;
pub mod preflight;
pub mod prompts;
pub mod recorder;
pub mod schedule;
pub mod shard;
pub mod signer;
pub mod stream_invoke;
mod timer;
mod workers;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use pacer::Pacer;

pub use async_invoke::{AsyncClient, AsyncFigures, Cleanup, InvokeAsync, PartLatency, Polling};
pub use http_target::{Auth, HttpEndpoint, HttpTargetError};
pub use invoke::{Driver, InvokeEndpoint};
pub use payload::{Payload, PayloadError, PayloadMix, PayloadSpec};
pub use recorder::{Counts, Interval, Observation, Outcome, SecondStats, Totals};
pub use schedule::{Arrivals, RateProfile, Schedule};
pub use shard::Shard;
pub use signer::{RequestSigner, SignerError};
pub use stream_invoke::figures::{MissCounts, StreamRecording};
pub use stream_invoke::{InvokeStream, StreamOptions};

/// Default and bounds of the derived in-flight limit.
const MIN_IN_FLIGHT: usize = 16;
const MIN_LONGEST_LATENCY: Duration = Duration::from_secs(2);
const MAX_DERIVED_IN_FLIGHT: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the load generator failed: {}", describe_goose_error(.0))]
    Goose(Box<goose::GooseError>),
    #[error(transparent)]
    Signer(#[from] SignerError),
    #[error("payload {payload} was rejected by endpoint {endpoint}: {code}: {message}")]
    PayloadRejected { payload: String, endpoint: String, code: String, message: String },
    #[error("not a usable runtime URL: {0}")]
    BadUrl(String),
    #[error("cannot reach endpoint {endpoint} for the preflight request: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("{0} cannot run a closed loop")]
    NoClosedLoop(&'static str),
    #[error("`{value}` is not a valid {name} header value")]
    BadHeader { name: String, value: String },
    #[error("cannot start the load generator: {0}")]
    Runtime(String),
    /// The runtime refused requests as signed with expired credentials, and
    /// none could be renewed: the endpoint was not measured.
    #[error(
        "{endpoint} refused {refused} requests because the AWS credentials expired, and renewing them brought no others; the step is not judged: renew the credentials, then resume the run (perfsize --resume RUN_DIR)"
    )]
    CredentialsExpired { endpoint: String, refused: u64 },
}

impl crate::error::HasKind for LoadError {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            LoadError::PayloadRejected { .. }
            | LoadError::BadUrl(_)
            | LoadError::NoClosedLoop(_)
            | LoadError::BadHeader { .. } => crate::error::ErrorKind::Usage,
            LoadError::Signer(e) => crate::error::HasKind::kind(e),
            LoadError::Goose(_)
            | LoadError::Unreachable { .. }
            | LoadError::Runtime(_)
            | LoadError::CredentialsExpired { .. } => crate::error::ErrorKind::Infrastructure,
        }
    }
}

/// goose's Display hides which option it refused; its Debug names it.
fn describe_goose_error(e: &goose::GooseError) -> String {
    format!("{e}: {e:?}")
}

/// Where traffic goes: one endpoint behind a runtime URL.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: String,
    /// Base URL of the SageMaker runtime, e.g. https://runtime.sagemaker.us-west-2.amazonaws.com.
    pub runtime_url: String,
}

impl Target {
    pub fn invocation_url(&self) -> String {
        format!("{}/endpoints/{}/invocations", self.runtime_url.trim_end_matches('/'), self.endpoint)
    }
}

/// Open model: each request at its own due time, whatever became of the others.
#[derive(Debug, Clone, Copy)]
pub struct OpenModel {
    /// Offered rate over warm-up plus measured duration.
    pub rate: RateProfile,
    pub arrivals: Arrivals,
    /// Seed of Poisson arrivals (so a step can be repeated exactly).
    pub seed: u64,
    /// Most requests in flight at once.
    pub max_in_flight: usize,
    /// This process's share of the step.
    pub shard: Shard,
}

impl OpenModel {
    /// This process's schedule: its shard of the whole.
    fn schedule(&self) -> Schedule {
        Schedule::new(self.rate.scaled(self.shard.share()), self.arrivals, self.shard.seed(self.seed))
            .with_phase(self.shard.phase())
    }

    /// The rate this process offers.
    pub fn own_rate(&self) -> f64 {
        self.rate.target() * self.shard.share()
    }
}

/// Closed loop: `concurrency` requests always in flight, each starting the
/// next when it ends, for `length`.
#[derive(Debug, Clone, Copy)]
pub struct ClosedLoop {
    pub concurrency: usize,
    /// Warm-up plus measured duration.
    pub length: Duration,
}

/// When requests are sent.
#[derive(Debug, Clone, Copy)]
pub enum Pacing {
    Open(OpenModel),
    Closed(ClosedLoop),
}

/// How a step's latencies were measured; results of the two kinds never mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LoadModel {
    /// Open model: latency from each request's intended start.
    #[default]
    Open,
    /// Closed loop: latency from the actual send, `concurrency` always in flight.
    ClosedLoop { concurrency: usize },
}

impl LoadModel {
    /// What the latency figures of a step of this kind count from.
    pub fn latency_label(&self) -> String {
        match self {
            LoadModel::Open => "open model, from intended start".into(),
            LoadModel::ClosedLoop { concurrency } => format!("closed loop of {concurrency}, from actual send"),
        }
    }
}

impl Pacing {
    pub fn model(&self) -> LoadModel {
        match self {
            Pacing::Open(_) => LoadModel::Open,
            Pacing::Closed(c) => LoadModel::ClosedLoop { concurrency: c.concurrency },
        }
    }
}

/// Everything one load step needs.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub target: Target,
    pub pacing: Pacing,
    pub warmup: Duration,
    pub payloads: Arc<PayloadMix>,
    pub content_type: String,
    pub accept: String,
    pub request_timeout: Duration,
}

impl LoadSpec {
    /// The Content-Type and Accept headers of every request; a usage error
    /// when either is no valid header value.
    pub fn content_headers(&self) -> Result<http::HeaderMap, LoadError> {
        let mut headers = http::HeaderMap::with_capacity(8);
        for (name, value) in [(http::header::CONTENT_TYPE, &self.content_type), (http::header::ACCEPT, &self.accept)] {
            let valid = http::HeaderValue::from_str(value)
                .map_err(|_| LoadError::BadHeader { name: name.to_string(), value: value.clone() })?;
            headers.insert(name, valid);
        }
        Ok(headers)
    }

    /// The in-flight bound: by Little's law, rate × the longest latency worth
    /// measuring — four times the latency limit, at least 2 s, at most the
    /// request timeout. Latency counts from the intended start, so a bound
    /// that is hit only makes latency look worse, and a step whose latency
    /// reaches it has failed its limit anyway. It costs nothing until used:
    /// slots are shared by a few workers, not one goose user each.
    pub fn derived_max_in_flight(tps: f64, latency_limit: Duration, request_timeout: Duration) -> usize {
        let longest = (latency_limit * 4).clamp(MIN_LONGEST_LATENCY, request_timeout.max(MIN_LONGEST_LATENCY));
        ((tps * longest.as_secs_f64()).ceil() as usize).clamp(MIN_IN_FLIGHT, MAX_DERIVED_IN_FLIGHT)
    }

    /// Warm-up plus measured duration.
    pub fn length(&self) -> Duration {
        match &self.pacing {
            Pacing::Open(open) => open.rate.length(),
            Pacing::Closed(closed) => closed.length,
        }
    }

    /// Length of the measured window.
    pub fn measured(&self) -> Duration {
        self.length().saturating_sub(self.warmup)
    }

    /// The rate offered by this process; None in a closed loop.
    pub fn target_rate(&self) -> Option<f64> {
        match &self.pacing {
            Pacing::Open(open) => Some(open.own_rate()),
            Pacing::Closed(_) => None,
        }
    }

    /// Most requests in flight at once.
    pub fn max_in_flight(&self) -> usize {
        match &self.pacing {
            Pacing::Open(open) => open.max_in_flight,
            Pacing::Closed(closed) => closed.concurrency,
        }
    }
}

/// What one load step measured.
#[derive(Debug, Clone)]
pub struct LoadRun {
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// Wall-clock bounds of the measured window (after warm-up), for CloudWatch.
    pub measured_from: SystemTime,
    pub measured_to: SystemTime,
    /// Requests that fell due in the measured window, sent or not.
    pub offered: u64,
    pub measured_seconds: f64,
    pub totals: Totals,
    pub series: Vec<SecondStats>,
    /// The measured requests, second by second (for interval logs).
    pub intervals: Vec<Interval>,
    pub max_in_flight: usize,
    pub model: LoadModel,
    /// This process's part of a step run by several.
    pub shard: Option<Shard>,
    /// Ctrl-C stopped the step before its end.
    pub cancelled: bool,
    /// Asynchronous steps: polling resolution and S3 requests.
    pub asynchronous: Option<AsyncFigures>,
    /// Streaming steps: time to first token, inter-token gaps, tokens, goodput.
    pub streaming: Option<StreamRecording>,
}

impl LoadRun {
    /// What the step paced by `pacer` and recorded by `recorder` measured,
    /// once its last request is back, requests never sent included.
    fn collect(
        started_at: DateTime<Utc>,
        spec: &LoadSpec,
        pacer: &Pacer,
        recorder: &recorder::Recorder,
        cancelled: bool,
        asynchronous: Option<AsyncFigures>,
    ) -> LoadRun {
        let recording = recorder.finish();
        let mut totals = recording.totals;
        totals.counts.not_sent += pacer.not_sent();
        // Wall-clock time of the schedule's start (or now, if no request was ever due).
        let schedule_start =
            SystemTime::now() - pacer.start_time().map_or(Duration::ZERO, |s| Instant::now().saturating_duration_since(s));
        LoadRun {
            started_at,
            ended_at: Utc::now(),
            measured_from: schedule_start + spec.warmup,
            measured_to: schedule_start + spec.length(),
            offered: pacer.offered(),
            measured_seconds: spec.measured().as_secs_f64(),
            totals,
            series: recording.series,
            intervals: recording.intervals,
            max_in_flight: spec.max_in_flight(),
            model: spec.pacing.model(),
            shard: match spec.pacing {
                Pacing::Open(open) if open.shard != Shard::WHOLE => Some(open.shard),
                _ => None,
            },
            cancelled,
            asynchronous,
            streaming: None,
        }
    }
}

/// Live view of a running step, one call per second.
pub type ProgressFn = Arc<dyn Fn(&SecondStats) + Send + Sync>;

/// What the per-second clock reads of a running step, whatever its driver:
/// its pacer, its recorder, and the token that stops it.
struct Clock {
    pacer: Pacer,
    recorder: recorder::Recorder,
    cancel: CancellationToken,
}

impl Clock {
    /// The clock of a step of `spec`, stopped by `cancel`.
    fn for_spec(spec: &LoadSpec, cancel: CancellationToken) -> Clock {
        Clock { pacer: Pacer::for_spec(spec, cancel.clone()), recorder: recorder::Recorder::new(spec.warmup), cancel }
    }
}

/// A running step, as the per-second clock sees it.
trait Paced: Send + Sync + 'static {
    fn clock(&self) -> &Clock;
}

/// Closes one row of the per-second series each second of the schedule.
async fn tick_seconds(driver: Arc<impl Paced>, progress: Option<ProgressFn>) {
    // The schedule starts when the pacer does.
    let start = loop {
        if let Some(start) = driver.clock().pacer.start_time() {
            break start;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            _ = driver.clock().cancel.cancelled() => return,
        }
    };
    let mut released = 0;
    // Past the schedule's end, rows go on (offering nothing) until the last
    // in-flight request has come back.
    for second in 0.. {
        let tick = start + Duration::from_secs(second as u64 + 1);
        let stopped = tokio::select! {
            _ = tokio::time::sleep_until(tick.into()) => false,
            _ = driver.clock().cancel.cancelled() => true,
        };
        let released_before = std::mem::replace(&mut released, driver.clock().pacer.released());
        let offered = driver.clock().pacer.expected_in(second).unwrap_or(released - released_before);
        let row = driver.clock().recorder.close_second(second, offered);
        if let Some(progress) = &progress {
            progress(&row);
        }
        if stopped {
            return;
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Specs for unit tests.
    use super::*;

    /// An open-model spec at `tps` for `seconds` (warm-up included) with
    /// `warmup` seconds of warm-up and `max_in_flight` slots.
    pub fn spec(tps: f64, seconds: f64, warmup: f64, max_in_flight: usize) -> LoadSpec {
        LoadSpec {
            target: Target { endpoint: "e".into(), runtime_url: "http://127.0.0.1:9".into() },
            pacing: Pacing::Open(OpenModel {
                rate: RateProfile::new(tps, None, Duration::from_secs_f64(seconds)),
                arrivals: Arrivals::Uniform,
                seed: 1,
                max_in_flight,
                shard: Shard::WHOLE,
            }),
            warmup: Duration::from_secs_f64(warmup),
            payloads: Arc::new(PayloadMix::new(vec![Payload::new("p", &b"{}"[..], 1.0)]).unwrap()),
            content_type: "application/json".into(),
            accept: "application/json".into(),
            request_timeout: Duration::from_secs(10),
        }
    }
}
