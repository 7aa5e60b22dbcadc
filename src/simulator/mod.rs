//! The SageMaker simulator: one HTTP server on one port that speaks the
//! SageMaker control plane (awsJson 1.1), the SageMaker runtime (restJson1) and
//! CloudWatch's metric reads — GetMetricData, GetMetricStatistics, ListMetrics —
//! (RPC v2 CBOR and awsJson 1.0), so the official SDKs, boto3 and the AWS CLI
//! work against it unchanged.
//!
//! Endpoints go through their real lifecycle in real time, and InvokeEndpoint
//! meets a capacity model ([`runtime`]) driven by a [`Profile`]. Everything it
//! serves is recorded ([`metrics`]) and answered back through CloudWatch: the
//! ground truth perfsize's own measurements are checked against.
//!
//! `run(listener, profile, shutdown)` serves until `shutdown` resolves;
//! [`RunningSimulator`] runs it in-process on a port of its own.

mod cloudwatch;
mod control;
mod metrics;
pub mod profile;
mod runtime;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Response, StatusCode, header};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::sagemaker::MAX_PAYLOAD_BYTES;
pub use profile::{Profile, ProfileError};

use control::{Context, Registry};
use metrics::MetricStore;
use wire::{AwsError, Protocol};

/// The account every simulated resource belongs to.
pub const ACCOUNT_ID: &str = "123456789012";

const CLOUDWATCH_SERVICE: &str = "GraniteServiceVersion20100801";

/// How long in-flight requests get to finish once shutdown is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

struct Shared {
    profile: Profile,
    store: MetricStore,
    registry: Mutex<Registry>,
}

impl Shared {
    /// The registry, even after a panic elsewhere poisoned its lock: one bad
    /// request must not take the whole simulator down.
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn context<'a>(&'a self, region: &'a str) -> Context<'a> {
        Context { profile: &self.profile, store: &self.store, region }
    }
}

/// Serves the simulator on `listener` until `shutdown` resolves, then gives
/// in-flight requests a short grace period.
pub async fn run(
    listener: TcpListener,
    profile: Profile,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        store: MetricStore::new(profile.metrics_retention),
        profile,
        registry: Mutex::new(Registry::default()),
    });
    let app = Router::new().fallback(route).with_state(shared);
    let (stopping_tx, stopping_rx) = oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    });
    let server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = server => result,
        _ = async {
            // Once shutdown is asked for, wait at most the grace period for
            // requests still queued in simulated containers.
            let _ = stopping_rx.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    }
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
    }
    if let Some(rest) = path.strip_prefix("/endpoints/") {
        if let Some(name) = rest.strip_suffix("/invocations") {
            let name = percent_decode(name);
            return invoke_endpoint(&shared, &name, request, received).await;
        }
        if rest.ends_with("/async-invocations") {
            return AwsError::new(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                "The simulator serves real-time endpoints only; asynchronous inference is not simulated.",
            )
            .into_response(Protocol::RestJson);
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

async fn control_plane(shared: &Shared, operation: &str, request: Request) -> Response<Body> {
    let protocol = Protocol::AwsJson11;
    if let Err(denied) = wire::require_signature(request.headers(), protocol) {
        return *denied;
    }
    let region = wire::signing_region(request.headers()).unwrap_or_else(|| "us-east-1".to_string());
    let body = match read_body(request.into_body(), MAX_PAYLOAD_BYTES, protocol).await {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let input: serde_json::Value = if body.is_empty() {
        serde_json::json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(input) => input,
            Err(e) => {
                return AwsError::new(StatusCode::BAD_REQUEST, "SerializationException", format!("malformed JSON body: {e}"))
                    .into_response(protocol);
            }
        }
    };
    let result = { shared.registry().call(&shared.context(&region), operation, &input) };
    match result {
        Ok(output) => wire::json_response(protocol, &output),
        Err(error) => error.into_response(protocol),
    }
}

async fn metrics_call(shared: &Shared, protocol: Protocol, operation: &str, request: Request) -> Response<Body> {
    if let Err(denied) = wire::require_signature(request.headers(), protocol) {
        return *denied;
    }
    match read_body(request.into_body(), MAX_PAYLOAD_BYTES, protocol).await {
        Ok(body) => cloudwatch::handle(&shared.store, protocol, operation, &body),
        Err(response) => *response,
    }
}

async fn invoke_endpoint(shared: &Shared, endpoint: &str, request: Request, received: Instant) -> Response<Body> {
    let protocol = Protocol::RestJson;
    if let Err(denied) = wire::require_signature(request.headers(), protocol) {
        return *denied;
    }
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_PAYLOAD_BYTES) {
        return payload_too_large(declared.unwrap_or_default());
    }
    if read_body(body, MAX_PAYLOAD_BYTES, protocol).await.is_err() {
        return payload_too_large(MAX_PAYLOAD_BYTES + 1);
    }
    let deployment = shared.registry().serving(&shared.context("us-east-1"), endpoint);
    let deployment = match deployment {
        Ok(deployment) => deployment,
        Err(error) => return error.into_response(protocol),
    };
    let target = headers.get("x-amzn-sagemaker-target-variant").and_then(|v| v.to_str().ok());
    let variant = match deployment.choose_variant(target, endpoint) {
        Ok(variant) => variant,
        Err(error) => return error.into_response(protocol),
    };
    match runtime::invoke(variant, &shared.profile, received, endpoint).await {
        Ok(answer) => {
            let mut response = Response::new(Body::from(answer.body));
            let content_type = headers
                .get(header::ACCEPT)
                .filter(|v| v.as_bytes() != b"*/*")
                .cloned()
                .unwrap_or(HeaderValue::from_static("application/json"));
            let out = response.headers_mut();
            out.insert(header::CONTENT_TYPE, content_type);
            out.insert("x-amzn-requestid", wire::request_id());
            if let Ok(name) = HeaderValue::from_str(&variant.spec.name) {
                out.insert("x-amzn-invoked-production-variant", name);
            }
            if let Some(attributes) = headers.get("x-amzn-sagemaker-custom-attributes") {
                out.insert("x-amzn-sagemaker-custom-attributes", attributes.clone());
            }
            response
        }
        Err(error) => error.into_response(protocol),
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

/// Decodes %XX escapes in a path segment (SDKs escape endpoint names that
/// need it; valid SageMaker names never do, but the error should name them right).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 3 <= bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(byte) = escaped {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
