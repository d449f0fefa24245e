//! Storage for every Citadel service: an ordered key-value [`Store`], blobs, tuple keys and sealing.
//!
//! # Why optimistic preconditions and group commit
//!
//! Every service keeps its state behind one small trait, [`Store`], so that the embedded engine
//! (redb, the default) and a PostgreSQL backend are interchangeable and pass the same
//! conformance suite (`conformance`, behind the feature of the same name).
//! The trait has no interactive transactions.
//! A handler reads what it needs, then hands the store one [`WriteBatch`]: writes plus
//! preconditions ("this key is still absent", "this key still holds what I read").
//! The store applies the batch atomically only if the preconditions hold, otherwise it answers
//! [`CommitError::Conflict`] and the handler re-reads and retries.
//! Such a self-contained batch is easy to apply in one short PostgreSQL transaction, and it lets
//! the embedded backend commit many independent batches with a single fsync (group commit), so an
//! acknowledged write is always durable and the store still sustains high write rates.
//!
//! # Map
//!
//! - [`store`]: the [`Store`] and [`Snapshot`] traits.
//! - [`batch`]: [`WriteBatch`] and its preconditions.
//! - [`redb_adapter`]: [`RedbStore`], the embedded backend with its committer thread.
//! - [`postgres`]: [`PgStore`], the PostgreSQL backend for several nodes sharing one database, with
//!   cross-node cache invalidation through `LISTEN`/`NOTIFY`.
//! - [`keys`]: an order-preserving encoding of tuples into keys, for range scans by prefix.
//! - [`blob`]: [`BlobStore`] for large objects streamed in bounded memory, and [`FsBlobStore`].
//! - [`seal`]: [`MasterKey`], which seals secrets (AES-256-GCM) before they reach any store.
//! - [`seal_pkcs11`]: the option that keeps the master key wrapped by a key inside a PKCS#11 HSM.
//!
//! **Architecture invariant:** services see only `Arc<dyn Store>` and `Arc<dyn BlobStore>`; nothing
//! outside this crate names redb.

#![deny(missing_docs)]

pub mod batch;
pub mod blob;
pub mod error;
pub mod keys;
pub mod object_blob;
pub mod postgres;
pub mod redb_adapter;
pub mod seal;
pub mod seal_pkcs11;
pub mod store;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use batch::{Expected, Precondition, WriteBatch, WriteOp};
pub use blob::{BlobError, BlobRead, BlobStore, ByteStream, FsBlobStore};
pub use error::{CommitError, StoreError};
pub use postgres::{PgOptions, PgStore};
pub use redb_adapter::{CommitStats, RedbStore};
pub use seal::{MasterKey, MasterKeyError, SealError};
pub use seal_pkcs11::{Pkcs11Config, Pkcs11Error};
pub use store::{Rows, Snapshot, Store};
