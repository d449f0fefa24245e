//! The store's error types.
//!
//! They are deliberately small and `Clone`: one failed group commit must be reported to every batch
//! in the group, so a backend error is carried as a message rather than as a boxed source.

/// A failure of the storage backend itself (I/O, corruption, a closed store).
///
/// Callers cannot do anything specific about these besides reporting them, so the backend's own
/// error is kept only as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend failed; the message comes from the backend.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The store was closed, or its committer stopped, before the call could run.
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// Wraps any displayable backend error.
    pub fn backend(err: impl std::fmt::Display) -> Self {
        StoreError::Backend(err.to_string())
    }
}

/// Why [`crate::Store::commit`] did not apply a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// A precondition did not hold; nothing of the batch was written.
    /// The caller is expected to re-read and retry.
    #[error("precondition failed on table {table} (key {})", hex::encode(key))]
    Conflict {
        /// The table of the first failing precondition.
        table: String,
        /// The key of the first failing precondition.
        key: Vec<u8>,
    },
    /// The backend failed; the batch may or may not have been written only if the failure happened
    /// during the durable commit itself (as with any database), otherwise it was not.
    #[error(transparent)]
    Backend(#[from] StoreError),
}
