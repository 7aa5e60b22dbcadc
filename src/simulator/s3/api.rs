//! The S3 operations the simulator serves, dispatched on method, bucket, key
//! and query as S3's REST API names them, with S3's answers: REST-XML bodies,
//! ETag / Last-Modified / Content-Length / Content-Type headers,
//! `x-amz-request-id`, and the region rules of CreateBucket.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use bytes::Bytes;

use super::error::S3Error;
use super::request::{Query, Target, byte_range, decode_payload};
use super::store::{Created, ListQuery, Marker, Object, ObjectMeta, ObjectStore};
use super::xml::{escape, has_root, texts};
use crate::simulator::ACCOUNT_ID;
use crate::simulator::wire::{credential_scope, uuid};

const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// S3's region for requests whose signature names none.
const DEFAULT_REGION: &str = "us-east-1";

/// The most keys one ListObjectsV2 page or DeleteObjects call takes.
const MAX_KEYS: usize = 1000;

/// An S3 request id: 16 upper-case hex digits.
pub fn request_id() -> String {
    uuid().replace('-', "")[..16].to_ascii_uppercase()
}

/// The opaque `x-amz-id-2` S3 pairs with it.
pub fn host_id() -> String {
    uuid().replace('-', "")
}

pub fn add_request_ids(headers: &mut HeaderMap, request_id: &str) {
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amz-request-id", id);
    }
    if let Ok(id) = HeaderValue::from_str(&host_id()) {
        headers.insert("x-amz-id-2", id);
    }
}

/// A success answer with `body` (XML if not empty).
fn answer(status: StatusCode, body: impl Into<Body>, xml: bool) -> Response<Body> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if xml {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    }
    add_request_ids(headers, &request_id());
    response
}

fn xml_answer(document: String) -> Response<Body> {
    answer(StatusCode::OK, format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{document}"), true)
}

fn empty_answer(status: StatusCode) -> Response<Body> {
    answer(status, Body::empty(), false)
}

/// HTTP dates, as Last-Modified carries them.
fn http_date(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// ISO 8601 with milliseconds, as S3's XML carries timestamps.
fn iso_date(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Serves one S3 request against `store`.
pub async fn handle(store: &ObjectStore, request: Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let head = parts.method == Method::HEAD;
    let host = parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).map(str::to_string);
    let target = Target::of(host.as_deref().or(parts.uri.host()), parts.uri.path());
    let query = Query::parse(parts.uri.query());
    let presigned = query.is_presigned();
    let region = credential_scope(&parts.headers, parts.uri.query()).map_or(DEFAULT_REGION.to_string(), |s| s.region);
    let call = Call { store, headers: &parts.headers, query: &query, region: &region, presigned };
    // Read the body only for the operations that take one (hyper answers
    // `Expect: 100-continue` when it is read).
    let result = match (&parts.method, target.bucket.as_deref(), target.key.as_deref()) {
        (&Method::GET, None, None) => Ok(call.list_buckets()),
        (method, Some(bucket), None) => match *method {
            Method::PUT => match call.body(body).await {
                Ok(payload) => call.create_bucket(bucket, &payload),
                Err(e) => Err(e),
            },
            Method::HEAD => call.head_bucket(bucket),
            Method::DELETE => call.only(&[]).and_then(|()| call.delete_bucket(bucket)),
            Method::GET if query.has("location") => call.bucket_location(bucket),
            Method::GET => call.list_objects_v2(bucket),
            Method::POST if query.has("delete") => match call.body(body).await {
                Ok(payload) => call.delete_objects(bucket, &payload),
                Err(e) => Err(e),
            },
            _ => Err(S3Error::not_implemented(&format!("{method} on a bucket"))),
        },
        (method, Some(bucket), Some(key)) => match *method {
            Method::PUT => match call.body(body).await {
                Ok(payload) => call.put_object(bucket, key, payload),
                Err(e) => Err(e),
            },
            Method::GET | Method::HEAD => call.get_object(bucket, key, head),
            Method::DELETE => call.only(&[]).and_then(|()| call.delete_object(bucket, key)),
            _ => Err(S3Error::not_implemented(&format!("{method} on an object"))),
        },
        (method, _, _) => Err(S3Error::not_implemented(&format!("{method} without a bucket"))),
    };
    result.unwrap_or_else(|e| e.into_response(head))
}

/// One request's context.
struct Call<'a> {
    store: &'a ObjectStore,
    headers: &'a HeaderMap,
    query: &'a Query,
    /// The region the request was signed for.
    region: &'a str,
    presigned: bool,
}

impl Call<'_> {
    /// Refuses a subresource the operation does not serve (`?acl`, `?uploads`, …).
    fn only(&self, served: &[&str]) -> Result<(), S3Error> {
        match self.query.unserved_subresource(served) {
            Some(name) => Err(S3Error::not_implemented(&format!("the ?{name} subresource"))),
            None => Ok(()),
        }
    }

    async fn body(&self, body: Body) -> Result<super::request::Decoded, S3Error> {
        // Room for the framing of an aws-chunked body around the largest payload.
        let limit = usize::try_from(self.store.capacity()).unwrap_or(usize::MAX).saturating_mul(2).saturating_add(64 * 1024);
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
            S3Error::new(StatusCode::BAD_REQUEST, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
        })?;
        decode_payload(self.headers, bytes, self.presigned)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn list_buckets(&self) -> Response<Body> {
        let buckets: String = self
            .store
            .buckets()
            .iter()
            .map(|b| {
                format!(
                    "<Bucket><Name>{}</Name><CreationDate>{}</CreationDate><BucketRegion>{}</BucketRegion></Bucket>",
                    escape(&b.name),
                    iso_date(b.created),
                    b.region
                )
            })
            .collect();
        xml_answer(format!(
            "<ListAllMyBucketsResult xmlns=\"{XMLNS}\"><Owner><ID>{}</ID><DisplayName>simulator</DisplayName></Owner>\
             <Buckets>{buckets}</Buckets></ListAllMyBucketsResult>",
            owner_id()
        ))
    }

    fn create_bucket(&self, bucket: &str, payload: &super::request::Decoded) -> Result<Response<Body>, S3Error> {
        self.only(&[])?;
        let body = String::from_utf8_lossy(&payload.data);
        let constraint = if body.trim().is_empty() {
            None
        } else if has_root(&body, "CreateBucketConfiguration") {
            texts(&body, "LocationConstraint").into_iter().next().filter(|c| !c.is_empty())
        } else {
            return Err(S3Error::malformed_xml());
        };
        let region = bucket_region(self.region, constraint.as_deref())?;
        match self.store.create_bucket(bucket, &region, SystemTime::now())? {
            Created::AlreadyOwned { region: existing } if !(self.region == DEFAULT_REGION && existing == DEFAULT_REGION) => {
                Err(S3Error::new(
                    StatusCode::CONFLICT,
                    "BucketAlreadyOwnedByYou",
                    "Your previous request to create the named bucket succeeded and you already own it.",
                )
                .with("BucketName", bucket))
            }
            // New, or — for legacy compatibility, in us-east-1 only — re-created: 200.
            _ => {
                let mut response = empty_answer(StatusCode::OK);
                if let Ok(location) = HeaderValue::from_str(&format!("/{bucket}")) {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                Ok(response)
            }
        }
    }

    fn head_bucket(&self, bucket: &str) -> Result<Response<Body>, S3Error> {
        let region = self.store.bucket_region(bucket)?;
        let mut response = empty_answer(StatusCode::OK);
        if let Ok(region) = HeaderValue::from_str(&region) {
            response.headers_mut().insert("x-amz-bucket-region", region);
        }
        Ok(response)
    }

    /// GetBucketLocation: empty for us-east-1, as S3 answers.
    fn bucket_location(&self, bucket: &str) -> Result<Response<Body>, S3Error> {
        self.only(&["location"])?;
        let region = self.store.bucket_region(bucket)?;
        let constraint = if region == DEFAULT_REGION { String::new() } else { region };
        Ok(xml_answer(format!("<LocationConstraint xmlns=\"{XMLNS}\">{constraint}</LocationConstraint>")))
    }

    fn delete_bucket(&self, bucket: &str) -> Result<Response<Body>, S3Error> {
        self.store.delete_bucket(bucket)?;
        Ok(empty_answer(StatusCode::NO_CONTENT))
    }

    fn list_objects_v2(&self, bucket: &str) -> Result<Response<Body>, S3Error> {
        const SERVED: &[&str] = &[
            "list-type",
            "prefix",
            "delimiter",
            "max-keys",
            "continuation-token",
            "start-after",
            "encoding-type",
            "fetch-owner",
        ];
        if self.query.get("list-type") != Some("2") {
            // ListObjects (version 1) pages with markers of its own; SDKs and
            // the AWS CLI list with version 2.
            self.only(SERVED)?;
            return Err(S3Error::not_implemented("ListObjects (version 1); use ListObjectsV2 (list-type=2)"));
        }
        self.only(SERVED)?;
        let max_keys = match self.query.get("max-keys") {
            None => MAX_KEYS,
            Some(n) => n
                .parse::<usize>()
                .map_err(|_| S3Error::invalid_argument("Provided max-keys not an integer or within integer range"))?
                .min(MAX_KEYS),
        };
        let url_encoded = match self.query.get("encoding-type") {
            None => false,
            Some("url") => true,
            Some(_) => return Err(S3Error::invalid_argument("Invalid Encoding Method specified in Request")),
        };
        let token = self.query.get("continuation-token");
        let after = match token {
            Some(token) => Some(
                Marker::from_token(token)
                    .ok_or_else(|| S3Error::invalid_argument("The continuation token provided is incorrect"))?,
            ),
            None => self.query.get("start-after").filter(|s| !s.is_empty()).map(|s| Marker::Key(s.to_string())),
        };
        let list = ListQuery {
            prefix: self.query.get("prefix").unwrap_or_default().to_string(),
            delimiter: self.query.get("delimiter").filter(|d| !d.is_empty()).map(str::to_string),
            max_keys,
            after,
        };
        let page = self.store.list(bucket, &list)?;
        let text = |value: &str| if url_encoded { url_encode(value) } else { escape(value) };
        let mut xml =
            format!("<ListBucketResult xmlns=\"{XMLNS}\"><Name>{}</Name><Prefix>{}</Prefix>", escape(bucket), text(&list.prefix));
        if let Some(delimiter) = &list.delimiter {
            xml.push_str(&format!("<Delimiter>{}</Delimiter>", text(delimiter)));
        }
        xml.push_str(&format!("<MaxKeys>{max_keys}</MaxKeys>"));
        if url_encoded {
            xml.push_str("<EncodingType>url</EncodingType>");
        }
        xml.push_str(&format!(
            "<KeyCount>{}</KeyCount><IsTruncated>{}</IsTruncated>",
            page.contents.len() + page.common_prefixes.len(),
            page.next.is_some()
        ));
        if let Some(token) = token {
            xml.push_str(&format!("<ContinuationToken>{}</ContinuationToken>", escape(token)));
        }
        if let Some(next) = &page.next {
            xml.push_str(&format!("<NextContinuationToken>{}</NextContinuationToken>", next.token()));
        }
        if let Some(start_after) = self.query.get("start-after").filter(|s| !s.is_empty()) {
            xml.push_str(&format!("<StartAfter>{}</StartAfter>", text(start_after)));
        }
        for (key, object) in &page.contents {
            xml.push_str(&format!(
                "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>{}</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                text(key),
                iso_date(object.last_modified),
                escape(&object.etag),
                object.data.len()
            ));
        }
        for prefix in &page.common_prefixes {
            xml.push_str(&format!("<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>", text(prefix)));
        }
        xml.push_str("</ListBucketResult>");
        Ok(xml_answer(xml))
    }

    fn delete_objects(&self, bucket: &str, payload: &super::request::Decoded) -> Result<Response<Body>, S3Error> {
        self.only(&["delete"])?;
        let body = String::from_utf8_lossy(&payload.data);
        if !has_root(&body, "Delete") {
            return Err(S3Error::malformed_xml());
        }
        let keys = texts(&body, "Key");
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return Err(S3Error::malformed_xml());
        }
        let quiet = texts(&body, "Quiet").first().is_some_and(|q| q.eq_ignore_ascii_case("true"));
        // The bucket must exist; keys that do not are reported deleted, as S3 does.
        self.store.bucket_region(bucket)?;
        let mut xml = format!("<DeleteResult xmlns=\"{XMLNS}\">");
        for key in &keys {
            match self.store.delete(bucket, key) {
                Ok(()) if quiet => {}
                Ok(()) => xml.push_str(&format!("<Deleted><Key>{}</Key></Deleted>", escape(key))),
                Err(e) => xml.push_str(&format!(
                    "<Error><Key>{}</Key><Code>{}</Code><Message>{}</Message></Error>",
                    escape(key),
                    e.code,
                    escape(&e.message)
                )),
            }
        }
        xml.push_str("</DeleteResult>");
        Ok(xml_answer(xml))
    }

    fn put_object(&self, bucket: &str, key: &str, payload: super::request::Decoded) -> Result<Response<Body>, S3Error> {
        self.only(&[])?;
        if self.header("x-amz-copy-source").is_some() {
            return Err(S3Error::not_implemented("CopyObject"));
        }
        let meta = ObjectMeta {
            content_type: self.header(header::CONTENT_TYPE.as_str()).map(str::to_string),
            content_encoding: self
                .header(header::CONTENT_ENCODING.as_str())
                .map(|e| e.split(',').map(str::trim).filter(|e| *e != "aws-chunked").collect::<Vec<_>>().join(","))
                .filter(|e| !e.is_empty()),
            user: self
                .headers
                .iter()
                .filter_map(|(name, value)| {
                    Some((name.as_str().strip_prefix("x-amz-meta-")?.to_string(), value.to_str().ok()?.to_string()))
                })
                .collect(),
            checksum: payload.trailer_checksum.clone().or_else(|| self.sent_checksum()),
        };
        let checksum = meta.checksum.clone();
        let etag = self.store.put(bucket, key, Object::new(payload.data, meta, SystemTime::now()))?;
        let mut response = empty_answer(StatusCode::OK);
        let headers = response.headers_mut();
        headers.insert(header::ETAG, HeaderValue::from_str(&etag).expect("a quoted hex digest is a header value"));
        if let Some((name, value)) = checksum
            && let (Ok(name), Ok(value)) = (header::HeaderName::try_from(name), HeaderValue::from_str(&value))
        {
            headers.insert(name, value);
        }
        Ok(response)
    }

    /// A checksum header the client computed over the payload (S3 keeps one).
    fn sent_checksum(&self) -> Option<(String, String)> {
        self.headers.iter().find_map(|(name, value)| {
            let name = name.as_str();
            (name.starts_with("x-amz-checksum-") && name != "x-amz-checksum-mode" && name != "x-amz-checksum-type")
                .then(|| Some((name.to_string(), value.to_str().ok()?.to_string())))
                .flatten()
        })
    }

    fn get_object(&self, bucket: &str, key: &str, head: bool) -> Result<Response<Body>, S3Error> {
        self.only(&["partNumber", "response-content-type"])?;
        let object = self.store.get(bucket, key)?;
        let size = object.data.len() as u64;
        let range = byte_range(self.header(header::RANGE.as_str()), size)?;
        let (status, data) = match range {
            Some((first, last)) => (StatusCode::PARTIAL_CONTENT, object.data.slice(first as usize..=last as usize)),
            None => (StatusCode::OK, object.data.clone()),
        };
        let length = data.len();
        let mut response = answer(status, if head { Bytes::new() } else { data }, false);
        let headers = response.headers_mut();
        let mut set = |name: header::HeaderName, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        };
        set(header::CONTENT_LENGTH, &length.to_string());
        set(header::ETAG, &object.etag);
        set(header::LAST_MODIFIED, &http_date(object.last_modified));
        set(header::ACCEPT_RANGES, "bytes");
        let content_type = self.query.get("response-content-type").or(object.meta.content_type.as_deref());
        set(header::CONTENT_TYPE, content_type.unwrap_or("binary/octet-stream"));
        if let Some(encoding) = &object.meta.content_encoding {
            set(header::CONTENT_ENCODING, encoding);
        }
        if let Some((first, last)) = range {
            set(header::CONTENT_RANGE, &format!("bytes {first}-{last}/{size}"));
        }
        for (name, value) in &object.meta.user {
            if let Ok(name) = header::HeaderName::try_from(format!("x-amz-meta-{name}")) {
                set(name, value);
            }
        }
        // A checksum covers the whole object: S3 gives it only for whole-object
        // reads that ask for it (botocore asks, and checks what it gets).
        if range.is_none()
            && self.header("x-amz-checksum-mode").is_some_and(|m| m.eq_ignore_ascii_case("ENABLED"))
            && let Some((name, value)) = &object.meta.checksum
            && let Ok(name) = header::HeaderName::try_from(name.as_str())
        {
            set(name, value);
        }
        Ok(response)
    }

    fn delete_object(&self, bucket: &str, key: &str) -> Result<Response<Body>, S3Error> {
        self.store.delete(bucket, key)?;
        Ok(empty_answer(StatusCode::NO_CONTENT))
    }
}

/// The canonical user id of the simulator's account.
fn owner_id() -> String {
    format!("{:0>64}", ACCOUNT_ID)
}

/// The region a new bucket is created in, by S3's rules: the us-east-1
/// endpoint creates a bucket in any region its LocationConstraint names (none
/// means us-east-1, and naming us-east-1 is refused); a regional endpoint only
/// in its own region, which the constraint must name.
pub fn bucket_region(signed_for: &str, constraint: Option<&str>) -> Result<String, S3Error> {
    let incompatible = |what: &str| {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "IllegalLocationConstraintException",
            format!("The {what} location constraint is incompatible for the region specific endpoint this request was sent to."),
        )
    };
    match (signed_for, constraint) {
        (DEFAULT_REGION, None) => Ok(DEFAULT_REGION.to_string()),
        (DEFAULT_REGION, Some(DEFAULT_REGION)) => Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidLocationConstraint",
            "The specified location-constraint is not valid",
        )
        .with("LocationConstraint", DEFAULT_REGION)),
        (DEFAULT_REGION, Some(other)) => Ok(other.to_string()),
        (_, None) => Err(incompatible("unspecified")),
        (region, Some(constraint)) if constraint == region => Ok(region.to_string()),
        (_, Some(constraint)) => Err(incompatible(constraint)),
    }
}

/// `encoding-type=url`: every byte but unreserved characters and `/`
/// percent-encoded (botocore decodes `+` as a space, so it is escaped too).
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(byte as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_created_where_s3_creates_them() {
        assert_eq!(bucket_region("us-east-1", None).unwrap(), "us-east-1");
        assert_eq!(bucket_region("us-east-1", Some("eu-west-1")).unwrap(), "eu-west-1", "the global endpoint takes any region");
        assert_eq!(bucket_region("us-east-1", Some("us-east-1")).unwrap_err().code, "InvalidLocationConstraint");
        assert_eq!(bucket_region("eu-west-1", Some("eu-west-1")).unwrap(), "eu-west-1");
        let error = bucket_region("eu-west-1", None).unwrap_err();
        assert_eq!(error.code, "IllegalLocationConstraintException");
        assert!(error.message.starts_with("The unspecified location constraint"), "{}", error.message);
        assert_eq!(bucket_region("eu-west-1", Some("us-west-2")).unwrap_err().code, "IllegalLocationConstraintException");
    }

    #[test]
    fn url_encoding_escapes_what_botocore_decodes() {
        assert_eq!(url_encode("a b+c/é~x.y"), "a%20b%2Bc/%C3%A9~x.y");
    }

    #[test]
    fn dates_are_formatted_as_s3_formats_them() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(http_date(t), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(iso_date(t), "2023-11-14T22:13:20.000Z");
    }
}
