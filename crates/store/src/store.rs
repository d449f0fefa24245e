//! The storage interface every Citadel service uses.
//!
//! A key design decision: the interface is an ordered key-value map with *optimistic* transactions
//! (a batch of writes guarded by preconditions) rather than interactive transactions.
//! Interactive transactions would tie a request's lifetime to a database transaction and would need
//! a different shape for an embedded engine (one writer) than for PostgreSQL (many connections).
//! With preconditions, a handler reads freely, then hands one self-contained batch to the store;
//! the embedded backend checks it inside its single committer thread and PostgreSQL checks it
//! inside one short transaction, and both give the same answer.
//! Because batches are self-contained, the embedded backend can also commit many of them with one
//! fsync (group commit), which is what makes durable writes fast.

use crate::batch::WriteBatch;
use crate::error::{CommitError, StoreError};

/// Rows returned by a scan: `(key, value)` pairs in scan order.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// An ordered key-value store with atomic, precondition-guarded batches.
///
/// Tables are namespaces of keys, identified by short names and created on first write.
/// Reading a table that was never written behaves like reading an empty table.
/// Keys and values are arbitrary bytes; keys sort bytewise (see [`crate::keys`] for tuple keys).
///
/// The trait is object-safe: services hold an `Arc<dyn Store>`.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current value of `key` in `table`, if any.
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Rows with keys in `[start, end)` (unbounded above when `end` is `None`), ascending, or
    /// descending when `reverse` is set, at most `limit` of them.
    /// With `reverse` the rows nearest `end` come first.
    async fn scan(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Rows, StoreError>;

    /// Applies the batch atomically if every precondition holds; returns only once it is durable.
    ///
    /// # Errors
    /// [`CommitError::Conflict`] names the first failing precondition; nothing was written.
    /// [`CommitError::Backend`] reports a storage failure.
    async fn commit(&self, batch: WriteBatch) -> Result<(), CommitError>;

    /// Enqueues the batch to be committed with the next group, without waiting.
    ///
    /// Meant for writes nobody waits on (audit records of read-only calls).
    /// Such batches should carry no preconditions; if one does and it fails, the batch is dropped,
    /// because there is nobody to tell.
    fn submit(&self, batch: WriteBatch);

    /// How many submitted jobs are waiting for the committer; callers that submit at a high rate
    /// wait for a [`Store::flush`] when it grows, so memory stays bounded.
    fn backlog(&self) -> usize {
        0
    }

    /// Waits until everything submitted before this call is durable.
    ///
    /// # Errors
    /// Reports a backend failure that lost a submitted batch since the previous flush.
    async fn flush(&self) -> Result<(), StoreError>;

    /// A counter for `table`, increased by every commit that writes to it (and by `clear`).
    ///
    /// It is bumped after the commit is visible to readers, so a cache that records the generation
    /// *before* reading can never keep a stale value under a current generation.
    /// Generations are per process and start again after a restart; they only order changes.
    fn generation(&self, table: &str) -> u64;

    /// A consistent point-in-time view for multi-key reads.
    async fn snapshot(&self) -> Result<Box<dyn Snapshot>, StoreError>;

    /// Deletes every table (the test API's reset).
    async fn clear(&self) -> Result<(), StoreError>;

    /// Commits what was submitted, stops the backend and releases its files.
    /// Later calls fail with [`StoreError::Closed`].
    async fn close(&self) -> Result<(), StoreError>;
}

/// A read-only view of the store at one point in time.
#[async_trait::async_trait]
pub trait Snapshot: Send + Sync {
    /// The value of `key` in `table` at the snapshot's point in time.
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Like [`Store::scan`], at the snapshot's point in time.
    async fn scan(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Rows, StoreError>;

    /// The names of the tables that hold at least one row at the snapshot's point in time, sorted.
    ///
    /// Backups walk every table through this; a backend that cannot list tables says so rather
    /// than producing an incomplete backup.
    async fn tables(&self) -> Result<Vec<String>, StoreError> {
        Err(StoreError::Backend(
            "this store backend cannot list its tables".to_string(),
        ))
    }
}
