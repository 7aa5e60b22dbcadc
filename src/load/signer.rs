//! SigV4 for traffic under test: every InvokeEndpoint request is signed (about
//! 8 µs each) with credentials from the standard provider chain, kept fresh by
//! a background task so an assumed role keeps working through a long run.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use tokio_util::sync::CancellationToken;

/// Credentials are renewed this long before they expire.
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Credentials without an expiry are re-read this often, in case they rotate.
const RECHECK_EVERY: Duration = Duration::from_secs(15 * 60);
/// After a failed renewal, try again this soon.
const RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("no AWS credentials: {0}")]
    NoCredentials(String),
    #[error("cannot sign the request: {0}")]
    Signing(String),
}

impl crate::error::HasKind for SignerError {
    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            SignerError::NoCredentials(_) => crate::error::ErrorKind::Usage,
            SignerError::Signing(_) => crate::error::ErrorKind::Infrastructure,
        }
    }
}

/// Signs runtime requests for one region.
pub struct RequestSigner {
    region: String,
    service: &'static str,
    identity: RwLock<(Identity, Option<SystemTime>)>,
    provider: SharedCredentialsProvider,
}

impl std::fmt::Debug for RequestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSigner").field("region", &self.region).finish_non_exhaustive()
    }
}

impl RequestSigner {
    /// Resolves credentials once (failing early when there are none).
    pub async fn new(provider: SharedCredentialsProvider, region: impl Into<String>) -> Result<Arc<RequestSigner>, SignerError> {
        let credentials = provider.provide_credentials().await.map_err(|e| SignerError::NoCredentials(crate::error_chain(&e)))?;
        let expiry = credentials.expiry();
        Ok(Arc::new(RequestSigner {
            region: region.into(),
            service: "sagemaker",
            identity: RwLock::new((Identity::from(credentials), expiry)),
            provider,
        }))
    }

    /// A signer with fixed credentials (tests, benchmarks).
    pub fn fixed(credentials: Credentials, region: &str) -> Arc<RequestSigner> {
        let expiry = credentials.expiry();
        Arc::new(RequestSigner {
            region: region.to_string(),
            service: "sagemaker",
            identity: RwLock::new((Identity::from(credentials.clone()), expiry)),
            provider: SharedCredentialsProvider::new(credentials),
        })
    }

    /// Keeps the credentials fresh until `stop` is cancelled.
    pub fn keep_fresh(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let signer = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let wait = signer.time_until_renewal();
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                match signer.provider.provide_credentials().await {
                    Ok(credentials) => {
                        let expiry = credentials.expiry();
                        *signer.identity.write().expect("signer lock") = (Identity::from(credentials), expiry);
                        tracing::debug!("renewed AWS credentials (expire {expiry:?})");
                    }
                    Err(e) => {
                        tracing::warn!("cannot renew AWS credentials, keeping the current ones: {}", crate::error_chain(&e));
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(RETRY_AFTER) => {}
                        }
                    }
                }
            }
        })
    }

    fn time_until_renewal(&self) -> Duration {
        let expiry = self.identity.read().expect("signer lock").1;
        match expiry {
            Some(expiry) => expiry
                .checked_sub(RENEW_BEFORE_EXPIRY)
                .and_then(|at| at.duration_since(SystemTime::now()).ok())
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_secs(1)),
            None => RECHECK_EVERY,
        }
    }

    /// The headers to add to a POST of a body with hash `body_sha256` to `url`
    /// carrying `headers` (which are signed too).
    pub fn sign(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body_sha256: &str,
    ) -> Result<Vec<(&'static str, String)>, SignerError> {
        let identity = self.identity.read().expect("signer lock").0.clone();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SignerError::Signing(e.to_string()))?
            .into();
        let request =
            SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Precomputed(body_sha256.to_string()))
                .map_err(|e| SignerError::Signing(e.to_string()))?;
        let (instructions, _) = sign(request, &params).map_err(|e| SignerError::Signing(e.to_string()))?.into_parts();
        let (headers, _) = instructions.into_parts();
        Ok(headers.into_iter().map(|h| (h.name(), h.value().to_string())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_get_a_sigv4_authorization_for_sagemaker() {
        let signer =
            RequestSigner::fixed(Credentials::new("AKIDEXAMPLE", "secret", Some("token".into()), None, "test"), "eu-west-1");
        let headers = signer
            .sign(
                "http://127.0.0.1:9/endpoints/e/invocations",
                &[("content-type", "application/json")],
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            )
            .unwrap();
        let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()).unwrap_or_default();
        let auth = get("authorization");
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
        assert!(auth.contains("/eu-west-1/sagemaker/aws4_request"), "{auth}");
        assert!(auth.contains("content-type;host;x-amz-date"), "{auth}");
        assert_eq!(get("x-amz-security-token"), "token");
        assert!(!get("x-amz-date").is_empty());
    }

    #[test]
    fn renewal_is_due_before_expiry() {
        let soon = SystemTime::now() + Duration::from_secs(600);
        let signer = RequestSigner::fixed(Credentials::new("A", "S", None, Some(soon), "test"), "us-east-1");
        let wait = signer.time_until_renewal();
        assert!(wait <= Duration::from_secs(300) && wait >= Duration::from_secs(290), "{wait:?}");
        let signer = RequestSigner::fixed(Credentials::new("A", "S", None, None, "test"), "us-east-1");
        assert_eq!(signer.time_until_renewal(), RECHECK_EVERY);
    }
}
