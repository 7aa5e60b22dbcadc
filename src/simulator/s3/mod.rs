//! Amazon S3, the subset SDKs use to stage inputs and read results: buckets
//! (CreateBucket, HeadBucket, GetBucketLocation, DeleteBucket, ListBuckets)
//! and objects (PutObject, GetObject with Range, HeadObject, DeleteObject,
//! DeleteObjects, ListObjectsV2), REST-XML with S3's error shapes, addressed
//! path-style or virtual-host-style. Objects live in memory, bounded by the
//! profile's `s3_capacity_megabytes`; asynchronous inference reads its inputs
//! from and writes its results to the same [`ObjectStore`], in-process.
//!
//! - `request`: which bucket and key a request names, its query, and its
//!   payload (plain or `aws-chunked`), checked as S3 checks it;
//! - `store`: buckets, objects, the size bound, bucket naming rules and
//!   ListObjectsV2's paging;
//! - `api`: the operations and their answers;
//! - `error`: S3's errors and their XML;
//! - `xml`: escaping, and reading the two XML bodies S3 takes;
//! - `uri`: `s3://bucket/key` URIs.
//!
//! Requests are recognised by their signature: SigV4 for service `s3` (in
//! the `Authorization` header's credential scope or a presigned URL's query),
//! or S3's legacy SigV2 (`Authorization: AWS …`, or the `AWSAccessKeyId` /
//! `Signature` query botocore still presigns S3 URLs with).
//! Multipart uploads, versioning, ACLs and CopyObject are not served: they
//! answer NotImplemented.

mod api;
mod error;
mod request;
mod store;
mod uri;
mod xml;

pub use api::handle;
pub use error::S3Error;
pub use store::{Object, ObjectMeta, ObjectStore};
pub use uri::S3Uri;

use axum::http::{HeaderMap, header};

use super::wire::credential_scope;

/// The SigV4 signing name of S3.
const SERVICE: &str = "s3";

/// Whether a request with `headers` and `query` is signed for S3.
pub fn addressed(headers: &HeaderMap, query: Option<&str>) -> bool {
    let sigv4 = credential_scope(headers, query).is_some_and(|scope| scope.service == SERVICE);
    let sigv2_header = headers.get(header::AUTHORIZATION).is_some_and(|v| v.as_bytes().starts_with(b"AWS "));
    sigv4 || sigv2_header || request::Query::parse(query).is_presigned_v2()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn s3_requests_are_known_by_their_signature() {
        let mut headers = HeaderMap::new();
        let signed = |service: &str| {
            format!("AWS4-HMAC-SHA256 Credential=AKID/20261122/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=x")
        };
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&signed("s3")).unwrap());
        assert!(addressed(&headers, None));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&signed("sagemaker")).unwrap());
        assert!(!addressed(&headers, None));
        assert!(addressed(&HeaderMap::new(), Some("AWSAccessKeyId=a&Signature=b%3D&Expires=1")));
        assert!(!addressed(&HeaderMap::new(), Some("list-type=2")));
    }
}
