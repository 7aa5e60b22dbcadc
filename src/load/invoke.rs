//! The seam for *how one request is sent and measured*. A [`Driver`] checks
//! an endpoint takes the payloads and drives one step's traffic at it; the
//! sizing run and `perfsize load` know nothing else about the wire. Today's
//! one kind is [`InvokeEndpoint`]: signed real-time invocations through goose.
//! A new way of invoking (asynchronous through S3, response streaming) is a
//! new `Driver` beside it.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{LoadError, LoadRun, LoadSpec, ProgressFn, RequestSigner, Target, preflight};

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
        super::drive(spec, Arc::clone(&self.signer), cancel, live).await
    }
}
