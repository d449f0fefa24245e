//! The embedded backend: [`RedbStore`], on one redb file.
//!
//! redb allows one write transaction at a time and makes each durable commit cost an fsync.
//! Committing every batch in its own transaction would cap throughput at the disk's fsync rate.
//! Instead one committer thread drains every batch that is waiting, checks and applies them in
//! arrival order inside a single write transaction, and commits that transaction once with
//! immediate durability (group commit).
//! A batch whose preconditions fail is skipped and answered with a conflict; later batches of the
//! same group see the writes of earlier ones, exactly as if each had been committed alone.
//! Any storage error aborts the whole group, so a batch is never half-applied.
//!
//! Reads do not go through the committer: they open redb read transactions (MVCC snapshots)
//! directly, which is cheap and never waits for a commit.
//!
//! # Throughput
//!
//! A committer that waits for its own commit has at most one batch in flight, so a group holds at
//! most as many batches as there are concurrent committers, and the rate is bounded by
//! committers / fsync latency.
//! Measured on the 2-core development machine (debug build, see `group_commit_throughput`):
//! about 300-1,200 commits/s for one committer, 4,500-5,600 for 16 (about 12 batches per fsync),
//! and 28,000-30,000 for 128 (about 80 batches per fsync).
//!
//! # Known weaknesses
//!
//! - A storage error while applying any batch (for example a value beyond redb's size limit) aborts
//!   the whole group, so the other batches of that group fail with it and must be retried.
//! - Generations live in memory and restart at zero when the store is reopened; they are only meant
//!   for caches inside this process.
//! - Reads run synchronously inside the async functions; they are short B-tree lookups, but a very
//!   large scan holds its worker thread for its duration.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use parking_lot::{Mutex, RwLock};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableError, WriteTransaction};
use tokio::sync::oneshot;

use crate::batch::{WriteBatch, WriteOp};
use crate::error::{CommitError, StoreError};
use crate::store::{Rows, Snapshot, Store};

/// The most batches committed in one redb transaction.
/// It bounds the latency of the first batch of a very large group.
const MAX_GROUP: usize = 4096;
/// redb's page cache size.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

type Bytes<'a> = &'a [u8];
type WriteTable<'txn> = redb::Table<'txn, Bytes<'static>, Bytes<'static>>;
type ReadTable = redb::ReadOnlyTable<Bytes<'static>, Bytes<'static>>;

fn definition(name: &str) -> TableDefinition<'_, Bytes<'static>, Bytes<'static>> {
    TableDefinition::new(name)
}

/// Work for the committer thread, answered through the oneshot senders.
enum Job {
    Commit {
        batch: WriteBatch,
        reply: Option<oneshot::Sender<Result<(), CommitError>>>,
    },
    Flush(oneshot::Sender<Result<(), StoreError>>),
    Clear(oneshot::Sender<Result<(), StoreError>>),
    Close(oneshot::Sender<Result<(), StoreError>>),
}

/// Counters describing how well group commit is grouping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// redb write transactions committed for batches.
    pub groups: u64,
    /// Batches checked in those transactions (applied or rejected).
    pub batches: u64,
}

/// State shared between the store handle and its committer thread.
#[derive(Default)]
struct Shared {
    generations: RwLock<HashMap<String, u64>>,
    /// Added to every table's generation; `clear` bumps it, which also covers tables this process
    /// has never written.
    epoch: AtomicU64,
    /// The error that lost a submitted batch since the last flush, reported by the next flush.
    lost_submission: Mutex<Option<StoreError>>,
    groups: AtomicU64,
    batches: AtomicU64,
    /// Jobs sent to the committer and not yet handled (the submit backlog).
    queued: AtomicU64,
}

/// A [`Store`] on a redb database file, with a group-committing writer thread.
pub struct RedbStore {
    database: RwLock<Option<Arc<Database>>>,
    sender: RwLock<Option<mpsc::Sender<Job>>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("open", &self.sender.read().is_some())
            .finish()
    }
}

impl RedbStore {
    /// Opens (creating if needed) the database at `path` and starts its committer thread.
    ///
    /// # Errors
    /// Fails if the file cannot be opened or is locked by another process.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // redb's default page cache is 1 GiB; Citadel keeps hot state in its own caches, so a small
        // cache keeps the idle and loaded footprint bounded.
        let database = Arc::new(
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(path)
                .map_err(StoreError::backend)?,
        );
        let shared = Arc::new(Shared::default());
        let (sender, receiver) = mpsc::channel();
        let thread_database = database.clone();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("citadel-store-committer".into())
            .spawn(move || run_committer(thread_database, receiver, thread_shared))
            .map_err(StoreError::backend)?;
        Ok(Self {
            database: RwLock::new(Some(database)),
            sender: RwLock::new(Some(sender)),
            shared,
        })
    }

    /// How many groups and batches the committer has committed so far.
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            groups: self.shared.groups.load(Ordering::Relaxed),
            batches: self.shared.batches.load(Ordering::Relaxed),
        }
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        match self.sender.read().as_ref() {
            Some(sender) => {
                self.shared.queued.fetch_add(1, Ordering::Relaxed);
                sender.send(job).map_err(|_| StoreError::Closed)
            }
            None => Err(StoreError::Closed),
        }
    }

    fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        let database = self.database.read().clone().ok_or(StoreError::Closed)?;
        database.begin_read().map_err(StoreError::backend)
    }
}

/// Opens `name` for reading; `None` when the table was never created.
fn open_read_table(txn: &ReadTransaction, name: &str) -> Result<Option<ReadTable>, StoreError> {
    match txn.open_table(definition(name)) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(err) => Err(StoreError::backend(err)),
    }
}

fn read_get(txn: &ReadTransaction, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(table) = open_read_table(txn, table)? else {
        return Ok(None);
    };
    Ok(table
        .get(key)
        .map_err(StoreError::backend)?
        .map(|guard| guard.value().to_vec()))
}

fn read_scan(
    txn: &ReadTransaction,
    table: &str,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
    reverse: bool,
) -> Result<Rows, StoreError> {
    // redb (like BTreeMap) rejects inverted ranges, and an empty range has nothing to return anyway.
    if limit == 0 || end.is_some_and(|end| end <= start) {
        return Ok(Vec::new());
    }
    let Some(table) = open_read_table(txn, table)? else {
        return Ok(Vec::new());
    };
    let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
    let range = table
        .range::<&[u8]>((Bound::Included(start), upper))
        .map_err(StoreError::backend)?;
    let iter: Box<dyn Iterator<Item = _>> = if reverse {
        Box::new(range.rev())
    } else {
        Box::new(range)
    };
    let mut rows = Vec::new();
    for item in iter.take(limit) {
        let (key, value) = item.map_err(StoreError::backend)?;
        rows.push((key.value().to_vec(), value.value().to_vec()));
    }
    Ok(rows)
}

#[async_trait::async_trait]
impl Store for RedbStore {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        read_get(&self.begin_read()?, table, key)
    }

    async fn scan(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Rows, StoreError> {
        read_scan(&self.begin_read()?, table, start, end, limit, reverse)
    }

    async fn commit(&self, batch: WriteBatch) -> Result<(), CommitError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.send(Job::Commit {
            batch,
            reply: Some(reply),
        })?;
        answer.await.unwrap_or(Err(CommitError::Backend(StoreError::Closed)))
    }

    fn submit(&self, batch: WriteBatch) {
        if batch.is_empty() {
            return;
        }
        if self.send(Job::Commit { batch, reply: None }).is_err() {
            // The store is closed: remember the loss so that a flush (which will itself fail with
            // Closed) is not the only trace.
            *self.shared.lost_submission.lock() = Some(StoreError::Closed);
        }
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Flush(reply))?;
        answer.await.unwrap_or(Err(StoreError::Closed))
    }

    fn backlog(&self) -> usize {
        usize::try_from(self.shared.queued.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    fn generation(&self, table: &str) -> u64 {
        let own = self.shared.generations.read().get(table).copied().unwrap_or(0);
        own.wrapping_add(self.shared.epoch.load(Ordering::Acquire))
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>, StoreError> {
        Ok(Box::new(RedbSnapshot {
            txn: self.begin_read()?,
        }))
    }

    async fn clear(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Clear(reply))?;
        answer.await.unwrap_or(Err(StoreError::Closed))
    }

    async fn close(&self) -> Result<(), StoreError> {
        let Some(sender) = self.sender.write().take() else {
            return Ok(());
        };
        *self.database.write() = None;
        let (reply, answer) = oneshot::channel();
        sender.send(Job::Close(reply)).map_err(|_| StoreError::Closed)?;
        drop(sender);
        answer.await.unwrap_or(Err(StoreError::Closed))
    }
}

/// A redb read transaction, which is already a consistent snapshot.
struct RedbSnapshot {
    txn: ReadTransaction,
}

#[async_trait::async_trait]
impl Snapshot for RedbSnapshot {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        read_get(&self.txn, table, key)
    }

    async fn scan(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Rows, StoreError> {
        read_scan(&self.txn, table, start, end, limit, reverse)
    }

    async fn tables(&self) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        for handle in self.txn.list_tables().map_err(StoreError::backend)? {
            let name = redb::TableHandle::name(&handle).to_string();
            let table = self.txn.open_table(definition(&name)).map_err(StoreError::backend)?;
            if !redb::ReadableTableMetadata::is_empty(&table).map_err(StoreError::backend)? {
                names.push(name);
            }
        }
        names.sort_unstable();
        Ok(names)
    }
}

/// The committer thread: drains the channel into groups until it is closed.
fn run_committer(database: Arc<Database>, receiver: mpsc::Receiver<Job>, shared: Arc<Shared>) {
    let mut close_reply = None;
    let mut pending = Vec::new();
    'outer: while let Ok(first) = receiver.recv() {
        pending.push(first);
        shared.queued.fetch_sub(1, Ordering::Relaxed);
        while pending.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(job) => {
                    shared.queued.fetch_sub(1, Ordering::Relaxed);
                    pending.push(job);
                }
                Err(_) => break,
            }
        }
        // Commits and flushes form groups; a clear or close is a barrier that ends the group
        // before it, so it is ordered exactly where it was called.
        let mut group = Vec::new();
        for job in pending.drain(..) {
            match job {
                Job::Commit { .. } | Job::Flush(_) => group.push(job),
                Job::Clear(reply) => {
                    commit_group(&database, &shared, std::mem::take(&mut group));
                    // The caller may have given up waiting; that is not an error here.
                    let _ = reply.send(clear_all(&database, &shared));
                }
                Job::Close(reply) => {
                    commit_group(&database, &shared, std::mem::take(&mut group));
                    close_reply = Some(reply);
                    break 'outer;
                }
            }
        }
        commit_group(&database, &shared, group);
    }
    // Release the file before acknowledging the close, so the caller can reopen it at once.
    drop(database);
    if let Some(reply) = close_reply {
        let _ = reply.send(Ok(()));
    }
}

type CommitReply = Option<oneshot::Sender<Result<(), CommitError>>>;

/// Commits one group and answers every waiter in it.
fn commit_group(database: &Database, shared: &Shared, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    let mut batches = Vec::new();
    let mut replies: Vec<CommitReply> = Vec::new();
    let mut flushes = Vec::new();
    for job in jobs {
        match job {
            Job::Commit { batch, reply } => {
                batches.push(batch);
                replies.push(reply);
            }
            Job::Flush(reply) => flushes.push(reply),
            Job::Clear(_) | Job::Close(_) => {}
        }
    }
    if !batches.is_empty() {
        match apply_group(database, &batches) {
            Ok((outcomes, touched)) => {
                shared.groups.fetch_add(1, Ordering::Relaxed);
                shared.batches.fetch_add(batches.len() as u64, Ordering::Relaxed);
                // Bump after the commit is visible and before anyone is answered (see
                // `Store::generation`).
                let mut generations = shared.generations.write();
                for table in touched {
                    let counter = generations.entry(table).or_insert(0);
                    *counter = counter.wrapping_add(1);
                }
                drop(generations);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    if let Some(reply) = reply {
                        let _ = reply.send(outcome);
                    }
                }
            }
            Err(err) => {
                let mut lost_submission = false;
                for reply in replies {
                    match reply {
                        Some(reply) => {
                            let _ = reply.send(Err(CommitError::Backend(err.clone())));
                        }
                        None => lost_submission = true,
                    }
                }
                if lost_submission {
                    *shared.lost_submission.lock() = Some(err);
                }
            }
        }
    }
    for reply in flushes {
        let outcome = match shared.lost_submission.lock().take() {
            Some(err) => Err(err),
            None => Ok(()),
        };
        let _ = reply.send(outcome);
    }
}

/// Each batch's outcome, in order, and the tables the group wrote.
type GroupOutcome = (Vec<Result<(), CommitError>>, Vec<String>);

/// Checks and applies every batch in one write transaction and commits it durably.
/// Returns each batch's outcome and the tables written.
fn apply_group(database: &Database, batches: &[WriteBatch]) -> Result<GroupOutcome, StoreError> {
    let txn = database.begin_write().map_err(StoreError::backend)?;
    let mut outcomes = Vec::with_capacity(batches.len());
    let mut touched: Vec<String> = Vec::new();
    {
        let mut tables: HashMap<String, WriteTable<'_>> = HashMap::new();
        for batch in batches {
            if let Some(conflict) = first_conflict(&txn, &mut tables, batch)? {
                outcomes.push(Err(conflict));
                continue;
            }
            for op in batch.ops() {
                let table = open_write_table(&txn, &mut tables, op.table())?;
                match op {
                    WriteOp::Put { key, value, .. } => {
                        table
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(StoreError::backend)?;
                    }
                    WriteOp::Delete { key, .. } => {
                        table.remove(key.as_slice()).map_err(StoreError::backend)?;
                    }
                }
                if !touched.iter().any(|name| name == op.table()) {
                    touched.push(op.table().to_owned());
                }
            }
            outcomes.push(Ok(()));
        }
    }
    // The default durability of a redb write transaction is `Immediate`: commit returns after fsync.
    txn.commit().map_err(StoreError::backend)?;
    Ok((outcomes, touched))
}

/// Opens `name` in the group's write transaction once and keeps it open for the rest of the group
/// (redb allows a table to be open only once per transaction).
fn open_write_table<'t, 'txn>(
    txn: &'txn WriteTransaction,
    tables: &'t mut HashMap<String, WriteTable<'txn>>,
    name: &str,
) -> Result<&'t mut WriteTable<'txn>, StoreError> {
    if !tables.contains_key(name) {
        let table = txn.open_table(definition(name)).map_err(StoreError::backend)?;
        tables.insert(name.to_owned(), table);
    }
    tables
        .get_mut(name)
        .ok_or_else(|| StoreError::Backend(format!("table {name} was not kept open")))
}

/// The conflict for the first precondition of `batch` that does not hold, if any.
fn first_conflict<'txn>(
    txn: &'txn WriteTransaction,
    tables: &mut HashMap<String, WriteTable<'txn>>,
    batch: &WriteBatch,
) -> Result<Option<CommitError>, StoreError> {
    for precondition in batch.preconditions() {
        let table = open_write_table(txn, tables, &precondition.table)?;
        let current = table.get(precondition.key.as_slice()).map_err(StoreError::backend)?;
        if !precondition.expected.holds(current.as_ref().map(|guard| guard.value())) {
            return Ok(Some(CommitError::Conflict {
                table: precondition.table.clone(),
                key: precondition.key.clone(),
            }));
        }
    }
    Ok(None)
}

/// Deletes every table in one durable transaction and bumps the generation epoch.
fn clear_all(database: &Database, shared: &Shared) -> Result<(), StoreError> {
    let txn = database.begin_write().map_err(StoreError::backend)?;
    let handles: Vec<_> = txn.list_tables().map_err(StoreError::backend)?.collect();
    for handle in handles {
        txn.delete_table(handle).map_err(StoreError::backend)?;
    }
    txn.commit().map_err(StoreError::backend)?;
    shared.epoch.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

#[cfg(test)]
mod tests;
