//! SigV4 for traffic under test: every InvokeEndpoint request carries a
//! signature made with credentials from the standard provider chain, kept
//! fresh by a background task so an assumed role keeps working through a
//! long run, and renewed at once when the runtime refuses them as expired
//! ([`RequestSigner::renew_after_refusal`]) — a refused request is then sent
//! again, newly signed ([`RequestSigner::resend_while_expired`], which every
//! signed driver shares).
//!
//! Signing is cheap because almost nothing in it changes. A step's requests
//! share their method, URL and headers, so the canonical request is
//! prepared once ([`Prepared`]); the signing key depends only on the day,
//! region, service and secret, so it is derived once a day (or when the
//! credentials are renewed); and a signature covers the second in
//! `x-amz-date`, so each worker signs each payload once a second and reuses
//! the headers for every other request of that second ([`SignatureCache`]).
//! A unit test checks the result against aws-sigv4 byte for byte.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use chrono::{DateTime, Utc};
use http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::recorder::Outcome;
use crate::credentials::{RENEW_BEFORE_EXPIRY, RenewableCredentials, is_expired_token};
/// Credentials without an expiry are re-read this often, in case they rotate.
const RECHECK_EVERY: Duration = Duration::from_secs(15 * 60);
/// After a failed renewal, try again this soon.
const RETRY_AFTER: Duration = Duration::from_secs(30);
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How often a request refused for expired credentials is sent again, each
/// time after a renewal: credentials another request renewed may have
/// expired too by the time this one is signed with them.
const MAX_RESENDS: u32 = 3;

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

/// The signing key of one day and scope, and the credentials it was derived from.
struct SigningKey {
    date: String,
    generation: u64,
    key: Vec<u8>,
}

/// Signs runtime requests for one region.
pub struct RequestSigner {
    region: String,
    service: &'static str,
    credentials: RwLock<Credentials>,
    /// Bumped at each renewal, so that cached keys and signatures of older
    /// credentials are not used again.
    generation: AtomicU64,
    key: Mutex<Option<SigningKey>>,
    source: RenewableCredentials,
    /// One renewal at a time: requests refused together renew once.
    renewing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RequestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSigner").field("region", &self.region).finish_non_exhaustive()
    }
}

/// A request shape every request of a step shares: POST to one URL with
/// the same signed headers. Only the date and the payload hash vary.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// `POST\n<path>\n\n<header lines before x-amz-date>`.
    head: String,
    /// Signed header names, `;`-joined (x-amz-date and any token included).
    signed: String,
}

/// The headers that sign one request.
pub type SignedHeaders = Vec<(HeaderName, HeaderValue)>;

impl RequestSigner {
    /// Resolves credentials once (failing early when there are none).
    pub async fn new(source: RenewableCredentials, region: impl Into<String>) -> Result<Arc<RequestSigner>, SignerError> {
        let credentials = source.get().await.map_err(|e| SignerError::NoCredentials(crate::error_chain(&e)))?;
        Ok(Arc::new(RequestSigner::with(credentials, source, region.into())))
    }

    /// A signer with fixed credentials (tests, benchmarks).
    pub fn fixed(credentials: Credentials, region: &str) -> Arc<RequestSigner> {
        let source = RenewableCredentials::new(SharedCredentialsProvider::new(credentials.clone()));
        Arc::new(RequestSigner::with(credentials, source, region.to_string()))
    }

    fn with(credentials: Credentials, source: RenewableCredentials, region: String) -> RequestSigner {
        RequestSigner {
            region,
            service: "sagemaker",
            credentials: RwLock::new(credentials),
            generation: AtomicU64::new(0),
            key: Mutex::new(None),
            source,
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    /// Signs with `credentials` from now on.
    fn install(&self, credentials: Credentials) {
        *self.credentials.write().unwrap_or_else(std::sync::PoisonError::into_inner) = credentials;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// A request signed at `generation` (see [`RequestSigner::generation`])
    /// was refused as expired: renews the credentials, unless that was done
    /// since. Returns whether requests are now signed with credentials other
    /// than the refused ones — whether sending it again is worth it.
    pub async fn renew_after_refusal(&self, generation: u64) -> bool {
        let _one_at_a_time = self.renewing.lock().await;
        if self.generation() != generation {
            return true;
        }
        let refused = self.current().access_key_id().to_string();
        if !self.source.refused(&refused) {
            return false;
        }
        match self.source.get().await {
            Ok(fresh) if fresh.access_key_id() != refused => {
                self.install(fresh);
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!("cannot renew the AWS credentials AWS refused: {}", crate::error_chain(&e));
                false
            }
        }
    }

    /// A request signed at `generation` was answered with error `code`:
    /// whether that says its credentials expired and others sign requests
    /// now — the request is then worth sending again, newly signed.
    async fn renewed_after(&self, code: &str, generation: u64) -> bool {
        is_expired_token(code) && self.renew_after_refusal(generation).await
    }

    /// `answer` came back for a request signed at `generation`, its
    /// [`Outcome`] read by `outcome`. While that is a refusal for expired
    /// credentials and renewing them brought others, the request is sent
    /// again by `resend` (which signs it anew; `None` if it cannot), up to
    /// [`MAX_RESENDS`] times: the last answer is returned, and only it counts.
    /// Every signed driver, whole answers or streams, resends through this.
    pub async fn resend_while_expired<T, F>(
        &self,
        answer: T,
        generation: u64,
        outcome: impl Fn(&T) -> &Outcome,
        mut resend: impl FnMut() -> F,
    ) -> T
    where
        F: Future<Output = Option<T>>,
    {
        let (mut answer, mut generation) = (answer, generation);
        for _ in 0..MAX_RESENDS {
            let Outcome::Http { code: Some(code), .. } = outcome(&answer) else { break };
            if !self.renewed_after(code, generation).await {
                break;
            }
            generation = self.generation();
            let Some(again) = resend().await else { break };
            answer = again;
        }
        answer
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
                match signer.source.get().await {
                    Ok(credentials) => {
                        let expiry = credentials.expiry();
                        signer.install(credentials);
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

    fn current(&self) -> Credentials {
        self.credentials.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn time_until_renewal(&self) -> Duration {
        match self.current().expiry() {
            Some(expiry) => expiry
                .checked_sub(RENEW_BEFORE_EXPIRY)
                .and_then(|at| at.duration_since(SystemTime::now()).ok())
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_secs(1)),
            None => RECHECK_EVERY,
        }
    }

    /// The shape of POSTs to `url` carrying `headers` (names in lowercase),
    /// which are signed too.
    pub fn prepare(&self, url: &reqwest::Url, headers: &[(&str, &str)]) -> Prepared {
        // The canonical headers are written in name order with x-amz-date
        // appended after them: every signed header of the request's own sorts before it.
        debug_assert!(headers.iter().all(|(n, _)| n.to_ascii_lowercase().as_str() < "x-amz-date"));
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let mut lines: Vec<(String, String)> =
            headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string())).collect();
        lines.push(("host".into(), host));
        lines.sort();
        let token = self.current().session_token().is_some();
        let mut names: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).chain(["x-amz-date"]).collect();
        if token {
            names.push("x-amz-security-token");
        }
        names.sort_unstable();
        // The path is already percent-encoded once; SigV4 encodes it again.
        let path = if url.path().is_empty() { "/".to_string() } else { url.path().replace('%', "%25") };
        let mut head = format!("POST\n{path}\n{}\n", url.query().unwrap_or_default());
        for (name, value) in &lines {
            head.push_str(&format!("{name}:{value}\n"));
        }
        Prepared { head, signed: names.join(";") }
    }

    /// The headers that sign a request of shape `request` carrying a body
    /// whose SHA-256 is `body_sha256`, at `now`.
    pub fn sign(&self, request: &Prepared, body_sha256: &str, now: SystemTime) -> Result<SignedHeaders, SignerError> {
        let credentials = self.current();
        let generation = self.generation.load(Ordering::Acquire);
        let time: DateTime<Utc> = now.into();
        let (date, amz_date) = (time.format("%Y%m%d").to_string(), time.format("%Y%m%dT%H%M%SZ").to_string());
        let token = credentials.session_token();
        let mut canonical = request.head.clone();
        canonical.push_str(&format!("x-amz-date:{amz_date}\n"));
        if let Some(token) = token {
            canonical.push_str(&format!("x-amz-security-token:{token}\n"));
        }
        canonical.push_str(&format!("\n{}\n{body_sha256}", request.signed));
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let string_to_sign = format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical.as_bytes())));
        let signature =
            self.with_key(&credentials, generation, &date, now, |key| calculate_signature(key, string_to_sign.as_bytes()));
        let authorization = format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
            credentials.access_key_id(),
            request.signed
        );
        let value = |s: &str| HeaderValue::from_str(s).map_err(|e| SignerError::Signing(e.to_string()));
        let mut headers = vec![
            (HeaderName::from_static("x-amz-date"), value(&amz_date)?),
            (http::header::AUTHORIZATION, value(&authorization)?),
        ];
        if let Some(token) = token {
            headers.push((HeaderName::from_static("x-amz-security-token"), value(token)?));
        }
        Ok(headers)
    }

    /// Runs `f` with the signing key of `date` for `credentials`, deriving
    /// it only when the day or the credentials changed.
    fn with_key<T>(
        &self,
        credentials: &Credentials,
        generation: u64,
        date: &str,
        now: SystemTime,
        f: impl FnOnce(&[u8]) -> T,
    ) -> T {
        let mut cached = crate::error::lock(&self.key);
        if !cached.as_ref().is_some_and(|k| k.date == date && k.generation == generation) {
            let key = generate_signing_key(credentials.secret_access_key(), now, &self.region, self.service);
            *cached = Some(SigningKey { date: date.to_string(), generation, key: key.as_ref().to_vec() });
        }
        f(&cached.as_ref().expect("just derived").key)
    }

    /// Which credentials sign now: bumped at each renewal.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// One worker's signatures of the current second, one per payload.
#[derive(Default)]
pub struct SignatureCache {
    /// (Unix second, credentials generation) the entries were signed for.
    at: (u64, u64),
    signed: Vec<Option<SignedHeaders>>,
}

impl SignatureCache {
    /// The signing headers of payload `index` (whose hash is `body_sha256`)
    /// at `now`: signed once a second, reused until then.
    pub fn headers(
        &mut self,
        signer: &RequestSigner,
        request: &Prepared,
        index: usize,
        body_sha256: &str,
        now: SystemTime,
    ) -> Result<&SignedHeaders, SignerError> {
        let at = (now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()), signer.generation());
        if at != self.at {
            self.at = at;
            self.signed.iter_mut().for_each(|s| *s = None);
        }
        if self.signed.len() <= index {
            self.signed.resize(index + 1, None);
        }
        let slot = &mut self.signed[index];
        if slot.is_none() {
            *slot = Some(signer.sign(request, body_sha256, now)?);
        }
        Ok(slot.as_ref().expect("just signed"))
    }
}

#[cfg(test)]
mod tests {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;

    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// What aws-sigv4 itself adds to the same request.
    fn reference(
        credentials: &Credentials,
        region: &str,
        url: &str,
        headers: &[(&str, &str)],
        now: SystemTime,
    ) -> Vec<(String, String)> {
        let identity = Identity::from(credentials.clone());
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("sagemaker")
            .time(now)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let request =
            SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Precomputed(EMPTY_SHA256.into())).unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let mut out: Vec<(String, String)> =
            instructions.into_parts().0.into_iter().map(|h| (h.name().to_string(), h.value().to_string())).collect();
        out.sort();
        out
    }

    fn ours(headers: &SignedHeaders) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            headers.iter().map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap().to_string())).collect();
        out.sort();
        out
    }

    #[test]
    fn signatures_match_aws_sigv4_byte_for_byte() {
        let url = "http://127.0.0.1:9/endpoints/my-endpoint/invocations";
        let headers = [("content-type", "application/json"), ("accept", "application/json")];
        let now = UNIX_EPOCH + Duration::from_secs(1_790_000_123);
        for token in [None, Some("token".to_string())] {
            let credentials = Credentials::new("AKIDEXAMPLE", "secret", token, None, "test");
            let signer = RequestSigner::fixed(credentials.clone(), "eu-west-1");
            let prepared = signer.prepare(&reqwest::Url::parse(url).unwrap(), &headers);
            let signed = signer.sign(&prepared, EMPTY_SHA256, now).unwrap();
            assert_eq!(ours(&signed), reference(&credentials, "eu-west-1", url, &headers, now));
        }
    }

    #[test]
    fn a_worker_signs_each_payload_once_a_second() {
        let signer = RequestSigner::fixed(Credentials::new("A", "S", None, None, "test"), "us-east-1");
        let prepared = signer.prepare(&reqwest::Url::parse("http://h/endpoints/e/invocations").unwrap(), &[]);
        let mut cache = SignatureCache::default();
        let t = UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        let first = cache.headers(&signer, &prepared, 0, EMPTY_SHA256, t).unwrap().clone();
        let same_second = cache.headers(&signer, &prepared, 0, EMPTY_SHA256, t + Duration::from_millis(900)).unwrap().clone();
        assert_eq!(first, same_second);
        let other_payload = cache.headers(&signer, &prepared, 1, "00", t).unwrap().clone();
        assert_ne!(first, other_payload);
        let next_second = cache.headers(&signer, &prepared, 0, EMPTY_SHA256, t + Duration::from_secs(1)).unwrap().clone();
        assert_ne!(first, next_second, "x-amz-date moved on");
        signer.generation.fetch_add(1, Ordering::AcqRel);
        let renewed = cache.headers(&signer, &prepared, 0, EMPTY_SHA256, t + Duration::from_secs(1)).unwrap().clone();
        assert_eq!(renewed, next_second, "same credentials sign alike, but the cache was refreshed");
        assert_eq!(cache.at.1, 1);
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

    /// A signer whose source hands out a new key at each fetch, or always the same.
    async fn renewing_signer(rotates: bool) -> Arc<RequestSigner> {
        let fetches = Arc::new(AtomicU64::new(0));
        let source = aws_credential_types::credential_fn::provide_credentials_fn(move || {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            let key = if rotates { format!("AKID{n}") } else { "AKIDSTATIC".into() };
            async move { Ok(Credentials::new(key, "secret", None, None, "test")) }
        });
        let source = RenewableCredentials::new(SharedCredentialsProvider::new(source));
        RequestSigner::new(source, "us-west-2").await.unwrap()
    }

    #[tokio::test]
    async fn a_refusal_renews_the_credentials_once_for_every_request_refused_with_them() {
        let signer = renewing_signer(true).await;
        let refused_at = signer.generation();
        assert!(signer.renew_after_refusal(refused_at).await);
        assert_eq!((signer.current().access_key_id(), signer.generation()), ("AKID1", refused_at + 1));
        assert!(signer.renew_after_refusal(refused_at).await, "another request refused with the old key: sent again");
        assert_eq!(signer.current().access_key_id(), "AKID1", "without another renewal");
        let fixed = renewing_signer(false).await;
        assert!(!fixed.renew_after_refusal(fixed.generation()).await, "static keys come back the same: not worth a resend");
    }

    #[tokio::test]
    async fn a_request_refused_as_expired_is_sent_again_while_renewals_bring_other_keys() {
        let expired = || Outcome::Http { status: 400, code: Some("ExpiredTokenException".into()) };
        let throttled = Outcome::Http { status: 400, code: Some("ThrottlingException".into()) };
        let signer = renewing_signer(true).await;
        let sends = std::cell::Cell::new(0);
        let resend = |answer: Outcome| {
            let sends = &sends;
            move || {
                sends.set(sends.get() + 1);
                std::future::ready(Some(answer.clone()))
            }
        };
        let answer = signer.resend_while_expired(expired(), signer.generation(), |o| o, resend(Outcome::Success)).await;
        assert_eq!((answer, sends.get()), (Outcome::Success, 1), "renewed, sent again, served");
        sends.set(0);
        let answer = signer.resend_while_expired(throttled.clone(), signer.generation(), |o| o, resend(Outcome::Success)).await;
        assert_eq!((answer, sends.get()), (throttled, 0), "another error is the endpoint's: not sent again");
        let answer = signer.resend_while_expired(expired(), signer.generation(), |o| o, resend(expired())).await;
        assert_eq!((answer, sends.get()), (expired(), MAX_RESENDS), "at most MAX_RESENDS times, the last answer kept");
        sends.set(0);
        let fixed = renewing_signer(false).await;
        let answer = fixed.resend_while_expired(expired(), fixed.generation(), |o| o, resend(Outcome::Success)).await;
        assert_eq!((answer, sends.get()), (expired(), 0), "static keys: nothing to send again");
    }
}
