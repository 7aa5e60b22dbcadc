//! The SageMaker simulator: one HTTP server on one port that speaks the
//! SageMaker control plane (awsJson 1.1), the SageMaker runtime (restJson1),
//! CloudWatch — metric reads (GetMetricData, GetMetricStatistics, ListMetrics)
//! and metric alarms — (RPC v2 CBOR and awsJson 1.0), Application Auto
//! Scaling (awsJson 1.1) and S3 (REST-XML), so the official SDKs, boto3 and
//! the AWS CLI work against it unchanged. Requests are routed by
//! `X-Amz-Target`, then by a signature for S3, then by path.
//!
//! Endpoints go through their real lifecycle in real time, and InvokeEndpoint
//! meets a capacity model ([`runtime`]) driven by a [`Profile`].
//! InvokeEndpointWithResponseStream ([`streaming`]) meets an LLM's instead
//! ([`llm`]: continuous batching, prefill and decode steps, a KV cache) and
//! answers token by token in the binary event-stream framing. Asynchronous
//! endpoints ([`async_inference`]) take InvokeEndpointAsync instead: inputs
//! and results live in the simulator's S3 ([`s3`]), and a background worker
//! per endpoint serves its backlog through the same capacity model.
//! Serverless variants ([`serverless`]) have no instances: InvokeEndpoint
//! meets a pool of workers sized by their ServerlessConfig instead — cold
//! starts, idle expiry, provisioned concurrency, throttling past
//! MaxConcurrency.
//! Everything served is recorded ([`metrics`]) and answered back through
//! CloudWatch: the ground truth perfsize's own measurements are checked
//! against. CloudWatch alarms ([`alarms`]) watch those metrics and drive
//! Application Auto Scaling policies ([`autoscaling`]), which scale endpoints
//! as AWS does — asynchronous ones down to zero instances and back — evaluated
//! by a background task, on a clock the profile may compress. Faults the
//! profile schedules ([`faults`]) strike control-plane, runtime and
//! CloudWatch calls before they are served. The Price List API's
//! GetProducts ([`pricing`]) lists the shipped prices as AWS lists its own.
//!
//! `run(listener, profile, shutdown)` serves until `shutdown` resolves, then
//! stops every background task; [`RunningSimulator`] runs it in-process on a
//! port of its own.

mod alarms;
mod async_inference;
mod autoscaling;
mod cloudwatch;
mod control;
mod faults;
mod llm;
mod metrics;
mod pricing;
pub mod profile;
mod runtime;
mod s3;
mod serverless;
mod streaming;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::sagemaker::MAX_PAYLOAD_BYTES;
pub use profile::{Profile, ProfileError};

use alarms::AlarmStore;
use async_inference::{AsyncConfig, AsyncInference, Deployed};
use autoscaling::{Endpoints, Env, Scaling};
use control::{Context, Registry, VariantScaling};
use metrics::MetricStore;
use runtime::{Deployment, ServingVariant};
use wire::{AwsError, Protocol};

/// The account every simulated resource belongs to.
pub const ACCOUNT_ID: &str = "123456789012";

const CLOUDWATCH_SERVICE: &str = "GraniteServiceVersion20100801";
const AUTOSCALING_SERVICE: &str = "AnyScaleFrontendService";

/// How often the background evaluator looks at alarms and scaling
/// activities. Alarm periods are whole seconds, so each is evaluated within
/// a quarter of a second of its end.
const SCALING_TICK: Duration = Duration::from_millis(250);

/// How long in-flight requests get to finish once shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The simulator's state. Where locks nest they are taken in this order —
/// scaling, registry, alarms — and never the other way round.
struct Shared {
    profile: Profile,
    store: MetricStore,
    registry: Mutex<Registry>,
    alarms: Mutex<AlarmStore>,
    scaling: Mutex<Scaling>,
    objects: s3::ObjectStore,
    inference: AsyncInference,
    /// Faults the profile schedules; consulted before a call is served.
    faults: faults::Injector,
}

/// A lock, even after a panic elsewhere poisoned it: one bad request must not
/// take the whole simulator down.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    fn context<'a>(&'a self, region: &'a str) -> Context<'a> {
        Context { profile: &self.profile, store: &self.store, region, update_ending: None }
    }

    /// The control plane as Application Auto Scaling uses it.
    fn endpoints<'a>(&'a self, region: &'a str) -> RegistryEndpoints<'a> {
        RegistryEndpoints { registry: self.registry(), ctx: self.context(region) }
    }

    /// One round of the background evaluator: alarms whose period ended are
    /// evaluated, the policies they invoke run, activities move on.
    fn evaluate_scaling(&self, now: SystemTime) {
        self.registry().heartbeat(&self.context("us-east-1"));
        let clock = self.profile.scaling_clock;
        let invocations = alarms::evaluate_due(&self.alarms, &self.store, clock, now);
        let states = lock(&self.alarms).states();
        let mut scaling = lock(&self.scaling);
        let mut endpoints = self.endpoints("us-east-1");
        let mut env = Env { endpoints: &mut endpoints, alarms: &self.alarms, clock, region: "us-east-1", now };
        scaling.evaluate(&invocations, &states, &mut env);
    }
}

/// What asynchronous inference uses: the registry, S3, the metrics.
impl async_inference::Host for Shared {
    fn accepting(&self, endpoint: &str) -> Result<Arc<AsyncConfig>, AwsError> {
        self.registry().accepting_async(&self.context("us-east-1"), endpoint)
    }

    fn deployment(&self, endpoint: &str) -> Deployed {
        self.registry().async_deployment(&self.context("us-east-1"), endpoint)
    }

    fn objects(&self) -> &s3::ObjectStore {
        &self.objects
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }

    fn metrics(&self) -> &MetricStore {
        &self.store
    }

    fn inference(&self) -> &AsyncInference {
        &self.inference
    }
}

/// The registry behind [`Endpoints`].
struct RegistryEndpoints<'a> {
    registry: MutexGuard<'a, Registry>,
    ctx: Context<'a>,
}

impl Endpoints for RegistryEndpoints<'_> {
    fn variant(&mut self, endpoint: &str, variant: &str) -> Result<VariantScaling, AwsError> {
        self.registry.variant_scaling(&self.ctx, endpoint, variant)
    }

    fn set_desired_instance_count(&mut self, endpoint: &str, variant: &str, count: u32) -> Result<(), AwsError> {
        self.registry.set_desired_instance_count(&self.ctx, endpoint, variant, count)
    }
}

/// Runs the scaling evaluator until `stop` is cancelled: scaling happens
/// with no control-plane call at all, as in AWS.
async fn evaluate_scaling(shared: Arc<Shared>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(SCALING_TICK);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => shared.evaluate_scaling(SystemTime::now()),
        }
    }
}

/// Serves the simulator on `listener` until `shutdown` resolves, then gives
/// in-flight requests a short grace period.
pub async fn run(
    listener: TcpListener,
    profile: Profile,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Background work — the scaling evaluator, asynchronous endpoints'
    // workers — stops with the server, even when this future is dropped.
    let stop_background = CancellationToken::new();
    let _stop_background_on_drop = stop_background.clone().drop_guard();
    let injector = faults::Injector::new(profile.faults.clone());
    let shared = Arc::new(Shared {
        store: MetricStore::new(profile.metrics_retention),
        objects: s3::ObjectStore::new(profile.s3_capacity_bytes),
        profile,
        registry: Mutex::new(Registry::default()),
        alarms: Mutex::new(AlarmStore::default()),
        scaling: Mutex::new(Scaling::default()),
        inference: AsyncInference::new(stop_background.child_token()),
        faults: injector,
    });
    let evaluator = tokio::spawn(evaluate_scaling(shared.clone(), stop_background.clone()));
    let app = Router::new().fallback(route).with_state(shared.clone());
    let (stopping_tx, stopping_rx) = oneshot::channel::<()>();
    // Each PayloadPart of a response stream leaves the moment it exists, as
    // SageMaker's do: with Nagle's algorithm a small part would wait for the
    // client's delayed ACK of the one before, and no token's time would be
    // the time the simulator records for it.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    });
    let server = std::pin::pin!(server.into_future());
    let result = tokio::select! {
        result = server => result,
        _ = async {
            // Once shutdown is asked for, wait at most the grace period for
            // requests still queued in simulated containers.
            let _ = stopping_rx.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    };
    stop_background.cancel();
    let _ = evaluator.await;
    shared.inference.shutdown().await;
    result
}

/// A simulator serving in-process on loopback; stops when dropped.
pub struct RunningSimulator {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningSimulator {
    /// Starts a simulator on `host:port` (port 0 picks a free one).
    pub async fn start(profile: Profile, host: &str, port: u16) -> std::io::Result<RunningSimulator> {
        let listener = TcpListener::bind((host, port)).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(run(listener, profile, async move {
            let _ = rx.await;
        }));
        Ok(RunningSimulator { addr, shutdown: Some(tx), task: Some(task) })
    }

    /// The URL to give SDKs as their endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits until the port is closed.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Sends each request to the part of the simulator whose protocol it speaks.
async fn route(State(shared): State<Arc<Shared>>, request: Request) -> Response<Body> {
    let received = Instant::now();
    let target = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).map(str::to_string);
    let path = request.uri().path().to_string();

    if let Some(target) = target {
        if let Some(operation) = target.strip_prefix("SageMaker.") {
            return control_plane(&shared, operation, request).await;
        }
        if let Some(operation) = target.strip_prefix(&format!("{CLOUDWATCH_SERVICE}.")) {
            return metrics_call(&shared, Protocol::AwsJson10, operation, request).await;
        }
        if let Some(operation) = target.strip_prefix(&format!("{AUTOSCALING_SERVICE}.")) {
            return autoscaling_call(&shared, operation, request).await;
        }
        if let Some(operation) = target.strip_prefix(&format!("{}.", pricing::SERVICE)) {
            return match json_request(request).await {
                Ok((_, input)) => json_answer(pricing::call(operation, &input)),
                Err(response) => response,
            };
        }
    }
    // Before the runtime's paths: a bucket may be called "endpoints".
    if s3::addressed(request.headers(), request.uri().query()) {
        return s3::handle(&shared.objects, request).await;
    }
    if let Some(rest) = path.strip_prefix("/endpoints/") {
        if let Some(name) = rest.strip_suffix("/invocations") {
            let name = wire::percent_decode(name);
            return invoke_endpoint(&shared, &name, request, received).await;
        }
        if let Some(name) = rest.strip_suffix("/invocations-response-stream") {
            let name = wire::percent_decode(name);
            return invoke_with_response_stream(&shared, &name, request, received).await;
        }
        if let Some(name) = rest.strip_suffix("/async-invocations") {
            let name = wire::percent_decode(name);
            return async_inference::invoke(shared.clone(), &name, request).await;
        }
    }
    if let Some(operation) = path.strip_prefix(&format!("/service/{CLOUDWATCH_SERVICE}/operation/")) {
        let operation = operation.to_string();
        return metrics_call(&shared, Protocol::RpcV2Cbor, &operation, request).await;
    }
    AwsError::new(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        format!("The simulator does not serve {} {path}", request.method()),
    )
    .into_response(Protocol::RestJson)
}

async fn read_body(body: Body, limit: usize, protocol: Protocol) -> Result<axum::body::Bytes, Box<Response<Body>>> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        let message = format!("Request body is larger than the {limit} bytes this operation accepts.");
        // The runtime answers 413 with its own error shape; the JSON RPC services a 400.
        let error = match protocol {
            Protocol::RestJson => AwsError::new(StatusCode::PAYLOAD_TOO_LARGE, "ValidationError", message),
            _ => AwsError::validation(message),
        };
        Box::new(error.into_response(protocol))
    })
}

/// The signing region and JSON body of an awsJson 1.1 request, or the error
/// answer it gets.
async fn json_request(request: Request) -> Result<(String, serde_json::Value), Response<Body>> {
    let protocol = Protocol::AwsJson11;
    wire::require_signature(request.headers(), protocol).map_err(|denied| *denied)?;
    let region = wire::signing_region(request.headers()).unwrap_or_else(|| "us-east-1".to_string());
    let body = read_body(request.into_body(), MAX_PAYLOAD_BYTES, protocol).await.map_err(|response| *response)?;
    if body.is_empty() {
        return Ok((region, serde_json::json!({})));
    }
    let input = serde_json::from_slice(&body).map_err(|e| {
        AwsError::new(StatusCode::BAD_REQUEST, "SerializationException", format!("malformed JSON body: {e}"))
            .into_response(protocol)
    })?;
    Ok((region, input))
}

fn json_answer(result: Result<serde_json::Value, AwsError>) -> Response<Body> {
    match result {
        Ok(output) => wire::json_response(Protocol::AwsJson11, &output),
        Err(error) => error.into_response(Protocol::AwsJson11),
    }
}

async fn control_plane(shared: &Shared, operation: &str, request: Request) -> Response<Body> {
    let update_ending = match shared.faults.strike(operation, Protocol::AwsJson11, request.headers()).await {
        Ok(ending) => ending,
        Err(fault) => return fault,
    };
    let (region, input) = match json_request(request).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let ctx = Context { update_ending, ..shared.context(&region) };
    json_answer(shared.registry().call(&ctx, operation, &input))
}

async fn autoscaling_call(shared: &Shared, operation: &str, request: Request) -> Response<Body> {
    let (region, input) = match json_request(request).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let mut scaling = lock(&shared.scaling);
    let mut endpoints = shared.endpoints(&region);
    let mut env = Env {
        endpoints: &mut endpoints,
        alarms: &shared.alarms,
        clock: shared.profile.scaling_clock,
        region: &region,
        now: SystemTime::now(),
    };
    json_answer(scaling.call(operation, &input, &mut env))
}

async fn metrics_call(shared: &Shared, protocol: Protocol, operation: &str, request: Request) -> Response<Body> {
    if let Err(fault) = shared.faults.strike(operation, protocol, request.headers()).await {
        return fault;
    }
    if let Err(denied) = wire::require_signature(request.headers(), protocol) {
        return *denied;
    }
    let region = wire::signing_region(request.headers()).unwrap_or_else(|| "us-east-1".to_string());
    match read_body(request.into_body(), MAX_PAYLOAD_BYTES, protocol).await {
        Ok(body) if alarms::api::serves(operation) => {
            let clock = shared.profile.scaling_clock;
            alarms::api::handle(&shared.alarms, clock, protocol, operation, &region, &body, SystemTime::now())
        }
        Ok(body) => cloudwatch::handle(&shared.store, protocol, operation, &body),
        Err(response) => *response,
    }
}

/// A runtime invocation SageMaker accepted: signed, its body within the
/// limit, for an endpoint in service.
struct Invocation {
    headers: HeaderMap,
    body: Bytes,
    deployment: Arc<Deployment>,
}

impl Invocation {
    /// Checks what InvokeEndpoint and InvokeEndpointWithResponseStream both
    /// check before a model sees the request; the error answer if it fails.
    async fn accept(
        shared: &Shared,
        operation: &'static str,
        endpoint: &str,
        request: Request,
    ) -> Result<Invocation, Response<Body>> {
        let protocol = Protocol::RestJson;
        shared.faults.strike(operation, protocol, request.headers()).await?;
        wire::require_signature(request.headers(), protocol).map_err(|denied| *denied)?;
        let (parts, body) = request.into_parts();
        let headers = parts.headers;
        let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_PAYLOAD_BYTES) {
            return Err(payload_too_large(declared.unwrap_or_default()));
        }
        let Ok(body) = read_body(body, MAX_PAYLOAD_BYTES, protocol).await else {
            return Err(payload_too_large(MAX_PAYLOAD_BYTES + 1));
        };
        let deployment = shared.registry().serving(&shared.context("us-east-1"), endpoint);
        let deployment = deployment.map_err(|error| error.into_response(protocol))?;
        Ok(Invocation { headers, body, deployment })
    }

    /// The variant the request goes to: the one it targets, or one drawn by weight.
    fn variant(&self, endpoint: &str) -> Result<&ServingVariant, AwsError> {
        let target = self.headers.get("x-amzn-sagemaker-target-variant").and_then(|v| v.to_str().ok());
        self.deployment.choose_variant(target, endpoint)
    }

    /// The headers every runtime answer carries: its id, the variant that
    /// served it, and the custom attributes passed back.
    fn answered_by(&self, variant: &ServingVariant, out: &mut HeaderMap) {
        out.insert("x-amzn-requestid", wire::request_id());
        if let Ok(name) = HeaderValue::from_str(&variant.spec.name) {
            out.insert("x-amzn-invoked-production-variant", name);
        }
        if let Some(attributes) = self.headers.get("x-amzn-sagemaker-custom-attributes") {
            out.insert("x-amzn-sagemaker-custom-attributes", attributes.clone());
        }
    }
}

async fn invoke_endpoint(shared: &Shared, endpoint: &str, request: Request, received: Instant) -> Response<Body> {
    let invocation = match Invocation::accept(shared, "InvokeEndpoint", endpoint, request).await {
        Ok(invocation) => invocation,
        Err(response) => return response,
    };
    let variant = match invocation.variant(endpoint) {
        Ok(variant) => variant,
        Err(error) => return error.into_response(Protocol::RestJson),
    };
    match runtime::invoke(variant, &shared.profile, received, endpoint).await {
        Ok(answer) => {
            let mut response = Response::new(Body::from(answer.body));
            let content_type = invocation
                .headers
                .get(header::ACCEPT)
                .filter(|v| v.as_bytes() != b"*/*")
                .cloned()
                .unwrap_or(HeaderValue::from_static("application/json"));
            let out = response.headers_mut();
            out.insert(header::CONTENT_TYPE, content_type);
            invocation.answered_by(variant, out);
            response
        }
        Err(error) => error.into_response(Protocol::RestJson),
    }
}

/// InvokeEndpointWithResponseStream: the same checks, then the LLM model.
async fn invoke_with_response_stream(shared: &Shared, endpoint: &str, request: Request, received: Instant) -> Response<Body> {
    let invocation = match Invocation::accept(shared, "InvokeEndpointWithResponseStream", endpoint, request).await {
        Ok(invocation) => invocation,
        Err(response) => return response,
    };
    let variant = match invocation.variant(endpoint) {
        Ok(variant) => variant,
        Err(error) => return error.into_response(Protocol::RestJson),
    };
    match streaming::invoke(variant, &shared.profile, &invocation.body, received, endpoint).await {
        Ok(started) => {
            let mut response = Response::new(started.body);
            let out = response.headers_mut();
            out.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.amazon.eventstream"));
            out.insert("x-amzn-sagemaker-content-type", HeaderValue::from_static(started.content_type));
            invocation.answered_by(variant, out);
            response
        }
        Err(error) => error.into_response(Protocol::RestJson),
    }
}

fn payload_too_large(size: usize) -> Response<Body> {
    AwsError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "ValidationError",
        format!(
            "Request payload of {size} bytes is larger than the maximum of {MAX_PAYLOAD_BYTES} bytes for a real-time endpoint."
        ),
    )
    .into_response(Protocol::RestJson)
}
