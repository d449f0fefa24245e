//! `citadel backup DIR` and `citadel restore DIR`: consistent copies of a data directory.
//!
//! A backup is a directory:
//! - `store.rows`: every row of every table at one point in time (a store snapshot), in a small
//!   length-prefixed format that does not depend on the backend, so a backup of the embedded store
//!   can be restored into PostgreSQL and back;
//! - `blobs/`: the blob files, hard-linked when possible (blob files are immutable);
//! - `master.key` and `root-credentials` when the data directory has them (mode 0600): without
//!   the master key nothing sealed in the store can be read back;
//! - `manifest.json`: format, time, row counts and the SHA-256 of `store.rows`, written last.
//!
//! Consistency while serving: blob deletions are held *before* the snapshot is taken, so every blob
//! the snapshot refers to still exists when the copy reaches it (objects are written to a blob
//! before the row naming them is committed). Writes carry on during the backup.
//! The backup is assembled in a temporary sibling directory and renamed into place at the end, so
//! a directory named like a backup is always complete.

use anyhow::{Context as _, bail};
use citadel_store::seal::MASTER_KEY_FILE;
use citadel_store::seal_pkcs11::WRAPPED_MASTER_KEY_FILE as WRAPPED_KEY_FILE;
use citadel_store::{FsBlobStore, Store, WriteBatch};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The `format` of `manifest.json`.
pub const FORMAT: &str = "citadel-backup-1";
const ROWS_FILE: &str = "store.rows";
const MANIFEST_FILE: &str = "manifest.json";
const MAGIC: &[u8; 8] = b"CTDLBAK1";
/// Rows read per scan while exporting, and written per batch while restoring.
const PAGE: usize = 1000;

/// What a backup holds; also the answer of the backup API.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// When the snapshot was taken (RFC 3339).
    pub created: String,
    /// Rows per table.
    pub tables: std::collections::BTreeMap<String, u64>,
    /// Rows in all.
    pub rows: u64,
    /// Blob files copied.
    pub blobs: u64,
    /// Hex SHA-256 of `store.rows`.
    pub sha256: String,
    /// Whether the master key file (`master.key`, or `master.key.wrapped` under an HSM) is in the
    /// backup (false when the key came from the environment). Blobs in an S3-compatible store
    /// (`--blobs s3://`) are not copied: that store keeps them (version or replicate the bucket).
    pub master_key: bool,
}

/// Writes a consistent backup of `store` (and `blobs`, and the key files of `data_dir`) into `dest`,
/// which must not exist yet.
///
/// # Errors
/// `dest` exists, or any store or I/O failure (the partial copy is removed).
pub async fn write_backup(
    store: &dyn Store,
    blobs: Option<&FsBlobStore>,
    data_dir: &Path,
    dest: &Path,
) -> anyhow::Result<Manifest> {
    if dest.exists() {
        bail!("{} already exists; a backup goes into a new directory", dest.display());
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = dest.file_name().context("the backup directory needs a name")?;
    let work = parent.join(format!(".{}.partial", name.to_string_lossy()));
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = fill_backup(store, blobs, data_dir, &work).await;
    match result {
        Ok(manifest) => {
            sync_dir(&work)?;
            std::fs::rename(&work, dest).with_context(|| format!("renaming into {}", dest.display()))?;
            sync_dir(parent)?;
            Ok(manifest)
        }
        Err(err) => {
            let _ = std::fs::remove_dir_all(&work);
            Err(err)
        }
    }
}

async fn fill_backup(
    store: &dyn Store,
    blobs: Option<&FsBlobStore>,
    data_dir: &Path,
    work: &Path,
) -> anyhow::Result<Manifest> {
    // Order matters: hold deletions, then snapshot (see the module docs).
    let hold = blobs.map(FsBlobStore::hold_deletes);
    let snapshot = store.snapshot().await.context("taking a store snapshot")?;
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut writer = HashingWriter::new(std::fs::File::create(work.join(ROWS_FILE)).context("creating store.rows")?);
    writer.write_all(MAGIC)?;
    let mut tables = std::collections::BTreeMap::new();
    let mut total = 0u64;
    for table in snapshot.tables().await.context("listing tables")? {
        let mut start: Vec<u8> = Vec::new();
        let mut count = 0u64;
        loop {
            let rows = snapshot.scan(&table, &start, None, PAGE, false).await?;
            let Some((last, _)) = rows.last() else { break };
            start = last.clone();
            start.push(0);
            let full = rows.len() == PAGE;
            for (key, value) in &rows {
                write_record(&mut writer, &table, key, value)?;
            }
            count += rows.len() as u64;
            if !full {
                break;
            }
        }
        total += count;
        tables.insert(table, count);
    }
    drop(snapshot);
    writer.write_all(&[0])?;
    let sha256 = writer.finish()?;
    let blob_count = match blobs {
        Some(blobs) => {
            let blobs = blobs.clone();
            let target = work.join("blobs");
            tokio::task::spawn_blocking(move || blobs.copy_to(&target))
                .await
                .context("copying blobs")?
                .context("copying blobs")?
        }
        None => 0,
    };
    drop(hold);
    let plain_key = copy_private(&data_dir.join(MASTER_KEY_FILE), &work.join(MASTER_KEY_FILE))?;
    // With an HSM the data directory holds the master key only wrapped by the token's key: copy that
    // (it is ciphertext); restoring it needs the same token.
    let wrapped_key = copy_private(&data_dir.join(WRAPPED_KEY_FILE), &work.join(WRAPPED_KEY_FILE))?;
    let master_key = plain_key || wrapped_key;
    copy_private(
        &data_dir.join(crate::app::ROOT_CREDENTIALS_FILE),
        &work.join(crate::app::ROOT_CREDENTIALS_FILE),
    )?;
    let manifest = Manifest {
        format: FORMAT.to_string(),
        created,
        tables,
        rows: total,
        blobs: blob_count,
        sha256,
        master_key,
    };
    let text = serde_json::to_string_pretty(&manifest)?;
    let mut file = std::fs::File::create(work.join(MANIFEST_FILE))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(manifest)
}

/// Restores the backup in `src` into `data_dir` (which must hold no store, unless `force`) and into
/// `store`, a fresh store opened on it by the caller.
///
/// # Errors
/// A damaged backup (checksum, format), a non-empty target, or any store or I/O failure.
pub async fn restore_backup(src: &Path, store: &dyn Store, data_dir: &Path) -> anyhow::Result<Manifest> {
    let manifest = read_manifest(src)?;
    let path = src.join(ROWS_FILE);
    let mut reader =
        std::io::BufReader::new(std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?);
    let mut magic = [0u8; 8];
    reader.read_exact(&mut magic).context("reading store.rows")?;
    if &magic != MAGIC {
        bail!("{} is not a Citadel backup file", path.display());
    }
    // Verify the whole file before writing anything, so a damaged backup leaves no half-restore.
    let digest = {
        let mut file = std::fs::File::open(&path)?;
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            context.update(buffer.get(..read).unwrap_or_default());
        }
        hex_lower(context.finish().as_ref())
    };
    if digest != manifest.sha256 {
        bail!("store.rows does not match the manifest's checksum: the backup is damaged");
    }
    let mut batch = WriteBatch::new();
    let mut in_batch = 0usize;
    let mut rows = 0u64;
    while let Some((table, key, value)) = read_record(&mut reader)? {
        batch.put(&table, &key, &value);
        in_batch += 1;
        rows += 1;
        if in_batch == PAGE {
            store.commit(std::mem::take(&mut batch)).await?;
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        store.commit(batch).await?;
    }
    if rows != manifest.rows {
        bail!("store.rows holds {rows} rows, the manifest says {}", manifest.rows);
    }
    let blobs_src = src.join("blobs");
    if blobs_src.exists() {
        let target = data_dir.join("blobs");
        let source = FsBlobStore::new(&blobs_src)?;
        tokio::task::spawn_blocking(move || source.copy_to(&target))
            .await
            .context("copying blobs")??;
    }
    for file in [MASTER_KEY_FILE, WRAPPED_KEY_FILE, crate::app::ROOT_CREDENTIALS_FILE] {
        copy_private(&src.join(file), &data_dir.join(file))?;
    }
    Ok(manifest)
}

/// Reads and checks `manifest.json`.
///
/// # Errors
/// A missing or unreadable manifest, or one of another format.
pub fn read_manifest(src: &Path) -> anyhow::Result<Manifest> {
    let path = src.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (is this a complete backup?)", path.display()))?;
    let manifest: Manifest = serde_json::from_str(&text).context("parsing manifest.json")?;
    if manifest.format != FORMAT {
        bail!("unknown backup format {}", manifest.format);
    }
    Ok(manifest)
}

fn write_record(out: &mut impl Write, table: &str, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
    out.write_all(&[1])?;
    for part in [table.as_bytes(), key, value] {
        let len = u32::try_from(part.len()).context("a row is larger than 4 GiB")?;
        out.write_all(&len.to_be_bytes())?;
        out.write_all(part)?;
    }
    Ok(())
}

type Record = (String, Vec<u8>, Vec<u8>);

fn read_record(input: &mut impl Read) -> anyhow::Result<Option<Record>> {
    let mut tag = [0u8; 1];
    input.read_exact(&mut tag).context("store.rows ends early")?;
    match tag[0] {
        0 => return Ok(None),
        1 => {}
        other => bail!("store.rows is damaged (record tag {other})"),
    }
    let mut parts = Vec::with_capacity(3);
    for _ in 0..3 {
        let mut len = [0u8; 4];
        input.read_exact(&mut len).context("store.rows ends early")?;
        let mut part = vec![0u8; u32::from_be_bytes(len) as usize];
        input.read_exact(&mut part).context("store.rows ends early")?;
        parts.push(part);
    }
    let value = parts.pop().unwrap_or_default();
    let key = parts.pop().unwrap_or_default();
    let table = String::from_utf8(parts.pop().unwrap_or_default()).context("a table name is not UTF-8")?;
    Ok(Some((table, key, value)))
}

/// Copies a secret file with mode 0600; `false` when there is none.
fn copy_private(from: &Path, to: &Path) -> anyhow::Result<bool> {
    let contents = match std::fs::read_to_string(from) {
        Ok(contents) => contents,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err).with_context(|| format!("reading {}", from.display())),
    };
    crate::app::write_private(to, &contents)?;
    Ok(true)
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// A buffered file writer that hashes what it writes and syncs the file at the end.
struct HashingWriter {
    inner: BufWriter<std::fs::File>,
    digest: aws_lc_rs::digest::Context,
}

impl HashingWriter {
    fn new(file: std::fs::File) -> Self {
        Self {
            inner: BufWriter::with_capacity(1 << 16, file),
            digest: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
        }
    }

    fn finish(self) -> anyhow::Result<String> {
        let file = self.inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(hex_lower(self.digest.finish().as_ref()))
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.digest.update(buf.get(..written).unwrap_or_default());
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// An absolute form of `path` (the server resolves relative paths against its own directory).
pub fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()?.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use citadel_store::{BlobStore, RedbStore};
    use std::sync::Arc;

    fn body(bytes: &'static [u8]) -> citadel_store::ByteStream {
        Box::pin(futures::stream::once(
            async move { Ok(bytes::Bytes::from_static(bytes)) },
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backup_then_restore_round_trips_rows_blobs_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        citadel_store::MasterKey::load_or_create_file(&data).unwrap();
        crate::app::write_private(&data.join(crate::app::ROOT_CREDENTIALS_FILE), "[default]\n").unwrap();
        let store = RedbStore::open(&data.join("citadel.redb")).unwrap();
        let blobs = FsBlobStore::new(&data.join("blobs")).unwrap();
        let mut batch = WriteBatch::new();
        for i in 0..2500u32 {
            batch.put("users", &i.to_be_bytes(), format!("user-{i}").as_bytes());
        }
        batch.put("keys", b"k", b"sealed");
        store.commit(batch).await.unwrap();
        blobs.put("s3/object/1", body(b"ciphertext-1")).await.unwrap();
        blobs.put("s3/object/2", body(b"ciphertext-2")).await.unwrap();

        // A delete while the hold is taken is deferred until the backup is done.
        let hold = blobs.hold_deletes();
        blobs.delete("s3/object/2").await.unwrap();
        assert!(blobs.exists("s3/object/2").await.unwrap());
        drop(hold);
        assert!(!blobs.exists("s3/object/2").await.unwrap());

        let dest = dir.path().join("backup");
        let manifest = write_backup(&store, Some(&blobs), &data, &dest).await.unwrap();
        assert_eq!(manifest.rows, 2501);
        assert_eq!(manifest.tables.get("users"), Some(&2500));
        assert_eq!(manifest.blobs, 1);
        assert!(manifest.master_key);
        assert!(
            write_backup(&store, Some(&blobs), &data, &dest).await.is_err(),
            "never overwrites"
        );
        store.close().await.unwrap();

        let restored = dir.path().join("restored");
        std::fs::create_dir_all(&restored).unwrap();
        let target: Arc<dyn Store> = Arc::new(RedbStore::open(&restored.join("citadel.redb")).unwrap());
        let again = restore_backup(&dest, target.as_ref(), &restored).await.unwrap();
        assert_eq!(again, manifest);
        assert_eq!(
            target.get("users", &2499u32.to_be_bytes()).await.unwrap(),
            Some(b"user-2499".to_vec())
        );
        assert_eq!(target.get("keys", b"k").await.unwrap(), Some(b"sealed".to_vec()));
        let restored_blobs = FsBlobStore::new(&restored.join("blobs")).unwrap();
        assert!(restored_blobs.exists("s3/object/1").await.unwrap());
        assert_eq!(
            std::fs::read(restored.join(MASTER_KEY_FILE)).unwrap(),
            std::fs::read(data.join(MASTER_KEY_FILE)).unwrap()
        );
        target.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_damaged_backup_restores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let store = RedbStore::open(&data.join("citadel.redb")).unwrap();
        let mut batch = WriteBatch::new();
        batch.put("t", b"a", b"1");
        store.commit(batch).await.unwrap();
        let dest = dir.path().join("backup");
        write_backup(&store, None, &data, &dest).await.unwrap();
        store.close().await.unwrap();
        let rows = dest.join(ROWS_FILE);
        let mut bytes = std::fs::read(&rows).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        std::fs::write(&rows, bytes).unwrap();
        let target = RedbStore::open(&dir.path().join("r.redb")).unwrap();
        let err = restore_backup(&dest, &target, dir.path()).await.unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
        assert_eq!(target.get("t", b"a").await.unwrap(), None);
        target.close().await.unwrap();
    }
}
