//! Blobs in an S3-compatible object store, through the `object_store` crate.
//!
//! [`ObjectBlobStore`] is the [`BlobStore`] behind `--blobs s3://BUCKET[/PREFIX]?endpoint=...`:
//! nodes sharing a PostgreSQL store can share one bucket instead of one file system.
//! It speaks to any [`ObjectStore`], so the tests can also run it against an in-memory store.
//!
//! # Object names
//!
//! Blob keys are arbitrary strings (`s3/object/<uuid>`, but also anything with `..`, empty
//! segments or control characters), while object names have rules (`object_store` refuses empty
//! segments, `.` and `..`; S3 limits a name to 1,024 bytes).
//! A key is split at `/` and each segment is written with every byte outside `[A-Za-z0-9._-]`
//! as `%XX` (upper-case hex); `.` and `..` become `%2E` and `%2E%2E`, and an empty segment becomes
//! `=`, which the escaping never produces.
//! The mapping is one-to-one, so [`BlobStore::list`] recovers keys from object names, and the
//! usual keys stay readable in the bucket (`PREFIX/s3/object/<uuid>`).
//! Objects under the prefix whose names are not such an encoding (written by someone else) are
//! never listed.
//! Keys whose object name would exceed 1,024 bytes are refused with [`BlobError::InvalidKey`].
//!
//! # Bounded memory
//!
//! A put reads the body until it has [`PART_SIZE`] bytes.
//! A body that ends first is sent as one `PutObject`, atomically replacing any previous blob.
//! A longer one becomes a multipart upload of [`PART_SIZE`] parts, at most [`PARTS_IN_FLIGHT`]
//! of them uploading while the next one fills, so a put holds at most
//! `(PARTS_IN_FLIGHT + 1) * PART_SIZE` bytes (15 MiB) whatever the body's size.
//! The object appears only when the upload completes; a failing body aborts the upload, so the
//! previous blob stays in place, as with [`crate::FsBlobStore`].
//! Parts all have one size, as some S3-compatible stores require; 10,000 parts of 5 MiB allow
//! blobs of 48 GiB, more than S3's largest single upload (5 GiB), the largest blob Citadel writes.
//!
//! # Known weaknesses
//!
//! A put whose future is dropped midway (the client went away) leaves its multipart upload
//! incomplete in the bucket: configure the bucket to abort incomplete uploads after a day.
//! `delete` asks whether the object exists before deleting it, because S3 deletes answer alike
//! either way, so its answer is only as good as that race allows (it is used only for logging).
//! Backups (`citadel backup`) do not copy blobs kept here: the object store keeps them, and its
//! own versioning or replication is what protects them.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::blob::{BlobError, BlobRead, BlobStore, ByteStream, READ_CHUNK};

/// The size of every part of a multipart upload but the last, and the largest body sent in one
/// `PutObject` (S3's smallest part is 5 MiB).
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// How many parts of one put upload at once.
pub const PARTS_IN_FLIGHT: usize = 2;

/// The longest object name S3 accepts, in bytes.
const MAX_OBJECT_NAME: usize = 1024;

/// How an empty key segment is written (the escaping never produces `=`).
const EMPTY_SEGMENT: &str = "=";

/// Why an object blob store could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ObjectBlobError {
    /// The `s3://` URL is malformed.
    #[error("invalid blob store URL: {0}")]
    InvalidUrl(String),
    /// No credentials were found in the environment.
    #[error(
        "no credentials for the blob store: set CITADEL_BLOBS_ACCESS_KEY_ID and \
         CITADEL_BLOBS_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    )]
    MissingCredentials,
    /// `object_store` refused the configuration.
    #[error(transparent)]
    Backend(#[from] object_store::Error),
}

/// Where an S3-compatible blob store is, from `s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The object name prefix under which blobs live, without slashes at either end; may be empty.
    pub prefix: String,
    /// The endpoint (`http://host:port`), or `None` for AWS itself.
    pub endpoint: Option<String>,
    /// The signing region; `us-east-1` unless given.
    pub region: String,
}

impl S3Location {
    /// Parses `s3://BUCKET[/PREFIX][?endpoint=URL][&region=REGION]`; query values may be
    /// percent-encoded.
    ///
    /// # Errors
    /// [`ObjectBlobError::InvalidUrl`] when the scheme, the bucket or a parameter is wrong.
    pub fn parse(url: &str) -> Result<Self, ObjectBlobError> {
        let invalid = |why: &str| ObjectBlobError::InvalidUrl(format!("{why} in {url:?}"));
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("expected s3://BUCKET[/PREFIX]"))?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.is_empty() {
            return Err(invalid("no bucket"));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() && Path::parse(prefix).is_err() {
            return Err(invalid("the prefix is not a valid object name"));
        }
        let mut parsed = Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: None,
            region: "us-east-1".to_owned(),
        };
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).ok_or_else(|| invalid("bad percent-encoding"))?;
            match name {
                "endpoint" => parsed.endpoint = Some(value),
                "region" => parsed.region = value,
                _ => return Err(invalid(&format!("unknown parameter {name:?}"))),
            }
        }
        Ok(parsed)
    }
}

/// Credentials for the blob store.
#[derive(Clone)]
pub struct S3Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Credentials {
    /// Reads `CITADEL_BLOBS_ACCESS_KEY_ID`, `CITADEL_BLOBS_SECRET_ACCESS_KEY` and
    /// `CITADEL_BLOBS_SESSION_TOKEN`, or, when the first is unset, the standard `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, through `var`.
    ///
    /// The two sets are never mixed, so a session token meant for Citadel's own clients does not
    /// end up beside the blob store's long-term key.
    ///
    /// # Errors
    /// [`ObjectBlobError::MissingCredentials`] when neither set is complete.
    pub fn from_env_with(var: impl Fn(&str) -> Option<String>) -> Result<Self, ObjectBlobError> {
        let set = |prefix: &str| -> Option<Result<Self, ObjectBlobError>> {
            let access_key_id = var(&format!("{prefix}ACCESS_KEY_ID")).filter(|v| !v.is_empty())?;
            Some(
                match var(&format!("{prefix}SECRET_ACCESS_KEY")).filter(|v| !v.is_empty()) {
                    Some(secret_access_key) => Ok(Self {
                        access_key_id,
                        secret_access_key,
                        session_token: var(&format!("{prefix}SESSION_TOKEN")).filter(|v| !v.is_empty()),
                    }),
                    None => Err(ObjectBlobError::MissingCredentials),
                },
            )
        };
        set("CITADEL_BLOBS_")
            .or_else(|| set("AWS_"))
            .unwrap_or(Err(ObjectBlobError::MissingCredentials))
    }

    /// [`S3Credentials::from_env_with`] over the process environment.
    ///
    /// # Errors
    /// [`ObjectBlobError::MissingCredentials`].
    pub fn from_env() -> Result<Self, ObjectBlobError> {
        Self::from_env_with(|name| std::env::var(name).ok())
    }
}

/// A [`BlobStore`] in an object store (see the module docs for the object names).
#[derive(Debug, Clone)]
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
    /// The prefix with a trailing `/`, or empty.
    prefix: String,
}

impl ObjectBlobStore {
    /// Keeps blobs in `store` under `prefix` (an object name such as `citadel/blobs`, or empty).
    ///
    /// # Errors
    /// [`ObjectBlobError::InvalidUrl`] when the prefix is not a valid object name.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Self, ObjectBlobError> {
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            Path::parse(prefix).map_err(|err| ObjectBlobError::InvalidUrl(format!("prefix {prefix:?}: {err}")))?;
            format!("{prefix}/")
        };
        Ok(Self { store, prefix })
    }

    /// Connects to an S3-compatible store, with path-style requests and plain HTTP allowed
    /// (self-hosted stores rarely have wildcard DNS or a certificate).
    ///
    /// Nothing is sent yet: a wrong endpoint or key shows on the first blob operation.
    ///
    /// # Errors
    /// `object_store` refuses the configuration.
    pub fn s3(location: &S3Location, credentials: &S3Credentials) -> Result<Self, ObjectBlobError> {
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&location.bucket)
            .with_region(&location.region)
            .with_access_key_id(&credentials.access_key_id)
            .with_secret_access_key(&credentials.secret_access_key)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false);
        if let Some(token) = &credentials.session_token {
            builder = builder.with_token(token);
        }
        if let Some(endpoint) = &location.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        Self::new(Arc::new(builder.build()?), &location.prefix)
    }

    /// [`ObjectBlobStore::s3`] for an `s3://` URL, with credentials from the environment
    /// ([`S3Credentials::from_env`]).
    ///
    /// # Errors
    /// A malformed URL, missing credentials, or a configuration `object_store` refuses.
    pub fn from_url(url: &str) -> Result<Self, ObjectBlobError> {
        Self::s3(&S3Location::parse(url)?, &S3Credentials::from_env()?)
    }

    /// The object name of `key`.
    fn path_of(&self, key: &str) -> Result<Path, BlobError> {
        if key.is_empty() {
            return Err(BlobError::InvalidKey);
        }
        let mut name = self.prefix.clone();
        encode_key(key, &mut name);
        if name.len() > MAX_OBJECT_NAME {
            return Err(BlobError::InvalidKey);
        }
        Path::parse(name).map_err(|_| BlobError::InvalidKey)
    }

    /// The key of an object name, or `None` for an object this store did not write.
    fn key_of(&self, name: &str) -> Option<String> {
        let encoded = name.strip_prefix(self.prefix.as_str())?;
        let mut key = String::with_capacity(encoded.len());
        for (index, segment) in encoded.split('/').enumerate() {
            if index > 0 {
                key.push('/');
            }
            key.push_str(&decode_segment(segment)?);
        }
        Some(key)
    }

    /// The size of an object, or `None` when there is none.
    async fn size_of(&self, path: &Path) -> Result<Option<u64>, BlobError> {
        match self.store.head(path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(backend(err)),
        }
    }

    /// Sends a body longer than one part as a multipart upload; `head` holds what was read so far.
    async fn put_multipart(&self, path: &Path, head: Vec<Bytes>, mut body: ByteStream) -> Result<u64, BlobError> {
        let upload = self.store.put_multipart(path).await.map_err(backend)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut size: u64 = 0;
        for chunk in head {
            size += chunk.len() as u64;
            writer.put(chunk);
        }
        loop {
            // Wait before reading more, so that at most PARTS_IN_FLIGHT parts are in memory
            // besides the one filling.
            if let Err(err) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                // Best effort: the upload is dropped either way, and a leftover is only space.
                let _ = writer.abort().await;
                return Err(backend(err));
            }
            match body.next().await {
                Some(Ok(chunk)) => {
                    size += chunk.len() as u64;
                    writer.put(chunk);
                }
                Some(Err(err)) => {
                    let _ = writer.abort().await;
                    return Err(BlobError::Io(err));
                }
                None => break,
            }
        }
        writer.finish().await.map_err(backend)?;
        Ok(size)
    }
}

#[async_trait::async_trait]
impl BlobStore for ObjectBlobStore {
    async fn put(&self, key: &str, mut body: ByteStream) -> Result<u64, BlobError> {
        let path = self.path_of(key)?;
        let mut head = Vec::new();
        let mut buffered = 0usize;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            buffered += chunk.len();
            head.push(chunk);
            if buffered > PART_SIZE {
                return self.put_multipart(&path, head, body).await;
            }
        }
        let payload: PutPayload = head.into_iter().collect();
        self.store.put(&path, payload).await.map_err(backend)?;
        Ok(buffered as u64)
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<BlobRead, BlobError> {
        let path = self.path_of(key)?;
        let options = match range {
            // A non-empty range is asked for directly; S3 clamps its end to the object's size.
            Some((start, end)) if start < end => GetOptions::new().with_range(Some(GetRange::Bounded(start..end))),
            // An empty range cannot be asked for (S3 answers 416): only the size is needed.
            Some((start, end)) => {
                let size = self.size_of(&path).await?.ok_or(BlobError::NotFound)?;
                return empty_read(start, end, size);
            }
            None => GetOptions::new(),
        };
        let result = match self.store.get_opts(&path, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Err(BlobError::NotFound),
            Err(err) => {
                // A range starting at or past the end is refused by S3 (416), where a blob store
                // answers an empty read or InvalidRange: the size tells which.
                let Some((start, end)) = range else {
                    return Err(backend(err));
                };
                let size = self.size_of(&path).await?.ok_or(BlobError::NotFound)?;
                if start < size {
                    return Err(backend(err));
                }
                return empty_read(start, end, size);
            }
        };
        let size = result.meta.size;
        let (start, end) = (result.range.start, result.range.end);
        let body = result
            .into_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other))
            .flat_map(|chunk| futures::stream::iter(split_chunk(chunk)));
        Ok(BlobRead {
            size,
            start,
            end,
            body: body.boxed(),
        })
    }

    async fn delete(&self, key: &str) -> Result<bool, BlobError> {
        let path = self.path_of(key)?;
        if self.size_of(&path).await?.is_none() {
            return Ok(false);
        }
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(err) => Err(backend(err)),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        let path = self.path_of(key)?;
        Ok(self.size_of(&path).await?.is_some())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        // List the deepest whole directory the prefix names, then filter by the rest of it.
        let directory = match prefix.rfind('/') {
            Some(slash) => {
                let mut name = self.prefix.clone();
                encode_key(prefix.get(..slash).unwrap_or_default(), &mut name);
                Some(Path::parse(name).map_err(|_| BlobError::InvalidKey)?)
            }
            None if self.prefix.is_empty() => None,
            None => Some(Path::parse(&self.prefix).map_err(|_| BlobError::InvalidKey)?),
        };
        let mut objects: BoxStream<'static, object_store::Result<object_store::ObjectMeta>> =
            self.store.list(directory.as_ref());
        let mut keys = Vec::new();
        while let Some(object) = objects.next().await {
            let object = object.map_err(backend)?;
            if let Some(key) = self.key_of(object.location.as_ref())
                && key.starts_with(prefix)
            {
                keys.push(key);
            }
        }
        keys.sort();
        Ok(keys)
    }
}

/// An empty read at `start`, or [`BlobError::InvalidRange`] as [`crate::FsBlobStore`] answers.
fn empty_read(start: u64, end: u64, size: u64) -> Result<BlobRead, BlobError> {
    if start > end || start > size {
        return Err(BlobError::InvalidRange { start, end, size });
    }
    Ok(BlobRead {
        size,
        start,
        end: start,
        body: futures::stream::empty().boxed(),
    })
}

/// Splits a received chunk into pieces of at most [`READ_CHUNK`] bytes (without copying), so
/// readers see the same bound as with [`crate::FsBlobStore`].
fn split_chunk(chunk: Result<Bytes, std::io::Error>) -> Vec<Result<Bytes, std::io::Error>> {
    match chunk {
        Ok(mut bytes) if bytes.len() > READ_CHUNK => {
            let mut pieces = Vec::with_capacity(bytes.len().div_ceil(READ_CHUNK));
            while bytes.len() > READ_CHUNK {
                pieces.push(Ok(bytes.split_to(READ_CHUNK)));
            }
            pieces.push(Ok(bytes));
            pieces
        }
        other => vec![other],
    }
}

fn backend(err: object_store::Error) -> BlobError {
    match err {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        object_store::Error::InvalidPath { .. } => BlobError::InvalidKey,
        other => BlobError::Io(std::io::Error::other(other)),
    }
}

/// Bytes a key segment keeps as they are.
fn is_kept(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.')
}

/// Appends the object name of `key` (segment by segment, see the module docs) to `out`.
fn encode_key(key: &str, out: &mut String) {
    for (index, segment) in key.split('/').enumerate() {
        if index > 0 {
            out.push('/');
        }
        encode_segment(segment, out);
    }
}

fn encode_segment(segment: &str, out: &mut String) {
    match segment {
        "" => out.push_str(EMPTY_SEGMENT),
        "." => out.push_str("%2E"),
        ".." => out.push_str("%2E%2E"),
        _ => {
            for byte in segment.bytes() {
                if is_kept(byte) {
                    out.push(char::from(byte));
                } else {
                    out.push('%');
                    out.push_str(&hex::encode_upper([byte]));
                }
            }
        }
    }
}

/// The key segment written as `encoded`, or `None` unless `encoded` is exactly what
/// [`encode_segment`] writes for it (so each object name has at most one key).
fn decode_segment(encoded: &str) -> Option<String> {
    if encoded == EMPTY_SEGMENT {
        return Some(String::new());
    }
    let segment = percent_decode(encoded)?;
    let mut again = String::with_capacity(encoded.len());
    encode_segment(&segment, &mut again);
    (again == encoded && !segment.is_empty()).then_some(segment)
}

/// Decodes `%XX` escapes; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'%' {
            let pair = [bytes.next()?, bytes.next()?];
            let mut decoded = [0u8; 1];
            hex::decode_to_slice(pair, &mut decoded).ok()?;
            out.extend_from_slice(&decoded);
        } else {
            out.push(byte);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn chunks(parts: Vec<Vec<u8>>) -> ByteStream {
        futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p)))).boxed()
    }

    async fn read_all(read: BlobRead) -> Vec<u8> {
        let mut out = Vec::new();
        let mut body = read.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap();
            assert!(chunk.len() <= READ_CHUNK);
            out.extend_from_slice(&chunk);
        }
        out
    }

    fn memory(prefix: &str) -> (Arc<object_store::memory::InMemory>, ObjectBlobStore) {
        let inner = Arc::new(object_store::memory::InMemory::new());
        let blobs = ObjectBlobStore::new(inner.clone(), prefix).unwrap();
        (inner, blobs)
    }

    #[test]
    fn keys_map_to_object_names_and_back() {
        let (_, blobs) = memory("citadel/blobs");
        let cases = [
            ("s3/object/5f0c-11", "citadel/blobs/s3/object/5f0c-11"),
            ("a.b_c-d", "citadel/blobs/a.b_c-d"),
            ("../x", "citadel/blobs/%2E%2E/x"),
            ("/etc/passwd", "citadel/blobs/=/etc/passwd"),
            ("a//b/", "citadel/blobs/a/=/b/="),
            ("sp ace%/nul\0", "citadel/blobs/sp%20ace%25/nul%00"),
            ("é", "citadel/blobs/%C3%A9"),
            ("=", "citadel/blobs/%3D"),
        ];
        for (key, name) in cases {
            let path = blobs.path_of(key).unwrap();
            assert_eq!(path.as_ref(), name, "{key:?}");
            assert_eq!(blobs.key_of(path.as_ref()).as_deref(), Some(key), "{key:?}");
        }
        // Names this store never writes are not keys.
        for foreign in [
            "other/x",
            "citadel/blobs/%61",
            "citadel/blobs/%2e",
            "citadel/blobs/a b",
            "citadel/blobs/%zz",
        ] {
            assert_eq!(blobs.key_of(foreign), None, "{foreign:?}");
        }
        assert!(matches!(blobs.path_of(""), Err(BlobError::InvalidKey)));
        assert!(matches!(blobs.path_of(&"k".repeat(1100)), Err(BlobError::InvalidKey)));
    }

    #[test]
    fn urls_and_credentials_parse() {
        let location =
            S3Location::parse("s3://blobbucket/citadel/blobs/?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-west-1")
                .unwrap();
        assert_eq!(
            location,
            S3Location {
                bucket: "blobbucket".into(),
                prefix: "citadel/blobs".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: "eu-west-1".into(),
            }
        );
        let plain = S3Location::parse("s3://b?endpoint=http://h:1").unwrap();
        assert_eq!((plain.prefix.as_str(), plain.region.as_str()), ("", "us-east-1"));
        assert_eq!(plain.endpoint.as_deref(), Some("http://h:1"));
        for bad in [
            "file:///x",
            "s3://",
            "s3:///p",
            "s3://b?color=red",
            "s3://b/a//c",
            "s3://b?region=%zz",
        ] {
            assert!(
                matches!(S3Location::parse(bad), Err(ObjectBlobError::InvalidUrl(_))),
                "{bad}"
            );
        }

        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_string())
        };
        let both = env(&[
            ("CITADEL_BLOBS_ACCESS_KEY_ID", "citadel"),
            ("CITADEL_BLOBS_SECRET_ACCESS_KEY", "citadel-secret"),
            ("AWS_ACCESS_KEY_ID", "aws"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ("AWS_SESSION_TOKEN", "aws-token"),
        ]);
        let credentials = S3Credentials::from_env_with(both).unwrap();
        assert_eq!(
            (credentials.access_key_id.as_str(), credentials.session_token.as_deref()),
            ("citadel", None),
            "the sets are not mixed"
        );
        assert!(!format!("{credentials:?}").contains("secret"));
        let aws = S3Credentials::from_env_with(env(&[
            ("AWS_ACCESS_KEY_ID", "aws"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ("AWS_SESSION_TOKEN", "aws-token"),
        ]))
        .unwrap();
        assert_eq!(aws.session_token.as_deref(), Some("aws-token"));
        assert!(matches!(
            S3Credentials::from_env_with(env(&[("CITADEL_BLOBS_ACCESS_KEY_ID", "x")])),
            Err(ObjectBlobError::MissingCredentials)
        ));
        assert!(matches!(
            S3Credentials::from_env_with(env(&[])),
            Err(ObjectBlobError::MissingCredentials)
        ));
    }

    #[tokio::test]
    async fn behaves_like_the_file_blob_store_in_memory() {
        let (inner, blobs) = memory("pre");
        let data: Vec<u8> = (0..300_000usize).map(|i| (i * 31 % 251) as u8).collect();
        let parts: Vec<Vec<u8>> = data.chunks(7_000).map(<[u8]>::to_vec).collect();
        assert_eq!(blobs.put("bucket/a.bin", chunks(parts)).await.unwrap(), 300_000);
        assert_eq!(read_all(blobs.get("bucket/a.bin", None).await.unwrap()).await, data);
        for ((start, end), want) in [
            ((0, 1), 0..1),
            ((10, 70_000), 10..70_000),
            ((299_990, 400_000), 299_990..300_000),
            ((5, 5), 5..5),
            ((300_000, 300_010), 300_000..300_000),
        ] {
            let read = blobs.get("bucket/a.bin", Some((start, end))).await.unwrap();
            assert_eq!((read.size, read.start, read.end), (300_000, start, want.end as u64));
            assert_eq!(read_all(read).await, data[want], "range {start}..{end}");
        }
        for bad in [(10, 5), (300_001, 300_002)] {
            assert!(matches!(
                blobs.get("bucket/a.bin", Some(bad)).await,
                Err(BlobError::InvalidRange { .. })
            ));
        }
        assert!(matches!(
            blobs.get("nothing", Some((0, 1))).await,
            Err(BlobError::NotFound)
        ));
        assert!(matches!(
            blobs.get("nothing", Some((0, 0))).await,
            Err(BlobError::NotFound)
        ));

        for key in ["b/2", "a/1", "a/2", "c", "ab"] {
            blobs.put(key, chunks(vec![key.as_bytes().to_vec()])).await.unwrap();
        }
        assert_eq!(blobs.list("a/").await.unwrap(), vec!["a/1", "a/2"]);
        assert_eq!(blobs.list("a").await.unwrap(), vec!["a/1", "a/2", "ab"]);
        assert!(blobs.delete("a/1").await.unwrap());
        assert!(!blobs.delete("a/1").await.unwrap());
        assert!(!blobs.exists("a/1").await.unwrap());
        // Objects that are not blobs, beside and under the prefix, are left out.
        inner
            .put(&Path::from("elsewhere"), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        inner
            .put(&Path::parse("pre/%61").unwrap(), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(
            blobs.list("").await.unwrap(),
            vec!["a/2", "ab", "b/2", "bucket/a.bin", "c"]
        );
    }

    /// An object store that keeps nothing, and records how many bytes were in flight at once.
    #[derive(Debug, Default)]
    struct Meter {
        in_flight: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
        stored: Arc<AtomicUsize>,
        single_puts: AtomicUsize,
        aborted: Arc<AtomicUsize>,
    }

    #[derive(Debug)]
    struct MeterUpload {
        in_flight: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
        stored: Arc<AtomicUsize>,
        aborted: Arc<AtomicUsize>,
    }

    impl std::fmt::Display for Meter {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Meter")
        }
    }

    fn unsupported<T>() -> object_store::Result<T> {
        Err(object_store::Error::NotImplemented {
            operation: "this test".into(),
            implementer: "Meter".into(),
        })
    }

    #[async_trait::async_trait]
    impl object_store::MultipartUpload for MeterUpload {
        fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
            let size = data.content_length();
            let now = self.in_flight.fetch_add(size, Ordering::SeqCst) + size;
            self.peak.fetch_max(now, Ordering::SeqCst);
            let (in_flight, stored) = (self.in_flight.clone(), self.stored.clone());
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                drop(data);
                in_flight.fetch_sub(size, Ordering::SeqCst);
                stored.fetch_add(size, Ordering::SeqCst);
                Ok(())
            })
        }

        async fn complete(&mut self) -> object_store::Result<object_store::PutResult> {
            Ok(object_store::PutResult {
                e_tag: None,
                version: None,
                extensions: Default::default(),
            })
        }

        async fn abort(&mut self) -> object_store::Result<()> {
            self.aborted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Meter {
        async fn put_opts(
            &self,
            _: &Path,
            payload: PutPayload,
            _: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.single_puts.fetch_add(1, Ordering::SeqCst);
            self.stored.fetch_add(payload.content_length(), Ordering::SeqCst);
            Ok(object_store::PutResult {
                e_tag: None,
                version: None,
                extensions: Default::default(),
            })
        }

        async fn put_multipart_opts(
            &self,
            _: &Path,
            _: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            Ok(Box::new(MeterUpload {
                in_flight: self.in_flight.clone(),
                peak: self.peak.clone(),
                stored: self.stored.clone(),
                aborted: self.aborted.clone(),
            }))
        }

        async fn get_opts(&self, _: &Path, _: GetOptions) -> object_store::Result<object_store::GetResult> {
            unsupported()
        }

        fn delete_stream(
            &self,
            _: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            futures::stream::once(async { unsupported() }).boxed()
        }

        fn list(&self, _: Option<&Path>) -> BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
            futures::stream::once(async { unsupported() }).boxed()
        }

        async fn list_with_delimiter(&self, _: Option<&Path>) -> object_store::Result<object_store::ListResult> {
            unsupported()
        }

        async fn copy_opts(&self, _: &Path, _: &Path, _: object_store::CopyOptions) -> object_store::Result<()> {
            unsupported()
        }
    }

    /// `total` bytes in 64 KiB chunks, made as they are read.
    fn lazy_body(total: usize) -> ByteStream {
        futures::stream::unfold(0usize, move |sent| async move {
            (sent < total).then(|| {
                let n = (total - sent).min(64 * 1024);
                (Ok(Bytes::from(vec![7u8; n])), sent + n)
            })
        })
        .boxed()
    }

    #[tokio::test]
    async fn large_puts_stream_in_bounded_memory() {
        let meter = Arc::new(Meter::default());
        let blobs = ObjectBlobStore::new(meter.clone(), "").unwrap();
        let total = 64 * 1024 * 1024 + 123;
        assert_eq!(blobs.put("big", lazy_body(total)).await.unwrap(), total as u64);
        assert_eq!(meter.stored.load(Ordering::SeqCst), total);
        assert_eq!(meter.single_puts.load(Ordering::SeqCst), 0);
        let peak = meter.peak.load(Ordering::SeqCst);
        assert!(peak <= PARTS_IN_FLIGHT * PART_SIZE, "{peak} bytes in flight");
        assert!(peak > PART_SIZE, "parts upload concurrently");

        // A body of one part or less is a single put.
        assert_eq!(
            blobs.put("small", lazy_body(PART_SIZE)).await.unwrap(),
            PART_SIZE as u64
        );
        assert_eq!(meter.single_puts.load(Ordering::SeqCst), 1);

        // A failing body aborts the upload.
        let failing = lazy_body(3 * PART_SIZE)
            .chain(futures::stream::once(async {
                Err(std::io::Error::other("client went away"))
            }))
            .boxed();
        assert!(matches!(blobs.put("k", failing).await, Err(BlobError::Io(_))));
        assert_eq!(meter.aborted.load(Ordering::SeqCst), 1);
    }
}
