//! S3's errors: the status, the code, the message S3 gives, the members it
//! adds (Key, BucketName, …) and their REST-XML body. A HEAD request gets the
//! status alone, as S3 answers it.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};

use super::xml::escape;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Members after Message, e.g. ("Key", "a/b.txt").
    pub extra: Vec<(&'static str, String)>,
}

impl S3Error {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> S3Error {
        S3Error { status, code, message: message.into(), extra: Vec::new() }
    }

    pub fn with(mut self, member: &'static str, value: impl Into<String>) -> S3Error {
        self.extra.push((member, value.into()));
        self
    }

    pub fn no_such_bucket(bucket: &str) -> S3Error {
        S3Error::new(StatusCode::NOT_FOUND, "NoSuchBucket", "The specified bucket does not exist").with("BucketName", bucket)
    }

    pub fn no_such_key(key: &str) -> S3Error {
        S3Error::new(StatusCode::NOT_FOUND, "NoSuchKey", "The specified key does not exist.").with("Key", key)
    }

    pub fn invalid_bucket_name(bucket: &str) -> S3Error {
        S3Error::new(StatusCode::BAD_REQUEST, "InvalidBucketName", "The specified bucket is not valid.")
            .with("BucketName", bucket)
    }

    pub fn invalid_argument(message: impl Into<String>) -> S3Error {
        S3Error::new(StatusCode::BAD_REQUEST, "InvalidArgument", message)
    }

    pub fn invalid_request(message: impl Into<String>) -> S3Error {
        S3Error::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }

    pub fn malformed_xml() -> S3Error {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema",
        )
    }

    pub fn not_implemented(what: &str) -> S3Error {
        S3Error::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            format!(
                "A header or query you provided implies functionality that is not implemented: the simulator does not serve {what}."
            ),
        )
    }

    /// The error as S3 answers it; `head` leaves the body out.
    pub fn into_response(self, head: bool) -> Response<Body> {
        let request_id = super::api::request_id();
        let body = if head {
            Vec::new()
        } else {
            let mut xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>",
                self.code,
                escape(&self.message)
            );
            for (member, value) in &self.extra {
                xml.push_str(&format!("<{member}>{}</{member}>", escape(value)));
            }
            xml.push_str(&format!("<RequestId>{request_id}</RequestId><HostId>{}</HostId></Error>", super::api::host_id()));
            xml.into_bytes()
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        if !head {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
        }
        super::api::add_request_ids(headers, &request_id);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_carry_s3s_members_and_heads_no_body() {
        let response = S3Error::no_such_key("a&b.txt").into_response(false);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(response.headers().contains_key("x-amz-request-id"));
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            body.contains("<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>a&amp;b.txt</Key><RequestId>"),
            "{body}"
        );
        let head = S3Error::no_such_bucket("b").into_response(true);
        assert_eq!(head.status(), StatusCode::NOT_FOUND);
        assert!(axum::body::to_bytes(head.into_body(), 16).await.unwrap().is_empty());
    }
}
