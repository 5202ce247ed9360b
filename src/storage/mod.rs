//! Where the warehouse lives: a local folder or an S3 prefix. Everything
//! that writes or reads the warehouse goes through [`Warehouse`], with paths
//! relative to its root (`staging/stg_orders.parquet`, `_wh/runs/...`).
//!
//! Publishing is atomic on both. Locally a file is written beside its final
//! name, synced, and renamed. On S3, which has no rename, a file is written
//! to a local scratch folder and uploaded as one object: a single PUT, or
//! for large files a multipart upload, which S3 makes visible only when it
//! completes. A reader sees the previous object or the new one; no
//! temporary object is ever created under the prefix.

mod commit;
mod delta;
pub mod http;
mod lock;
pub mod publish;

pub use commit::{CommitError, Entry, RolledForward, JOURNAL, STAGED};
pub use delta::{ALL_FEATURES_HINT, NO_DELTA};
pub use lock::{LockError, WarehouseLock, LOCK};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use url::Url;

use crate::project::config::S3Settings;
use publish::Staged;

/// Files larger than this are uploaded in parts.
const MULTIPART_THRESHOLD: u64 = 64 * 1024 * 1024;
/// Part size of a multipart upload.
const PART_SIZE: usize = 16 * 1024 * 1024;

/// A local or S3 warehouse.
#[derive(Clone, Debug)]
pub enum Warehouse {
    Local(PathBuf),
    Remote(Arc<Remote>),
}

/// Where sessions on a cluster write what their executors read.
pub const SCRATCH: &str = "_wh/scratch";

/// An S3 warehouse: a bucket and a prefix, and a local scratch folder where
/// files are written before they are uploaded.
#[derive(Debug)]
pub struct Remote {
    /// `s3://bucket/prefix` without a trailing slash.
    pub url: String,
    pub bucket: String,
    pub prefix: String,
    pub store: Arc<dyn ObjectStore>,
    scratch: tempfile::TempDir,
}

/// A failure reaching or writing the warehouse.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    pub message: String,
    pub hint: Option<String>,
}

impl From<String> for StorageError {
    fn from(message: String) -> Self {
        StorageError { message, hint: None }
    }
}

impl StorageError {
    fn io(self) -> std::io::Error {
        std::io::Error::other(self.message)
    }
}

/// Splits `s3://bucket/key` into bucket and key.
pub fn split_s3(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

/// Builds an S3 client for `bucket` from the target's settings and the
/// standard AWS environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`, web identity, instance metadata),
/// falling back to the shared credentials file for `$AWS_PROFILE`.
pub fn s3_store(bucket: &str, settings: &S3Settings) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        // A few quick retries: a scheduled build should fail in seconds, not
        // minutes, when the store is down.
        .with_retry(RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(15), ..Default::default() });
    if let Some(region) = &settings.region {
        builder = builder.with_region(region);
    } else if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
        builder = builder.with_region("us-east-1");
    }
    if let Some(allow) = settings.allow_http {
        builder = builder.with_allow_http(allow);
    }
    if let Some(path_style) = settings.path_style {
        builder = builder.with_virtual_hosted_style_request(!path_style);
    }
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        if let Some(c) = profile_credentials() {
            builder = builder.with_access_key_id(c.key_id).with_secret_access_key(c.secret);
            if let Some(token) = c.token {
                builder = builder.with_token(token);
            }
        }
    }
    // The builder's own error text names settings, never secret values.
    let store = builder.build().map_err(|e| StorageError {
        message: format!("cannot set up S3 for bucket `{bucket}`: {e}"),
        hint: Some("check the target's `s3:` settings (region, endpoint, path_style, allow_http)".into()),
    })?;
    Ok(Arc::new(store))
}

struct ProfileCredentials {
    key_id: String,
    secret: String,
    token: Option<String>,
}

/// Reads `$AWS_PROFILE` (default `default`) from the shared credentials file
/// (`$AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`).
fn profile_credentials() -> Option<ProfileCredentials> {
    let file = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws").join("credentials")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    parse_profile(&text, &profile)
}

fn parse_profile(text: &str, profile: &str) -> Option<ProfileCredentials> {
    let mut in_profile = false;
    let (mut key_id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') && line.ends_with(']') {
            in_profile = line[1..line.len() - 1].trim() == profile;
            continue;
        }
        let Some((k, v)) = line.split_once('=').filter(|_| in_profile) else { continue };
        let v = v.trim().to_string();
        match k.trim() {
            "aws_access_key_id" => key_id = Some(v),
            "aws_secret_access_key" => secret = Some(v),
            "aws_session_token" => token = Some(v),
            _ => {}
        }
    }
    Some(ProfileCredentials { key_id: key_id?, secret: secret?, token })
}

/// Returns a readable cause for an object store error, without secrets:
/// object_store's messages carry the request and the server's answer.
fn describe(err: &object_store::Error) -> String {
    let text = err.to_string();
    if text.contains("InvalidAccessKeyId") || text.contains("SignatureDoesNotMatch") || text.contains("403") {
        return "access denied: the credentials were refused".to_string();
    }
    text
}

impl Warehouse {
    /// Opens the warehouse at `location`: a local folder (absolute), or
    /// `s3://bucket/prefix`.
    pub fn open(location: &str, local: Option<PathBuf>, s3: &S3Settings) -> Result<Warehouse, StorageError> {
        if let Some(path) = local {
            return Ok(Warehouse::Local(path));
        }
        let Some((bucket, prefix)) = split_s3(location) else {
            return Err(StorageError {
                message: format!("warehouse `{location}`: only local folders and s3:// URLs are supported"),
                hint: Some("use a folder, or s3://bucket/prefix".into()),
            });
        };
        let store = s3_store(bucket, s3)?;
        let scratch = tempfile::Builder::new()
            .prefix("wh-scratch-")
            .tempdir()
            .map_err(|e| StorageError { message: format!("cannot create a local scratch folder: {e}"), hint: None })?;
        let prefix = prefix.trim_matches('/').to_string();
        Ok(Warehouse::Remote(Arc::new(Remote {
            url: format!("s3://{bucket}/{prefix}").trim_end_matches('/').to_string(),
            bucket: bucket.to_string(),
            prefix,
            store,
            scratch,
        })))
    }

    /// Returns why writing `rel` would leave the warehouse: a `..` or an
    /// absolute part, or (locally) a folder on its way that is a link to a
    /// place outside the root.
    pub fn escapes(&self, rel: &str) -> Option<String> {
        use std::path::Component;
        let path = Path::new(rel);
        if path.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Some(format!("`{rel}` is not a path inside the warehouse"));
        }
        let Warehouse::Local(root) = self else { return None };
        let inside = root.canonicalize().ok()?;
        let mut at = root.clone();
        for part in path.components() {
            at.push(part);
            let Ok(real) = at.canonicalize() else { break };
            if !real.starts_with(&inside) {
                return Some(format!("`{}` leads to `{}`, outside the warehouse", at.display(), real.display()));
            }
        }
        None
    }

    /// Returns the local root, for a local warehouse.
    pub fn local_root(&self) -> Option<&Path> {
        match self {
            Warehouse::Local(p) => Some(p),
            Warehouse::Remote(_) => None,
        }
    }

    /// Returns where `rel` lives: an absolute path or an `s3://` URL.
    pub fn location(&self, rel: &str) -> String {
        match self {
            Warehouse::Local(root) => root.join(rel).to_string_lossy().into_owned(),
            Warehouse::Remote(r) => format!("{}/{}", r.url, rel.trim_start_matches('/')),
        }
    }

    /// Returns the root for messages.
    pub fn display(&self) -> String {
        match self {
            Warehouse::Local(root) => root.display().to_string(),
            Warehouse::Remote(r) => r.url.clone(),
        }
    }

    fn key(r: &Remote, rel: &str) -> ObjectPath {
        let rel = rel.trim_start_matches('/');
        ObjectPath::from(if r.prefix.is_empty() { rel.to_string() } else { format!("{}/{rel}", r.prefix) })
    }

    /// Returns the local file a table for `rel` is written to before it is
    /// published: its final path locally, a scratch file for S3.
    pub fn staging_path(&self, rel: &str) -> PathBuf {
        match self {
            Warehouse::Local(root) => root.join(rel),
            Warehouse::Remote(r) => r.scratch.path().join(rel),
        }
    }

    /// The local folder where a session on a cluster writes the files its
    /// executors read instead of wh's memory: under `_wh/scratch/` in a
    /// local warehouse (a path every executor reaches), else a scratch
    /// folder whose files [`Warehouse::share`] uploads.
    pub fn scratch_dir(&self, run: &str) -> PathBuf {
        match self {
            Warehouse::Local(root) => root.join(SCRATCH).join(run),
            Warehouse::Remote(r) => r.scratch.path().join(SCRATCH).join(run),
        }
    }

    /// Returns where executors read the local file `file`, written for
    /// them: the file itself in a local warehouse, else its copy uploaded
    /// to `rel` (under `_wh/scratch/`).
    pub async fn share(&self, file: &Path, rel: &str) -> Result<String, StorageError> {
        match self {
            Warehouse::Local(_) => Ok(file.to_string_lossy().into_owned()),
            Warehouse::Remote(r) => {
                upload(r, file, &Self::key(r, rel)).await?;
                Ok(self.location(rel))
            }
        }
    }

    /// Removes a run's scratch files (`_wh/scratch/<run>/`).
    pub async fn remove_scratch(&self, run: &str) {
        let dir = self.scratch_dir(run);
        let _ = std::fs::remove_dir_all(&dir);
        // `_wh/scratch` itself, once no run has files in it.
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
        if let Warehouse::Remote(r) = self {
            let prefix = Self::key(r, &format!("{SCRATCH}/{run}"));
            let keys: Vec<_> = r.store.list(Some(&prefix)).try_collect().await.unwrap_or_default();
            for meta in keys {
                let _ = r.store.delete(&meta.location).await;
            }
        }
    }

    /// Makes a staged file visible at `rel`, whole or not at all.
    pub async fn publish(&self, staged: &Staged, rel: &str) -> std::io::Result<()> {
        match self {
            Warehouse::Local(_) => publish::publish(staged),
            Warehouse::Remote(r) => {
                let result = upload(r, &staged.temp, &Self::key(r, rel)).await;
                publish::discard(staged);
                result.map_err(StorageError::io)
            }
        }
    }

    /// Writes `bytes` to `rel` atomically.
    pub async fn put(&self, rel: &str, bytes: Vec<u8>) -> std::io::Result<()> {
        match self {
            Warehouse::Local(root) => publish::write_atomic(&root.join(rel), &bytes),
            Warehouse::Remote(r) => r
                .store
                .put(&Self::key(r, rel), PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(|e| std::io::Error::other(format!("{}: {}", self.location(rel), describe(&e)))),
        }
    }

    /// Reads `rel`, or `None` when it does not exist.
    pub async fn get(&self, rel: &str) -> std::io::Result<Option<Bytes>> {
        match self {
            Warehouse::Local(root) => match std::fs::read(root.join(rel)) {
                Ok(b) => Ok(Some(Bytes::from(b))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            Warehouse::Remote(r) => match r.store.get(&Self::key(r, rel)).await {
                Ok(got) => got.bytes().await.map(Some).map_err(|e| std::io::Error::other(describe(&e))),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(std::io::Error::other(format!("{}: {}", self.location(rel), describe(&e)))),
            },
        }
    }

    /// Returns the size of `rel` in bytes.
    pub async fn size(&self, rel: &str) -> std::io::Result<u64> {
        match self {
            Warehouse::Local(root) => Ok(std::fs::metadata(root.join(rel))?.len()),
            Warehouse::Remote(r) => {
                r.store.head(&Self::key(r, rel)).await.map(|m| m.size).map_err(|e| std::io::Error::other(describe(&e)))
            }
        }
    }

    /// Reads the bytes `range` of `rel` (one ranged GET on S3).
    pub async fn read_range(&self, rel: &str, range: std::ops::Range<u64>) -> std::io::Result<Bytes> {
        match self {
            Warehouse::Local(root) => {
                use std::io::{Read, Seek, SeekFrom};
                let mut file = std::fs::File::open(root.join(rel))?;
                file.seek(SeekFrom::Start(range.start))?;
                let mut buf = vec![0; (range.end - range.start) as usize];
                file.read_exact(&mut buf)?;
                Ok(Bytes::from(buf))
            }
            Warehouse::Remote(r) => {
                r.store.get_range(&Self::key(r, rel), range).await.map_err(|e| std::io::Error::other(describe(&e)))
            }
        }
    }

    /// Returns whether `rel` exists (a file, or a folder with files).
    pub async fn exists(&self, rel: &str) -> std::io::Result<bool> {
        match self {
            Warehouse::Local(root) => Ok(root.join(rel).exists()),
            Warehouse::Remote(r) => {
                let key = Self::key(r, rel);
                match r.store.head(&key).await {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::NotFound { .. }) => {
                        let mut list = r.store.list(Some(&key));
                        Ok(list.try_next().await.map_err(|e| std::io::Error::other(describe(&e)))?.is_some())
                    }
                    Err(e) => Err(std::io::Error::other(format!("{}: {}", self.location(rel), describe(&e)))),
                }
            }
        }
    }

    /// Returns the names of the folders directly under `rel`.
    pub async fn list_folders(&self, rel: &str) -> std::io::Result<Vec<String>> {
        match self {
            Warehouse::Local(root) => {
                let mut out = Vec::new();
                for entry in std::fs::read_dir(root.join(rel))? {
                    let entry = entry?;
                    if entry.file_type()?.is_dir() {
                        out.push(entry.file_name().to_string_lossy().into_owned());
                    }
                }
                out.sort();
                Ok(out)
            }
            Warehouse::Remote(r) => {
                let listed = r
                    .store
                    .list_with_delimiter(Some(&Self::key(r, rel)))
                    .await
                    .map_err(|e| std::io::Error::other(describe(&e)))?;
                Ok(listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect())
            }
        }
    }

    /// Removes the folder `rel` and everything under it.
    pub async fn remove_folder(&self, rel: &str) -> std::io::Result<()> {
        match self {
            Warehouse::Local(root) => std::fs::remove_dir_all(root.join(rel)),
            Warehouse::Remote(r) => {
                let keys: Vec<ObjectPath> = r
                    .store
                    .list(Some(&Self::key(r, rel)))
                    .map_ok(|m| m.location)
                    .try_collect()
                    .await
                    .map_err(|e| std::io::Error::other(describe(&e)))?;
                for key in keys {
                    r.store.delete(&key).await.map_err(|e| std::io::Error::other(describe(&e)))?;
                }
                Ok(())
            }
        }
    }

    /// Checks that the warehouse can be reached with the credentials at
    /// hand, so that a refused login fails the run before any model.
    pub async fn check_access(&self) -> Result<(), StorageError> {
        let Warehouse::Remote(r) = self else { return Ok(()) };
        let prefix = ObjectPath::from(r.prefix.as_str());
        match r.store.list_with_delimiter(Some(&prefix)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(StorageError {
                message: format!("cannot reach warehouse `{}`: {}", r.url, describe(&e)),
                hint: Some(
                    "credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the AWS_PROFILE in \
                     ~/.aws/credentials; check them and the target's s3 endpoint"
                        .into(),
                ),
            }),
        }
    }

    /// Removes what an interrupted run left (the caller holds the lock, so
    /// nothing of it is in use): locally temporary files and a cluster
    /// run's scratch files; on S3 the objects under `_wh/scratch/` and
    /// `_wh/staged/` (an unfinished multipart upload is never visible).
    /// Call it after [`Warehouse::roll_forward`]. Returns how many.
    pub async fn remove_leftovers(&self) -> usize {
        match self {
            Warehouse::Local(root) => {
                let scratch = usize::from(std::fs::remove_dir_all(root.join(SCRATCH)).is_ok());
                let _ = std::fs::remove_dir(root.join(STAGED));
                publish::remove_leftovers(root) + scratch
            }
            Warehouse::Remote(r) => {
                let mut removed = 0;
                for rel in [SCRATCH, STAGED] {
                    let prefix = Self::key(r, rel);
                    let keys: Vec<_> = r.store.list(Some(&prefix)).try_collect().await.unwrap_or_default();
                    for meta in keys {
                        removed += usize::from(r.store.delete(&meta.location).await.is_ok());
                    }
                }
                removed
            }
        }
    }
}

/// Uploads a local file to `key` as one object.
async fn upload(r: &Remote, file: &Path, key: &ObjectPath) -> Result<(), StorageError> {
    upload_with(r.store.as_ref(), &r.url, file, key, MULTIPART_THRESHOLD, PART_SIZE).await
}

/// Uploads `file` in one PUT up to `threshold` bytes, else in parts of
/// `part_size` (S3 shows the object only once the upload completes).
async fn upload_with(
    store: &dyn ObjectStore,
    url: &str,
    file: &Path,
    key: &ObjectPath,
    threshold: u64,
    part_size: usize,
) -> Result<(), StorageError> {
    let fail = |what: String| StorageError { message: format!("cannot upload to {url}/{key}: {what}"), hint: None };
    let size = std::fs::metadata(file).map_err(|e| fail(e.to_string()))?.len();
    if size <= threshold {
        let bytes = std::fs::read(file).map_err(|e| fail(e.to_string()))?;
        store.put(key, PutPayload::from(bytes)).await.map_err(|e| fail(describe(&e)))?;
        return Ok(());
    }
    let upload = store.put_multipart(key).await.map_err(|e| fail(describe(&e)))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
    let mut reader = std::fs::File::open(file).map_err(|e| fail(e.to_string()))?;
    let mut buf = vec![0u8; part_size];
    loop {
        let n = std::io::Read::read(&mut reader, &mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        writer.wait_for_capacity(4).await.map_err(|e| fail(describe(&e)))?;
        writer.write(&buf[..n]);
    }
    writer.finish().await.map_err(|e| fail(describe(&e)))?;
    Ok(())
}

/// Returns the URL (`s3://bucket`) of each bucket among `locations`.
pub fn buckets<'a>(locations: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = locations.into_iter().filter_map(split_s3).map(|(b, _)| b.to_string()).collect();
    out.sort();
    out.dedup();
    out
}

/// S3 clients by bucket: the warehouse's and the sources'.
pub type Stores = std::collections::BTreeMap<String, Arc<dyn ObjectStore>>;

/// Returns `s3://bucket` as a URL, for registering a store with DataFusion.
pub fn bucket_url(bucket: &str) -> Option<Url> {
    Url::parse(&format!("s3://{bucket}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[ci]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=E\n";
        let d = parse_profile(text, "default").unwrap();
        assert_eq!((d.key_id.as_str(), d.secret.as_str(), d.token), ("A", "B", None));
        let c = parse_profile(text, "ci").unwrap();
        assert_eq!((c.key_id.as_str(), c.token.as_deref()), ("C", Some("E")));
        assert!(parse_profile(text, "other").is_none());
    }

    #[tokio::test]
    async fn large_files_are_uploaded_in_parts_and_appear_whole() {
        let store = object_store::memory::InMemory::new();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big.parquet");
        let data: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(&file, &data).unwrap();
        let key = ObjectPath::from("p/big.parquet");
        // 40,000 bytes in parts of 4,096: the multipart path.
        upload_with(&store, "mem://", &file, &key, 1024, 4096).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap().bytes().await.unwrap().as_ref(), data.as_slice());
        // Below the threshold: one PUT.
        let small = ObjectPath::from("p/small.parquet");
        upload_with(&store, "mem://", &file, &small, 1 << 20, 4096).await.unwrap();
        assert_eq!(store.get(&small).await.unwrap().bytes().await.unwrap().len(), data.len());
    }

    #[test]
    fn s3_urls() {
        assert_eq!(split_s3("s3://b/p/x.parquet"), Some(("b", "p/x.parquet")));
        assert_eq!(split_s3("s3://b"), Some(("b", "")));
        assert_eq!(split_s3("/tmp/x"), None);
        assert_eq!(buckets(["s3://b/x", "/local", "s3://a/y", "s3://b/z"]), vec!["a", "b"]);
    }
}
