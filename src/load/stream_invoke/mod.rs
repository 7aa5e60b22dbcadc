//! Response streaming as a [`Driver`]: each request is sent SigV4-signed to
//! `/endpoints/{name}/invocations-response-stream` (InvokeEndpointWithResponseStream)
//! and its answer read event by event as it arrives — the binary event-stream
//! framing decoded by aws-smithy-eventstream, each PayloadPart's text turned
//! into tokens ([`events`]) — so that the time of every token is known
//! ([`figures`]). Every request is a task of its own: streams last seconds,
//! and hundreds are held at once. Open model or closed loop alike, every
//! latency counts from the request's intended start.
//!
//! Failures are data: an error before the stream (ModelError, throttling,
//! 503…) by its status and `x-amzn-ErrorType`; a ModelStreamError or
//! InternalStreamFailure mid-stream as an answered failure named by its
//! exception type (and ModelStreamError's ErrorCode). A request refused
//! before its stream because its credentials expired is sent again once they
//! are renewed, as InvokeEndpoint's are
//! ([`RequestSigner::resend_while_expired`]); refusals renewing could not
//! answer stop the run ([`LoadError::CredentialsExpired`]), not counted as
//! the endpoint's errors.

pub mod events;
pub mod figures;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::BytesMut;
use chrono::Utc;
use http::Method;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::pacer::Job;
use super::recorder::{Observation, Outcome};
use super::signer::Prepared;
use super::{Clock, Driver, LoadError, LoadRun, LoadSpec, Paced, ProgressFn, RequestSigner, Target, tick_seconds};
use crate::vocab::StreamLimits;
use events::PartReader;
use figures::{StreamRecording, StreamSample, Timeline};

pub use events::DEFAULT_CHARACTERS_PER_TOKEN;

/// Payloads the preflight streams at once.
const PREFLIGHT_AT_ONCE: usize = 8;

/// How streams are read and judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamOptions {
    /// The limits a request must meet to be good.
    pub limits: StreamLimits,
    /// Characters a token, for counts the container does not report.
    pub characters_per_token: f64,
}

/// InvokeEndpointWithResponseStream traffic, SigV4-signed with credentials
/// renewed in the background for as long as this lives.
pub struct InvokeStream {
    runtime_url: String,
    signer: Arc<RequestSigner>,
    refresher: tokio::task::JoinHandle<()>,
    options: StreamOptions,
}

impl InvokeStream {
    pub fn new(runtime_url: String, signer: Arc<RequestSigner>, options: StreamOptions) -> InvokeStream {
        let refresher = signer.keep_fresh(CancellationToken::new());
        InvokeStream { runtime_url, signer, refresher, options }
    }
}

impl Drop for InvokeStream {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

/// Everything about a step's requests that does not change from one to the next.
struct Wire {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: http::HeaderMap,
    prepared: Prepared,
    signer: Arc<RequestSigner>,
    /// Characters of each payload's prompt, for estimating its tokens.
    prompt_characters: Vec<usize>,
}

impl Wire {
    fn new(spec: &LoadSpec, signer: Arc<RequestSigner>) -> Result<Wire, LoadError> {
        let url = stream_url(&spec.target);
        let url = reqwest::Url::parse(&url).map_err(|e| LoadError::BadUrl(format!("{url}: {e}")))?;
        let headers = spec.content_headers()?;
        let prepared = signer.prepare(&url, &[("content-type", spec.content_type.as_str()), ("accept", spec.accept.as_str())]);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(spec.max_in_flight())
            .tcp_nodelay(true)
            .build()
            .map_err(|e| LoadError::Runtime(format!("cannot build the HTTP client: {e}")))?;
        let prompt_characters = spec.payloads.payloads().iter().map(|p| events::prompt_characters(&p.body)).collect();
        Ok(Wire { client, url, headers, prepared, signer, prompt_characters })
    }

    /// The signed request for payload `index` of `spec`.
    fn request(&self, spec: &LoadSpec, index: usize) -> Result<reqwest::Request, LoadError> {
        let payload = &spec.payloads.payloads()[index];
        let signed = self.signer.sign(&self.prepared, &payload.sha256, SystemTime::now())?;
        let mut request = reqwest::Request::new(Method::POST, self.url.clone());
        let headers = request.headers_mut();
        *headers = self.headers.clone();
        headers.extend(signed.into_iter().map(|(name, value)| (Some(name), value)));
        *request.body_mut() = Some(payload.body.clone().into());
        Ok(request)
    }
}

/// The runtime URL of InvokeEndpointWithResponseStream.
fn stream_url(target: &Target) -> String {
    format!("{}/endpoints/{}/invocations-response-stream", target.runtime_url.trim_end_matches('/'), target.endpoint)
}

/// How one request ended, and the stream it read if it ran to its end.
struct Read {
    outcome: Outcome,
    timeline: Timeline,
    ended: Instant,
    /// Why the model refused it, for the preflight.
    message: String,
}

impl Wire {
    /// Sends payload `index` and reads its stream to the end, the request
    /// timeout or `cancel`.
    async fn one(&self, spec: &LoadSpec, index: usize, options: &StreamOptions, cancel: &CancellationToken) -> Read {
        let mut timeline = Timeline::default();
        let read = async {
            let request = self.request(spec, index).map_err(|_| (Outcome::Connection, String::new()))?;
            let mut response = self.client.execute(request).await.map_err(|_| (Outcome::Connection, String::new()))?;
            if !response.status().is_success() {
                let code = error_type(response.headers());
                let status = response.status().as_u16();
                let message = response.text().await.unwrap_or_default();
                return Err((Outcome::Http { status, code }, message));
            }
            read_stream(&mut response, &mut timeline, options.characters_per_token).await
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(spec.request_timeout, read) => outcome.unwrap_or(Err((Outcome::Timeout, String::new()))),
            _ = cancel.cancelled() => Err((Outcome::Timeout, String::new())),
        };
        let (outcome, message) = outcome.map_or_else(|e| e, |()| (Outcome::Success, String::new()));
        Read { outcome, timeline, ended: Instant::now(), message }
    }

    /// [`Wire::one`], sent again newly signed while it is refused for
    /// credentials that expired and renewing them brings others — the read
    /// of the last send.
    async fn one_renewing(&self, spec: &LoadSpec, index: usize, options: &StreamOptions, cancel: &CancellationToken) -> Read {
        let generation = self.signer.generation();
        let first = self.one(spec, index, options, cancel).await;
        let resend = || async { Some(self.one(spec, index, options, cancel).await) };
        self.signer.resend_while_expired(first, generation, |read| &read.outcome, resend).await
    }
}

/// SageMaker's error name, from `x-amzn-ErrorType` ("Code:namespace…").
fn error_type(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get("x-amzn-errortype")?.to_str().ok()?;
    Some(value.split(':').next().unwrap_or(value).to_string())
}

/// Reads the event stream of `response` into `timeline`; the exception
/// that ended it early, if one did.
async fn read_stream(
    response: &mut reqwest::Response,
    timeline: &mut Timeline,
    characters_per_token: f64,
) -> Result<(), (Outcome, String)> {
    let mut decoder = MessageFrameDecoder::new();
    let mut buffer = BytesMut::new();
    let mut parts = PartReader::default();
    let broken = || (Outcome::Connection, String::new());
    while let Some(chunk) = response.chunk().await.map_err(|_| broken())? {
        let arrived = Instant::now();
        buffer.extend_from_slice(&chunk);
        loop {
            let message = match decoder.decode_frame(&mut buffer) {
                Ok(DecodedFrame::Complete(message)) => message,
                Ok(DecodedFrame::Incomplete) => break,
                Err(e) => return Err((Outcome::Http { status: 200, code: Some("MalformedEventStream".into()) }, e.to_string())),
            };
            match header(&message, ":message-type") {
                Some("event") if header(&message, ":event-type") == Some("PayloadPart") => {
                    let part = parts.part(message.payload());
                    timeline.reported.merge_from(part.reported);
                    timeline.arrived(arrived, events::estimate_tokens(part.characters, characters_per_token));
                }
                Some("exception") | Some("error") => return Err(stream_failure(&message)),
                _ => {}
            }
        }
    }
    let rest = parts.finish();
    timeline.reported.merge_from(rest.reported);
    timeline.arrived(Instant::now(), events::estimate_tokens(rest.characters, characters_per_token));
    Ok(())
}

/// A string header of `message`.
fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message.headers().iter().find(|h| h.name().as_str() == name).and_then(|h| match h.value() {
        HeaderValue::String(s) => Some(s.as_str()),
        _ => None,
    })
}

/// A mid-stream exception as an answered failure: `ModelStreamError/StreamBroken`,
/// `InternalStreamFailure`.
fn stream_failure(message: &Message) -> (Outcome, String) {
    let kind = header(message, ":exception-type").or_else(|| header(message, ":error-code")).unwrap_or("StreamError");
    let body: serde_json::Value = serde_json::from_slice(message.payload()).unwrap_or_default();
    let code = match body["ErrorCode"].as_str() {
        Some(code) => format!("{kind}/{code}"),
        None => kind.to_string(),
    };
    (Outcome::Http { status: 200, code: Some(code) }, body["Message"].as_str().unwrap_or_default().to_string())
}

/// What every request task of one step shares.
struct StreamStep {
    spec: LoadSpec,
    wire: Wire,
    options: StreamOptions,
    clock: Clock,
    streams: Mutex<StreamRecording>,
    /// One permit per request that may be in flight.
    slots: Arc<Semaphore>,
    running: AtomicUsize,
    quiet: Notify,
}

impl Paced for StreamStep {
    fn clock(&self) -> &Clock {
        &self.clock
    }
}

impl StreamStep {
    /// Takes each request as it falls due (closed loop: as a slot frees) and
    /// sends it on a task of its own.
    async fn send_all(self: &Arc<Self>) {
        loop {
            // A slot first: a closed loop's next request starts when one ends,
            // and an open schedule's request due with none free starts late.
            let slot = tokio::select! {
                slot = Arc::clone(&self.slots).acquire_owned() => slot,
                _ = self.clock.cancel.cancelled() => return,
            };
            let Ok(slot) = slot else { return };
            let Some(job) = (tokio::select! {
                job = self.clock.pacer.next() => job,
                _ = self.clock.cancel.cancelled() => None,
            }) else {
                return;
            };
            self.running.fetch_add(1, Ordering::AcqRel);
            self.clock.recorder.sent();
            let step = Arc::clone(self);
            tokio::spawn(async move {
                step.serve(job).await;
                drop(slot);
                if step.running.fetch_sub(1, Ordering::AcqRel) == 1 {
                    step.quiet.notify_waiters();
                }
            });
        }
    }

    async fn serve(&self, job: Job) {
        let sent = Instant::now();
        let (index, _) = self.spec.payloads.pick_indexed(job.slot);
        let read = self.wire.one_renewing(&self.spec, index, &self.options, &self.clock.cancel).await;
        self.clock.pacer.done();
        if self.clock.cancel.is_cancelled() {
            return;
        }
        // Sent a little early, a request counts from its actual send.
        let start = job.intended.min(sent);
        if job.due >= self.spec.warmup.as_secs_f64() {
            let mut streams = crate::error::lock(&self.streams);
            match read.outcome {
                Outcome::Success => {
                    let prompt = self.wire.prompt_characters[index];
                    let sample = StreamSample::of(&read.timeline, start, read.ended, prompt, self.options.characters_per_token);
                    streams.completed(&sample);
                }
                _ => streams.failed(),
            }
        }
        self.clock.recorder.record(Observation {
            due: job.due,
            latency: read.ended - start,
            slip: sent.saturating_duration_since(job.intended),
            late_start: job.late_start,
            outcome: read.outcome,
        });
    }
}

impl Driver for InvokeStream {
    fn target(&self, endpoint: &str) -> Target {
        Target { endpoint: endpoint.to_string(), runtime_url: self.runtime_url.clone() }
    }

    /// Streams each payload once, a few at a time (a generation takes
    /// seconds): one the model refuses (a 4xx before the stream) is named
    /// with the model's message.
    async fn preflight(&self, spec: &LoadSpec) -> Result<(), LoadError> {
        use futures::StreamExt;
        let wire = Wire::new(spec, Arc::clone(&self.signer))?;
        let cancel = CancellationToken::new();
        let payloads = spec.payloads.payloads();
        let reads: Vec<Read> = futures::stream::iter(0..payloads.len())
            .map(|index| wire.one_renewing(spec, index, &self.options, &cancel))
            .buffered(PREFLIGHT_AT_ONCE)
            .collect()
            .await;
        for (payload, read) in payloads.iter().zip(reads) {
            match read.outcome {
                Outcome::Http { status, code } if (400..500).contains(&status) => {
                    return Err(LoadError::PayloadRejected {
                        payload: payload.name.clone(),
                        endpoint: spec.target.endpoint.clone(),
                        code: code.unwrap_or_else(|| format!("HTTP {status}")),
                        message: read.message,
                    });
                }
                Outcome::Connection | Outcome::Timeout => {
                    return Err(LoadError::Unreachable {
                        endpoint: spec.target.endpoint.clone(),
                        reason: read.outcome.code_key().unwrap_or_default(),
                    });
                }
                // A stream that broke midway, or a 5xx, is the endpoint's
                // failure to measure, not the payload's.
                _ => {}
            }
        }
        Ok(())
    }

    async fn drive(&self, spec: LoadSpec, cancel: CancellationToken, live: Option<ProgressFn>) -> Result<LoadRun, LoadError> {
        let started_at = Utc::now();
        let step_cancel = cancel.child_token();
        let _stop_step = step_cancel.clone().drop_guard();
        let step = Arc::new(StreamStep {
            wire: Wire::new(&spec, Arc::clone(&self.signer))?,
            options: self.options,
            clock: Clock::for_spec(&spec, step_cancel),
            streams: Mutex::new(StreamRecording::new(self.options.limits, self.options.characters_per_token)),
            slots: Arc::new(Semaphore::new(spec.max_in_flight().max(1))),
            running: AtomicUsize::new(0),
            quiet: Notify::new(),
            spec,
        });
        let ticker = tokio::spawn(tick_seconds(Arc::clone(&step), live));
        step.clock.pacer.start();
        step.send_all().await;
        // Every request is sent: wait for the streams still running (each
        // ends by the request timeout on its own).
        while step.running.load(Ordering::Acquire) > 0 && !step.clock.cancel.is_cancelled() {
            tokio::select! {
                _ = step.quiet.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = step.clock.cancel.cancelled() => {}
            }
        }
        step.clock.cancel.cancel();
        let _ = ticker.await;
        let mut run =
            LoadRun::collect(started_at, &step.spec, &step.clock.pacer, &step.clock.recorder, cancel.is_cancelled(), None);
        run.streaming = Some(crate::error::lock(&step.streams).clone());
        super::invoke::unless_credentials_expired(run, step.spec.target.endpoint.clone())
    }
}
