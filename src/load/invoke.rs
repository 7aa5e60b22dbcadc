//! The seam for *how one request is sent and measured*. A [`Driver`] checks
//! an endpoint takes the payloads and drives one step's traffic at it; the
//! sizing run and `perfsize load` know nothing else about the wire. Here:
//! [`InvokeEndpoint`], signed real-time invocations through goose. Other
//! kinds live beside it: [`super::HttpEndpoint`] (any HTTP model server)
//! and [`super::InvokeAsync`] (asynchronous inference through S3).

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, Method};
use tokio_util::sync::CancellationToken;

use super::signer::{Prepared, SignatureCache};
use super::workers::{self, Named, Wire};
use super::{LoadError, LoadRun, LoadSpec, PayloadMix, ProgressFn, RequestSigner, Target, preflight};
use crate::credentials::is_expired_token;

/// Sends a step's traffic to an endpoint and measures it.
#[allow(async_fn_in_trait)]
pub trait Driver {
    /// Where requests for `endpoint` go.
    fn target(&self, endpoint: &str) -> Target;
    /// Sends each payload of `spec` once; a model that refuses one is
    /// [`LoadError::PayloadRejected`], before any step is measured.
    async fn preflight(&self, spec: &LoadSpec) -> Result<(), LoadError>;
    /// Drives `spec` to its end (or until `cancel`), measuring every request.
    async fn drive(&self, spec: LoadSpec, cancel: CancellationToken, live: Option<ProgressFn>) -> Result<LoadRun, LoadError>;
    /// Finishes what the driver still owes once the last step is over (the
    /// delayed deletion of objects it wrote, say); sooner when `hurry` is
    /// cancelled. The run calls it before it tears down.
    async fn settle(&self, hurry: &CancellationToken) {
        let _ = hurry;
    }
}

/// Real-time InvokeEndpoint traffic, SigV4-signed with credentials that are
/// renewed in the background for as long as this lives.
pub struct InvokeEndpoint {
    runtime: aws_sdk_sagemakerruntime::Client,
    runtime_url: String,
    signer: Arc<RequestSigner>,
    refresher: tokio::task::JoinHandle<()>,
}

impl InvokeEndpoint {
    pub fn new(runtime: aws_sdk_sagemakerruntime::Client, runtime_url: String, signer: Arc<RequestSigner>) -> InvokeEndpoint {
        let refresher = signer.keep_fresh(CancellationToken::new());
        InvokeEndpoint { runtime, runtime_url, signer, refresher }
    }
}

impl Drop for InvokeEndpoint {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

impl Driver for InvokeEndpoint {
    fn target(&self, endpoint: &str) -> Target {
        Target { endpoint: endpoint.to_string(), runtime_url: self.runtime_url.clone() }
    }

    async fn preflight(&self, spec: &LoadSpec) -> Result<(), LoadError> {
        preflight::check_payloads(&self.runtime, &spec.target.endpoint, &spec.payloads, &spec.content_type, &spec.accept).await
    }

    async fn drive(&self, spec: LoadSpec, cancel: CancellationToken, live: Option<ProgressFn>) -> Result<LoadRun, LoadError> {
        let wire = SignedInvocations::new(&spec, Arc::clone(&self.signer))?;
        let endpoint = spec.target.endpoint.clone();
        let run = workers::drive(Named { scenario: "InvokeEndpoint", wire }, spec, cancel, live).await?;
        unless_credentials_expired(run, endpoint)
    }
}

/// `run` of a signed driver, unless some of its requests were still refused
/// for expired credentials once renewing them could not help: those are not
/// the endpoint's errors, and the run cannot go on —
/// [`LoadError::CredentialsExpired`].
pub(super) fn unless_credentials_expired(run: LoadRun, endpoint: String) -> Result<LoadRun, LoadError> {
    let refused: u64 = run.totals.errors_by_code.iter().filter(|(code, _)| is_expired_token(code)).map(|(_, n)| n).sum();
    if refused > 0 {
        return Err(LoadError::CredentialsExpired { endpoint, refused });
    }
    Ok(run)
}

/// Everything about a step's InvokeEndpoint requests that does not change
/// from one to the next, built once.
struct SignedInvocations {
    /// Parsed once: reqwest would parse (and IDNA-check) a string per request.
    url: reqwest::Url,
    headers: HeaderMap,
    payloads: Arc<PayloadMix>,
    signer: Arc<RequestSigner>,
    prepared: Prepared,
}

impl SignedInvocations {
    /// A runtime URL reqwest can send to with the `Content-Type` and `Accept`
    /// HTTP header values valid: the step's wire; a usage error otherwise.
    fn new(spec: &LoadSpec, signer: Arc<RequestSigner>) -> Result<SignedInvocations, LoadError> {
        let url = spec.target.invocation_url();
        let url = reqwest::Url::parse(&url).map_err(|e| LoadError::BadUrl(format!("{url}: {e}")))?;
        let headers = spec.content_headers()?;
        let pairs = [("content-type", spec.content_type.as_str()), ("accept", spec.accept.as_str())];
        let prepared = signer.prepare(&url, &pairs);
        Ok(SignedInvocations { url, headers, payloads: Arc::clone(&spec.payloads), signer, prepared })
    }
}

impl Wire for SignedInvocations {
    type Local = SignatureCache;

    fn local(&self) -> SignatureCache {
        SignatureCache::default()
    }

    fn request(&self, cache: &mut SignatureCache, slot: u64) -> Result<reqwest::Request, LoadError> {
        let (index, payload) = self.payloads.pick_indexed(slot);
        let signed = cache.headers(&self.signer, &self.prepared, index, &payload.sha256, SystemTime::now())?;
        let mut request = reqwest::Request::new(Method::POST, self.url.clone());
        let headers = request.headers_mut();
        *headers = self.headers.clone();
        for (name, value) in signed {
            headers.insert(name, value.clone());
        }
        *request.body_mut() = Some(payload.body.clone().into());
        Ok(request)
    }

    fn error_code(&self, headers: &HeaderMap) -> Option<String> {
        // SageMaker names its errors in x-amzn-ErrorType ("Code:namespace…").
        let value = headers.get("x-amzn-errortype")?.to_str().ok()?;
        Some(value.split(':').next().unwrap_or(value).to_string())
    }

    fn signer(&self) -> Option<&RequestSigner> {
        Some(&self.signer)
    }
}
