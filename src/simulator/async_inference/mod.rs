//! Asynchronous inference. InvokeEndpointAsync accepts a request whose input
//! waits in S3 and answers 202 at once with where the result will be; a
//! background worker per endpoint takes requests from its backlog in arrival
//! order, serves each through the capacity model real-time traffic meets
//! ([`crate::simulator::runtime`]) with at most
//! MaxConcurrentInvocationsPerInstance in flight per instance, and writes the
//! model's answer to `S3OutputPath/<InferenceId>.out` — or a failure file to
//! `S3FailurePath/<InferenceId>-error.out` — in the simulator's S3. The worker
//! looks at the backlog a few times a second and publishes what CloudWatch's
//! backlog metrics see, connected clients or not, so alarms and Application
//! Auto Scaling act on them; at zero instances requests wait until a policy
//! brings one.
//!
//! - `config`: AsyncInferenceConfig, for the control plane;
//! - `request`: InvokeEndpointAsync's headers;
//! - `backlog`: the FIFO backlog, TTL expiry and what its metrics see;
//! - `worker`: the background task of one endpoint.
//!
//! Workers start with an endpoint's first asynchronous request and stop when
//! the endpoint is deleted or the simulator stops; their requests in flight
//! stop with them. Semantics are those of the SageMaker Developer Guide
//! ("Asynchronous inference", "Check prediction results", "Monitoring
//! asynchronous endpoints", "Autoscale an asynchronous endpoint") and the
//! runtime's API model.

mod backlog;
mod config;
mod request;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Response, StatusCode};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::metrics::MetricStore;
use super::profile::Profile;
use super::runtime::Deployment;
use super::s3::{ObjectStore, S3Uri};
use super::wire::{self, AwsError, Protocol};
use backlog::{Backlog, Queued};
pub use config::AsyncConfig;
use request::AsyncRequest;

/// What serves an asynchronous endpoint now, as its worker sees it.
pub enum Deployed {
    /// Deleted (or no longer asynchronous): the worker stops.
    Gone,
    /// Not serving yet (or any more): requests wait.
    NotServing,
    Serving {
        deployment: Arc<Deployment>,
        config: Arc<AsyncConfig>,
    },
}

/// What asynchronous inference needs of the rest of the simulator.
pub trait Host: Send + Sync + 'static {
    /// The endpoint's AsyncInferenceConfig if it takes asynchronous requests
    /// now, or the error InvokeEndpointAsync gives.
    fn accepting(&self, endpoint: &str) -> Result<Arc<AsyncConfig>, AwsError>;
    fn deployment(&self, endpoint: &str) -> Deployed;
    fn objects(&self) -> &ObjectStore;
    fn profile(&self) -> &Profile;
    fn metrics(&self) -> &MetricStore;
    fn inference(&self) -> &AsyncInference;
}

/// One endpoint's backlog, shared by InvokeEndpointAsync and its worker.
#[derive(Default)]
struct Queue {
    backlog: Mutex<Backlog>,
    /// Wakes the worker: a request arrived.
    arrived: Notify,
    /// The worker stopped; nothing will serve this queue any more.
    closed: AtomicBool,
}

impl Queue {
    fn backlog(&self) -> MutexGuard<'_, Backlog> {
        self.backlog.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, request: Queued) {
        self.backlog().push(request);
        self.arrived.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

struct Running {
    queue: Arc<Queue>,
    worker: JoinHandle<()>,
}

/// Every asynchronous endpoint's backlog and worker.
pub struct AsyncInference {
    endpoints: Mutex<HashMap<String, Running>>,
    stop: CancellationToken,
}

impl AsyncInference {
    /// Workers stop when `stop` is cancelled.
    pub fn new(stop: CancellationToken) -> AsyncInference {
        AsyncInference { endpoints: Mutex::new(HashMap::new()), stop }
    }

    fn endpoints(&self) -> MutexGuard<'_, HashMap<String, Running>> {
        self.endpoints.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `request` to the backlog of `endpoint`, starting its worker if none runs.
    fn enqueue(&self, host: &Arc<dyn Host>, endpoint: &str, request: Queued) {
        let mut endpoints = self.endpoints();
        // The workers of deleted endpoints have stopped: forget them.
        endpoints.retain(|_, running| !running.queue.is_closed());
        let running = endpoints.entry(endpoint.to_string()).or_insert_with(|| {
            let queue = Arc::new(Queue::default());
            let worker = tokio::spawn(worker::run(host.clone(), endpoint.to_string(), queue.clone(), self.stop.clone()));
            Running { queue, worker }
        });
        running.queue.push(request);
    }

    /// Stops every worker and waits until they have stopped.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let workers: Vec<JoinHandle<()>> = self.endpoints().drain().map(|(_, running)| running.worker).collect();
        for worker in workers {
            let _ = worker.await;
        }
    }
}

/// Where the result of request `id` goes: under S3OutputPath (and the
/// request's S3OutputPathExtension), named by its Filename or
/// `<InferenceId>.out`; a failure under S3FailurePath — S3OutputPath when
/// there is none — as `<InferenceId>-error.out`.
fn result_locations(config: &AsyncConfig, request: &AsyncRequest, id: &str) -> (S3Uri, S3Uri) {
    let under = |path: &S3Uri| match request.output_extension.as_deref().map(|e| e.trim_matches('/')) {
        Some(extension) if !extension.is_empty() => path.join(extension),
        _ => path.clone(),
    };
    let output = under(&config.output).join(request.filename.as_deref().unwrap_or(&format!("{id}.out")));
    let failure = under(config.failure.as_ref().unwrap_or(&config.output)).join(&format!("{id}-error.out"));
    (output, failure)
}

/// InvokeEndpointAsync: `POST /endpoints/{name}/async-invocations`.
pub async fn invoke(host: Arc<dyn Host>, endpoint: &str, request: Request) -> Response<Body> {
    let protocol = Protocol::RestJson;
    if let Err(denied) = wire::require_signature(request.headers(), protocol) {
        return *denied;
    }
    let accepted = AsyncRequest::parse(request.headers()).and_then(|parsed| Ok((host.accepting(endpoint)?, parsed)));
    let (config, parsed) = match accepted {
        Ok(accepted) => accepted,
        Err(error) => return error.into_response(protocol),
    };
    let id = parsed.inference_id.clone().unwrap_or_else(wire::uuid);
    let (output, failure) = result_locations(&config, &parsed, &id);
    let queued = Queued {
        inference_id: id.clone(),
        input: parsed.input,
        output: output.clone(),
        failure: failure.clone(),
        output_type: parsed.accept.unwrap_or_else(|| "application/json".to_string()),
        enqueued: Instant::now(),
        ttl: parsed.ttl,
        timeout: parsed.timeout,
    };
    host.inference().enqueue(&host, endpoint, queued);
    // The API model puts InferenceId in the body and the locations in headers.
    let body = serde_json::to_vec(&serde_json::json!({ "InferenceId": id })).expect("a JSON object serializes");
    let mut response = wire::body_response(StatusCode::ACCEPTED, protocol, body);
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&output.to_string()) {
        headers.insert("x-amzn-sagemaker-outputlocation", location);
    }
    if config.failure.is_some()
        && let Ok(location) = HeaderValue::from_str(&failure.to_string())
    {
        headers.insert("x-amzn-sagemaker-failurelocation", location);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use axum::http::HeaderMap;
    use bytes::Bytes;

    use super::*;
    use crate::simulator::metrics::{MetricName, SeriesKey, Stat, epoch_seconds};
    use crate::simulator::runtime::{Routing, VariantCapacity, VariantSpec};
    use crate::simulator::s3::{Object, ObjectMeta};

    /// A simulator of one asynchronous endpoint, `e`, writing to s3://outputs/.
    struct FakeHost {
        profile: Profile,
        objects: ObjectStore,
        metrics: MetricStore,
        inference: AsyncInference,
        /// None: the endpoint was deleted.
        serving: Mutex<Option<Arc<Deployment>>>,
        config: Arc<AsyncConfig>,
    }

    impl Host for FakeHost {
        fn accepting(&self, _: &str) -> Result<Arc<AsyncConfig>, AwsError> {
            Ok(self.config.clone())
        }
        fn deployment(&self, _: &str) -> Deployed {
            match &*self.serving.lock().unwrap() {
                Some(deployment) => Deployed::Serving { deployment: deployment.clone(), config: self.config.clone() },
                None => Deployed::Gone,
            }
        }
        fn objects(&self) -> &ObjectStore {
            &self.objects
        }
        fn profile(&self) -> &Profile {
            &self.profile
        }
        fn metrics(&self) -> &MetricStore {
            &self.metrics
        }
        fn inference(&self) -> &AsyncInference {
            &self.inference
        }
    }

    fn host(instances: u32) -> Arc<FakeHost> {
        let profile =
            Profile::parse("[default]\nvcpus = 2\nworkers = 2\nservice_ms = { median = 1.0, p99 = 2.0 }", "test").unwrap();
        let metrics = MetricStore::new(Duration::from_secs(600));
        let spec = VariantSpec {
            name: "AllTraffic".into(),
            model_name: "m".into(),
            capacity: VariantCapacity::Instances { instance_type: "ml.m5.large".into(), count: instances },
            weight: 1.0,
            routing: Routing::Random,
        };
        let deployment = Deployment::start("e", &[spec], &profile, &metrics, None);
        let objects = ObjectStore::new(1 << 20);
        for bucket in ["inputs", "outputs"] {
            objects.create_bucket(bucket, "us-east-1", SystemTime::now()).unwrap();
        }
        let input = Object::new(Bytes::from_static(b"{}"), ObjectMeta::default(), SystemTime::now());
        objects.put("inputs", "in.json", input).unwrap();
        Arc::new(FakeHost {
            profile,
            objects,
            metrics,
            inference: AsyncInference::new(CancellationToken::new()),
            serving: Mutex::new(Some(Arc::new(deployment))),
            config: Arc::new(
                AsyncConfig::parse(&serde_json::json!({"OutputConfig": {"S3OutputPath": "s3://outputs/"}})).unwrap(),
            ),
        })
    }

    fn queued(id: &str, input: &str, ttl: Duration) -> Queued {
        Queued {
            inference_id: id.to_string(),
            input: S3Uri::parse(input).unwrap(),
            output: S3Uri::parse(&format!("s3://outputs/{id}.out")).unwrap(),
            failure: S3Uri::parse(&format!("s3://outputs/{id}-error.out")).unwrap(),
            output_type: "application/json".into(),
            enqueued: Instant::now(),
            ttl,
            timeout: Duration::from_secs(60),
        }
    }

    /// Polls `done` every 20 ms for up to 10 s.
    async fn eventually(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{what}: not within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn body(host: &FakeHost, key: &str) -> Option<String> {
        host.objects.get("outputs", key).ok().map(|o| String::from_utf8_lossy(&o.data).into_owned())
    }

    #[tokio::test]
    async fn a_worker_serves_its_backlog_unattended_and_stops_with_its_endpoint() {
        let host = host(1);
        let as_host: Arc<dyn Host> = host.clone();
        let hour = Duration::from_secs(3600);
        host.inference.enqueue(&as_host, "e", queued("ok", "s3://inputs/in.json", hour));
        host.inference.enqueue(&as_host, "e", queued("lost", "s3://inputs/missing.json", hour));
        eventually("both results", || body(&host, "ok.out").is_some() && body(&host, "lost-error.out").is_some()).await;
        assert!(body(&host, "ok.out").unwrap().contains("\"prediction\""));
        assert!(body(&host, "lost-error.out").unwrap().contains("RequestDownloadFailure"));
        assert!(body(&host, "lost.out").is_none());
        let now = epoch_seconds(SystemTime::now()) as i64;
        let looks = || {
            let series = host.metrics.find(&SeriesKey::endpoint("e"));
            let points =
                series.map(|s| s.datapoints(MetricName::ApproximateBacklogSize, Stat::SampleCount, 60, now - 60, now + 60));
            points.unwrap_or_default().first().map_or(0.0, |p| p.1)
        };
        eventually("a look at the backlog", || looks() > 0.0).await;

        // The endpoint is deleted: its worker stops and its queue is closed.
        *host.serving.lock().unwrap() = None;
        let closed = || host.inference.endpoints().get("e").is_some_and(|r| r.queue.is_closed() && r.worker.is_finished());
        eventually("the worker stopped", closed).await;
        // A request for a new endpoint of the same name starts a new worker.
        host.inference.enqueue(&as_host, "e", queued("again", "s3://inputs/in.json", hour));
        assert!(!host.inference.endpoints()["e"].queue.is_closed());
        host.inference.shutdown().await;
        assert!(host.inference.endpoints().is_empty());
    }

    #[tokio::test]
    async fn at_zero_instances_requests_wait_until_their_ttl_runs_out() {
        let host = host(0);
        let as_host: Arc<dyn Host> = host.clone();
        host.inference.enqueue(&as_host, "e", queued("waits", "s3://inputs/in.json", Duration::from_millis(1500)));
        let now = epoch_seconds(SystemTime::now()) as i64;
        let without_capacity = || {
            let series = host.metrics.find(&SeriesKey::endpoint("e"));
            let points =
                series.map(|s| s.datapoints(MetricName::HasBacklogWithoutCapacity, Stat::Maximum, 60, now - 60, now + 60));
            points.unwrap_or_default().first().map_or(0.0, |p| p.1)
        };
        eventually("HasBacklogWithoutCapacity", || without_capacity() == 1.0).await;
        eventually("the expired request's failure file", || body(&host, "waits-error.out").is_some()).await;
        assert!(body(&host, "waits-error.out").unwrap().contains("ExpiredRequest"));
        assert!(body(&host, "waits.out").is_none(), "never served");
        let series = host.metrics.find(&SeriesKey::variant("e", "AllTraffic")).expect("the variant's series");
        let expired = series.datapoints(MetricName::ExpiredRequests, Stat::Sum, 60, now - 60, now + 60);
        assert_eq!(expired.iter().map(|p| p.1).sum::<f64>(), 1.0);
        tokio::time::timeout(Duration::from_secs(10), host.inference.shutdown()).await.expect("workers stop when asked");
    }

    fn request(pairs: &[(&'static str, &str)]) -> AsyncRequest {
        let mut headers = HeaderMap::new();
        headers.insert("x-amzn-sagemaker-inputlocation", HeaderValue::from_static("s3://in/x.json"));
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        AsyncRequest::parse(&headers).unwrap()
    }

    fn config(failure: bool) -> AsyncConfig {
        let mut output = serde_json::json!({"S3OutputPath": "s3://out/results/"});
        if failure {
            output["S3FailurePath"] = serde_json::json!("s3://out/failures");
        }
        AsyncConfig::parse(&serde_json::json!({ "OutputConfig": output })).unwrap()
    }

    #[test]
    fn results_are_named_by_inference_id_under_their_paths() {
        let (output, failure) = result_locations(&config(true), &request(&[]), "id-1");
        assert_eq!(
            (output.to_string(), failure.to_string()),
            ("s3://out/results/id-1.out".into(), "s3://out/failures/id-1-error.out".into())
        );
        let (_, failure) = result_locations(&config(false), &request(&[]), "id-1");
        assert_eq!(failure.to_string(), "s3://out/results/id-1-error.out", "no failure path: beside the outputs");
        let named =
            request(&[("x-amzn-sagemaker-s3outputpathextension", "day-1/"), ("x-amzn-sagemaker-filename", "answer.json")]);
        let (output, failure) = result_locations(&config(true), &named, "id-2");
        assert_eq!(output.to_string(), "s3://out/results/day-1/answer.json");
        assert_eq!(failure.to_string(), "s3://out/failures/day-1/id-2-error.out");
    }
}
