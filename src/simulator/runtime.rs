//! The capacity model behind InvokeEndpoint and asynchronous inference:
//! instances with a fixed number of workers, a log-normal service time, a
//! FIFO queue per instance (bounded for real-time traffic), a container
//! timeout, an error rate, a periodic stall, and routing between instances.
//! Nothing is faked: queueing and saturation happen for real.
//!
//! Real-time requests are routed by [`invoke`]; asynchronous ones are
//! dispatched by their endpoint's worker, which [`Deployment::claim`]s a place
//! on an instance and has the request [`process`]ed there — through the same
//! workers, service times, stalls and errors. Response streams are routed the
//! same way ([`ServingVariant::route`]) but meet the instance's LLM engine
//! ([`Claim::engine`], started with its first stream) instead of its workers.
//! A serverless variant has no instances: its requests meet its pool of
//! workers instead ([`crate::simulator::serverless`]), and are answered and
//! recorded here like any other.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::llm::Engine;
use super::metrics::{AsyncServed, Capacity, EngineLook, MetricStore, Outcome, Series, Served, StreamServed};
use super::profile::{LlmBehaviour, Profile, Stall, TypeBehaviour};
use super::serverless::{Ending, Serverless, ServerlessConfig};
use super::wire::AwsError;

/// How an endpoint config spreads requests over a variant's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    Random,
    LeastOutstandingRequests,
}

impl Routing {
    pub fn as_str(self) -> &'static str {
        match self {
            Routing::Random => "RANDOM",
            Routing::LeastOutstandingRequests => "LEAST_OUTSTANDING_REQUESTS",
        }
    }
}

/// What serves a production variant: instances, or SageMaker Serverless
/// Inference — never both, never neither.
#[derive(Debug, Clone, PartialEq)]
pub enum VariantCapacity {
    Instances { instance_type: String, count: u32 },
    Serverless(ServerlessConfig),
}

/// A production variant as an endpoint config describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantSpec {
    pub name: String,
    pub model_name: String,
    pub capacity: VariantCapacity,
    pub weight: f64,
    pub routing: Routing,
}

impl VariantSpec {
    /// The instance type, for a variant served by instances.
    pub fn instance_type(&self) -> Option<&str> {
        match &self.capacity {
            VariantCapacity::Instances { instance_type, .. } => Some(instance_type),
            VariantCapacity::Serverless(_) => None,
        }
    }

    /// The instances it asks for: none for a serverless variant.
    pub fn instance_count(&self) -> u32 {
        match &self.capacity {
            VariantCapacity::Instances { count, .. } => *count,
            VariantCapacity::Serverless(_) => 0,
        }
    }

    /// The ServerlessConfig, for a serverless variant.
    pub fn serverless(&self) -> Option<ServerlessConfig> {
        match &self.capacity {
            VariantCapacity::Serverless(config) => Some(*config),
            VariantCapacity::Instances { .. } => None,
        }
    }
}

/// One simulated instance: `workers` permits handed out in FIFO order, and
/// the LLM engine response streams meet.
#[derive(Debug)]
pub struct Instance {
    workers: Semaphore,
    waiting: AtomicUsize,
    outstanding: AtomicUsize,
    in_service_since: Instant,
    /// Started with the instance's first stream: an instance that never
    /// streams runs no engine task.
    llm: OnceLock<Engine>,
}

impl Instance {
    fn new(workers: usize) -> Self {
        Instance {
            workers: Semaphore::new(workers),
            waiting: AtomicUsize::new(0),
            outstanding: AtomicUsize::new(0),
            in_service_since: Instant::now(),
            llm: OnceLock::new(),
        }
    }
}

/// A place on an instance, held from the moment a request is sent to it until
/// it leaves, however it leaves: the outstanding requests that
/// LEAST_OUTSTANDING_REQUESTS routing and asynchronous dispatch count.
pub struct Claim {
    instance: Arc<Instance>,
}

impl Claim {
    fn new(instance: Arc<Instance>) -> Claim {
        instance.outstanding.fetch_add(1, Ordering::AcqRel);
        Claim { instance }
    }

    /// The LLM engine of the claimed instance, started with `behaviour` if
    /// this is its first stream.
    pub fn engine(&self, behaviour: &LlmBehaviour) -> &Engine {
        self.instance.llm.get_or_init(|| Engine::start(behaviour))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.instance.outstanding.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Decrements a counter when the request leaves, however it leaves.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn enter(counter: &'a AtomicUsize) -> (Self, usize) {
        let before = counter.fetch_add(1, Ordering::AcqRel);
        (Counted(counter), before)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A variant in service: its instances and its metrics.
#[derive(Debug)]
pub struct ServingVariant {
    pub spec: VariantSpec,
    pub behaviour: TypeBehaviour,
    serving: Serving,
    series: Arc<Series>,
}

/// What serves a variant's requests: its instances, or a serverless pool.
#[derive(Debug)]
enum Serving {
    Instances {
        instances: Vec<Arc<Instance>>,
        service: Option<LogNormal<f64>>,
        /// How the model behaves as an LLM behind response streaming.
        llm: LlmBehaviour,
    },
    Serverless(Serverless),
}

impl ServingVariant {
    pub fn instance_count(&self) -> u32 {
        self.instances().len() as u32
    }

    /// Its instances: none for a serverless variant.
    fn instances(&self) -> &[Arc<Instance>] {
        match &self.serving {
            Serving::Instances { instances, .. } => instances,
            Serving::Serverless(_) => &[],
        }
    }

    /// How the model behaves as an LLM behind response streaming; None for
    /// a serverless variant, which does not stream.
    pub fn llm(&self) -> Option<&LlmBehaviour> {
        match &self.serving {
            Serving::Instances { llm, .. } => Some(llm),
            Serving::Serverless(_) => None,
        }
    }

    /// Records an asynchronous request of this variant that left the backlog for good.
    pub fn record_async(&self, served: AsyncServed) {
        self.series.record_async(served, self.capacity());
    }

    /// The variant, real-time, is in service this second, serving or not;
    /// its LLM engines, if it has streamed, are looked at.
    pub fn heartbeat(&self) {
        if let Serving::Serverless(serverless) = &self.serving {
            self.series.serverless_in_service(serverless.capacity());
            return;
        }
        self.series.in_service(self.capacity());
        if let Some(look) = self.look_at_engines() {
            self.series.record_engine_look(look);
        }
    }

    /// The variant's LLM engines averaged over its instances (an instance
    /// that never streamed is idle); None before its first stream.
    fn look_at_engines(&self) -> Option<EngineLook> {
        let llm = self.llm()?;
        let looks: Vec<_> = self.instances().iter().filter_map(|i| i.llm.get()).map(Engine::look).collect();
        if looks.is_empty() {
            return None;
        }
        let per_instance = |value: f64| value / self.instances().len() as f64;
        Some(EngineLook {
            in_flight_per_instance: per_instance(looks.iter().map(|l| l.in_flight as f64).sum()),
            gpus: llm.gpus,
            compute_share: per_instance(looks.iter().map(|l| l.compute_share).sum()),
            kv_share: per_instance(looks.iter().map(|l| l.kv_share).sum()),
            weights_memory_percent: llm.weights_memory_percent,
        })
    }

    /// Records a request of this variant that never became a stream (it was
    /// refused or failed before its first part).
    pub fn record(&self, served: Served) {
        self.series.record(served, self.capacity());
    }

    /// Where streams of this variant are recorded when they end, which may
    /// be after the variant was replaced by a scaling change.
    pub fn stream_recorder(&self) -> StreamRecorder {
        StreamRecorder { series: self.series.clone(), capacity: self.capacity() }
    }

    /// A place on one of the variant's instances, chosen by its routing —
    /// for a stream, held until it ends.
    pub fn route(&self) -> Claim {
        Claim::new(self.pick_instance().clone())
    }

    /// The workers of a serverless variant; None for one served by instances.
    pub fn serverless(&self) -> Option<&Serverless> {
        match &self.serving {
            Serving::Serverless(serverless) => Some(serverless),
            Serving::Instances { .. } => None,
        }
    }

    fn capacity(&self) -> Capacity {
        if let Serving::Serverless(serverless) = &self.serving {
            return serverless.capacity();
        }
        Capacity {
            instances: self.instance_count(),
            workers_per_instance: self.behaviour.workers as u32,
            vcpus: self.behaviour.vcpus,
            memory_percent: self.behaviour.memory_percent,
        }
    }

    fn pick_instance(&self) -> &Arc<Instance> {
        let mut rng = rand::rng();
        match self.spec.routing {
            Routing::Random => &self.instances()[rng.random_range(0..self.instances().len())],
            Routing::LeastOutstandingRequests => {
                // Start the scan at a random instance so ties spread evenly.
                let n = self.instances().len();
                let offset = rng.random_range(0..n);
                (0..n)
                    .map(|i| &self.instances()[(i + offset) % n])
                    .min_by_key(|inst| inst.outstanding.load(Ordering::Acquire))
                    .expect("a variant has at least one instance")
            }
        }
    }

    /// An error drawn from the profile's `error_rate`, answered before any
    /// work, as the model answers it — or None.
    pub fn drawn_model_error(&self, endpoint: &str) -> Option<(Outcome, AwsError)> {
        if !rand::rng().random_bool(self.behaviour.error_rate) {
            return None;
        }
        let status = self.behaviour.error_status;
        let outcome = if status < 500 { Outcome::ClientError } else { Outcome::ServerError };
        Some((outcome, model_error("simulated model error", Some(status), endpoint)))
    }

    fn sample_service_time(&self) -> Duration {
        match &self.serving {
            Serving::Instances { service: Some(dist), .. } => Duration::from_secs_f64(dist.sample(&mut rand::rng()) / 1000.0),
            _ => Duration::ZERO,
        }
    }
}

impl ServingVariant {
    /// A variant on `count` instances of `instance_type`, keeping the
    /// instances in `kept` (a capacity change must not reset queues).
    fn on_instances(
        spec: &VariantSpec,
        instance_type: &str,
        count: u32,
        kept: Vec<Arc<Instance>>,
        profile: &Profile,
        series: Arc<Series>,
    ) -> ServingVariant {
        let behaviour = profile.behaviour(instance_type).expect("instance types are validated at CreateEndpointConfig");
        let instances = (0..count as usize)
            .map(|i| kept.get(i).cloned().unwrap_or_else(|| Arc::new(Instance::new(behaviour.workers))))
            .collect();
        let llm = profile.llm.behaviour(instance_type).expect("instance types are validated at CreateEndpointConfig");
        let serving = Serving::Instances { instances, service: behaviour.service_ms.sampler(), llm };
        ServingVariant { spec: spec.clone(), behaviour, serving, series }
    }

    /// A serverless variant: the model as the profile's `[default]` describes
    /// it (its error rate), served by a pool of workers sized by `config`.
    fn on_serverless(spec: &VariantSpec, config: ServerlessConfig, profile: &Profile, series: Arc<Series>) -> ServingVariant {
        ServingVariant {
            spec: spec.clone(),
            behaviour: profile.model_behaviour(),
            serving: Serving::Serverless(Serverless::start(config, &profile.serverless)),
            series,
        }
    }
}

/// The instances behind an endpoint while it is in service.
#[derive(Debug)]
pub struct Deployment {
    pub variants: Vec<ServingVariant>,
}

impl Deployment {
    /// Brings `specs` into service, keeping the instances of `previous` for
    /// variants it already served (a capacity change must not reset queues).
    pub fn start(
        endpoint: &str,
        specs: &[VariantSpec],
        profile: &Profile,
        store: &MetricStore,
        previous: Option<&Deployment>,
    ) -> Deployment {
        let variants = specs
            .iter()
            .map(|spec| {
                let series = store.series(endpoint, &spec.name);
                match &spec.capacity {
                    VariantCapacity::Instances { instance_type, count } => {
                        let kept = previous
                            .and_then(|p| {
                                p.variants
                                    .iter()
                                    .find(|v| v.spec.name == spec.name && v.spec.instance_type() == Some(instance_type))
                            })
                            .map(|v| v.instances().to_vec())
                            .unwrap_or_default();
                        ServingVariant::on_instances(spec, instance_type, *count, kept, profile, series)
                    }
                    VariantCapacity::Serverless(config) => ServingVariant::on_serverless(spec, *config, profile, series),
                }
            })
            .collect();
        Deployment { variants }
    }

    /// Instances in service, over every variant.
    pub fn instance_count(&self) -> u32 {
        self.variants.iter().map(ServingVariant::instance_count).sum()
    }

    /// A place on the least busy instance that has fewer requests in flight
    /// than `max_per_instance` (its workers when None), and its variant's
    /// index; None when every instance is that busy, or there is none.
    pub fn claim(&self, max_per_instance: Option<u32>) -> Option<(usize, Claim)> {
        self.variants
            .iter()
            .enumerate()
            .flat_map(|(index, variant)| {
                let limit = max_per_instance.map_or(variant.behaviour.workers, |max| max as usize);
                variant.instances().iter().map(move |instance| (index, instance, limit))
            })
            .map(|(index, instance, limit)| (index, instance, limit, instance.outstanding.load(Ordering::Acquire)))
            .filter(|(_, _, limit, outstanding)| outstanding < limit)
            .min_by_key(|(_, _, _, outstanding)| *outstanding)
            .map(|(index, instance, _, _)| (index, Claim::new(instance.clone())))
    }

    /// The variant a request goes to: the one it names, or one drawn by weight.
    pub fn choose_variant(&self, target: Option<&str>, endpoint: &str) -> Result<&ServingVariant, AwsError> {
        if let Some(name) = target {
            return self.variants.iter().find(|v| v.spec.name == name).ok_or_else(|| {
                AwsError::new(
                    StatusCode::BAD_REQUEST,
                    "ValidationError",
                    format!("Variant {name} not found for endpoint {endpoint}."),
                )
            });
        }
        let total: f64 = self.variants.iter().map(|v| v.spec.weight).sum();
        if self.variants.len() == 1 || total <= 0.0 {
            return Ok(&self.variants[0]);
        }
        let mut draw = rand::rng().random_range(0.0..total);
        for v in &self.variants {
            if draw < v.spec.weight {
                return Ok(v);
            }
            draw -= v.spec.weight;
        }
        Ok(self.variants.last().expect("a deployment has variants"))
    }
}

/// Records a stream of a variant when it ends.
#[derive(Debug, Clone)]
pub struct StreamRecorder {
    series: Arc<Series>,
    capacity: Capacity,
}

impl StreamRecorder {
    pub fn record(&self, served: StreamServed) {
        self.series.record_stream(served, self.capacity);
    }
}

/// A model answer.
pub struct ModelAnswer {
    pub body: Vec<u8>,
}

/// Serves one request on `variant` through the capacity model and records it.
/// `received` is when the request reached the simulator.
pub async fn invoke(
    variant: &ServingVariant,
    profile: &Profile,
    received: Instant,
    endpoint: &str,
) -> Result<ModelAnswer, AwsError> {
    if let Some(serverless) = variant.serverless() {
        return invoke_serverless(variant, serverless, profile, received, endpoint).await;
    }
    let claim = Claim::new(variant.pick_instance().clone());
    let model_start = Instant::now();
    let deadline = received + profile.container_timeout;

    let served = serve(variant, &claim.instance, Some(variant.behaviour.queue_limit), profile.stall, deadline).await;
    let model_end = Instant::now();
    let model = model_end - model_start;
    let busy = busy_of(&served);
    let (outcome, result) = answer(variant, served, endpoint);
    let reached_model = !matches!(result, Err(ref e) if e.code == "ServiceUnavailable");
    let overhead = (model_start - received) + model_end.elapsed();
    variant.series.record(
        Served { outcome, model: reached_model.then_some(model), overhead: reached_model.then_some(overhead), busy },
        variant.capacity(),
    );
    result
}

/// Serves one request on a serverless variant's workers and records it,
/// its cold start included.
async fn invoke_serverless(
    variant: &ServingVariant,
    serverless: &Serverless,
    profile: &Profile,
    received: Instant,
    endpoint: &str,
) -> Result<ModelAnswer, AwsError> {
    let model_start = Instant::now();
    let ending = serverless.serve(received + profile.container_timeout).await;
    let model_end = Instant::now();
    let in_model = match ending {
        Ending::Served { setup, service } => setup.unwrap_or_default() + service,
        Ending::TimedOut { busy, .. } => busy,
        Ending::Throttled | Ending::OutOfMemory { .. } => model_end - model_start,
    };
    let overhead = (model_end - received).saturating_sub(in_model);
    let mut served = ending.served(overhead);
    let result = match ending {
        Ending::Throttled => Err(throttled()),
        Ending::OutOfMemory { needed_mb, available_mb } => Err(out_of_memory(needed_mb, available_mb, endpoint)),
        Ending::TimedOut { .. } => Err(container_timed_out(endpoint)),
        Ending::Served { service, .. } => match variant.drawn_model_error(endpoint) {
            Some((outcome, error)) => {
                served.outcome = outcome;
                Err(error)
            }
            None => Ok(model_answer(variant, service)),
        },
    };
    variant.series.record_serverless(served, ending.setup(), variant.capacity());
    result
}

/// One asynchronous request as the model served it.
pub struct Processed {
    pub outcome: Outcome,
    pub result: Result<ModelAnswer, AwsError>,
    /// Time the model held it, waiting for a worker included.
    pub model: Duration,
    pub busy: Duration,
}

/// Serves one asynchronous request on the instance `claim` holds, within
/// `timeout` (its InvocationTimeoutSeconds). Its place is released when the
/// model is done with it; recording it is the caller's, who knows how it ends.
pub async fn process(variant: &ServingVariant, claim: Claim, profile: &Profile, timeout: Duration, endpoint: &str) -> Processed {
    let started = Instant::now();
    let served = serve(variant, &claim.instance, None, profile.stall, started + timeout).await;
    drop(claim);
    let model = started.elapsed();
    let busy = busy_of(&served);
    let (outcome, result) = answer(variant, served, endpoint);
    Processed { outcome, result, model, busy }
}

fn busy_of(served: &Result<Done, Refusal>) -> Duration {
    match served {
        Ok(done) => done.busy,
        Err(Refusal::TimedOut { busy }) => *busy,
        Err(Refusal::QueueFull) => Duration::ZERO,
    }
}

/// What the caller gets for how the request was served: the model's answer,
/// or the error SageMaker gives (queue full, timed out, or one of the
/// profile's error_rate), and how CloudWatch counts it.
fn answer(variant: &ServingVariant, served: Result<Done, Refusal>, endpoint: &str) -> (Outcome, Result<ModelAnswer, AwsError>) {
    match served {
        Err(Refusal::QueueFull) => (Outcome::ServerError, Err(service_unavailable())),
        Err(Refusal::TimedOut { .. }) => (Outcome::ServerError, Err(container_timed_out(endpoint))),
        Ok(done) => match variant.drawn_model_error(endpoint) {
            Some((outcome, error)) => (outcome, Err(error)),
            None => (Outcome::Success, Ok(model_answer(variant, done.service))),
        },
    }
}

/// The model's answer to a request it served in `service`.
fn model_answer(variant: &ServingVariant, service: Duration) -> ModelAnswer {
    ModelAnswer {
        body: format!(
            "{{\"prediction\":0.5,\"variant\":\"{}\",\"service_ms\":{:.3}}}",
            variant.spec.name,
            service.as_secs_f64() * 1000.0
        )
        .into_bytes(),
    }
}

/// What the runtime answers a request past a serverless variant's
/// MaxConcurrency: a 400 ThrottlingException whose message is null, as
/// SageMaker sends it (the SDKs print "None" / "null").
pub fn throttled() -> AwsError {
    AwsError::new(StatusCode::BAD_REQUEST, "ThrottlingException", "").with("message", serde_json::Value::Null)
}

/// What the runtime answers when a serverless worker has less memory than
/// the model needs: the container dies loading it, a ModelError.
pub fn out_of_memory(needed_mb: u32, available_mb: u32, endpoint: &str) -> AwsError {
    model_error(
        &format!(
            "Out of memory: the model needs {needed_mb} MB and the serverless worker has {available_mb} MB (MemorySizeInMB)."
        ),
        Some(500),
        endpoint,
    )
}

/// What SageMaker answers when an instance's queue is full.
pub fn service_unavailable() -> AwsError {
    AwsError::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", "Service is unavailable. Please try again later.")
}

/// What SageMaker answers when the container has not answered within its timeout.
pub fn container_timed_out(endpoint: &str) -> AwsError {
    model_error(
        "Your invocation timed out while waiting for a response from container primary. \
         Review the latency metrics for each container in Amazon CloudWatch, resolve the issue, and try again.",
        None,
        endpoint,
    )
}

/// ModelError (424): the container failed the request, with `status` and
/// `original` as its own answer when it gave one.
pub fn model_error(original: &str, status: Option<u16>, endpoint: &str) -> AwsError {
    let message = match status {
        Some(code) => format!(
            "Received {} error ({code}) from primary with message \"{original}\". \
             See https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEventViewer:group=/aws/sagemaker/Endpoints/{endpoint} \
             in account {} for more information.",
            if code < 500 { "client" } else { "server" },
            super::ACCOUNT_ID
        ),
        None => original.to_string(),
    };
    let mut error = AwsError::new(StatusCode::FAILED_DEPENDENCY, "ModelError", message).with(
        "LogStreamArn",
        format!("arn:aws:logs:us-east-1:{}:log-group:/aws/sagemaker/Endpoints/{endpoint}", super::ACCOUNT_ID),
    );
    if let Some(code) = status {
        error = error.with("OriginalStatusCode", code).with("OriginalMessage", original);
    }
    error
}

enum Refusal {
    QueueFull,
    /// The container timeout passed; `busy` is how long a worker was held.
    TimedOut {
        busy: Duration,
    },
}

struct Done {
    service: Duration,
    busy: Duration,
}

/// Waits for a worker (or refuses when `queue_limit` requests already wait),
/// sits out a stall, then holds the worker for a sampled service time — all
/// before `deadline`.
async fn serve(
    variant: &ServingVariant,
    instance: &Instance,
    queue_limit: Option<usize>,
    stall: Option<Stall>,
    deadline: Instant,
) -> Result<Done, Refusal> {
    let permit = match instance.workers.try_acquire() {
        Ok(permit) => permit,
        Err(_) => {
            let (_waiting, ahead) = Counted::enter(&instance.waiting);
            if queue_limit.is_some_and(|limit| ahead >= limit) {
                return Err(Refusal::QueueFull);
            }
            match tokio::time::timeout_at(deadline, instance.workers.acquire()).await {
                Ok(permit) => permit.expect("the semaphore is never closed"),
                Err(_) => return Err(Refusal::TimedOut { busy: Duration::ZERO }),
            }
        }
    };
    let started = Instant::now();
    let mut service = variant.sample_service_time();
    if let Some(stall) = stall
        && let Some(rest) = stall.remaining(started - instance.in_service_since)
    {
        service += rest;
    }
    let finish = started + service;
    if finish > deadline {
        tokio::time::sleep_until(deadline).await;
        drop(permit);
        return Err(Refusal::TimedOut { busy: started.elapsed() });
    }
    if !service.is_zero() {
        tokio::time::sleep_until(finish).await;
    }
    drop(permit);
    Ok(Done { service, busy: started.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(profile: &Profile, count: u32) -> Deployment {
        let spec = VariantSpec {
            name: "AllTraffic".into(),
            model_name: "m".into(),
            capacity: VariantCapacity::Instances { instance_type: "ml.m5.large".into(), count },
            weight: 1.0,
            routing: Routing::Random,
        };
        Deployment::start("e", &[spec], profile, &MetricStore::new(Duration::from_secs(60)), None)
    }

    fn profile(entries: &str) -> Profile {
        Profile::parse(&format!("[default]\nvcpus = 2\nworkers = 2\n{entries}"), "test").unwrap()
    }

    #[test]
    fn claims_hold_at_most_the_limit_on_each_instance() {
        let profile = profile("service_ms = { median = 1.0, p99 = 2.0 }");
        let two = deployment(&profile, 2);
        let held: Vec<Claim> = (0..2).map(|_| two.claim(Some(1)).expect("one place on each instance").1).collect();
        assert!(two.claim(Some(1)).is_none(), "both instances are at MaxConcurrentInvocationsPerInstance");
        drop(held);
        // Without a limit, an instance takes as many as it has workers (2).
        let held: Vec<Claim> = (0..4).map(|_| two.claim(None).unwrap().1).collect();
        assert!(two.claim(None).is_none());
        drop(held);
        assert!(deployment(&profile, 0).claim(Some(1000)).is_none(), "no instance, no place");
        assert_eq!(deployment(&profile, 0).instance_count(), 0);
    }

    #[tokio::test]
    async fn an_async_request_past_its_timeout_is_a_model_error() {
        let profile = profile("service_ms = { median = 5000.0, p99 = 5000.0 }");
        let one = deployment(&profile, 1);
        let (index, claim) = one.claim(None).unwrap();
        let processed = process(&one.variants[index], claim, &profile, Duration::from_millis(50), "e").await;
        let error = processed.result.err().expect("timed out");
        assert_eq!((error.code, processed.outcome), ("ModelError", Outcome::ServerError));
        assert!(processed.model < Duration::from_secs(4), "{:?}: the timeout, not the service time", processed.model);
        assert!(one.claim(Some(1)).is_some(), "its place was released");
    }

    #[tokio::test]
    async fn the_error_rate_fails_async_requests_as_it_fails_real_time_ones() {
        let profile = profile("service_ms = { median = 1.0, p99 = 1.0 }\nerror_rate = 1.0\nerror_status = 503");
        let one = deployment(&profile, 1);
        let (index, claim) = one.claim(None).unwrap();
        let processed = process(&one.variants[index], claim, &profile, Duration::from_secs(10), "e").await;
        let error = processed.result.err().expect("the profile's error rate");
        assert_eq!((error.code, processed.outcome), ("ModelError", Outcome::ServerError));
        assert!(error.message.contains("(503)"), "{}", error.message);
    }
}
