//! The background task of one asynchronous endpoint: it expires requests
//! whose TTL ran out, dispatches waiting ones onto instances with room (at
//! most MaxConcurrentInvocationsPerInstance in flight each), processes each —
//! read the input from S3, serve it through the capacity model, write the
//! output or a failure file — and records what CloudWatch publishes. It runs
//! until its endpoint is deleted or the simulator stops; requests it is
//! processing then stop with it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::backlog::{Queued, Ticket};
use super::{Deployed, Host, Queue};
use crate::simulator::metrics::{AsyncFailure, AsyncServed, SeriesKey};
use crate::simulator::runtime::{self, Claim, Deployment, ServingVariant};
use crate::simulator::s3::{Object, ObjectMeta, S3Error, S3Uri};

/// How often the worker looks at its backlog when nothing else wakes it: the
/// backlog metrics' sampling, and how soon a new instance starts serving.
const LOOK_EVERY: Duration = Duration::from_millis(250);

pub(super) async fn run(host: Arc<dyn Host>, endpoint: String, queue: Arc<Queue>, stop: CancellationToken) {
    let mut processing = JoinSet::new();
    let mut looks = tokio::time::interval(LOOK_EVERY);
    looks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let look = tokio::select! {
            _ = stop.cancelled() => break,
            _ = looks.tick() => true,
            _ = queue.arrived.notified() => false,
            Some(_) = processing.join_next(), if !processing.is_empty() => false,
        };
        let (deployment, config) = match host.deployment(&endpoint) {
            Deployed::Gone => break,
            Deployed::NotServing => (None, None),
            Deployed::Serving { deployment, config } => (Some(deployment), Some(config)),
        };
        let now = Instant::now();
        if let Some(deployment) = &deployment {
            expire(host.as_ref(), &queue, deployment, now);
        }
        if let (Some(deployment), Some(config)) = (&deployment, &config) {
            while queue.backlog().has_waiting() {
                let Some((variant, claim)) = deployment.claim(config.max_concurrent_per_instance) else { break };
                let Some((ticket, request)) = queue.backlog().take() else { break };
                let task = Task { host: host.clone(), queue: queue.clone(), deployment: deployment.clone(), variant, ticket };
                processing.spawn(task.process(claim, request, endpoint.clone()));
            }
        }
        if look {
            let instances = deployment.as_ref().map_or(0, |d| d.instance_count());
            let seen = queue.backlog().look(now, instances);
            host.metrics().series_of(SeriesKey::endpoint(&endpoint)).record_backlog(seen);
        }
    }
    queue.closed.store(true, Ordering::Release);
    processing.shutdown().await;
}

/// Fails every request whose RequestTTLSeconds passed while it waited.
fn expire(host: &dyn Host, queue: &Queue, deployment: &Deployment, now: Instant) {
    let expired = queue.backlog().expire(now);
    for request in expired {
        let message = format!(
            "Request {} expired: it waited in the queue for longer than its RequestTTLSeconds ({} s).",
            request.inference_id,
            request.ttl.as_secs()
        );
        write_failure(host, &request, "ExpiredRequest", &message);
        if let Some(variant) = deployment.variants.first() {
            variant.record_async(AsyncServed {
                outcome: None,
                failure: Some(AsyncFailure::Expired),
                model: None,
                busy: Duration::ZERO,
                in_backlog: None,
                total: request.enqueued.elapsed(),
            });
        }
    }
}

/// One request being processed on variant `variant` of `deployment`.
struct Task {
    host: Arc<dyn Host>,
    queue: Arc<Queue>,
    deployment: Arc<Deployment>,
    variant: usize,
    ticket: Ticket,
}

impl Drop for Task {
    /// However processing ends (done, or stopped with its worker), the
    /// request leaves the backlog.
    fn drop(&mut self) {
        self.queue.backlog().done(self.ticket);
    }
}

impl Task {
    fn variant(&self) -> &ServingVariant {
        &self.deployment.variants[self.variant]
    }

    async fn process(self, claim: Claim, request: Queued, endpoint: String) {
        let host = self.host.as_ref();
        let in_backlog = request.enqueued.elapsed();
        // The input is read when processing starts, as SageMaker reads it.
        let served = match host.objects().get(&request.input.bucket, &request.input.key) {
            Err(missing) => {
                drop(claim);
                let message = format!("Failed to download the request payload from {}: {}", request.input, missing.message);
                write_failure(host, &request, "RequestDownloadFailure", &message);
                AsyncServed {
                    outcome: None,
                    failure: Some(AsyncFailure::Download),
                    model: None,
                    busy: Duration::ZERO,
                    in_backlog: Some(in_backlog),
                    total: request.enqueued.elapsed(),
                }
            }
            Ok(_input) => {
                let processed = runtime::process(self.variant(), claim, host.profile(), request.timeout, &endpoint).await;
                let failure = match processed.result {
                    Ok(answer) => match put(host, &request.output, Bytes::from(answer.body), &request.output_type) {
                        Ok(()) => None,
                        Err(error) => {
                            let message =
                                format!("Failed to upload the inference response to {}: {}", request.output, error.message);
                            write_failure(host, &request, "ResponseUploadFailure", &message);
                            Some(AsyncFailure::Upload)
                        }
                    },
                    Err(error) => {
                        write_failure(host, &request, error.code, &error.message);
                        Some(AsyncFailure::Model)
                    }
                };
                AsyncServed {
                    outcome: Some(processed.outcome),
                    failure,
                    model: Some(processed.model),
                    busy: processed.busy,
                    in_backlog: Some(in_backlog),
                    total: request.enqueued.elapsed(),
                }
            }
        };
        self.variant().record_async(served);
    }
}

fn put(host: &dyn Host, uri: &S3Uri, data: Bytes, content_type: &str) -> Result<(), S3Error> {
    let meta = ObjectMeta { content_type: Some(content_type.to_string()), ..ObjectMeta::default() };
    host.objects().put(&uri.bucket, &uri.key, Object::new(data, meta, SystemTime::now())).map(drop)
}

/// Writes the failure file of `request`. If even that cannot be written (its
/// bucket is gone), the failure shows in the metrics alone, as on AWS.
fn write_failure(host: &dyn Host, request: &Queued, code: &str, message: &str) {
    let body = serde_json::json!({ "InferenceId": request.inference_id, "ErrorCode": code, "Message": message });
    let _ = put(host, &request.failure, Bytes::from(body.to_string()), "application/json");
}
