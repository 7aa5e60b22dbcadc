//! The simulator's S3 contents: buckets (with the region they were created
//! in) and objects, in memory, bounded in total size; bucket naming rules;
//! and ListObjectsV2's paging, prefixes and delimiter roll-up as pure logic.
//! The HTTP operations and asynchronous inference both go through here.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use md5::{Digest, Md5};

use super::error::S3Error;

/// What a PutObject stores besides the bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectMeta {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    /// `x-amz-meta-*` headers, names without the prefix.
    pub user: Vec<(String, String)>,
    /// A flexible checksum the client sent (`x-amz-checksum-crc32`, …), to
    /// give back when GetObject asks for it.
    pub checksum: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub data: Bytes,
    /// The quoted hex MD5 of the data, as S3 gives single-part uploads.
    pub etag: String,
    pub last_modified: SystemTime,
    pub meta: ObjectMeta,
}

impl Object {
    pub fn new(data: Bytes, meta: ObjectMeta, now: SystemTime) -> Object {
        let etag = format!("\"{}\"", hex::encode(Md5::digest(&data)));
        Object { data, etag, last_modified: now, meta }
    }
}

#[derive(Debug)]
struct Bucket {
    region: String,
    created: SystemTime,
    objects: BTreeMap<String, Object>,
}

/// A bucket as ListBuckets lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketSummary {
    pub name: String,
    pub region: String,
    pub created: SystemTime,
}

/// What CreateBucket did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    New,
    /// The caller already owns it, in this region.
    AlreadyOwned {
        region: String,
    },
}

#[derive(Debug, Default)]
struct Contents {
    buckets: BTreeMap<String, Bucket>,
    /// Bytes held by every object.
    used: u64,
}

/// The simulator's S3, safe to share between requests and background work.
#[derive(Debug)]
pub struct ObjectStore {
    contents: Mutex<Contents>,
    capacity: u64,
}

impl ObjectStore {
    /// An empty store holding at most `capacity` bytes of object data.
    pub fn new(capacity: u64) -> ObjectStore {
        ObjectStore { contents: Mutex::new(Contents::default()), capacity }
    }

    /// The most object data the store holds, in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, Contents> {
        self.contents.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn create_bucket(&self, name: &str, region: &str, now: SystemTime) -> Result<Created, S3Error> {
        if !valid_bucket_name(name) {
            return Err(S3Error::invalid_bucket_name(name));
        }
        let mut contents = self.lock();
        if let Some(existing) = contents.buckets.get(name) {
            return Ok(Created::AlreadyOwned { region: existing.region.clone() });
        }
        contents.buckets.insert(name.to_string(), Bucket { region: region.to_string(), created: now, objects: BTreeMap::new() });
        Ok(Created::New)
    }

    /// The region a bucket was created in.
    pub fn bucket_region(&self, name: &str) -> Result<String, S3Error> {
        self.lock().buckets.get(name).map(|b| b.region.clone()).ok_or_else(|| S3Error::no_such_bucket(name))
    }

    pub fn delete_bucket(&self, name: &str) -> Result<(), S3Error> {
        let mut contents = self.lock();
        let bucket = contents.buckets.get(name).ok_or_else(|| S3Error::no_such_bucket(name))?;
        if !bucket.objects.is_empty() {
            return Err(S3Error::new(StatusCode::CONFLICT, "BucketNotEmpty", "The bucket you tried to delete is not empty")
                .with("BucketName", name));
        }
        contents.buckets.remove(name);
        Ok(())
    }

    /// Every bucket, by name.
    pub fn buckets(&self) -> Vec<BucketSummary> {
        let contents = self.lock();
        contents
            .buckets
            .iter()
            .map(|(name, b)| BucketSummary { name: name.clone(), region: b.region.clone(), created: b.created })
            .collect()
    }

    /// Stores `object` under `key`, replacing what was there; its ETag.
    pub fn put(&self, bucket: &str, key: &str, object: Object) -> Result<String, S3Error> {
        if key.is_empty() || key.len() > 1024 {
            return Err(S3Error::new(StatusCode::BAD_REQUEST, "KeyTooLongError", "Your key is too long").with("Key", key));
        }
        let mut contents = self.lock();
        let used = contents.used;
        let objects = &mut contents.buckets.get_mut(bucket).ok_or_else(|| S3Error::no_such_bucket(bucket))?.objects;
        let replaced = objects.get(key).map_or(0, |o| o.data.len() as u64);
        let after = used - replaced + object.data.len() as u64;
        if after > self.capacity {
            return Err(self.full(object.data.len()));
        }
        let etag = object.etag.clone();
        objects.insert(key.to_string(), object);
        contents.used = after;
        Ok(etag)
    }

    /// S3 has no such limit; the simulator's memory does. EntityTooLarge is
    /// the nearest S3 error, and clients do not retry it.
    fn full(&self, size: usize) -> S3Error {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "EntityTooLarge",
            format!(
                "Your proposed upload of {size} bytes does not fit in the simulator's S3, which holds {} MiB in all \
                 (simulator profile `s3_capacity_megabytes`).",
                self.capacity / (1024 * 1024)
            ),
        )
    }

    pub fn get(&self, bucket: &str, key: &str) -> Result<Object, S3Error> {
        let contents = self.lock();
        let objects = &contents.buckets.get(bucket).ok_or_else(|| S3Error::no_such_bucket(bucket))?.objects;
        objects.get(key).cloned().ok_or_else(|| S3Error::no_such_key(key))
    }

    /// Deletes `key` if it exists: S3 answers the same either way.
    pub fn delete(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        let mut contents = self.lock();
        let objects = &mut contents.buckets.get_mut(bucket).ok_or_else(|| S3Error::no_such_bucket(bucket))?.objects;
        let freed = objects.remove(key).map_or(0, |o| o.data.len() as u64);
        contents.used -= freed;
        Ok(())
    }

    pub fn list(&self, bucket: &str, query: &ListQuery) -> Result<ListPage, S3Error> {
        let contents = self.lock();
        let objects = &contents.buckets.get(bucket).ok_or_else(|| S3Error::no_such_bucket(bucket))?.objects;
        Ok(list_page(objects, query))
    }
}

/// S3's bucket naming rules (general purpose buckets): 3–63 characters of
/// lowercase letters, digits, dots and hyphens, starting and ending with a
/// letter or digit, no two adjacent periods, not an IP address, none of the
/// reserved prefixes and suffixes.
pub fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-';
    let alphanumeric = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&bytes.len())
        && bytes.iter().all(allowed)
        && alphanumeric(bytes.first())
        && alphanumeric(bytes.last())
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !["xn--", "sthree-", "amzn-s3-demo-"].iter().any(|p| name.starts_with(p))
        && !["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"].iter().any(|s| name.ends_with(s))
}

/// Where a ListObjectsV2 page starts: after a key, or after every key a
/// common prefix rolled up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Marker {
    Key(String),
    Prefix(String),
}

impl Marker {
    /// The continuation token naming this position (opaque to clients).
    pub fn token(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("a marker serializes"))
    }

    pub fn from_token(token: &str) -> Option<Marker> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token).ok()?).ok()
    }

    fn passes(&self, key: &str) -> bool {
        match self {
            Marker::Key(after) => key > after.as_str(),
            Marker::Prefix(prefix) => key > prefix.as_str() && !key.starts_with(prefix.as_str()),
        }
    }
}

/// The members of a ListObjectsV2 request that decide what is listed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// At most this many keys and common prefixes together (S3 caps it at 1000).
    pub max_keys: usize,
    /// From continuation-token, else start-after.
    pub after: Option<Marker>,
}

/// One page: keys, common prefixes, and where the next page starts if any.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub contents: Vec<(String, Object)>,
    pub common_prefixes: Vec<String>,
    pub next: Option<Marker>,
}

/// The page of `objects` that `query` asks for. Keys sharing a prefix are
/// adjacent in key order, so a roll-up is the run of keys with the same
/// common prefix, counted once against max-keys.
pub fn list_page(objects: &BTreeMap<String, Object>, query: &ListQuery) -> ListPage {
    let mut page = ListPage { contents: Vec::new(), common_prefixes: Vec::new(), next: None };
    let start = match &query.after {
        Some(Marker::Key(key) | Marker::Prefix(key)) if key.as_str() >= query.prefix.as_str() => Bound::Excluded(key.clone()),
        _ => Bound::Included(query.prefix.clone()),
    };
    let mut last: Option<Marker> = None;
    for (key, object) in objects.range((start, Bound::Unbounded)) {
        if !key.starts_with(&query.prefix) {
            break;
        }
        if query.after.as_ref().is_some_and(|after| !after.passes(key)) {
            continue;
        }
        let rolled_up = query.delimiter.as_deref().filter(|d| !d.is_empty()).and_then(|d| {
            let rest = &key[query.prefix.len()..];
            rest.find(d).map(|at| key[..query.prefix.len() + at + d.len()].to_string())
        });
        if let Some(prefix) = &rolled_up
            && page.common_prefixes.last() == Some(prefix)
        {
            continue;
        }
        if page.contents.len() + page.common_prefixes.len() == query.max_keys {
            page.next = last.take();
            break;
        }
        match rolled_up {
            Some(prefix) => {
                last = Some(Marker::Prefix(prefix.clone()));
                page.common_prefixes.push(prefix);
            }
            None => {
                last = Some(Marker::Key(key.clone()));
                page.contents.push((key.clone(), object.clone()));
            }
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(keys: &[&str]) -> BTreeMap<String, Object> {
        keys.iter()
            .map(|k| (k.to_string(), Object::new(Bytes::from(k.to_string()), ObjectMeta::default(), SystemTime::UNIX_EPOCH)))
            .collect()
    }

    fn names(page: &ListPage) -> (Vec<&str>, Vec<&str>) {
        (page.contents.iter().map(|(k, _)| k.as_str()).collect(), page.common_prefixes.iter().map(String::as_str).collect())
    }

    fn query(prefix: &str, delimiter: Option<&str>, max_keys: usize, after: Option<Marker>) -> ListQuery {
        ListQuery { prefix: prefix.into(), delimiter: delimiter.map(str::to_string), max_keys, after }
    }

    #[test]
    fn etags_are_quoted_md5() {
        let object = Object::new(Bytes::from_static(b"hello world"), ObjectMeta::default(), SystemTime::UNIX_EPOCH);
        assert_eq!(object.etag, "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"");
    }

    #[test]
    fn prefixes_and_delimiters_roll_keys_up() {
        let all = objects(&["a/1", "a/2", "a/b/3", "b", "c/4", "d"]);
        let page = list_page(&all, &query("", Some("/"), 1000, None));
        assert_eq!(names(&page), (vec!["b", "d"], vec!["a/", "c/"]));
        assert_eq!(page.next, None);
        let page = list_page(&all, &query("a/", Some("/"), 1000, None));
        assert_eq!(names(&page), (vec!["a/1", "a/2"], vec!["a/b/"]));
        let page = list_page(&all, &query("a/", None, 1000, None));
        assert_eq!(names(&page).0, vec!["a/1", "a/2", "a/b/3"]);
        assert_eq!(names(&list_page(&all, &query("zz", None, 1000, None))), (vec![], vec![]));
    }

    #[test]
    fn pages_resume_after_their_last_key_or_prefix() {
        let all = objects(&["a/1", "a/2", "b", "c/3", "c/4", "d", "e"]);
        let mut seen = (Vec::new(), Vec::new());
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = list_page(&all, &query("", Some("/"), 2, after.clone()));
            let (keys, prefixes) = names(&page);
            assert!(keys.len() + prefixes.len() <= 2);
            seen.0.extend(keys.iter().map(|k| k.to_string()));
            seen.1.extend(prefixes.iter().map(|p| p.to_string()));
            pages += 1;
            match page.next {
                Some(next) => after = Some(Marker::from_token(&next.token()).expect("our own token")),
                None => break,
            }
        }
        assert_eq!(pages, 3, "5 entries, 2 a page");
        assert_eq!(seen, (vec!["b".to_string(), "d".into(), "e".into()], vec!["a/".to_string(), "c/".into()]));
        // start-after is a key to list after, inside or outside the prefix.
        let page = list_page(&all, &query("", None, 1000, Some(Marker::Key("c/3".into()))));
        assert_eq!(names(&page).0, vec!["c/4", "d", "e"]);
        let page = list_page(&all, &query("c/", None, 1000, Some(Marker::Key("a".into()))));
        assert_eq!(names(&page).0, vec!["c/3", "c/4"]);
        assert_eq!(list_page(&all, &query("", None, 0, None)).next, None, "max-keys 0 lists nothing, and ends");
        assert_eq!(Marker::from_token("not-a-token"), None);
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        for good in ["abc", "my-bucket.v2", "a1b", &"a".repeat(63)] {
            assert!(valid_bucket_name(good), "{good}");
        }
        for bad in ["ab", "My-Bucket", "-abc", "abc-", "a..b", "192.168.1.1", "xn--abc", "a_b", "abc-s3alias", &"a".repeat(64)] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_store_keeps_to_its_capacity() {
        let store = ObjectStore::new(10);
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(store.create_bucket("bkt", "us-east-1", now), Ok(Created::New));
        assert_eq!(store.create_bucket("bkt", "eu-west-1", now), Ok(Created::AlreadyOwned { region: "us-east-1".into() }));
        let object = |n: usize| Object::new(Bytes::from(vec![b'x'; n]), ObjectMeta::default(), now);
        store.put("bkt", "a", object(6)).unwrap();
        assert_eq!(store.put("bkt", "b", object(6)).unwrap_err().code, "EntityTooLarge");
        store.put("bkt", "a", object(10)).expect("a replacement frees what it replaces");
        assert_eq!(store.delete_bucket("bkt").unwrap_err().code, "BucketNotEmpty");
        store.delete("bkt", "a").unwrap();
        store.delete("bkt", "a").expect("deleting a missing key succeeds");
        store.put("bkt", "b", object(10)).unwrap();
        assert_eq!(store.get("bkt", "a").unwrap_err().code, "NoSuchKey");
        assert_eq!(store.get("nope", "a").unwrap_err().code, "NoSuchBucket");
        assert_eq!(store.create_bucket("Bad_Name", "us-east-1", now).unwrap_err().code, "InvalidBucketName");
    }
}
