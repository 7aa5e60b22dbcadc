//! Asynchronous inference as a [`Driver`]: each request's input is uploaded
//! to S3 and handed to InvokeEndpointAsync at its due time; a request is done
//! when its output (or failure file) can be read, found by HeadObject with
//! exponential backoff. Submission and completion detection are kept apart:
//! a pool of submission workers keeps the schedule, and every submitted
//! request is watched by a task of its own, so slow outputs never hold up
//! the next submission. Latency counts from the intended submission to the
//! moment the output was seen — which the polling interval quantises, so the
//! run says how finely it looked.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_types::retry::RetryConfig;
use hdrhistogram::Histogram;
use tokio_util::task::TaskTracker;

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::pacer::Job;
use super::recorder::{Observation, Outcome};
use super::{Clock, Driver, LoadError, LoadRun, LoadSpec, Paced, Pacing, ProgressFn, Target, tick_seconds};
use crate::s3::{S3Location, bucket_and_key};

/// How completion is looked for: from `interval`, times `multiplier` after
/// each miss, up to `max_interval`; a request not done by `max_wait` after
/// its submission is a timeout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polling {
    pub interval: Duration,
    pub max_interval: Duration,
    pub multiplier: f64,
    pub max_wait: Duration,
}

impl Polling {
    fn after(&self, wait: Duration) -> Duration {
        wait.mul_f64(self.multiplier).min(self.max_interval)
    }
}

/// What happens to the objects a request wrote once it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// Input and output deleted as soon as the output was seen.
    Immediate,
    /// Deleted this long after the output was seen — and, whatever is still
    /// waiting, before the run exits ([`Driver::settle`]).
    Delayed(Duration),
    /// Kept for the user to inspect; the summary says where.
    Disabled,
}

impl Cleanup {
    /// Whether the objects stay after the run.
    pub fn keeps(&self) -> bool {
        *self == Cleanup::Disabled
    }
}

impl std::fmt::Display for Cleanup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cleanup::Immediate => f.write_str("immediate"),
            Cleanup::Delayed(after) => write!(f, "delayed {}", humantime::format_duration(*after)),
            Cleanup::Disabled => f.write_str("disabled"),
        }
    }
}

/// Where an endpoint without an `S3FailurePath` writes the failure file of
/// the output at `output`: beside it, `<inference id>-error.out` for
/// `<inference id>.out` (SageMaker names no failure location then). Empty
/// when the output's name is not the default one.
fn failure_beside(output: &str) -> String {
    output.strip_suffix(".out").map_or_else(String::new, |stem| format!("{stem}-error.out"))
}

/// How asynchronous requests are sent and watched, whatever the bucket.
#[derive(Debug, Clone)]
pub struct AsyncClient {
    pub polling: Polling,
    pub submission_workers: usize,
    /// Most HeadObject/GetObject looks at once, across every watched request.
    pub polling_workers: usize,
    /// Most requests submitted and not yet done; a request due while this
    /// many are out waits (and its latency counts the wait).
    pub max_concurrent_jobs: Option<usize>,
    /// Attempts after the first for a throttled or failed S3 or runtime call.
    pub max_retries: u32,
    /// `X-Amzn-SageMaker-RequestTTLSeconds`: how long a request may wait in
    /// the endpoint's queue before it fails.
    pub request_ttl: Option<Duration>,
    pub cleanup: Cleanup,
}

/// S3 calls one step made: a cost per inference, and what polling costs.
#[derive(Debug, Default)]
struct S3Calls {
    put: AtomicU64,
    head: AtomicU64,
    get: AtomicU64,
    delete: AtomicU64,
    /// Bytes stored × milliseconds held, for the storage part of the cost.
    byte_ms: AtomicU64,
    /// Objects left in place by the cleanup policy.
    kept: AtomicU64,
}

/// The median and tail of a client-side part of each request, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct PartLatency {
    pub p50: f64,
    pub p99: f64,
}

impl PartLatency {
    fn of(h: &Histogram<u64>) -> PartLatency {
        let ms = |q: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1000.0 };
        PartLatency { p50: ms(0.5), p99: ms(0.99) }
    }
}

/// What an asynchronous step adds to its figures: how finely completion was
/// looked for, the client-side parts of each request, and the S3 requests
/// and storage it took (each one billed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsyncFigures {
    /// The first and the longest wait between looks: an output is seen up
    /// to this late, so end-to-end times are this coarse.
    pub polling_interval_ms: f64,
    pub max_polling_interval_ms: f64,
    /// Uploading the input (PutObject).
    #[serde(default)]
    pub upload_ms: PartLatency,
    /// InvokeEndpointAsync, from its call to its 202.
    #[serde(default)]
    pub submit_ms: PartLatency,
    pub s3_put: u64,
    pub s3_head: u64,
    pub s3_get: u64,
    pub s3_delete: u64,
    /// All of them, per request submitted.
    pub s3_requests_per_inference: f64,
    /// Gigabyte-seconds of objects stored until deleted (kept objects excluded).
    #[serde(default)]
    pub stored_gb_seconds: f64,
    /// Objects the cleanup policy left in place.
    #[serde(default)]
    pub kept_objects: u64,
    /// The cleanup policy, as the user set it.
    #[serde(default)]
    pub cleanup: String,
}

impl AsyncFigures {
    fn of(step: &AsyncStep, io: &AsyncClient, requests: u64) -> AsyncFigures {
        let calls = &step.calls;
        let [put, head, get, delete] = [&calls.put, &calls.head, &calls.get, &calls.delete].map(|c| c.load(Ordering::Relaxed));
        let parts = crate::error::lock(&step.parts);
        AsyncFigures {
            polling_interval_ms: io.polling.interval.as_secs_f64() * 1000.0,
            max_polling_interval_ms: io.polling.max_interval.as_secs_f64() * 1000.0,
            upload_ms: PartLatency::of(&parts.upload),
            submit_ms: PartLatency::of(&parts.submit),
            s3_put: put,
            s3_head: head,
            s3_get: get,
            s3_delete: delete,
            s3_requests_per_inference: ((put + head + get + delete) as f64 / requests.max(1) as f64 * 100.0).round() / 100.0,
            stored_gb_seconds: calls.byte_ms.load(Ordering::Relaxed) as f64 / 1000.0 / 1e9,
            kept_objects: calls.kept.load(Ordering::Relaxed),
            cleanup: io.cleanup.to_string(),
        }
    }
}

/// Asynchronous InvokeEndpointAsync traffic through S3. Cheap to clone: the
/// clients share their connections, and clones share the deletions the
/// delayed cleanup policy still owes.
#[derive(Clone)]
pub struct InvokeAsync {
    runtime: aws_sdk_sagemakerruntime::Client,
    s3: aws_sdk_s3::Client,
    runtime_url: String,
    /// Where inputs are uploaded (under a folder of each step's own).
    input: S3Location,
    io: AsyncClient,
    /// Deletions waiting for their delay.
    deferred: TaskTracker,
    /// Cancelled to make every waiting deletion happen now.
    hurry: CancellationToken,
}

impl InvokeAsync {
    pub fn new(
        runtime: aws_sdk_sagemakerruntime::Client,
        s3: aws_sdk_s3::Client,
        runtime_url: String,
        input: S3Location,
        io: AsyncClient,
    ) -> Self {
        // The SDKs retry throttling and 5xx themselves; the guides' MaxRetries
        // is how many times.
        let attempts = io.max_retries + 1;
        let runtime = aws_sdk_sagemakerruntime::Client::from_conf(
            runtime.config().to_builder().retry_config(RetryConfig::standard().with_max_attempts(attempts)).build(),
        );
        let s3 = aws_sdk_s3::Client::from_conf(
            s3.config().to_builder().retry_config(RetryConfig::standard().with_max_attempts(attempts)).build(),
        );
        InvokeAsync { runtime, s3, runtime_url, input, io, deferred: TaskTracker::new(), hurry: CancellationToken::new() }
    }
}

/// How one request ended, and what it left in S3: (bucket, key, bytes).
struct Done {
    outcome: Outcome,
    objects: Vec<(String, String, u64)>,
    /// When its input was stored.
    stored_at: Instant,
}

/// The client-side parts of every request of a step.
struct Parts {
    upload: Histogram<u64>,
    submit: Histogram<u64>,
}

impl Parts {
    fn new() -> Parts {
        let h = || Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds");
        Parts { upload: h(), submit: h() }
    }
}

/// The state every worker and watcher of one step shares.
struct AsyncStep {
    spec: LoadSpec,
    clock: Clock,
    /// Requests submitted and not yet done.
    watching: AtomicUsize,
    quiet: Notify,
    /// One permit per request that may be out at once (max concurrent jobs).
    jobs: Arc<Semaphore>,
    /// One permit per look at S3 that may run at once (polling workers).
    looks: Semaphore,
    calls: S3Calls,
    parts: Mutex<Parts>,
    /// Keys of this step: the input prefix, the step's nonce.
    key_prefix: String,
}

impl Paced for AsyncStep {
    fn clock(&self) -> &Clock {
        &self.clock
    }
}

/// How a failed AWS call (S3 or the runtime) counts: its HTTP status and error code.
fn failed<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Outcome {
    match e {
        SdkError::TimeoutError(_) => Outcome::Timeout,
        SdkError::DispatchFailure(_) => Outcome::Connection,
        _ => Outcome::Http {
            status: e.raw_response().map_or(0, |r| r.status().as_u16()),
            code: e.as_service_error().and_then(|s| s.code()).map(str::to_string),
        },
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().clamp(1, 3_600_000_000) as u64
}

impl InvokeAsync {
    /// Uploads `body`, invokes, and watches for the answer until the
    /// polling's maximum wait (or `cancel`).
    async fn one(&self, step: &AsyncStep, key: String, body: bytes::Bytes, cancel: &CancellationToken) -> Done {
        let spec = &step.spec;
        let input = self.input.uri(&key);
        let size = body.len() as u64;
        let stored_at = Instant::now();
        let mut objects = vec![(self.input.bucket.clone(), key.clone(), size)];
        step.calls.put.fetch_add(1, Ordering::Relaxed);
        let put = self
            .s3
            .put_object()
            .bucket(&self.input.bucket)
            .key(&key)
            .content_type(&spec.content_type)
            .body(ByteStream::from(body))
            .send()
            .await;
        if let Err(e) = put {
            return Done { outcome: failed(&e), objects, stored_at };
        }
        let submitted = Instant::now();
        let invoked = self
            .runtime
            .invoke_endpoint_async()
            .endpoint_name(&spec.target.endpoint)
            .input_location(&input)
            .content_type(&spec.content_type)
            .accept(&spec.accept)
            .set_request_ttl_seconds(self.io.request_ttl.map(|ttl| ttl.as_secs() as i32))
            .send()
            .await;
        {
            let mut parts = crate::error::lock(&step.parts);
            let _ = parts.upload.record(micros(submitted - stored_at));
            let _ = parts.submit.record(micros(submitted.elapsed()));
        }
        let invoked = match invoked {
            Ok(invoked) => invoked,
            Err(e) => return Done { outcome: failed(&e), objects, stored_at },
        };
        let output = invoked.output_location().unwrap_or_default().to_string();
        let failure = invoked.failure_location().map_or_else(|| failure_beside(&output), str::to_string);
        let (outcome, answer) = self.watch(step, &output, &failure, cancel).await;
        objects.extend(answer);
        Done { outcome, objects, stored_at }
    }

    /// Looks for the output, then the failure file, with backoff, until one
    /// exists or the maximum wait has passed. The object found comes back
    /// with its size.
    async fn watch(
        &self,
        step: &AsyncStep,
        output: &str,
        failure: &str,
        cancel: &CancellationToken,
    ) -> (Outcome, Option<(String, String, u64)>) {
        let polling = self.io.polling;
        let deadline = Instant::now() + polling.max_wait;
        let mut wait = polling.interval;
        // The first look waits one interval too: an answer is never there the
        // moment its 202 arrives, and a look that must miss is a billed request.
        for look in 1.. {
            if Instant::now() + wait > deadline {
                return (Outcome::Timeout, None);
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => return (Outcome::Timeout, None),
            }
            if let Some(found) = self.look(step, output).await {
                return (Outcome::Success, Some(found));
            }
            let last = Instant::now() + polling.after(wait) > deadline;
            // Failures are the exception: their location is looked at every
            // other miss (and at the last), which halves what polling costs
            // in HEADs while a failure is still seen within two looks.
            if !failure.is_empty()
                && (look % 2 == 0 || last)
                && let Some(found) = self.look(step, failure).await
            {
                let code = self.failure_code(step, failure).await;
                return (Outcome::Http { status: 200, code: Some(code) }, Some(found));
            }
            wait = polling.after(wait);
        }
        unreachable!("the looks end at the deadline")
    }

    /// The object at `uri` with its size, if it exists.
    async fn look(&self, step: &AsyncStep, uri: &str) -> Option<(String, String, u64)> {
        let (bucket, key) = bucket_and_key(uri)?;
        let _look = step.looks.acquire().await.ok()?;
        step.calls.head.fetch_add(1, Ordering::Relaxed);
        let head = self.s3.head_object().bucket(bucket).key(key).send().await.ok()?;
        Some((bucket.to_string(), key.to_string(), head.content_length().unwrap_or(0).max(0) as u64))
    }

    /// The error code a failure file names (`ErrorCode` in a JSON body), or
    /// AsyncInferenceFailure when it names none.
    async fn failure_code(&self, step: &AsyncStep, uri: &str) -> String {
        const UNNAMED: &str = "AsyncInferenceFailure";
        let Some((bucket, key)) = bucket_and_key(uri) else { return UNNAMED.into() };
        step.calls.get.fetch_add(1, Ordering::Relaxed);
        let Ok(object) = self.s3.get_object().bucket(bucket).key(key).send().await else { return UNNAMED.into() };
        let Ok(body) = object.body.collect().await else { return UNNAMED.into() };
        serde_json::from_slice::<serde_json::Value>(&body.into_bytes())
            .ok()
            .and_then(|v| v.get("ErrorCode").and_then(|c| c.as_str()).map(str::to_string))
            .unwrap_or_else(|| UNNAMED.into())
    }

    /// Deletes what a request wrote, now or later as the cleanup policy
    /// says, and counts the storage it held.
    async fn clean(&self, step: &AsyncStep, done: Done) {
        let held = |delay: Duration| {
            let ms = (done.stored_at.elapsed() + delay).as_millis() as u64;
            let bytes: u64 = done.objects.iter().map(|(_, _, size)| size).sum();
            step.calls.byte_ms.fetch_add(bytes.saturating_mul(ms), Ordering::Relaxed);
        };
        step.calls.delete.fetch_add(if self.io.cleanup.keeps() { 0 } else { done.objects.len() as u64 }, Ordering::Relaxed);
        match self.io.cleanup {
            Cleanup::Immediate => {
                held(Duration::ZERO);
                delete_objects(&self.s3, done.objects).await;
            }
            Cleanup::Delayed(delay) => {
                held(delay);
                let (s3, hurry) = (self.s3.clone(), self.hurry.clone());
                self.deferred.spawn(async move {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = hurry.cancelled() => {}
                    }
                    delete_objects(&s3, done.objects).await;
                });
            }
            Cleanup::Disabled => {
                step.calls.kept.fetch_add(done.objects.len() as u64, Ordering::Relaxed);
            }
        }
    }

    /// A submission worker: takes each request as it falls due, waits for
    /// room under the most jobs allowed out, submits it, and leaves the
    /// watching to a task of its own.
    async fn submit_all(self: &Arc<Self>, step: &Arc<AsyncStep>) {
        while let Some(job) = tokio::select! {
            job = step.clock.pacer.next() => job,
            _ = step.clock.cancel.cancelled() => None,
        } {
            let room = tokio::select! {
                room = Arc::clone(&step.jobs).acquire_owned() => room,
                _ = step.clock.cancel.cancelled() => break,
            };
            let Ok(room) = room else { break };
            step.watching.fetch_add(1, Ordering::AcqRel);
            step.clock.recorder.sent();
            let (this, step) = (Arc::clone(self), Arc::clone(step));
            tokio::spawn(async move {
                this.serve(&step, job).await;
                drop(room);
            });
        }
    }

    async fn serve(&self, step: &AsyncStep, job: Job) {
        let sent = Instant::now();
        let payload = step.spec.payloads.pick(job.slot);
        let key = format!("{}{}", step.key_prefix, job.slot);
        let done = self.one(step, key, payload.body.clone(), &step.clock.cancel).await;
        let seen = Instant::now();
        if !step.clock.cancel.is_cancelled() {
            step.clock.recorder.record(Observation {
                due: job.due,
                latency: seen - job.intended.min(sent),
                slip: sent.saturating_duration_since(job.intended),
                late_start: job.late_start,
                outcome: done.outcome.clone(),
            });
        }
        step.clock.pacer.done();
        self.clean(step, done).await;
        if step.watching.fetch_sub(1, Ordering::AcqRel) == 1 {
            step.quiet.notify_waiters();
        }
    }
}

/// Deletes objects perfsize wrote. One that never came (an output that
/// timed out) is not there to delete; that is fine.
async fn delete_objects(s3: &aws_sdk_s3::Client, objects: Vec<(String, String, u64)>) {
    for (bucket, key, _) in objects {
        let _ = s3.delete_object().bucket(bucket).key(key).send().await;
    }
}

impl Driver for InvokeAsync {
    fn target(&self, endpoint: &str) -> Target {
        Target { endpoint: endpoint.to_string(), runtime_url: self.runtime_url.clone() }
    }

    async fn preflight(&self, spec: &LoadSpec) -> Result<(), LoadError> {
        let step = self.step(spec.clone(), CancellationToken::new(), "preflight");
        for payload in spec.payloads.payloads() {
            let key = format!("{}{}", step.key_prefix, payload.name.replace('/', "_"));
            let done = self.one(&step, key, payload.body.clone(), &step.clock.cancel).await;
            let outcome = done.outcome.clone();
            // The preflight's objects never wait for a delay.
            delete_objects(&self.s3, done.objects).await;
            let rejected = |code: String, message: &str| LoadError::PayloadRejected {
                payload: payload.name.clone(),
                endpoint: spec.target.endpoint.clone(),
                code,
                message: message.to_string(),
            };
            match outcome {
                Outcome::Success => {}
                Outcome::Http { status: 200, code } => {
                    return Err(rejected(code.unwrap_or_default(), "the model wrote a failure file for it"));
                }
                Outcome::Http { status, code } if (400..500).contains(&status) => {
                    return Err(rejected(code.unwrap_or_else(|| format!("HTTP {status}")), "refused at submission"));
                }
                other => {
                    return Err(LoadError::Unreachable {
                        endpoint: spec.target.endpoint.clone(),
                        reason: format!(
                            "{} (no output within {:?})",
                            other.code_key().unwrap_or_default(),
                            self.io.polling.max_wait
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    async fn drive(&self, spec: LoadSpec, cancel: CancellationToken, live: Option<ProgressFn>) -> Result<LoadRun, LoadError> {
        if let Pacing::Closed(_) = spec.pacing {
            return Err(LoadError::NoClosedLoop("asynchronous inference"));
        }
        let started_at = Utc::now();
        let step_cancel = cancel.child_token();
        let _stop_step = step_cancel.clone().drop_guard();
        // Workers and watchers are tasks of their own: they share a copy.
        let this = Arc::new(self.clone());
        let step = Arc::new(self.step(spec, step_cancel, &format!("{:x}", rand::random::<u32>())));
        let ticker = tokio::spawn(tick_seconds(Arc::clone(&step), live));
        step.clock.pacer.start();
        let workers: Vec<_> = (0..self.io.submission_workers.max(1))
            .map(|_| {
                let (this, step) = (Arc::clone(&this), Arc::clone(&step));
                tokio::spawn(async move { this.submit_all(&step).await })
            })
            .collect();
        for worker in workers {
            let _ = worker.await;
        }
        // Every request is submitted: wait until each is done (each gives up
        // at the maximum wait on its own).
        while step.watching.load(Ordering::Acquire) > 0 && !step.clock.cancel.is_cancelled() {
            tokio::select! {
                _ = step.quiet.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = step.clock.cancel.cancelled() => {}
            }
        }
        step.clock.cancel.cancel();
        let _ = ticker.await;
        let asynchronous = AsyncFigures::of(&step, &self.io, step.clock.recorder.sent_so_far());
        let mut run = LoadRun::collect(
            started_at,
            &step.spec,
            &step.clock.pacer,
            &step.clock.recorder,
            cancel.is_cancelled(),
            Some(asynchronous),
        );
        // The most jobs allowed out bound what is in flight at once, when set.
        run.max_in_flight = self.io.max_concurrent_jobs.unwrap_or(step.spec.max_in_flight());
        Ok(run)
    }

    /// Waits for the deletions the delayed cleanup policy still owes — at
    /// once when `hurry` is cancelled (the run is being stopped).
    async fn settle(&self, hurry: &CancellationToken) {
        self.deferred.close();
        tokio::select! {
            _ = self.deferred.wait() => return,
            _ = hurry.cancelled() => {}
        }
        self.hurry.cancel();
        self.deferred.wait().await;
    }
}

impl InvokeAsync {
    /// The shared state of one step, its objects under `<input prefix><nonce>/`.
    fn step(&self, spec: LoadSpec, cancel: CancellationToken, nonce: &str) -> AsyncStep {
        AsyncStep {
            clock: Clock::for_spec(&spec, cancel),
            key_prefix: format!("{}{nonce}/", self.input.prefix),
            jobs: Arc::new(Semaphore::new(self.io.max_concurrent_jobs.unwrap_or(Semaphore::MAX_PERMITS))),
            looks: Semaphore::new(self.io.polling_workers.max(1)),
            spec,
            watching: AtomicUsize::new(0),
            quiet: Notify::new(),
            calls: S3Calls::default(),
            parts: Mutex::new(Parts::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_failure_path_the_failure_file_is_looked_for_beside_the_output() {
        assert_eq!(failure_beside("s3://out/results/1a2b.out"), "s3://out/results/1a2b-error.out");
        assert_eq!(failure_beside("s3://out/results/custom.json"), "", "a custom name says nothing of its failure's");
    }

    #[test]
    fn polling_backs_off_by_its_multiplier_up_to_its_maximum() {
        let p = Polling {
            interval: Duration::from_millis(100),
            max_interval: Duration::from_millis(350),
            multiplier: 2.0,
            max_wait: Duration::from_secs(60),
        };
        assert_eq!(p.after(Duration::from_millis(100)), Duration::from_millis(200));
        assert_eq!(p.after(Duration::from_millis(200)), Duration::from_millis(350));
    }
}
