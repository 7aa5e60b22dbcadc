//! Credentials that are renewed when AWS says they expired.
//!
//! The SDK's own cache keeps credentials until the expiry they came with —
//! forever, for credentials without one (static keys, a `credential_process`
//! that names no expiry) — and answers `ExpiredToken` are not retried: a run
//! whose credentials are revoked or expire early would stop. So perfsize
//! turns the SDK's cache off and keeps the credentials itself, in
//! [`RenewableCredentials`], which fetches anew from the provider chain (or
//! the assumed role) once a call was refused for them. Control-plane calls
//! are then retried through [`RenewOnExpiry`], a retry classifier; signed
//! InvokeEndpoint traffic asks for fresh credentials itself (the load
//! manager's request signer).
//!
//! A retry is worth it only if the renewal can bring other credentials:
//! once a fetch after a refusal brings back credentials that were refused
//! already (static keys, a file nobody updated), refused calls are no longer
//! retried — the caller gets the error — though each refusal still asks for
//! a fetch, so credentials renewed by hand are picked up by the next call.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use aws_smithy_types::retry::ErrorKind;

/// Credentials with an expiry are fetched again this long before it.
pub const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// What the cache holds.
#[derive(Debug, Default)]
struct Held {
    current: Option<Credentials>,
    /// A call was refused for `current`: fetch before the next one.
    stale: bool,
    /// Access keys AWS refused as expired.
    refused: HashSet<String>,
    /// The last fetch after a refusal brought back refused credentials:
    /// renewing cannot help for now.
    dead_end: bool,
}

/// The credentials every client of a session signs with, fetched from
/// `source` when first needed, near their expiry, and after AWS refused them.
#[derive(Debug, Clone)]
pub struct RenewableCredentials {
    source: SharedCredentialsProvider,
    held: Arc<Mutex<Held>>,
    /// One fetch at a time: calls refused together renew once.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

impl RenewableCredentials {
    pub fn new(source: SharedCredentialsProvider) -> RenewableCredentials {
        RenewableCredentials { source, held: Arc::default(), fetching: Arc::default() }
    }

    /// The credentials to sign with now: those held, unless they are near
    /// their expiry or were refused, then fresh ones from the source.
    pub async fn get(&self) -> provider::Result {
        if let Some(usable) = self.usable() {
            return Ok(usable);
        }
        let _one_at_a_time = self.fetching.lock().await;
        // Another caller may have fetched while this one waited.
        if let Some(usable) = self.usable() {
            return Ok(usable);
        }
        let fresh = self.source.provide_credentials().await?;
        let mut held = crate::error::lock(&self.held);
        held.dead_end = held.refused.contains(fresh.access_key_id());
        if held.dead_end {
            tracing::warn!("the renewed AWS credentials are the ones AWS refused as expired");
        } else if held.current.is_some() {
            tracing::info!("renewed the AWS credentials");
        }
        held.current = Some(fresh.clone());
        held.stale = false;
        Ok(fresh)
    }

    fn usable(&self) -> Option<Credentials> {
        let held = crate::error::lock(&self.held);
        let current = held.current.as_ref().filter(|_| !held.stale)?;
        let fresh = current.expiry().is_none_or(|expiry| SystemTime::now() + RENEW_BEFORE_EXPIRY < expiry);
        fresh.then(|| current.clone())
    }

    /// AWS refused a call signed with `access_key_id` as expired. Returns
    /// whether the call is worth sending again: credentials other than the
    /// refused ones are held or will be fetched.
    pub fn refused(&self, access_key_id: &str) -> bool {
        let mut held = crate::error::lock(&self.held);
        held.refused.insert(access_key_id.to_string());
        let current = held.current.as_ref().map(|c| c.access_key_id().to_string());
        if current.as_deref().is_some_and(|key| key != access_key_id) {
            // Renewed since that call was signed.
            return true;
        }
        let worth_it = !held.dead_end;
        // Fetch again before the next call all the same: credentials may be renewed by hand.
        held.stale = true;
        worth_it
    }

    /// The access key the credentials held now carry, if any were fetched.
    pub fn current_key(&self) -> Option<String> {
        crate::error::lock(&self.held).current.as_ref().map(|c| c.access_key_id().to_string())
    }

    /// For the SDK's clients.
    pub fn shared(&self) -> SharedCredentialsProvider {
        SharedCredentialsProvider::new(self.clone())
    }
}

impl ProvideCredentials for RenewableCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(self.get())
    }
}

/// Whether an AWS error code says the signing credentials expired:
/// `ExpiredToken` (STS, S3) or `ExpiredTokenException` (the JSON services).
pub fn is_expired_token(code: &str) -> bool {
    code.starts_with("ExpiredToken")
}

/// Retries, once renewed, a control-plane call AWS refused because its
/// credentials expired; forbids the retry when renewing cannot help.
///
/// The error code is read from the answer itself — the `x-amzn-errortype`
/// header, else the body (JSON `__type`, XML `<Code>`, CBOR alike carry
/// the code as text) — so one classifier serves every client, whatever its
/// protocol. The refused key is the one held when the answer came: calls in
/// flight across a renewal may cost one fetch more, never a wrong verdict.
#[derive(Debug, Clone)]
pub struct RenewOnExpiry {
    credentials: RenewableCredentials,
}

impl RenewOnExpiry {
    pub fn new(credentials: RenewableCredentials) -> RenewOnExpiry {
        RenewOnExpiry { credentials }
    }
}

impl ClassifyRetry for RenewOnExpiry {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(response) = ctx.response() else { return RetryAction::NoActionIndicated };
        let header = response.headers().get("x-amzn-errortype").unwrap_or_default();
        let body = response.body().bytes().unwrap_or_default();
        let expired = response.status().is_client_error()
            && (is_expired_token(header) || body.windows(b"ExpiredToken".len()).any(|w| w == b"ExpiredToken"));
        if !expired {
            return RetryAction::NoActionIndicated;
        }
        let Some(key) = self.credentials.current_key() else { return RetryAction::NoActionIndicated };
        if self.credentials.refused(&key) {
            tracing::info!("AWS refused the credentials as expired: renewing them and trying again");
            RetryAction::retryable_error(ErrorKind::TransientError)
        } else {
            RetryAction::RetryForbidden
        }
    }

    fn name(&self) -> &'static str {
        "renew expired credentials"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A source that hands out a new key at each fetch, or always the same.
    #[derive(Debug)]
    struct Source {
        fetches: Arc<AtomicU32>,
        rotates: bool,
    }

    impl ProvideCredentials for Source {
        fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            let key = if self.rotates { format!("AKID{n}") } else { "AKIDSTATIC".to_string() };
            provider::future::ProvideCredentials::ready(Ok(Credentials::new(key, "secret", None, None, "test")))
        }
    }

    /// The credentials, and how many fetches their source served.
    fn renewable(rotates: bool) -> (RenewableCredentials, Arc<AtomicU32>) {
        let fetches = Arc::new(AtomicU32::new(0));
        let source = Source { fetches: Arc::clone(&fetches), rotates };
        (RenewableCredentials::new(SharedCredentialsProvider::new(source)), fetches)
    }

    #[tokio::test]
    async fn credentials_are_fetched_once_and_again_only_after_a_refusal() {
        let (credentials, fetches) = renewable(true);
        assert_eq!(credentials.get().await.unwrap().access_key_id(), "AKID1");
        assert_eq!(credentials.get().await.unwrap().access_key_id(), "AKID1", "held, not fetched again");
        assert!(credentials.refused("AKID1"), "a renewal can bring other keys");
        assert!(credentials.refused("AKID1"), "a second call refused with the same key before the renewal");
        assert_eq!(credentials.get().await.unwrap().access_key_id(), "AKID2");
        assert!(credentials.refused("AKID1"), "a call signed before the renewal: the new key is worth a try");
        assert_eq!(credentials.get().await.unwrap().access_key_id(), "AKID2", "and it fetches nothing");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn keys_that_cannot_be_renewed_are_retried_once_then_not() {
        let (credentials, fetches) = renewable(false);
        credentials.get().await.unwrap();
        assert!(credentials.refused("AKIDSTATIC"), "the first refusal is worth one renewal");
        assert_eq!(credentials.get().await.unwrap().access_key_id(), "AKIDSTATIC");
        assert!(!credentials.refused("AKIDSTATIC"), "the renewal brought the refused key back");
        credentials.get().await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 3, "each refusal still fetches, in case of a renewal by hand");
    }

    #[test]
    fn expired_token_codes_are_recognised() {
        assert!(is_expired_token("ExpiredTokenException") && is_expired_token("ExpiredToken"));
        assert!(!is_expired_token("ThrottlingException") && !is_expired_token("UnrecognizedClientException"));
    }
}
