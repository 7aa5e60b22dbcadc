//! The load manager: drives InvokeEndpoint traffic at a target rate for a
//! duration, through goose, and measures it honestly.
//!
//! goose is closed-loop and its throttle is a cap, not a schedule, so pacing is
//! ours: a pacer thread releases each request of the open-model [`schedule`]
//! at its due time to an idle goose user — each user is one in-flight slot —
//! which sends it signed ([`signer`]), reads the whole answer and records
//! completion minus *intended* start ([`recorder`]), as wrk2 does. A request
//! due while every user is busy is counted as the generator falling behind,
//! never silently dropped.
//!
//! [`preflight`] sends each payload once before the first step, so a model
//! that rejects a payload is one clear error rather than a step full of 4xx.

mod async_invoke;
mod invoke;
mod pacer;
pub mod payload;
pub mod preflight;
pub mod recorder;
pub mod schedule;
pub mod signer;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use goose::GooseAttack;
use goose::client::GooseClientBuilder;
use goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType};
use goose::goose::{GooseRequest, GooseUser, Scenario, Transaction, TransactionResult};
use tokio_util::sync::CancellationToken;

use pacer::Pacer;

pub use async_invoke::{AsyncClient, AsyncFigures, Cleanup, InvokeAsync, PartLatency, Polling};
pub use invoke::{Driver, InvokeEndpoint};
pub use payload::{Payload, PayloadError, PayloadMix, PayloadSpec};
pub use recorder::{Counts, Observation, Outcome, SecondStats, Totals};
pub use schedule::{Arrivals, RateProfile, Schedule};
pub use signer::{RequestSigner, SignerError};

/// If some users never start (goose launching slowly), pace anyway after this.
const LAUNCH_WAIT: Duration = Duration::from_secs(3);
/// How long a user whose schedule is over waits before handing back to goose.
const EXHAUSTED_PAUSE: Duration = Duration::from_millis(200);
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
}

impl crate::error::HasKind for LoadError {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            LoadError::PayloadRejected { .. } | LoadError::BadUrl(_) => crate::error::ErrorKind::Usage,
            LoadError::Signer(e) => crate::error::HasKind::kind(e),
            LoadError::Goose(_) | LoadError::Unreachable { .. } => crate::error::ErrorKind::Infrastructure,
        }
    }
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

/// Everything one load step needs.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub target: Target,
    /// Offered rate over warm-up plus measured duration.
    pub rate: RateProfile,
    pub arrivals: Arrivals,
    /// Seed of Poisson arrivals (so a step can be repeated exactly).
    pub seed: u64,
    pub warmup: Duration,
    pub payloads: Arc<PayloadMix>,
    pub content_type: String,
    pub accept: String,
    pub max_in_flight: usize,
    pub request_timeout: Duration,
}

impl LoadSpec {
    /// The in-flight bound: by Little's law, rate × the longest latency worth
    /// measuring — four times the latency limit, at least 2 s, at most the
    /// request timeout. Latency counts from the intended start, so a bound
    /// that is hit only makes latency look worse, and a step whose latency
    /// reaches it has failed its limit anyway.
    pub fn derived_max_in_flight(tps: f64, latency_limit: Duration, request_timeout: Duration) -> usize {
        let longest = (latency_limit * 4).clamp(MIN_LONGEST_LATENCY, request_timeout.max(MIN_LONGEST_LATENCY));
        ((tps * longest.as_secs_f64()).ceil() as usize).clamp(MIN_IN_FLIGHT, MAX_DERIVED_IN_FLIGHT)
    }

    /// Length of the measured window.
    pub fn measured(&self) -> Duration {
        self.rate.length().saturating_sub(self.warmup)
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
    /// Requests released in the measured window (counted, not expected).
    pub offered: u64,
    pub measured_seconds: f64,
    pub totals: Totals,
    pub series: Vec<SecondStats>,
    pub max_in_flight: usize,
    /// Ctrl-C stopped the step before its end.
    pub cancelled: bool,
    /// Asynchronous steps: polling resolution and S3 requests.
    pub asynchronous: Option<AsyncFigures>,
}

/// Live view of a running step, one call per second.
pub type ProgressFn = Arc<dyn Fn(&SecondStats) + Send + Sync>;

/// State shared by every goose user of one step.
struct Step {
    spec: LoadSpec,
    /// Parsed once: reqwest would parse (and IDNA-check) a string per request.
    url: reqwest::Url,
    pacer: Pacer,
    /// Users that have started; the last one to start starts the pacer.
    launched: AtomicUsize,
    recorder: recorder::Recorder,
    signer: Arc<RequestSigner>,
    cancel: CancellationToken,
    signing_failed: std::sync::Mutex<Option<SignerError>>,
}

impl Step {
    /// One goose user: take the next request the pacer releases, send it,
    /// record it; until the schedule runs out or the step is cancelled.
    async fn run_user(&self, user: &mut GooseUser) {
        if self.launched.fetch_add(1, Ordering::AcqRel) + 1 == self.spec.max_in_flight {
            self.pacer.start();
        }
        while !self.cancel.is_cancelled() {
            let job = tokio::select! {
                job = self.pacer.next() => job,
                _ = self.cancel.cancelled() => return,
            };
            let Some(job) = job else {
                // goose runs the transaction again until it tells the user to
                // exit; pause so a finished user does not spin meanwhile.
                tokio::select! {
                    _ = tokio::time::sleep(EXHAUSTED_PAUSE) => {}
                    _ = self.cancel.cancelled() => {}
                }
                return;
            };
            let sent = Instant::now();
            self.recorder.sent();
            let outcome = tokio::select! {
                outcome = self.send(user, job.slot) => outcome,
                _ = self.cancel.cancelled() => return,
            };
            let done = Instant::now();
            self.recorder.record(Observation {
                due: job.due,
                // From the intended start when sent late (the wait counts, as a
                // real client's would); from the actual send when sent early.
                latency: done - job.intended.min(sent),
                slip: sent.saturating_duration_since(job.intended),
                late_start: job.late_start,
                outcome,
            });
        }
    }

    async fn send(&self, user: &mut GooseUser, slot: u64) -> Outcome {
        let payload = self.spec.payloads.pick(slot);
        let headers = [("content-type", self.spec.content_type.as_str()), ("accept", self.spec.accept.as_str())];
        let signature = match self.signer.sign(self.url.as_str(), &headers, &payload.sha256) {
            Ok(signature) => signature,
            Err(e) => {
                // A step that cannot sign its requests measures nothing about
                // the endpoint: stop it and say why.
                self.signing_failed.lock().expect("signing lock").get_or_insert(e);
                self.cancel.cancel();
                return Outcome::Connection;
            }
        };
        let mut request = user.client.post(self.url.clone()).body(payload.body.clone());
        for (name, value) in headers.into_iter().chain(signature.iter().map(|(n, v)| (*n, v.as_str()))) {
            request = request.header(name, value);
        }
        let goose_request = GooseRequest::builder().set_request_builder(request).build();
        let response = match user.request(goose_request).await {
            Ok(goose) => goose.response,
            Err(e) => {
                tracing::debug!("goose refused the request: {e}");
                return Outcome::Connection;
            }
        };
        classify(response).await
    }
}

/// Reads the whole answer (the clock stops after the body, not the first byte)
/// and classifies it.
async fn classify(response: Result<reqwest::Response, reqwest::Error>) -> Outcome {
    let response = match response {
        Ok(response) => response,
        Err(e) if e.is_timeout() => return Outcome::Timeout,
        Err(_) => return Outcome::Connection,
    };
    let status = response.status().as_u16();
    let code = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_string());
    // Read to the end without keeping the answer: the clock stops after it.
    let mut response = response;
    loop {
        match response.chunk().await {
            Ok(Some(_)) => continue,
            Ok(None) if status == 200 => return Outcome::Success,
            Ok(None) => return Outcome::Http { status, code },
            Err(e) if e.is_timeout() => return Outcome::Timeout,
            Err(_) => return Outcome::Connection,
        }
    }
}

/// goose's Display hides which option it refused; its Debug names it.
fn describe_goose_error(e: &goose::GooseError) -> String {
    format!("{e}: {e:?}")
}

fn goose_error(e: goose::GooseError) -> LoadError {
    LoadError::Goose(Box::new(e))
}

/// Runs one load step. Cancelling `cancel` stops it within milliseconds; the
/// run so far is returned with `cancelled` set.
pub async fn drive(
    spec: LoadSpec,
    signer: Arc<RequestSigner>,
    cancel: CancellationToken,
    progress: Option<ProgressFn>,
) -> Result<LoadRun, LoadError> {
    let started_at = Utc::now();
    let step_cancel = cancel.child_token();
    // Whatever way this function returns, the pacer, the ticker and the
    // launch fallback stop with it.
    let _stop_step = step_cancel.clone().drop_guard();
    let driver = Arc::new(Step {
        url: reqwest::Url::parse(&spec.target.invocation_url())
            .map_err(|e| LoadError::BadUrl(format!("{}: {e}", spec.target.invocation_url())))?,
        pacer: Pacer::new(Schedule::new(spec.rate, spec.arrivals, spec.seed), spec.warmup, step_cancel.clone()),
        launched: AtomicUsize::new(0),
        recorder: recorder::Recorder::new(spec.warmup),
        signer,
        cancel: step_cancel,
        signing_failed: std::sync::Mutex::new(None),
        spec,
    });
    let ticker = tokio::spawn(tick_seconds(Arc::clone(&driver), progress));
    let launch_fallback = tokio::spawn({
        let driver = Arc::clone(&driver);
        async move {
            tokio::time::sleep(LAUNCH_WAIT).await;
            driver.pacer.start();
        }
    });

    let user_driver = Arc::clone(&driver);
    let transaction = Transaction::new(Arc::new(move |user: &mut GooseUser| {
        let driver = Arc::clone(&user_driver);
        Box::pin(async move {
            driver.run_user(user).await;
            TransactionResult::Ok(())
        })
    }));
    let users = driver.spec.max_in_flight;
    let attack = GooseAttack::initialize_with_config(GooseConfiguration::default())
        .map_err(goose_error)?
        .register_scenario(Scenario::new("InvokeEndpoint").register_transaction(transaction))
        .set_client_builder_without_cookies(
            GooseClientBuilder::new().without_cookies().timeout(driver.spec.request_timeout).gzip(false),
        )
        .map_err(goose_error)?;
    let attack = configure(attack, &driver.spec.target.runtime_url, users).map_err(goose_error)?;
    let result = attack.execute().await;
    // Every user is done: stop the clock for the per-second series too.
    driver.cancel.cancel();
    launch_fallback.abort();
    let _ = launch_fallback.await;
    let _ = ticker.await;
    result.map_err(goose_error)?;
    if let Some(e) = driver.signing_failed.lock().expect("signing lock").take() {
        return Err(LoadError::Signer(e));
    }

    let spec = &driver.spec;
    let (totals, series) = driver.recorder.finish();
    // Wall-clock time of the schedule's start (or now, if no request was ever due).
    let schedule_start =
        SystemTime::now() - driver.pacer.start_time().map_or(Duration::ZERO, |s| Instant::now().saturating_duration_since(s));
    Ok(LoadRun {
        started_at,
        ended_at: Utc::now(),
        measured_from: schedule_start + spec.warmup,
        measured_to: schedule_start + spec.rate.length(),
        offered: driver.pacer.offered(),
        measured_seconds: spec.measured().as_secs_f64(),
        totals,
        series,
        max_in_flight: spec.max_in_flight,
        cancelled: cancel.is_cancelled(),
        asynchronous: None,
    })
}

fn configure(attack: GooseAttack, host: &str, users: usize) -> Result<Box<GooseAttack>, goose::GooseError> {
    let attack = attack
        .set_default(GooseDefault::Host, host)?
        .set_default(GooseDefault::Users, users)?
        // Launch every user at once: each is an in-flight slot, idle until its request is due.
        .set_default(GooseDefault::IncreaseRate, format!("{}", users.max(1) * 20).as_str())?
        .set_default(GooseDefault::DecreaseRate, format!("{}", users.max(1) * 20).as_str())?
        // A user's transaction runs until the schedule is over, and goose waits
        // for running transactions when it stops; so a short run time only
        // means "tell every user to exit once its transaction returns".
        .set_default(GooseDefault::RunTime, 1usize)?
        .set_default(GooseDefault::Quiet, 1usize)?;
    let attack = attack
        .set_default(GooseDefault::NoTelnet, true)?
        // Our histograms are the measurement; goose's bucketed metrics would only cost CPU.
        .set_default(GooseDefault::NoMetrics, true)?
        .set_default(GooseDefault::NoPrintMetrics, true)?;
    Ok(attack)
}

/// A step the per-second clock reads: its pacer, its recorder, its rate, and
/// the token that stops it.
trait Paced: Send + Sync + 'static {
    fn pacer(&self) -> &Pacer;
    fn recorder(&self) -> &recorder::Recorder;
    fn profile(&self) -> RateProfile;
    fn stopped(&self) -> &CancellationToken;
}

impl Paced for Step {
    fn pacer(&self) -> &Pacer {
        &self.pacer
    }
    fn recorder(&self) -> &recorder::Recorder {
        &self.recorder
    }
    fn profile(&self) -> RateProfile {
        self.spec.rate
    }
    fn stopped(&self) -> &CancellationToken {
        &self.cancel
    }
}

/// Closes one row of the per-second series each second of the schedule.
async fn tick_seconds(driver: Arc<impl Paced>, progress: Option<ProgressFn>) {
    // The schedule starts when the pacer does.
    let start = loop {
        if let Some(start) = driver.pacer().start_time() {
            break start;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            _ = driver.stopped().cancelled() => return,
        }
    };
    let profile = driver.profile();
    // Past the schedule's end, rows go on (offering nothing) until the last
    // in-flight request has come back.
    for second in 0.. {
        let tick = start + Duration::from_secs(second as u64 + 1);
        let stopped = tokio::select! {
            _ = tokio::time::sleep_until(tick.into()) => false,
            _ = driver.stopped().cancelled() => true,
        };
        let offered = (profile.cumulative(second as f64 + 1.0) - profile.cumulative(second as f64)).round() as u64;
        let row = driver.recorder().close_second(second, offered);
        if let Some(progress) = &progress {
            progress(&row);
        }
        if stopped {
            return;
        }
    }
}
