//! Where an asynchronous run keeps its objects, and how they go away.
//!
//! An asynchronous endpoint reads each input from S3 and writes each answer
//! there. perfsize writes only under the run's own prefix — in a bucket the
//! user names, or in a bucket it creates for the run (`perfsize-<run id>`)
//! and deletes with it — so that whatever it deletes is provably its own.

use std::fmt;

use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use crate::vocab::NAME_PREFIX;

/// An S3 bucket and a key prefix under it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct S3Location {
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
}

impl S3Location {
    /// `s3://bucket/prefix/` or `s3://bucket`.
    pub fn parse(uri: &str) -> Option<S3Location> {
        let rest = uri.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        S3Location::new(bucket, prefix)
    }

    /// `bucket` with `prefix` (a trailing `/` added, a leading one dropped);
    /// None when the bucket name is not one S3 accepts.
    pub fn new(bucket: &str, prefix: &str) -> Option<S3Location> {
        if !valid_bucket_name(bucket) {
            return None;
        }
        let prefix = prefix.trim_start_matches('/');
        let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
        Some(S3Location { bucket: bucket.to_string(), prefix })
    }

    /// The location of `key` in this bucket.
    pub fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// This location's folder `name`.
    pub fn child(&self, name: &str) -> S3Location {
        S3Location { bucket: self.bucket.clone(), prefix: format!("{}{name}/", self.prefix) }
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Splits `s3://bucket/key` into bucket and key.
pub fn bucket_and_key(uri: &str) -> Option<(&str, &str)> {
    uri.strip_prefix("s3://")?.split_once('/')
}

/// S3's rule for bucket names: 3–63 lowercase letters, digits, dots and
/// dashes, starting and ending with a letter or digit.
pub fn valid_bucket_name(name: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last())
        && !name.contains("..")
}

/// The bucket perfsize creates for run `run_id` when the user names none.
pub fn run_bucket_name(run_id: &str) -> String {
    format!("{NAME_PREFIX}{}", run_id.to_ascii_lowercase())
}

/// Where a run's objects go, as the user asked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Buckets {
    /// The user's buckets: perfsize writes under `<prefix><run id>/` only,
    /// and never deletes a bucket.
    Named { input: S3Location, output: S3Location },
    /// A bucket perfsize creates for the run and deletes with it.
    RunOwned,
}

/// Where one run's objects are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStorage {
    /// Inputs, in a folder per step below.
    pub input: S3Location,
    /// Where the endpoint writes answers.
    pub output: S3Location,
    /// Where the endpoint writes failure files.
    pub failure: S3Location,
    /// The bucket to create before the run and delete after it.
    pub owned_bucket: Option<String>,
}

impl Buckets {
    /// The locations of run `run_id`.
    pub fn for_run(&self, run_id: &str) -> RunStorage {
        match self {
            Buckets::Named { input, output } => RunStorage {
                input: input.child(run_id).child("in"),
                output: output.child(run_id).child("out"),
                failure: output.child(run_id).child("failed"),
                owned_bucket: None,
            },
            Buckets::RunOwned => {
                let bucket = run_bucket_name(run_id);
                let root = S3Location { bucket: bucket.clone(), prefix: String::new() };
                RunStorage {
                    input: root.child("in"),
                    output: root.child("out"),
                    failure: root.child("failed"),
                    owned_bucket: Some(bucket),
                }
            }
        }
    }
}

impl RunStorage {
    /// The folders the run wrote, to list what was kept.
    pub fn folders(&self) -> Vec<S3Location> {
        let mut folders = vec![self.input.clone(), self.output.clone(), self.failure.clone()];
        folders.dedup();
        folders
    }
}

/// Why objects or a bucket could not be removed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} s3://{bucket}: {message}")]
pub struct S3Error {
    pub operation: &'static str,
    pub bucket: String,
    /// S3's error code (`NoSuchBucket`, `AccessDenied`…), when S3 answered one.
    pub code: Option<String>,
    pub message: String,
}

impl S3Error {
    /// The bucket is not there (any more).
    fn no_such_bucket(&self) -> bool {
        self.code.as_deref() == Some("NoSuchBucket")
    }
}

fn s3_error<E, R>(operation: &'static str, bucket: &str, e: &aws_sdk_s3::error::SdkError<E, R>) -> S3Error
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug + 'static,
{
    S3Error {
        operation,
        bucket: bucket.to_string(),
        code: e.as_service_error().and_then(|s| s.code()).map(str::to_string),
        message: crate::error_chain(e),
    }
}

/// Creates `bucket` in the client's region. One that exists and is ours
/// already (a resumed run) is fine.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), S3Error> {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let region = s3.config().region().map(|r| r.to_string()).unwrap_or_default();
    let mut request = s3.create_bucket().bucket(bucket);
    // us-east-1 is the one region S3 wants no location constraint for.
    if region != "us-east-1" && !region.is_empty() {
        let here =
            CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(region.as_str())).build();
        request = request.create_bucket_configuration(here);
    }
    match request.send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you()) => Ok(()),
        Err(e) => Err(s3_error("CreateBucket", bucket, &e)),
    }
}

/// Deletes every object under `location`; returns how many went.
pub async fn delete_under(s3: &aws_sdk_s3::Client, location: &S3Location) -> Result<u64, S3Error> {
    let mut deleted = 0;
    loop {
        // Each page is deleted before the next is listed, so listing again
        // from the start always finds what is left.
        let page = s3
            .list_objects_v2()
            .bucket(&location.bucket)
            .prefix(&location.prefix)
            .send()
            .await
            .map_err(|e| s3_error("ListObjectsV2", &location.bucket, &e))?;
        let keys: Vec<ObjectIdentifier> = page
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
            .collect();
        if keys.is_empty() {
            return Ok(deleted);
        }
        deleted += keys.len() as u64;
        let batch = Delete::builder().set_objects(Some(keys)).quiet(true).build().expect("objects are set");
        let answer = s3
            .delete_objects()
            .bucket(&location.bucket)
            .delete(batch)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObjects", &location.bucket, &e))?;
        // Quiet mode names only the keys it could not delete: listing again
        // would find them forever.
        if let Some(refused) = answer.errors().first() {
            return Err(S3Error {
                operation: "DeleteObjects",
                bucket: location.bucket.clone(),
                code: refused.code().map(str::to_string),
                message: format!("{}: {}", refused.key().unwrap_or_default(), refused.message().unwrap_or_default()),
            });
        }
    }
}

/// How many objects are under `location` (what `delete_under` would delete).
pub async fn count_under(s3: &aws_sdk_s3::Client, location: &S3Location) -> Result<u64, S3Error> {
    let mut count = 0;
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(&location.bucket)
            .prefix(&location.prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| s3_error("ListObjectsV2", &location.bucket, &e))?;
        count += page.contents().len() as u64;
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
            _ => return Ok(count),
        }
    }
}

/// Empties and deletes a bucket perfsize created. One already gone is fine.
pub async fn delete_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), S3Error> {
    let everything = S3Location { bucket: bucket.to_string(), prefix: String::new() };
    let gone = match delete_under(s3, &everything).await {
        Ok(_) => s3.delete_bucket().bucket(bucket).send().await.map(|_| ()).map_err(|e| s3_error("DeleteBucket", bucket, &e)),
        Err(e) => Err(e),
    };
    match gone {
        Err(e) if e.no_such_bucket() => Ok(()),
        other => other,
    }
}

/// The buckets of runs perfsize created (`perfsize-…`), of `run_id` alone when given.
pub async fn run_buckets(s3: &aws_sdk_s3::Client, run_id: Option<&str>) -> Result<Vec<String>, S3Error> {
    let listed = s3.list_buckets().send().await.map_err(|e| s3_error("ListBuckets", "*", &e))?;
    let wanted = |name: &str| match run_id {
        Some(id) => name == run_bucket_name(id),
        None => name.starts_with(NAME_PREFIX),
    };
    Ok(listed.buckets().iter().filter_map(|b| b.name()).filter(|n| wanted(n)).map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_locations_read_as_people_write_them() {
        let loc = S3Location::parse("s3://bucket/async/in").unwrap();
        assert_eq!(loc, S3Location { bucket: "bucket".into(), prefix: "async/in/".into() });
        assert_eq!(loc.uri("async/in/x"), "s3://bucket/async/in/x");
        assert_eq!(loc.to_string(), "s3://bucket/async/in/");
        assert_eq!(S3Location::parse("s3://bucket").unwrap().prefix, "");
        assert!(S3Location::parse("https://bucket/x").is_none() && S3Location::parse("s3:///x").is_none());
        assert!(S3Location::parse("s3://My_Bucket/x").is_none(), "S3 refuses upper case and underscores");
        assert_eq!(bucket_and_key("s3://b/k/1.out"), Some(("b", "k/1.out")));
    }

    #[test]
    fn a_run_writes_only_under_its_own_folder_of_a_named_bucket() {
        let named = Buckets::Named {
            input: S3Location::parse("s3://team-in/jobs").unwrap(),
            output: S3Location::parse("s3://team-out").unwrap(),
        };
        let run = named.for_run("20261129-0700-ab12");
        assert_eq!(run.input.to_string(), "s3://team-in/jobs/20261129-0700-ab12/in/");
        assert_eq!(run.output.to_string(), "s3://team-out/20261129-0700-ab12/out/");
        assert_eq!(run.failure.to_string(), "s3://team-out/20261129-0700-ab12/failed/");
        assert_eq!(run.owned_bucket, None, "perfsize never deletes a bucket the user named");
    }

    #[test]
    fn a_run_owned_bucket_is_named_after_the_run() {
        let run = Buckets::RunOwned.for_run("20261129-070000-AB12");
        assert_eq!(run.owned_bucket.as_deref(), Some("perfsize-20261129-070000-ab12"));
        assert!(valid_bucket_name(run.owned_bucket.as_deref().unwrap()));
        assert_eq!(run.input.to_string(), "s3://perfsize-20261129-070000-ab12/in/");
        assert_eq!(run.folders().len(), 3);
    }

    #[test]
    fn bucket_names_follow_s3s_rule() {
        assert!(valid_bucket_name("my-bucket.logs"));
        for bad in ["ab", "-bucket", "bucket-", "Bucket", "a..b", &"x".repeat(64)] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }
}
