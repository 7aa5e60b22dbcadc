//! The simulator's side of the AWS wire protocols: error envelopes and success
//! bodies for awsJson 1.1 (SageMaker), restJson1 (runtime), awsJson 1.0 and
//! Smithy RPC v2 CBOR (CloudWatch), and the SigV4 presence check.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};

/// The protocol a request arrived in, which decides how answers are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SageMaker control plane.
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
                    map.push((cbor_text(k), json_to_cbor(v)));
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
    let id: u128 = rand::random();
    HeaderValue::from_str(&format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (id >> 96) as u32,
        (id >> 80) as u16,
        (id >> 64) as u16,
        (id >> 48) as u16,
        id & 0xffff_ffff_ffff
    ))
    .expect("hex is a valid header value")
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
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    let scope = credential.split([',', ' ']).next()?;
    scope.split('/').nth(2).map(str::to_string)
}

pub fn cbor_text(s: &str) -> ciborium::Value {
    ciborium::Value::Text(s.to_string())
}

pub fn encode_cbor(value: &ciborium::Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("writing CBOR to a Vec cannot fail");
    out
}

fn json_to_cbor(value: &serde_json::Value) -> ciborium::Value {
    use ciborium::Value as C;
    match value {
        serde_json::Value::Null => C::Null,
        serde_json::Value::Bool(b) => C::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => C::Integer(i.into()),
            None => C::Float(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => C::Text(s.clone()),
        serde_json::Value::Array(a) => C::Array(a.iter().map(json_to_cbor).collect()),
        serde_json::Value::Object(o) => C::Map(o.iter().map(|(k, v)| (C::Text(k.clone()), json_to_cbor(v))).collect()),
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
    }
}
