//! Large objects (S3 object bodies), streamed in bounded memory.
//!
//! Object bodies do not belong in the key-value store: they can be gigabytes, and a database
//! transaction would hold them in memory or in its log.
//! [`BlobStore`] moves them as streams of [`Bytes`] chunks instead, so memory use is bounded by the
//! chunk size whatever the object size; the object's metadata stays in the [`crate::Store`].
//!
//! # The file layout of [`FsBlobStore`]
//!
//! A blob with key `k` lives at `<root>/objects/<h[0..2]>/<h>` where `h` is the hex SHA-256 of `k`.
//! Hashing makes every key, however long or strange (`../../etc/passwd`, 1 KiB of UTF-8), a safe,
//! fixed-length file name inside the root, so path traversal is impossible by construction.
//! Each file starts with a header (`"CBLB"`, version 1, u32 big-endian key length, the key) so the
//! key can be recovered for [`BlobStore::list`] and checked on read, followed by the body.
//! Writes go to `<root>/tmp/` first, are fsynced, then renamed into place and the directory is
//! fsynced: a reader sees the old blob or the new one, never a partial one, and an acknowledged put
//! survives a crash.
//!
//! # Known weaknesses
//!
//! `list` walks every file (it exists for maintenance such as garbage collection; S3 listings come
//! from the metadata in the key-value store).
//! Temporary files left by a crash mid-put are removed by [`FsBlobStore::new`].

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;

/// A stream of body chunks.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// The largest chunk a [`FsBlobStore`] read yields.
pub const READ_CHUNK: usize = 64 * 1024;

/// How much a [`FsBlobStore`] reads from a file per trip to the blocking pool (yielded in
/// [`READ_CHUNK`] pieces). At 64 KiB per trip the trips were a measurable share of a streamed GET.
const READ_BATCH: usize = 1024 * 1024;

/// How many body bytes a [`FsBlobStore`] put gathers before writing them in one trip to the
/// blocking pool.
const WRITE_BATCH: usize = 1024 * 1024;

const MAGIC: &[u8; 4] = b"CBLB";
const FORMAT_VERSION: u8 = 1;
/// Magic, version, key length.
const FIXED_HEADER: usize = 4 + 1 + 4;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No blob has this key.
    #[error("blob not found")]
    NotFound,
    /// The key cannot name a blob (it is empty).
    #[error("invalid blob key")]
    InvalidKey,
    /// The requested range does not lie within the blob.
    #[error("range {start}..{end} is not satisfiable for a blob of {size} bytes")]
    InvalidRange {
        /// The requested start.
        start: u64,
        /// The requested end (exclusive).
        end: u64,
        /// The blob's size.
        size: u64,
    },
    /// A blob file does not have the expected header.
    #[error("blob file {0} is corrupt")]
    Corrupt(PathBuf),
    /// The file system failed, or the body stream given to `put` failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An open read of (part of) a blob.
pub struct BlobRead {
    /// The size of the whole blob.
    pub size: u64,
    /// The first byte in `body`.
    pub start: u64,
    /// One past the last byte in `body`.
    pub end: u64,
    /// The bytes `start..end`.
    pub body: ByteStream,
}

impl std::fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobRead")
            .field("size", &self.size)
            .field("start", &self.start)
            .field("end", &self.end)
            .finish()
    }
}

/// Storage for large objects, read and written as streams.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `body` under `key`, replacing any previous blob atomically once the stream ends; returns
    /// the number of bytes stored. Returns only once the blob is durable.
    ///
    /// # Errors
    /// A failing `body` stream aborts the put and leaves any previous blob in place.
    async fn put(&self, key: &str, body: ByteStream) -> Result<u64, BlobError>;

    /// Reads the blob, or only bytes `[start, end)` of it when `range` is given (`end` is clamped to
    /// the blob's size).
    ///
    /// # Errors
    /// [`BlobError::NotFound`]; [`BlobError::InvalidRange`] when `start > end` or `start > size`.
    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<BlobRead, BlobError>;

    /// Removes the blob; returns whether it existed.
    async fn delete(&self, key: &str) -> Result<bool, BlobError>;

    /// Whether a blob has this key.
    async fn exists(&self, key: &str) -> Result<bool, BlobError>;

    /// Every key starting with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError>;
}

/// A [`BlobStore`] in a directory of the local file system.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
    /// Where puts are assembled before the rename that publishes them (same file system).
    tmp: PathBuf,
    deletes: std::sync::Arc<parking_lot::Mutex<DeleteGate>>,
}

/// Deletions deferred while a backup copies the blobs (see [`FsBlobStore::hold_deletes`]).
#[derive(Debug, Default)]
struct DeleteGate {
    holds: usize,
    pending: Vec<PathBuf>,
}

/// While alive, blob deletions are deferred; dropping the last hold performs them.
///
/// A backup takes a hold *before* its metadata snapshot: every blob the snapshot refers to already
/// exists then (blobs are written before the row that names them is committed), and none of them
/// can disappear until the copy is done, so the backup is consistent without stopping writes.
#[derive(Debug)]
pub struct DeleteHold {
    gate: std::sync::Arc<parking_lot::Mutex<DeleteGate>>,
}

impl Drop for DeleteHold {
    fn drop(&mut self) {
        let pending = {
            let mut gate = self.gate.lock();
            gate.holds = gate.holds.saturating_sub(1);
            if gate.holds > 0 {
                return;
            }
            std::mem::take(&mut gate.pending)
        };
        for path in pending {
            // Best effort, as any unused blob: a leftover is only wasted space.
            let _ = std::fs::remove_file(path);
        }
    }
}

impl FsBlobStore {
    /// Uses (creating if needed) `dir`, and removes temporary files left by an interrupted put.
    ///
    /// # Errors
    /// Fails when the directories cannot be created.
    pub fn new(dir: &Path) -> Result<Self, BlobError> {
        let store = Self {
            root: dir.to_path_buf(),
            tmp: dir.join("tmp"),
            deletes: std::sync::Arc::default(),
        };
        store.prepare()?;
        Ok(store)
    }

    /// Like [`FsBlobStore::new`] for a directory several nodes share: this node's unfinished puts
    /// live in `tmp/<node>/`, so a node restarting clears only its own leftovers and never the
    /// uploads other live nodes have in flight. `node` must be stable across restarts of one node
    /// (and distinct between nodes) for leftovers to be cleared.
    ///
    /// # Errors
    /// As [`FsBlobStore::new`]; also an unusable `node` name.
    pub fn shared(dir: &Path, node: &str) -> Result<Self, BlobError> {
        if node.is_empty() || !node.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(BlobError::InvalidKey);
        }
        let store = Self {
            root: dir.to_path_buf(),
            tmp: dir.join("tmp").join(node),
            deletes: std::sync::Arc::default(),
        };
        store.prepare()?;
        Ok(store)
    }

    fn prepare(&self) -> Result<(), BlobError> {
        std::fs::create_dir_all(self.objects_dir())?;
        // Anything in our tmp directory is an unfinished put from a previous run: nobody will
        // finish it.
        if self.tmp.exists() {
            std::fs::remove_dir_all(&self.tmp)?;
        }
        std::fs::create_dir_all(&self.tmp)?;
        Ok(())
    }

    fn objects_dir(&self) -> PathBuf {
        self.root.join("objects")
    }

    /// Defers deletions until the returned hold (and every other) is dropped.
    pub fn hold_deletes(&self) -> DeleteHold {
        self.deletes.lock().holds += 1;
        DeleteHold {
            gate: self.deletes.clone(),
        }
    }

    /// Copies every blob into `dest` (a directory this store could later be opened on), by hard link
    /// when both are on one file system (blob files are never modified in place) and by copy
    /// otherwise. Returns the number of blobs.
    ///
    /// # Errors
    /// Any I/O failure.
    pub fn copy_to(&self, dest: &Path) -> Result<u64, BlobError> {
        let mut count = 0;
        let target = dest.join("objects");
        std::fs::create_dir_all(&target)?;
        for shard in std::fs::read_dir(self.objects_dir())? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            let shard_target = target.join(shard.file_name());
            std::fs::create_dir_all(&shard_target)?;
            for entry in std::fs::read_dir(shard.path())? {
                let entry = entry?;
                let to = shard_target.join(entry.file_name());
                match std::fs::hard_link(entry.path(), &to) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(_) => {
                        if let Err(err) = std::fs::copy(entry.path(), &to) {
                            if err.kind() == std::io::ErrorKind::NotFound {
                                continue;
                            }
                            return Err(err.into());
                        }
                    }
                }
                count += 1;
            }
        }
        Ok(count)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.tmp.clone()
    }

    /// The file of `key`: only hex digits come from the key, so it is always inside the root.
    fn path_of(&self, key: &str) -> Result<PathBuf, BlobError> {
        if key.is_empty() {
            return Err(BlobError::InvalidKey);
        }
        let digest = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes()));
        let shard = digest.get(..2).ok_or(BlobError::InvalidKey)?;
        Ok(self.objects_dir().join(shard).join(&digest))
    }

    fn header(key: &str) -> Result<Vec<u8>, BlobError> {
        let key_len = u32::try_from(key.len()).map_err(|_| BlobError::InvalidKey)?;
        let mut header = Vec::with_capacity(FIXED_HEADER + key.len());
        header.extend_from_slice(MAGIC);
        header.push(FORMAT_VERSION);
        header.extend_from_slice(&key_len.to_be_bytes());
        header.extend_from_slice(key.as_bytes());
        Ok(header)
    }
}

/// Reads the key stored in a blob file (for `list`), synchronously.
fn read_key_sync(path: &Path) -> Result<String, BlobError> {
    use std::io::Read;
    let corrupt = || BlobError::Corrupt(path.to_path_buf());
    let mut file = std::fs::File::open(path)?;
    let mut fixed = [0u8; FIXED_HEADER];
    file.read_exact(&mut fixed).map_err(|_| corrupt())?;
    if &fixed[..4] != MAGIC || fixed[4] != FORMAT_VERSION {
        return Err(corrupt());
    }
    let key_len = u32::from_be_bytes([fixed[5], fixed[6], fixed[7], fixed[8]]) as usize;
    let mut key = vec![0u8; key_len];
    file.read_exact(&mut key).map_err(|_| corrupt())?;
    String::from_utf8(key).map_err(|_| corrupt())
}

/// Removes a temporary file unless the put that owns it succeeded.
struct TempFile {
    path: Option<PathBuf>,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // Best effort: a leftover is also removed by the next `FsBlobStore::new`.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Runs file system work on the blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|err| Err(std::io::Error::other(err)))
}

/// The result of a blocking write.
async fn joined(task: tokio::task::JoinHandle<std::io::Result<std::fs::File>>) -> std::io::Result<std::fs::File> {
    task.await.unwrap_or_else(|err| Err(std::io::Error::other(err)))
}

/// Reads up to `want` bytes (fewer only at the end of the file).
fn read_batch(file: &mut std::fs::File, want: usize) -> std::io::Result<BytesMut> {
    use std::io::Read;
    let mut buffer = BytesMut::zeroed(want);
    let mut filled = 0;
    while filled < want {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    buffer.truncate(filled);
    Ok(buffer)
}

type ReadTask = tokio::task::JoinHandle<std::io::Result<(std::fs::File, BytesMut)>>;

fn spawn_read(mut file: std::fs::File, want: usize) -> ReadTask {
    tokio::task::spawn_blocking(move || read_batch(&mut file, want).map(|buffer| (file, buffer)))
}

/// The bytes of an open file from its position, `length` of them: read READ_BATCH at a time on
/// the blocking pool, the next read in flight while the last one is consumed, and yielded in
/// pieces of at most [`READ_CHUNK`].
fn read_stream(file: std::fs::File, length: u64) -> ByteStream {
    let want = |left: u64| usize::try_from(left).unwrap_or(READ_BATCH).min(READ_BATCH);
    let first = (length > 0).then(|| spawn_read(file, want(length)));
    // (the read in flight, bytes not yet asked for, bytes read and not yet yielded)
    let state = (first, length, Bytes::new());
    futures::stream::unfold(state, move |(mut reading, mut left, mut current)| async move {
        loop {
            if !current.is_empty() {
                let piece = current.split_to(current.len().min(READ_CHUNK));
                return Some((Ok(piece), (reading, left, current)));
            }
            let task = reading.take()?;
            let (file, buffer) = match task.await {
                Ok(Ok(done)) => done,
                Ok(Err(err)) => return Some((Err(err), (None, 0, Bytes::new()))),
                Err(err) => return Some((Err(std::io::Error::other(err)), (None, 0, Bytes::new()))),
            };
            if buffer.is_empty() {
                let err = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "blob file shrank while reading");
                return Some((Err(err), (None, 0, Bytes::new())));
            }
            left = left.saturating_sub(buffer.len() as u64);
            if left > 0 {
                reading = Some(spawn_read(file, want(left)));
            }
            current = buffer.freeze();
        }
    })
    .boxed()
}

async fn sync_dir(dir: &Path) -> Result<(), std::io::Error> {
    tokio::fs::File::open(dir).await?.sync_all().await
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, key: &str, mut body: ByteStream) -> Result<u64, BlobError> {
        let final_path = self.path_of(key)?;
        let header = Self::header(key)?;
        let mut name = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut name);
        let mut temp = TempFile {
            path: Some(self.tmp_dir().join(format!("{}.part", hex::encode(name)))),
        };
        let temp_path = temp.path.clone().ok_or(BlobError::InvalidKey)?;
        // Each file system step is a trip to the blocking pool, so the steps are grouped: create
        // with the header; then batches of about WRITE_BATCH bytes, one write in flight while
        // the next batch is gathered from the body; then sync, rename and directory sync.
        let create_path = temp_path.clone();
        let file = blocking(move || {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&create_path)?;
            file.write_all(&header)?;
            Ok(file)
        })
        .await?;
        let mut file = Some(file);
        let mut writing: Option<tokio::task::JoinHandle<std::io::Result<std::fs::File>>> = None;
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batched = 0usize;
        let mut size: u64 = 0;
        loop {
            let next = body.next().await;
            let ended = match next {
                Some(Ok(chunk)) => {
                    size += chunk.len() as u64;
                    batched += chunk.len();
                    batch.push(chunk);
                    false
                }
                Some(Err(err)) => return Err(err.into()),
                None => true,
            };
            if batched >= WRITE_BATCH || (ended && !batch.is_empty()) {
                if let Some(previous) = writing.take() {
                    file = Some(joined(previous).await?);
                }
                let mut target = file.take().ok_or(BlobError::InvalidKey)?;
                let pieces = std::mem::take(&mut batch);
                batched = 0;
                writing = Some(tokio::task::spawn_blocking(move || {
                    use std::io::Write;
                    for piece in &pieces {
                        target.write_all(piece)?;
                    }
                    Ok(target)
                }));
            }
            if ended {
                break;
            }
        }
        if let Some(previous) = writing.take() {
            file = Some(joined(previous).await?);
        }
        let file = file.ok_or(BlobError::InvalidKey)?;
        let parent = final_path.parent().ok_or(BlobError::InvalidKey)?.to_path_buf();
        let from = temp_path.clone();
        blocking(move || {
            file.sync_all()?;
            drop(file);
            std::fs::create_dir_all(&parent)?;
            std::fs::rename(&from, &final_path)?;
            std::fs::File::open(&parent)?.sync_all()
        })
        .await?;
        temp.path = None;
        Ok(size)
    }

    async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<BlobRead, BlobError> {
        let path = self.path_of(key)?;
        let wanted = key.to_owned();
        // Open, header check, size and seek in one trip to the blocking pool (they were five).
        let opened = tokio::task::spawn_blocking(move || -> Result<_, BlobError> {
            use std::io::{Read, Seek};
            let mut file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(BlobError::NotFound),
                Err(err) => return Err(err.into()),
            };
            let corrupt = || BlobError::Corrupt(path.clone());
            let mut fixed = [0u8; FIXED_HEADER];
            file.read_exact(&mut fixed).map_err(|_| corrupt())?;
            if &fixed[..4] != MAGIC || fixed[4] != FORMAT_VERSION {
                return Err(corrupt());
            }
            let key_len = u32::from_be_bytes([fixed[5], fixed[6], fixed[7], fixed[8]]) as usize;
            let mut stored = vec![0u8; key_len];
            file.read_exact(&mut stored).map_err(|_| corrupt())?;
            if stored != wanted.as_bytes() {
                // Only a SHA-256 collision or a misplaced file could cause this.
                return Err(corrupt());
            }
            let offset = (FIXED_HEADER + key_len) as u64;
            let size = file.metadata()?.len().saturating_sub(offset);
            let (start, end) = match range {
                None => (0, size),
                Some((start, end)) if start <= end && start <= size => (start, end.min(size)),
                Some((start, end)) => return Err(BlobError::InvalidRange { start, end, size }),
            };
            file.seek(std::io::SeekFrom::Start(offset + start))?;
            Ok((file, size, start, end))
        })
        .await
        .map_err(|err| BlobError::Io(std::io::Error::other(err)))??;
        let (file, size, start, end) = opened;
        Ok(BlobRead {
            size,
            start,
            end,
            body: read_stream(file, end - start),
        })
    }

    async fn delete(&self, key: &str) -> Result<bool, BlobError> {
        let path = self.path_of(key)?;
        {
            let mut gate = self.deletes.lock();
            if gate.holds > 0 {
                let exists = path.exists();
                gate.pending.push(path);
                return Ok(exists);
            }
        }
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                if let Some(parent) = path.parent() {
                    sync_dir(parent).await?;
                }
                Ok(true)
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        Ok(tokio::fs::try_exists(self.path_of(key)?).await?)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let objects = self.objects_dir();
        let prefix = prefix.to_owned();
        let walk = move || -> Result<Vec<String>, BlobError> {
            let mut keys = Vec::new();
            for shard in std::fs::read_dir(&objects)? {
                let shard = shard?;
                if !shard.file_type()?.is_dir() {
                    continue;
                }
                for entry in std::fs::read_dir(shard.path())? {
                    let entry = entry?;
                    match read_key_sync(&entry.path()) {
                        Ok(key) if key.starts_with(&prefix) => keys.push(key),
                        Ok(_) => {}
                        // Deleted between the directory read and the open.
                        Err(BlobError::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => {}
                        Err(err) => return Err(err),
                    }
                }
            }
            keys.sort();
            Ok(keys)
        };
        tokio::task::spawn_blocking(walk)
            .await
            .map_err(|err| BlobError::Io(std::io::Error::other(err)))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: Vec<Vec<u8>>) -> ByteStream {
        futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p)))).boxed()
    }

    async fn read_all(read: BlobRead) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        let mut largest = 0;
        let mut body = read.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap();
            largest = largest.max(chunk.len());
            out.extend_from_slice(&chunk);
        }
        (out, largest)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn put_get_ranges_and_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobStore::new(dir.path()).unwrap();
        let data = pattern(300_000);
        let parts: Vec<Vec<u8>> = data.chunks(7_000).map(<[u8]>::to_vec).collect();
        assert_eq!(blobs.put("bucket/a.bin", chunks(parts)).await.unwrap(), 300_000);

        let (whole, largest) = read_all(blobs.get("bucket/a.bin", None).await.unwrap()).await;
        assert_eq!(whole, data);
        assert!(largest <= READ_CHUNK, "reads are bounded by the chunk size");

        let ranges: &[((u64, u64), std::ops::Range<usize>)] = &[
            ((0, 1), 0..1),
            ((10, 70_000), 10..70_000),
            ((299_990, 400_000), 299_990..300_000),
            ((5, 5), 5..5),
        ];
        for ((start, end), want) in ranges {
            let read = blobs.get("bucket/a.bin", Some((*start, *end))).await.unwrap();
            assert_eq!((read.size, read.start, read.end), (300_000, *start, want.end as u64));
            assert_eq!(read_all(read).await.0, data[want.clone()], "range {start}..{end}");
        }
        for bad in [(10, 5), (300_001, 300_002)] {
            assert!(matches!(
                blobs.get("bucket/a.bin", Some(bad)).await,
                Err(BlobError::InvalidRange { .. })
            ));
        }

        assert_eq!(
            blobs.put("bucket/a.bin", chunks(vec![b"new".to_vec()])).await.unwrap(),
            3
        );
        assert_eq!(read_all(blobs.get("bucket/a.bin", None).await.unwrap()).await.0, b"new");
        assert_eq!(blobs.put("empty", chunks(vec![])).await.unwrap(), 0);
        assert_eq!(read_all(blobs.get("empty", None).await.unwrap()).await.0, b"");
    }

    #[tokio::test]
    async fn large_blobs_read_in_batches_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobStore::new(dir.path()).unwrap();
        let data = pattern(2 * READ_BATCH + 12_345);
        let parts: Vec<Vec<u8>> = data.chunks(65_552).map(<[u8]>::to_vec).collect();
        assert_eq!(blobs.put("big", chunks(parts)).await.unwrap(), data.len() as u64);
        let (whole, largest) = read_all(blobs.get("big", None).await.unwrap()).await;
        assert_eq!(whole, data);
        assert!(largest <= READ_CHUNK);
        let across = (READ_BATCH as u64 - 10, 2 * READ_BATCH as u64 + 7);
        let read = blobs.get("big", Some(across)).await.unwrap();
        assert_eq!(read_all(read).await.0, data[across.0 as usize..across.1 as usize]);
    }

    #[tokio::test]
    async fn delete_exists_list() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobStore::new(dir.path()).unwrap();
        for key in ["b/2", "a/1", "a/2", "c"] {
            blobs.put(key, chunks(vec![key.as_bytes().to_vec()])).await.unwrap();
        }
        assert_eq!(blobs.list("a/").await.unwrap(), vec!["a/1", "a/2"]);
        assert_eq!(blobs.list("").await.unwrap(), vec!["a/1", "a/2", "b/2", "c"]);
        assert!(blobs.exists("a/1").await.unwrap());
        assert!(blobs.delete("a/1").await.unwrap());
        assert!(!blobs.delete("a/1").await.unwrap());
        assert!(!blobs.exists("a/1").await.unwrap());
        assert!(matches!(blobs.get("a/1", None).await, Err(BlobError::NotFound)));
        assert_eq!(blobs.list("a").await.unwrap(), vec!["a/2"]);
        assert!(matches!(blobs.exists("").await, Err(BlobError::InvalidKey)));
    }

    #[tokio::test]
    async fn hostile_keys_stay_inside_the_root() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("blobs");
        let blobs = FsBlobStore::new(&root).unwrap();
        let keys = [
            "../../escape",
            "/etc/passwd",
            "..",
            "a/../../b",
            "nul\0byte",
            &"k".repeat(5000),
        ];
        for key in keys {
            blobs.put(key, chunks(vec![b"x".to_vec()])).await.unwrap();
            assert_eq!(read_all(blobs.get(key, None).await.unwrap()).await.0, b"x");
        }
        // Nothing was created beside the root.
        let beside: Vec<_> = std::fs::read_dir(outer.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(beside, vec![std::ffi::OsString::from("blobs")]);
        let mut listed = blobs.list("").await.unwrap();
        listed.sort();
        let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        want.sort();
        assert_eq!(listed, want);
    }

    #[tokio::test]
    async fn failed_put_keeps_old_blob_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobStore::new(dir.path()).unwrap();
        blobs.put("k", chunks(vec![b"old".to_vec()])).await.unwrap();
        let failing: ByteStream = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"partial")),
            Err(std::io::Error::other("client went away")),
        ])
        .boxed();
        assert!(matches!(blobs.put("k", failing).await, Err(BlobError::Io(_))));
        assert_eq!(read_all(blobs.get("k", None).await.unwrap()).await.0, b"old");
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn corrupt_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobStore::new(dir.path()).unwrap();
        blobs.put("k", chunks(vec![b"data".to_vec()])).await.unwrap();
        std::fs::write(blobs.path_of("k").unwrap(), b"garbage").unwrap();
        assert!(matches!(blobs.get("k", None).await, Err(BlobError::Corrupt(_))));
    }
}
