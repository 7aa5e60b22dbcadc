//! The simulator's side of the AWS wire protocols: error envelopes and success
//! bodies for awsJson 1.1 (SageMaker, Application Auto Scaling), restJson1
//! (runtime), awsJson 1.0 and Smithy RPC v2 CBOR (CloudWatch), the SigV4
//! presence check and credential scope (which routes S3), percent-decoding,
//! and what every service's answers share: ids, timestamps, NextToken paging.

use std::time::SystemTime;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};

/// The protocol a request arrived in, which decides how answers are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SageMaker control plane and Application Auto Scaling.
    AwsJson11,
    /// CloudWatch as botocore (boto3, the AWS CLI) speaks it: it ranks JSON above CBOR.
    AwsJson10,
    /// SageMaker runtime.
    RestJson,
    /// CloudWatch as aws-sdk-cloudwatch speaks it.
    RpcV2Cbor,
}

impl Protocol {
    fn content_type(self) -> &'static str {
        match self {
            Protocol::AwsJson11 => "application/x-amz-json-1.1",
            Protocol::AwsJson10 => "application/x-amz-json-1.0",
            Protocol::RestJson => "application/json",
            Protocol::RpcV2Cbor => "application/cbor",
        }
    }
}

/// An AWS error as a service returns it: HTTP status, error code, message and,
/// for some runtime errors, extra members (e.g. ModelError's OriginalStatusCode).
#[derive(Debug, Clone, PartialEq)]
pub struct AwsError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub extra: Vec<(&'static str, serde_json::Value)>,
}

impl AwsError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AwsError { status, code, message: message.into(), extra: Vec::new() }
    }

    /// SageMaker control plane's catch-all client error.
    pub fn validation(message: impl Into<String>) -> Self {
        AwsError::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    pub fn with(mut self, key: &'static str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.push((key, value.into()));
        self
    }

    /// Encodes the error the way `protocol` carries errors.
    pub fn into_response(self, protocol: Protocol) -> Response<Body> {
        let body = match protocol {
            Protocol::RpcV2Cbor => {
                let mut map = vec![(cbor_text("__type"), cbor_text(self.code)), (cbor_text("message"), cbor_text(&self.message))];
                for (k, v) in &self.extra {
                    map.push((cbor_text(k), json_to_cbor(v, &[])));
                }
                encode_cbor(&ciborium::Value::Map(map))
            }
            _ => {
                // botocore reads the code from `__type` only (the Rust SDK and
                // restJson readers prefer the header), so both carry it.
                let mut map = serde_json::Map::new();
                map.insert("__type".into(), self.code.into());
                map.insert("message".into(), self.message.clone().into());
                for (k, v) in self.extra {
                    map.insert(k.into(), v);
                }
                serde_json::to_vec(&map).expect("a JSON map serializes")
            }
        };
        let mut response = body_response(self.status, protocol, body);
        let headers = response.headers_mut();
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        if matches!(protocol, Protocol::RpcV2Cbor | Protocol::AwsJson10) {
            // CloudWatch is query-compatible: SDKs match modeled errors on this header.
            let fault = if self.status.is_server_error() { "Receiver" } else { "Sender" };
            if let Ok(value) = HeaderValue::from_str(&format!("{};{fault}", self.code)) {
                headers.insert("x-amzn-query-error", value);
            }
        }
        response
    }
}

/// A success answer in `protocol` with an already-encoded body.
pub fn body_response(status: StatusCode, protocol: Protocol, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(protocol.content_type()));
    headers.insert("x-amzn-requestid", request_id());
    if protocol == Protocol::RpcV2Cbor {
        headers.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    }
    response
}

/// A JSON success answer.
pub fn json_response(protocol: Protocol, value: &serde_json::Value) -> Response<Body> {
    body_response(StatusCode::OK, protocol, serde_json::to_vec(value).expect("a JSON value serializes"))
}

/// A fresh request id, as every AWS answer carries one.
pub fn request_id() -> HeaderValue {
    HeaderValue::from_str(&uuid()).expect("hex is a valid header value")
}

/// A random version-4-shaped UUID, as AWS uses for request, activity and
/// policy ids.
pub fn uuid() -> String {
    let id: u128 = rand::random();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (id >> 96) as u32,
        (id >> 80) as u16,
        (id >> 64) as u16 & 0x0fff,
        ((id >> 48) as u16 & 0x3fff) | 0x8000,
        id & 0xffff_ffff_ffff
    )
}

/// A timestamp member as the JSON protocols carry it: epoch seconds, to the
/// millisecond.
pub fn timestamp(t: SystemTime) -> serde_json::Value {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    serde_json::json!((secs * 1000.0).round() / 1000.0)
}

/// Where a NextToken points: the position of the first item of its page.
fn token_position(token: &str) -> Option<usize> {
    token.strip_prefix("page-")?.parse().ok()
}

/// One page of `items` (`size` at most) starting where `token` points, and
/// the token of the next page if any remain. Err(()) for a token this
/// simulator did not hand out: each service names that error its own way.
pub fn page<T>(items: Vec<T>, token: Option<&str>, size: usize) -> Result<(Vec<T>, Option<String>), ()> {
    let start = match token {
        None => 0,
        Some(token) => token_position(token).ok_or(())?,
    };
    let total = items.len();
    let end = start.saturating_add(size).min(total);
    let page: Vec<T> = items.into_iter().skip(start).take(end.saturating_sub(start)).collect();
    Ok((page, (end < total).then(|| format!("page-{end}"))))
}

/// AWS answers a request with no SigV4 signature with 403 before looking at
/// anything else. The simulator accepts any credentials, but not none.
pub fn require_signature(headers: &HeaderMap, protocol: Protocol) -> Result<(), Box<Response<Body>>> {
    let signed =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 "));
    if signed {
        Ok(())
    } else {
        Err(Box::new(
            AwsError::new(StatusCode::FORBIDDEN, "MissingAuthenticationTokenException", "Missing Authentication Token")
                .into_response(protocol),
        ))
    }
}

/// The region of the request's SigV4 credential scope
/// (`Credential=AKID/20260101/us-west-2/sagemaker/aws4_request`).
pub fn signing_region(headers: &HeaderMap) -> Option<String> {
    credential_scope(headers, None).map(|scope| scope.region)
}

/// The access key that signed the request (`Authorization` header), if any.
pub fn access_key_id(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let credential = auth.strip_prefix("AWS4-HMAC-SHA256 ")?.split("Credential=").nth(1)?;
    credential.split('/').next().filter(|key| !key.is_empty()).map(str::to_string)
}

/// Where and for which service a request was signed: the region and service
/// of its SigV4 credential scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    pub region: String,
    pub service: String,
}

/// The credential scope of the `Authorization` header or, for a presigned
/// URL, of the `X-Amz-Credential` member of `query` (as S3 accepts both).
pub fn credential_scope(headers: &HeaderMap, query: Option<&str>) -> Option<CredentialScope> {
    let from_header = || {
        let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let credential = auth.strip_prefix("AWS4-HMAC-SHA256 ")?.split("Credential=").nth(1)?;
        credential.split([',', ' ']).next().map(str::to_string)
    };
    let from_query = || {
        query?
            .split('&')
            .find_map(|pair| pair.strip_prefix("X-Amz-Credential="))
            .map(|credential| percent_decode(&credential.replace('+', " ")))
    };
    let credential = from_header().or_else(from_query)?;
    let mut parts = credential.split('/').skip(2);
    let (region, service) = (parts.next()?, parts.next()?);
    Some(CredentialScope { region: region.to_string(), service: service.to_string() })
}

/// Decodes %XX escapes (SDKs escape what a path segment or query value
/// cannot carry as is); anything else, malformed escapes included, is kept.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
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

pub fn cbor_text(s: &str) -> ciborium::Value {
    ciborium::Value::Text(s.to_string())
}

pub fn encode_cbor(value: &ciborium::Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("writing CBOR to a Vec cannot fail");
    out
}

/// A JSON value in CBOR. Members named in `timestamps` hold epoch seconds and
/// become CBOR tag 1, as Smithy RPC v2 CBOR requires of timestamps.
pub fn json_to_cbor(value: &serde_json::Value, timestamps: &[&str]) -> ciborium::Value {
    use ciborium::Value as C;
    match value {
        serde_json::Value::Null => C::Null,
        serde_json::Value::Bool(b) => C::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => C::Integer(i.into()),
            None => C::Float(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => C::Text(s.clone()),
        serde_json::Value::Array(a) => C::Array(a.iter().map(|v| json_to_cbor(v, timestamps)).collect()),
        serde_json::Value::Object(o) => C::Map(
            o.iter()
                .map(|(k, v)| {
                    let v = match v.as_f64() {
                        Some(secs) if timestamps.contains(&k.as_str()) => C::Tag(1, Box::new(C::Float(secs))),
                        _ => json_to_cbor(v, timestamps),
                    };
                    (C::Text(k.clone()), v)
                })
                .collect(),
        ),
    }
}

/// A CBOR request body as JSON, so one decoder serves both of CloudWatch's
/// protocols: tag 1 (a timestamp) becomes its epoch seconds.
pub fn cbor_to_json(value: &ciborium::Value) -> serde_json::Value {
    use ciborium::Value as C;
    use serde_json::Value as J;
    match value {
        C::Null => J::Null,
        C::Bool(b) => J::Bool(*b),
        C::Integer(i) => J::from(i128::from(*i) as i64),
        C::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        C::Text(s) => J::String(s.clone()),
        C::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        C::Tag(_, inner) => cbor_to_json(inner),
        C::Array(a) => J::Array(a.iter().map(cbor_to_json).collect()),
        C::Map(m) => J::Object(m.iter().filter_map(|(k, v)| Some((k.as_text()?.to_string(), cbor_to_json(v)))).collect()),
        _ => J::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_comes_from_the_credential_scope() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKID/20261122/eu-west-1/sagemaker/aws4_request, SignedHeaders=host, Signature=abc",
            ),
        );
        assert_eq!(signing_region(&headers).as_deref(), Some("eu-west-1"));
        assert!(require_signature(&headers, Protocol::AwsJson11).is_ok());
        assert!(require_signature(&HeaderMap::new(), Protocol::AwsJson11).is_err());
        let scope = credential_scope(&headers, None).unwrap();
        assert_eq!((scope.region.as_str(), scope.service.as_str()), ("eu-west-1", "sagemaker"));
    }

    #[test]
    fn presigned_urls_carry_their_scope_in_the_query() {
        let query =
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261122%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=x";
        let scope = credential_scope(&HeaderMap::new(), Some(query)).unwrap();
        assert_eq!((scope.region.as_str(), scope.service.as_str()), ("us-east-1", "s3"));
        assert_eq!(credential_scope(&HeaderMap::new(), Some("list-type=2")), None);
    }

    #[test]
    fn percent_escapes_decode_and_malformed_ones_stay() {
        assert_eq!(percent_decode("a%20b%2Bc/%C3%A9"), "a b+c/é");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn pages_follow_their_tokens() {
        let (first, next) = page((0..5).collect(), None, 2).unwrap();
        assert_eq!((first, next.as_deref()), (vec![0, 1], Some("page-2")));
        let (last, next) = page((0..5).collect(), Some("page-4"), 2).unwrap();
        assert_eq!((last, next), (vec![4], None));
        assert!(page((0..5).collect::<Vec<_>>(), Some("bogus"), 2).is_err());
    }

    #[test]
    fn cbor_timestamps_round_trip_through_json() {
        let json = serde_json::json!({"StateUpdatedTimestamp": 1700000000.5, "Threshold": 70.0, "Period": 60});
        let cbor = json_to_cbor(&json, &["StateUpdatedTimestamp"]);
        let tagged = cbor.as_map().unwrap().iter().find(|(k, _)| k.as_text() == Some("StateUpdatedTimestamp")).unwrap();
        assert!(matches!(tagged.1, ciborium::Value::Tag(1, _)));
        assert_eq!(cbor_to_json(&cbor), json);
        assert_eq!(uuid().len(), 36);
    }
}
