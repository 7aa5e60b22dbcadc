//! `s3://bucket/key` URIs, as SageMaker names inputs, outputs and output
//! prefixes.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Uri {
    pub bucket: String,
    /// The key, or the key prefix of a path (may be empty).
    pub key: String,
}

impl S3Uri {
    /// `s3://bucket[/key]`; None for anything else, https:// S3 URLs included.
    pub fn parse(text: &str) -> Option<S3Uri> {
        let rest = text.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        (!bucket.is_empty()).then(|| S3Uri { bucket: bucket.to_string(), key: key.to_string() })
    }

    /// The object `name` under this path: `s3://b/out` and `x.out` make
    /// `s3://b/out/x.out`, whether or not the path ends with a slash.
    pub fn join(&self, name: &str) -> S3Uri {
        let key = match self.key.trim_end_matches('/') {
            "" => name.to_string(),
            prefix => format!("{prefix}/{name}"),
        };
        S3Uri { bucket: self.bucket.clone(), key }
    }
}

impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_and_join() {
        let out = S3Uri::parse("s3://bucket/async/out/").unwrap();
        assert_eq!(out.join("id.out").to_string(), "s3://bucket/async/out/id.out");
        assert_eq!(S3Uri::parse("s3://bucket").unwrap().join("id.out").to_string(), "s3://bucket/id.out");
        assert_eq!(S3Uri::parse("s3://b/in/x.json").unwrap(), S3Uri { bucket: "b".into(), key: "in/x.json".into() });
        for bad in ["s3://", "s3:///key", "https://b.s3.amazonaws.com/k", "b/k"] {
            assert_eq!(S3Uri::parse(bad), None, "{bad}");
        }
    }
}
