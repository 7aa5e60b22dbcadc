//! Any HTTP model server as a [`Driver`] (`perfsize load --url`): KServe's
//! v1/v2 inference protocols, TorchServe, Triton, an OpenAI-compatible
//! server — whatever answers a POST of the payload at one URL. The same
//! pacing, recording and judging as a SageMaker endpoint; requests carry the
//! user's headers and an optional bearer token, never a SigV4 signature.
//! HTTP/1.1 with keep-alive (goose's client); a 2xx is a success, any other
//! status a failure counted by its code.

use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use tokio_util::sync::CancellationToken;

use super::workers::{self, Named, Wire};
use super::{Driver, LoadError, LoadRun, LoadSpec, PayloadMix, ProgressFn, Target};

/// The longest answer excerpt a refused preflight quotes.
const EXCERPT: usize = 300;

/// What is wrong with a `--url` target's settings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpTargetError {
    #[error("--url {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("--header `{text}`: {reason} (use 'Name: value')")]
    BadHeader { text: String, reason: String },
    #[error("the bearer token is not a valid header value")]
    BadToken,
}

impl crate::error::HasKind for HttpTargetError {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Usage
    }
}

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

/// One `--header 'Name: value'`.
pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), HttpTargetError> {
    let bad = |reason: &str| HttpTargetError::BadHeader { text: text.to_string(), reason: reason.to_string() };
    let (name, value) = text.split_once(':').ok_or_else(|| bad("no colon"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad("not a header name"))?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| bad("not a header value"))?;
    Ok((name, value))
}

/// Plain HTTP POSTs of the payloads to one URL.
pub struct HttpEndpoint {
    url: reqwest::Url,
    /// The user's headers and authentication, applied after the step's
    /// Content-Type and Accept (so they win).
    headers: HeaderMap,
    /// For the preflight, apart from the step's own workers.
    client: reqwest::Client,
}

impl HttpEndpoint {
    /// A target at `url` (http or https) with `headers` (`Name: value`) and `auth`.
    pub fn new(url: &str, headers: &[String], auth: Auth) -> Result<HttpEndpoint, HttpTargetError> {
        let bad_url = |reason: String| HttpTargetError::BadUrl { url: url.to_string(), reason };
        let parsed = reqwest::Url::parse(url).map_err(|e| bad_url(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(bad_url("perfsize speaks HTTP/1.1 to http:// and https:// URLs".into()));
        }
        let mut map = HeaderMap::new();
        for text in headers {
            let (name, value) = parse_header(text)?;
            map.append(name, value);
        }
        if let Auth::Bearer(token) = &auth {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| HttpTargetError::BadToken)?;
            map.insert(AUTHORIZATION, value);
        }
        Ok(HttpEndpoint { url: parsed, headers: map, client: reqwest::Client::new() })
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The headers every request of `spec` carries.
    fn headers_of(&self, spec: &LoadSpec) -> Result<HeaderMap, LoadError> {
        let mut headers = spec.content_headers()?;
        for name in self.headers.keys() {
            headers.remove(name);
        }
        headers.extend(self.headers.clone());
        Ok(headers)
    }
}

impl Driver for HttpEndpoint {
    fn target(&self, _endpoint: &str) -> Target {
        Target { endpoint: self.url.to_string(), runtime_url: self.url.origin().ascii_serialization() }
    }

    async fn preflight(&self, spec: &LoadSpec) -> Result<(), LoadError> {
        let headers = self.headers_of(spec)?;
        for payload in spec.payloads.payloads() {
            let sent = self.client.post(self.url.clone()).headers(headers.clone()).body(payload.body.clone()).send().await;
            let unreachable =
                |e: reqwest::Error| LoadError::Unreachable { endpoint: self.url.to_string(), reason: crate::error_chain(&e) };
            let response = sent.map_err(unreachable)?;
            let status = response.status();
            if !status.is_success() {
                let body = response.text().await.unwrap_or_default();
                return Err(LoadError::PayloadRejected {
                    payload: payload.name.clone(),
                    endpoint: self.url.to_string(),
                    code: format!("HTTP {}", status.as_u16()),
                    message: body.chars().take(EXCERPT).collect::<String>().trim().to_string(),
                });
            }
        }
        Ok(())
    }

    async fn drive(&self, spec: LoadSpec, cancel: CancellationToken, live: Option<ProgressFn>) -> Result<LoadRun, LoadError> {
        let wire =
            PlainRequests { url: self.url.clone(), headers: self.headers_of(&spec)?, payloads: Arc::clone(&spec.payloads) };
        workers::drive(Named { scenario: "HTTP", wire }, spec, cancel, live).await
    }
}

/// A step's requests to a `--url` target, built from what never changes.
struct PlainRequests {
    url: reqwest::Url,
    headers: HeaderMap,
    payloads: Arc<PayloadMix>,
}

impl Wire for PlainRequests {
    type Local = ();

    fn local(&self) {}

    fn request(&self, _: &mut (), slot: u64) -> Result<reqwest::Request, LoadError> {
        let mut request = reqwest::Request::new(Method::POST, self.url.clone());
        *request.headers_mut() = self.headers.clone();
        *request.body_mut() = Some(self.payloads.pick(slot).body.clone().into());
        Ok(request)
    }

    /// A plain server names its failures by status alone.
    fn error_code(&self, _: &HeaderMap) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use http::header::{ACCEPT, CONTENT_TYPE};

    use super::*;

    #[test]
    fn headers_read_as_name_colon_value_and_refuse_anything_else() {
        let (name, value) = parse_header("X-Api-Key:  abc:def ").unwrap();
        assert_eq!((name.as_str(), value.to_str().unwrap()), ("x-api-key", "abc:def"));
        for bad in ["no colon here", ": value", "bad name: v", "x: bad\u{1}value"] {
            assert!(matches!(parse_header(bad), Err(HttpTargetError::BadHeader { .. })), "{bad}");
        }
    }

    #[test]
    fn only_http_urls_are_targets() {
        assert!(HttpEndpoint::new("http://127.0.0.1:8080/v2/models/m/infer", &[], Auth::None).is_ok());
        for bad in ["ftp://x/y", "grpc://host:8001", "not a url", "unix:/tmp/socket"] {
            assert!(matches!(HttpEndpoint::new(bad, &[], Auth::None), Err(HttpTargetError::BadUrl { .. })), "{bad}");
        }
    }

    #[test]
    fn user_headers_and_the_token_win_over_the_step_defaults() {
        let target = HttpEndpoint::new(
            "http://h/v1/chat/completions",
            &["Content-Type: application/x-ndjson".into(), "X-Tenant: a".into()],
            Auth::Bearer("s3cret".into()),
        )
        .unwrap();
        let headers = target.headers_of(&crate::load::testing::spec(1.0, 1.0, 0.0, 1)).unwrap();
        assert_eq!(headers.get(CONTENT_TYPE).unwrap(), "application/x-ndjson");
        assert_eq!(headers.get(ACCEPT).unwrap(), "application/json");
        assert_eq!(headers.get(AUTHORIZATION).unwrap(), "Bearer s3cret");
        assert_eq!(headers.get("x-tenant").unwrap(), "a");
    }
}
