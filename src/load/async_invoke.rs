//! Asynchronous inference as a [`Driver`]: each request's input is uploaded
//! to S3 and handed to InvokeEndpointAsync at its due time; a request is done
//! when its output (or failure file) can be read, found by HeadObject with
//! exponential backoff. Submission and completion detection are kept apart:
//! a pool of submission workers keeps the schedule, and every submitted
//! request is watched by a task of its own, so slow outputs never hold up
//! the next submission. Latency counts from the intended submission to the
//! moment the output was seen — which the polling interval quantises, so the
//! run says how finely it looked.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::pacer::{Job, Pacer};
use super::recorder::{Observation, Outcome, Recorder};
use super::{Driver, LoadError, LoadRun, LoadSpec, Paced, Pacing, ProgressFn, Target, tick_seconds};

/// An S3 bucket and a key prefix under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
}

impl S3Location {
    /// `s3://bucket/prefix/` or `s3://bucket`.
    pub fn parse(uri: &str) -> Option<S3Location> {
        let rest = uri.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return None;
        }
        let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
        Some(S3Location { bucket: bucket.to_string(), prefix })
    }

    pub fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

/// Splits `s3://bucket/key` into bucket and key.
fn bucket_and_key(uri: &str) -> Option<(&str, &str)> {
    uri.strip_prefix("s3://")?.split_once('/')
}

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
    /// Kept for the user to inspect.
    Disabled,
}

/// Where asynchronous requests go and how they are watched.
#[derive(Debug, Clone)]
pub struct AsyncIo {
    /// Where inputs are uploaded (under a prefix of the step's own).
    pub input: S3Location,
    pub polling: Polling,
    pub submission_workers: usize,
    pub cleanup: Cleanup,
}

/// S3 calls one step made: a cost per inference, and what polling costs.
#[derive(Debug, Default)]
struct S3Calls {
    put: AtomicU64,
    head: AtomicU64,
    get: AtomicU64,
    delete: AtomicU64,
}

/// What an asynchronous step adds to its figures: how finely completion was
/// looked for, and the S3 requests it took (each one billed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsyncFigures {
    /// The first and the longest wait between looks: an output is seen up
    /// to this late, so end-to-end times are this coarse.
    pub polling_interval_ms: f64,
    pub max_polling_interval_ms: f64,
    pub s3_put: u64,
    pub s3_head: u64,
    pub s3_get: u64,
    pub s3_delete: u64,
    /// All of them, per request submitted.
    pub s3_requests_per_inference: f64,
}

impl AsyncFigures {
    fn of(calls: &S3Calls, polling: &Polling, requests: u64) -> AsyncFigures {
        let [put, head, get, delete] = [&calls.put, &calls.head, &calls.get, &calls.delete].map(|c| c.load(Ordering::Relaxed));
        AsyncFigures {
            polling_interval_ms: polling.interval.as_secs_f64() * 1000.0,
            max_polling_interval_ms: polling.max_interval.as_secs_f64() * 1000.0,
            s3_put: put,
            s3_head: head,
            s3_get: get,
            s3_delete: delete,
            s3_requests_per_inference: ((put + head + get + delete) as f64 / requests.max(1) as f64 * 100.0).round() / 100.0,
        }
    }
}

/// Asynchronous InvokeEndpointAsync traffic through S3. Cheap to clone: the
/// clients share their connections.
#[derive(Clone)]
pub struct InvokeAsync {
    runtime: aws_sdk_sagemakerruntime::Client,
    s3: aws_sdk_s3::Client,
    runtime_url: String,
    io: AsyncIo,
}

impl InvokeAsync {
    pub fn new(runtime: aws_sdk_sagemakerruntime::Client, s3: aws_sdk_s3::Client, runtime_url: String, io: AsyncIo) -> Self {
        InvokeAsync { runtime, s3, runtime_url, io }
    }
}

/// How one request ended, and where its objects are.
struct Done {
    outcome: Outcome,
    objects: Vec<(String, String)>,
}

/// The state every worker and watcher of one step shares.
struct AsyncStep {
    spec: LoadSpec,
    pacer: Pacer,
    recorder: Recorder,
    cancel: CancellationToken,
    /// Requests submitted and not yet done.
    watching: AtomicUsize,
    quiet: Notify,
    calls: S3Calls,
    /// Keys of this step: the input prefix, the step's nonce.
    key_prefix: String,
}

impl Paced for AsyncStep {
    fn pacer(&self) -> &Pacer {
        &self.pacer
    }
    fn recorder(&self) -> &Recorder {
        &self.recorder
    }
    fn stopped(&self) -> &CancellationToken {
        &self.cancel
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

impl InvokeAsync {
    /// Uploads `body`, invokes, and watches for the answer until the
    /// polling's maximum wait (or `cancel`).
    async fn one(&self, step: &AsyncStep, key: String, body: bytes::Bytes, cancel: &CancellationToken) -> Done {
        let spec = &step.spec;
        let input = self.io.input.uri(&key);
        let mut objects = vec![(self.io.input.bucket.clone(), key.clone())];
        step.calls.put.fetch_add(1, Ordering::Relaxed);
        let put = self
            .s3
            .put_object()
            .bucket(&self.io.input.bucket)
            .key(&key)
            .content_type(&spec.content_type)
            .body(ByteStream::from(body))
            .send()
            .await;
        if let Err(e) = put {
            return Done { outcome: failed(&e), objects };
        }
        let invoked = self
            .runtime
            .invoke_endpoint_async()
            .endpoint_name(&spec.target.endpoint)
            .input_location(&input)
            .content_type(&spec.content_type)
            .accept(&spec.accept)
            .send()
            .await;
        let invoked = match invoked {
            Ok(invoked) => invoked,
            Err(e) => return Done { outcome: failed(&e), objects },
        };
        let output = invoked.output_location().unwrap_or_default().to_string();
        let failure = invoked.failure_location().unwrap_or_default().to_string();
        let outcome = self.watch(step, &output, &failure, cancel).await;
        objects.extend([&output, &failure].into_iter().filter_map(|uri| bucket_and_key(uri)).map(|(b, k)| (b.into(), k.into())));
        Done { outcome, objects }
    }

    /// Looks for the output, then the failure file, with backoff, until one
    /// exists or the maximum wait has passed.
    async fn watch(&self, step: &AsyncStep, output: &str, failure: &str, cancel: &CancellationToken) -> Outcome {
        let polling = self.io.polling;
        let deadline = Instant::now() + polling.max_wait;
        let mut wait = polling.interval;
        loop {
            if self.exists(step, output).await {
                return Outcome::Success;
            }
            if !failure.is_empty() && self.exists(step, failure).await {
                return Outcome::Http { status: 200, code: Some(self.failure_code(step, failure).await) };
            }
            if Instant::now() + wait > deadline {
                return Outcome::Timeout;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => return Outcome::Timeout,
            }
            wait = polling.after(wait);
        }
    }

    async fn exists(&self, step: &AsyncStep, uri: &str) -> bool {
        let Some((bucket, key)) = bucket_and_key(uri) else { return false };
        step.calls.head.fetch_add(1, Ordering::Relaxed);
        self.s3.head_object().bucket(bucket).key(key).send().await.is_ok()
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

    /// Deletes what a request wrote, under the cleanup policy.
    async fn clean(&self, step: &AsyncStep, objects: Vec<(String, String)>) {
        if self.io.cleanup != Cleanup::Immediate {
            return;
        }
        for (bucket, key) in objects {
            step.calls.delete.fetch_add(1, Ordering::Relaxed);
            // An output that never came is not there to delete; that is fine.
            let _ = self.s3.delete_object().bucket(bucket).key(key).send().await;
        }
    }

    /// A submission worker: takes each request as it falls due, submits it,
    /// and leaves the watching to a task of its own.
    async fn submit_all(self: &Arc<Self>, step: &Arc<AsyncStep>) {
        while let Some(job) = tokio::select! {
            job = step.pacer.next() => job,
            _ = step.cancel.cancelled() => None,
        } {
            step.watching.fetch_add(1, Ordering::AcqRel);
            step.recorder.sent();
            let (this, step) = (Arc::clone(self), Arc::clone(step));
            tokio::spawn(async move { this.serve(&step, job).await });
        }
    }

    async fn serve(&self, step: &AsyncStep, job: Job) {
        let sent = Instant::now();
        let payload = step.spec.payloads.pick(job.slot);
        let key = format!("{}{}", step.key_prefix, job.slot);
        let done = self.one(step, key, payload.body.clone(), &step.cancel).await;
        let seen = Instant::now();
        if !step.cancel.is_cancelled() {
            step.recorder.record(Observation {
                due: job.due,
                latency: seen - job.intended.min(sent),
                slip: sent.saturating_duration_since(job.intended),
                late_start: job.late_start,
                outcome: done.outcome,
            });
        }
        step.pacer.done();
        self.clean(step, done.objects).await;
        if step.watching.fetch_sub(1, Ordering::AcqRel) == 1 {
            step.quiet.notify_waiters();
        }
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
            let done = self.one(&step, key, payload.body.clone(), &step.cancel).await;
            self.clean(&step, done.objects).await;
            let rejected = |code: String, message: &str| LoadError::PayloadRejected {
                payload: payload.name.clone(),
                endpoint: spec.target.endpoint.clone(),
                code,
                message: message.to_string(),
            };
            match done.outcome {
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
        step.pacer.start();
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
        while step.watching.load(Ordering::Acquire) > 0 && !step.cancel.is_cancelled() {
            tokio::select! {
                _ = step.quiet.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = step.cancel.cancelled() => {}
            }
        }
        step.cancel.cancel();
        let _ = ticker.await;
        let asynchronous = AsyncFigures::of(&step.calls, &self.io.polling, step.recorder.sent_so_far());
        let mut run =
            LoadRun::collect(started_at, &step.spec, &step.pacer, &step.recorder, cancel.is_cancelled(), Some(asynchronous));
        // Submission workers bound what is in flight at once, not the spec's slots.
        run.max_in_flight = self.io.submission_workers;
        Ok(run)
    }
}

impl InvokeAsync {
    /// The shared state of one step, its objects under `<input prefix><nonce>/`.
    fn step(&self, spec: LoadSpec, cancel: CancellationToken, nonce: &str) -> AsyncStep {
        AsyncStep {
            pacer: Pacer::for_spec(&spec, cancel.clone()),
            recorder: Recorder::new(spec.warmup),
            key_prefix: format!("{}{nonce}/", self.io.input.prefix),
            spec,
            cancel,
            watching: AtomicUsize::new(0),
            quiet: Notify::new(),
            calls: S3Calls::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_locations_read_as_people_write_them() {
        let loc = S3Location::parse("s3://bucket/async/in").unwrap();
        assert_eq!(loc, S3Location { bucket: "bucket".into(), prefix: "async/in/".into() });
        assert_eq!(loc.uri("async/in/x"), "s3://bucket/async/in/x");
        assert_eq!(S3Location::parse("s3://bucket").unwrap().prefix, "");
        assert!(S3Location::parse("https://bucket/x").is_none() && S3Location::parse("s3:///x").is_none());
        assert_eq!(bucket_and_key("s3://b/k/1.out"), Some(("b", "k/1.out")));
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
