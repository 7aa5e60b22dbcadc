//! Reading an S3 request: which bucket and key it names — path-style
//! (`/bucket/key`) or virtual-host-style (`Host: bucket.localhost:port`) —
//! its query, and its payload as the client encoded it: plain, or
//! `aws-chunked` (the streaming encoding SDKs use for uploads, signed or with
//! trailing checksums), checked against `x-amz-content-sha256`,
//! `x-amz-decoded-content-length` and `Content-MD5` as S3 checks them.

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use md5::Md5;
use sha2::{Digest, Sha256};

use super::error::S3Error;
use crate::simulator::wire::percent_decode;

/// The bucket and key a request names; either may be absent (ListBuckets
/// names neither, bucket operations no key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub bucket: Option<String>,
    pub key: Option<String>,
}

/// Host names whose subdomains are buckets: `bucket.localhost`,
/// `bucket.127.0.0.1` (the virtual host a client makes of an IP endpoint),
/// and S3's own `bucket.s3.amazonaws.com` / `bucket.s3.<region>.amazonaws.com`.
fn bucket_of_host(host: &str) -> Option<&str> {
    let host = host.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h);
    if let Some(bucket) = host.strip_suffix(".localhost") {
        return Some(bucket);
    }
    if let Some((bucket, rest)) = host.split_once(".s3.").or_else(|| host.split_once(".s3-"))
        && rest.ends_with("amazonaws.com")
    {
        return Some(bucket);
    }
    // bucket.1.2.3.4: the last four labels are an IPv4 address, the rest a bucket.
    let labels: Vec<&str> = host.rsplitn(5, '.').collect();
    match labels.as_slice() {
        [d, c, b, a, bucket] if format!("{a}.{b}.{c}.{d}").parse::<std::net::Ipv4Addr>().is_ok() => Some(bucket),
        _ => None,
    }
}

impl Target {
    /// The target of a request to `path` (still percent-encoded) with `Host: host`.
    pub fn of(host: Option<&str>, path: &str) -> Target {
        let path = path.strip_prefix('/').unwrap_or(path);
        let non_empty = |s: &str| (!s.is_empty()).then(|| percent_decode(s));
        match host.and_then(bucket_of_host) {
            Some(bucket) => Target { bucket: Some(bucket.to_string()), key: non_empty(path) },
            None => {
                let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
                Target { bucket: non_empty(bucket), key: non_empty(key) }
            }
        }
    }
}

/// A query string's members, decoded (`+` is a space, as in forms).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let decode = |s: &str| percent_decode(&s.replace('+', " "));
        Query(
            query
                .unwrap_or_default()
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(name), decode(value))
                })
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A URL presigned with SigV2, as botocore presigns S3 URLs by default.
    pub fn is_presigned_v2(&self) -> bool {
        self.has("AWSAccessKeyId") && self.has("Signature")
    }

    /// A URL presigned with SigV4 or SigV2: it signs no payload.
    pub fn is_presigned(&self) -> bool {
        self.has("X-Amz-Signature") || self.is_presigned_v2()
    }

    /// The first member naming a subresource the simulator does not serve
    /// (`?acl`, `?versioning`, `?uploads`, …): anything but `served`, the
    /// members of a presigned URL, and the `x-id` aws-sdk-s3 adds to name
    /// the operation.
    pub fn unserved_subresource(&self, served: &[&str]) -> Option<&str> {
        const ALWAYS: &[&str] = &["AWSAccessKeyId", "Signature", "Expires", "x-id"];
        self.0
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| !served.contains(name) && !ALWAYS.contains(name) && !name.starts_with("X-Amz-"))
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// How the body of a request is encoded, from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Payload {
    /// The body is the payload; its SHA-256 is `Some` when the client signed it.
    Plain { sha256: Option<String> },
    /// `aws-chunked`: the payload in chunks, then optional trailers.
    Chunked { decoded_length: Option<usize> },
}

fn payload_encoding(headers: &HeaderMap, presigned: bool) -> Result<Payload, S3Error> {
    let content_sha256 = header_str(headers, "x-amz-content-sha256");
    let chunked_encoding =
        header_str(headers, header::CONTENT_ENCODING.as_str()).is_some_and(|e| e.split(',').any(|e| e.trim() == "aws-chunked"));
    match content_sha256 {
        Some(streaming) if streaming.starts_with("STREAMING-") || chunked_encoding => {
            let decoded_length = header_str(headers, "x-amz-decoded-content-length")
                .map(|n| n.parse().map_err(|_| S3Error::invalid_argument("x-amz-decoded-content-length is not a number")))
                .transpose()?;
            Ok(Payload::Chunked { decoded_length })
        }
        Some("UNSIGNED-PAYLOAD") => Ok(Payload::Plain { sha256: None }),
        Some(hash) if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Payload::Plain { sha256: Some(hash.to_ascii_lowercase()) })
        }
        Some(other) => Err(S3Error::invalid_argument(format!(
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-… or a SHA-256 hex digest, not {other:?}."
        ))),
        // A presigned URL signs no payload; a signed header request must say what it signed.
        None if presigned => Ok(Payload::Plain { sha256: None }),
        None => Err(S3Error::invalid_request("Missing required header for this request: x-amz-content-sha256")),
    }
}

/// A request's payload as the client meant it, and the checksum trailer
/// that came with it, if any (`x-amz-checksum-crc32: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub data: Bytes,
    pub trailer_checksum: Option<(String, String)>,
}

/// Decodes and checks the body of a request with `headers`.
pub fn decode_payload(headers: &HeaderMap, body: Bytes, presigned: bool) -> Result<Decoded, S3Error> {
    let decoded = match payload_encoding(headers, presigned)? {
        Payload::Plain { sha256 } => {
            if let Some(expected) = sha256 {
                let actual = hex::encode(Sha256::digest(&body));
                if actual != expected {
                    return Err(S3Error::new(
                        StatusCode::BAD_REQUEST,
                        "XAmzContentSHA256Mismatch",
                        "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    )
                    .with("ClientComputedContentSHA256", expected)
                    .with("S3ComputedContentSHA256", actual));
                }
            }
            Decoded { data: body, trailer_checksum: None }
        }
        Payload::Chunked { decoded_length } => {
            let decoded = decode_aws_chunked(&body)?;
            if decoded_length.is_some_and(|n| n != decoded.data.len()) {
                return Err(incomplete_body());
            }
            decoded
        }
    };
    check_content_md5(headers, &decoded.data)?;
    Ok(decoded)
}

fn incomplete_body() -> S3Error {
    S3Error::new(
        StatusCode::BAD_REQUEST,
        "IncompleteBody",
        "You did not provide the number of bytes specified by the Content-Length HTTP header",
    )
}

/// `Content-MD5`, when sent, must be the base64 MD5 of the payload.
fn check_content_md5(headers: &HeaderMap, data: &[u8]) -> Result<(), S3Error> {
    let Some(sent) = header_str(headers, "content-md5") else { return Ok(()) };
    let sent =
        STANDARD.decode(sent).ok().filter(|digest| digest.len() == 16).ok_or_else(|| {
            S3Error::new(StatusCode::BAD_REQUEST, "InvalidDigest", "The Content-MD5 you specified was invalid.")
        })?;
    if sent.as_slice() != Md5::digest(data).as_slice() {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "BadDigest",
            "The Content-MD5 you specified did not match what we received.",
        ));
    }
    Ok(())
}

/// Splits off the line before the next CRLF.
fn line(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = input.windows(2).position(|w| w == b"\r\n")?;
    Some((&input[..end], &input[end + 2..]))
}

/// Decodes `aws-chunked`: chunks of `hex-size[;chunk-signature=…]\r\n data\r\n`,
/// a zero-size chunk, then trailer lines (`name:value\r\n`) and an empty line.
/// Chunk signatures are not checked, as the simulator checks no signature.
pub fn decode_aws_chunked(body: &[u8]) -> Result<Decoded, S3Error> {
    let mut data = Vec::with_capacity(body.len());
    let mut rest = body;
    loop {
        let (size_line, after) = line(rest).ok_or_else(incomplete_body)?;
        let size_text = std::str::from_utf8(size_line).ok().and_then(|l| l.split(';').next()).map(str::trim);
        let size = size_text.and_then(|s| usize::from_str_radix(s, 16).ok()).ok_or_else(incomplete_body)?;
        rest = after;
        if size == 0 {
            break;
        }
        if rest.len() < size + 2 || &rest[size..size + 2] != b"\r\n" {
            return Err(incomplete_body());
        }
        data.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
    let mut trailer_checksum = None;
    while let Some((trailer, after)) = line(rest) {
        rest = after;
        if trailer.is_empty() {
            break;
        }
        let trailer = String::from_utf8_lossy(trailer);
        if let Some((name, value)) = trailer.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            if name.starts_with("x-amz-checksum-") {
                trailer_checksum = Some((name, value.trim().to_string()));
            }
        }
    }
    Ok(Decoded { data: Bytes::from(data), trailer_checksum })
}

/// A `Range: bytes=…` header against an object of `size` bytes: the first
/// and last byte served. Ok(None) serves the whole object (no range, or a form
/// S3 ignores, such as several ranges); Err is S3's InvalidRange.
pub fn byte_range(range: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, S3Error> {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else { return Ok(None) };
    let parsed = match (first.trim(), last.trim()) {
        ("", suffix) => suffix.parse::<u64>().ok().map(|n| (size.saturating_sub(n), size.saturating_sub(1), n > 0)),
        (first, "") => first.parse::<u64>().ok().map(|f| (f, size.saturating_sub(1), f < size)),
        (first, last) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(f), Ok(l)) if f <= l => Some((f, l.min(size.saturating_sub(1)), f < size)),
            _ => None,
        },
    };
    match parsed {
        None => Ok(None),
        Some((first, last, true)) if size > 0 => Ok(Some((first, last))),
        Some(_) => Err(S3Error::new(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange", "The requested range is not satisfiable")
            .with("RangeRequested", range.unwrap_or_default())
            .with("ActualObjectSize", size.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn target(host: &str, path: &str) -> (Option<String>, Option<String>) {
        let t = Target::of(Some(host), path);
        (t.bucket, t.key)
    }

    fn some(bucket: &str, key: Option<&str>) -> (Option<String>, Option<String>) {
        (Some(bucket.to_string()), key.map(str::to_string))
    }

    #[test]
    fn path_and_virtual_host_style_name_the_same_object() {
        assert_eq!(target("127.0.0.1:4566", "/bkt/a/b%20c.txt"), some("bkt", Some("a/b c.txt")));
        assert_eq!(target("localhost:4566", "/bkt"), some("bkt", None));
        assert_eq!(target("localhost:4566", "/bkt/"), some("bkt", None));
        assert_eq!(target("127.0.0.1:4566", "/"), (None, None));
        assert_eq!(target("bkt.localhost:4566", "/a/b%20c.txt"), some("bkt", Some("a/b c.txt")));
        assert_eq!(target("my.bkt.localhost", "/"), some("my.bkt", None));
        assert_eq!(target("bkt.127.0.0.1:4566", "/k"), some("bkt", Some("k")));
        assert_eq!(target("bkt.s3.us-west-2.amazonaws.com", "/k"), some("bkt", Some("k")));
        assert_eq!(target("s3.us-west-2.amazonaws.com", "/bkt/k"), some("bkt", Some("k")));
        assert_eq!(target("sim.internal:80", "/bkt/k"), some("bkt", Some("k")), "an unknown host is path-style");
        // A bucket named like the runtime's path is still a bucket.
        assert_eq!(target("127.0.0.1:1", "/endpoints/x/invocations"), some("endpoints", Some("x/invocations")));
    }

    #[test]
    fn queries_decode_their_members() {
        let query = Query::parse(Some("list-type=2&prefix=a%2Fb+c&delimiter=%2F&encoding-type=url&delete"));
        assert_eq!(query.get("prefix"), Some("a/b c"));
        assert_eq!(query.get("delimiter"), Some("/"));
        assert!(query.has("delete"));
        assert_eq!(query.unserved_subresource(&["list-type", "prefix", "delimiter", "encoding-type", "delete"]), None);
        assert_eq!(Query::parse(Some("acl")).unserved_subresource(&["delete"]), Some("acl"));
        assert_eq!(Query::parse(Some("X-Amz-Signature=x&x-id=PutObject")).unserved_subresource(&[]), None);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn aws_chunked_bodies_decode_with_signatures_and_trailers() {
        let body = b"5;chunk-signature=abc\r\nhello\r\n6;chunk-signature=def\r\n world\r\n0;chunk-signature=0\r\n\r\n";
        let sent = headers(&[
            ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
            ("x-amz-decoded-content-length", "11"),
            ("content-encoding", "aws-chunked"),
        ]);
        let decoded = decode_payload(&sent, Bytes::from_static(body), false).unwrap();
        assert_eq!((&decoded.data[..], decoded.trailer_checksum), (&b"hello world"[..], None));

        let trailed = b"b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        let sent =
            headers(&[("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"), ("x-amz-decoded-content-length", "11")]);
        let decoded = decode_payload(&sent, Bytes::from_static(trailed), false).unwrap();
        assert_eq!(&decoded.data[..], b"hello world");
        assert_eq!(decoded.trailer_checksum, Some(("x-amz-checksum-crc32".to_string(), "DUoRhQ==".to_string())));

        // As aws-sdk-s3 streams a file: signed chunks, a checksum trailer and its signature.
        let signed_trailer = b"D;chunk-signature=d175\r\nfile contents\r\n0;chunk-signature=c3fa\r\nx-amz-checksum-crc32:KrCS7g==\r\nx-amz-trailer-signature:dcdf\r\n\r\n";
        let sent = headers(&[
            ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"),
            ("x-amz-decoded-content-length", "13"),
            ("content-encoding", "aws-chunked"),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ]);
        let decoded = decode_payload(&sent, Bytes::from_static(signed_trailer), false).unwrap();
        assert_eq!(&decoded.data[..], b"file contents");
        assert_eq!(decoded.trailer_checksum, Some(("x-amz-checksum-crc32".to_string(), "KrCS7g==".to_string())));

        let short =
            headers(&[("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"), ("x-amz-decoded-content-length", "12")]);
        assert_eq!(decode_payload(&short, Bytes::from_static(trailed), false).unwrap_err().code, "IncompleteBody");
        for broken in [&b"5\r\nhel"[..], b"zz\r\n", b"5\r\nhelloXX0\r\n\r\n", b""] {
            assert_eq!(decode_aws_chunked(broken).unwrap_err().code, "IncompleteBody", "{broken:?}");
        }
    }

    #[test]
    fn plain_payloads_are_checked_against_what_was_signed() {
        let body = Bytes::from_static(b"hello world");
        let signed = headers(&[("x-amz-content-sha256", "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9")]);
        assert_eq!(decode_payload(&signed, body.clone(), false).unwrap().data, body);
        let wrong = headers(&[("x-amz-content-sha256", &"0".repeat(64))]);
        assert_eq!(decode_payload(&wrong, body.clone(), false).unwrap_err().code, "XAmzContentSHA256Mismatch");
        let unsigned = headers(&[("x-amz-content-sha256", "UNSIGNED-PAYLOAD"), ("content-md5", "XrY7u+Ae7tCTyyK7j1rNww==")]);
        assert_eq!(decode_payload(&unsigned, body.clone(), false).unwrap().data, body);
        let bad_md5 = headers(&[("x-amz-content-sha256", "UNSIGNED-PAYLOAD"), ("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")]);
        assert_eq!(decode_payload(&bad_md5, body.clone(), false).unwrap_err().code, "BadDigest");
        assert_eq!(decode_payload(&HeaderMap::new(), body.clone(), false).unwrap_err().code, "InvalidRequest");
        assert_eq!(decode_payload(&HeaderMap::new(), body, true).unwrap().data.len(), 11, "presigned: unsigned payload");
    }

    #[test]
    fn ranges_are_served_as_s3_serves_them() {
        assert_eq!(byte_range(None, 10).unwrap(), None);
        assert_eq!(byte_range(Some("bytes=0-3"), 10).unwrap(), Some((0, 3)));
        assert_eq!(byte_range(Some("bytes=4-"), 10).unwrap(), Some((4, 9)));
        assert_eq!(byte_range(Some("bytes=-3"), 10).unwrap(), Some((7, 9)));
        assert_eq!(byte_range(Some("bytes=5-100"), 10).unwrap(), Some((5, 9)));
        assert_eq!(byte_range(Some("bytes=-30"), 10).unwrap(), Some((0, 9)));
        assert_eq!(byte_range(Some("bytes=0-1,4-5"), 10).unwrap(), None, "several ranges: the whole object");
        assert_eq!(byte_range(Some("bytes=10-"), 10).unwrap_err().code, "InvalidRange");
        assert_eq!(byte_range(Some("bytes=0-0"), 0).unwrap_err().code, "InvalidRange");
        assert_eq!(byte_range(Some("items=0-1"), 10).unwrap(), None);
    }
}
