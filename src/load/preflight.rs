//! Before the first step on an endpoint, each payload is sent once through
//! aws-sdk-sagemakerruntime: a model that rejects a payload is one clear
//! error naming the payload and the model's message.

use aws_sdk_sagemakerruntime::error::ProvideErrorMetadata;
use aws_sdk_sagemakerruntime::primitives::Blob;

use super::{LoadError, PayloadMix};

/// Sends every payload of `mix` to `endpoint` once; the first refusal is the error.
pub async fn check_payloads(
    runtime: &aws_sdk_sagemakerruntime::Client,
    endpoint: &str,
    mix: &PayloadMix,
    content_type: &str,
    accept: &str,
) -> Result<(), LoadError> {
    for payload in mix.payloads() {
        let result = runtime
            .invoke_endpoint()
            .endpoint_name(endpoint)
            .content_type(content_type)
            .accept(accept)
            .body(Blob::new(payload.body.to_vec()))
            .send()
            .await;
        if let Err(e) = result {
            let service = e.as_service_error();
            return Err(match service {
                Some(service) => LoadError::PayloadRejected {
                    payload: payload.name.clone(),
                    endpoint: endpoint.to_string(),
                    code: service.code().unwrap_or("error").to_string(),
                    message: service.message().unwrap_or("no message").to_string(),
                },
                None => LoadError::Unreachable { endpoint: endpoint.to_string(), reason: crate::error_chain(&e) },
            });
        }
    }
    Ok(())
}
