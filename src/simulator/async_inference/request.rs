//! InvokeEndpointAsync's input, from its headers (botocore
//! `sagemaker-runtime/2017-05-13`): InputLocation (required), Content-Type,
//! Accept, Custom-Attributes, Inference-Id, S3OutputPathExtension, Filename,
//! RequestTTLSeconds (60–21600, default 6 hours) and InvocationTimeoutSeconds
//! (1–3600, default 15 minutes), checked as the runtime checks them.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};

use crate::simulator::control::validation::{constraint, not_null};
use crate::simulator::s3::S3Uri;
use crate::simulator::wire::AwsError;

/// "The default is 6 hours, or 21,600 seconds."
const DEFAULT_TTL_SECS: u64 = 21_600;
/// "The default is 15 minutes, or 900 seconds."
const DEFAULT_TIMEOUT_SECS: u64 = 900;

/// One InvokeEndpointAsync request.
#[derive(Debug, Clone, PartialEq)]
pub struct AsyncRequest {
    pub input: S3Uri,
    pub inference_id: Option<String>,
    pub accept: Option<String>,
    pub output_extension: Option<String>,
    pub filename: Option<String>,
    pub ttl: Duration,
    pub timeout: Duration,
}

/// The runtime's ValidationError, with the control plane's wording.
fn runtime_error(error: AwsError) -> AwsError {
    AwsError { code: "ValidationError", ..error }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// An integer header within `min..=max`, or `default` when absent.
fn seconds(headers: &HeaderMap, name: &str, member: &str, (min, max): (u64, u64), default: u64) -> Result<Duration, AwsError> {
    let Some(text) = header(headers, name) else { return Ok(Duration::from_secs(default)) };
    let value: i64 = text.trim().parse().map_err(|_| runtime_error(constraint(text, member, "Member must be a whole number")))?;
    if value < min as i64 {
        return Err(runtime_error(constraint(text, member, &format!("Member must have value greater than or equal to {min}"))));
    }
    if value > max as i64 {
        return Err(runtime_error(constraint(text, member, &format!("Member must have value less than or equal to {max}"))));
    }
    Ok(Duration::from_secs(value as u64))
}

fn input_location(headers: &HeaderMap) -> Result<S3Uri, AwsError> {
    let member = "inputLocation";
    let text = header(headers, "x-amzn-sagemaker-inputlocation").ok_or_else(|| runtime_error(not_null(member)))?;
    if text.is_empty() || text.len() > 1024 {
        return Err(runtime_error(constraint(text, member, "Member must have length between 1 and 1024")));
    }
    if !(text.starts_with("s3://") || text.starts_with("https://")) {
        return Err(runtime_error(constraint(
            text,
            member,
            "Member must satisfy regular expression pattern: ^(https|s3)://([^/]+)/?(.*)$",
        )));
    }
    S3Uri::parse(text).ok_or_else(|| {
        AwsError::new(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            format!("InputLocation {text} is not an s3:// URI: the simulator reads asynchronous inputs from its own S3."),
        )
    })
}

/// "\A\S[\p{Print}]*\z", at most 64 characters.
fn inference_id(headers: &HeaderMap) -> Result<Option<String>, AwsError> {
    let Some(id) = header(headers, "x-amzn-sagemaker-inference-id") else { return Ok(None) };
    let member = "inferenceId";
    if id.is_empty() || id.chars().count() > 64 {
        return Err(runtime_error(constraint(id, member, "Member must have length between 1 and 64")));
    }
    let printable = id.chars().all(|c| !c.is_control());
    if !printable || id.starts_with(char::is_whitespace) {
        return Err(runtime_error(constraint(
            id,
            member,
            "Member must satisfy regular expression pattern: \\A\\S[\\p{Print}]*\\z",
        )));
    }
    Ok(Some(id.to_string()))
}

impl AsyncRequest {
    pub fn parse(headers: &HeaderMap) -> Result<AsyncRequest, AwsError> {
        Ok(AsyncRequest {
            input: input_location(headers)?,
            inference_id: inference_id(headers)?,
            accept: header(headers, "x-amzn-sagemaker-accept").map(str::to_string),
            output_extension: header(headers, "x-amzn-sagemaker-s3outputpathextension").map(str::to_string),
            filename: header(headers, "x-amzn-sagemaker-filename").map(str::to_string),
            ttl: seconds(headers, "x-amzn-sagemaker-requestttlseconds", "requestTTLSeconds", (60, 21_600), DEFAULT_TTL_SECS)?,
            timeout: seconds(
                headers,
                "x-amzn-sagemaker-invocationtimeoutseconds",
                "invocationTimeoutSeconds",
                (1, 3600),
                DEFAULT_TIMEOUT_SECS,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn error(pairs: &[(&'static str, &str)]) -> String {
        let error = AsyncRequest::parse(&headers(pairs)).unwrap_err();
        assert_eq!((error.status, error.code), (StatusCode::BAD_REQUEST, "ValidationError"));
        error.message
    }

    const INPUT: (&str, &str) = ("x-amzn-sagemaker-inputlocation", "s3://in/payload.json");

    #[test]
    fn defaults_are_six_hours_to_wait_and_fifteen_minutes_to_run() {
        let request = AsyncRequest::parse(&headers(&[INPUT])).unwrap();
        assert_eq!(request.input, S3Uri::parse("s3://in/payload.json").unwrap());
        assert_eq!((request.ttl, request.timeout), (Duration::from_secs(21_600), Duration::from_secs(900)));
        assert_eq!(request.inference_id, None);
        let request = AsyncRequest::parse(&headers(&[
            INPUT,
            ("x-amzn-sagemaker-requestttlseconds", "60"),
            ("x-amzn-sagemaker-invocationtimeoutseconds", "3600"),
            ("x-amzn-sagemaker-inference-id", "my id-1"),
        ]))
        .unwrap();
        assert_eq!((request.ttl, request.timeout), (Duration::from_secs(60), Duration::from_secs(3600)));
        assert_eq!(request.inference_id.as_deref(), Some("my id-1"));
    }

    #[test]
    fn out_of_range_headers_are_validation_errors() {
        assert!(error(&[]).contains("Value null at 'inputLocation'"));
        assert!(error(&[("x-amzn-sagemaker-inputlocation", "in/payload.json")]).contains("regular expression pattern"));
        assert!(error(&[("x-amzn-sagemaker-inputlocation", "https://in.s3.amazonaws.com/p")]).contains("not an s3:// URI"));
        let ttl = error(&[INPUT, ("x-amzn-sagemaker-requestttlseconds", "59")]);
        assert!(ttl.contains("'requestTTLSeconds'") && ttl.contains("greater than or equal to 60"), "{ttl}");
        assert!(error(&[INPUT, ("x-amzn-sagemaker-requestttlseconds", "21601")]).contains("less than or equal to 21600"));
        assert!(error(&[INPUT, ("x-amzn-sagemaker-invocationtimeoutseconds", "0")]).contains("greater than or equal to 1"));
        assert!(error(&[INPUT, ("x-amzn-sagemaker-invocationtimeoutseconds", "3601")]).contains("less than or equal to 3600"));
        assert!(error(&[INPUT, ("x-amzn-sagemaker-invocationtimeoutseconds", "soon")]).contains("whole number"));
        assert!(error(&[INPUT, ("x-amzn-sagemaker-inference-id", &"x".repeat(65))]).contains("between 1 and 64"));
        assert!(error(&[INPUT, ("x-amzn-sagemaker-inference-id", " lead")]).contains("pattern"));
    }
}
