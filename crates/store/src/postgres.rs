//! The PostgreSQL backend: [`PgStore`], for several Citadel nodes sharing one database.
//!
//! # Layout
//!
//! Every table of the [`Store`] lives in one PostgreSQL table,
//! `citadel_kv(tbl text COLLATE "C", k bytea, v bytea, PRIMARY KEY (tbl, k))`.
//! `bytea` compares bytewise (then shorter first), which is exactly the trait's key order, so a scan
//! is one range query on the primary key index, read backwards for `reverse`.
//! [`PgStore::connect`] creates the table when it is missing, under a transaction-scoped advisory
//! lock, so that two nodes starting at once do not race on `CREATE TABLE IF NOT EXISTS` (which is
//! not atomic in PostgreSQL and can fail with a duplicate type name).
//!
//! # How a batch is committed
//!
//! A key design decision: each batch is one short `READ COMMITTED` transaction that first takes an
//! exclusive, transaction-scoped advisory lock for every key it checks or writes, in ascending lock
//! id order, then reads its preconditions, then writes.
//! We chose per-key advisory locks over the two alternatives:
//!
//! - `SELECT ... FOR UPDATE` cannot lock a key that does not exist yet, and "this key is still
//!   absent" is the most common precondition (creating a user, a key, a bucket). Two contenders
//!   would both see the key absent and both write.
//! - `SERIALIZABLE` is correct but, under contention (the conformance suite's 32 contenders on one
//!   key, or an exact counter), most transactions fail with `serialization_failure` and must be
//!   retried; its page-level predicate locks also fail unrelated batches whose keys share an index
//!   page.
//!
//! With every writer holding the lock of every key it touches, the lock holders of one key are
//! serialized (strict two-phase locking on keys), and because PostgreSQL makes a commit visible
//! before it releases the committer's locks, the precondition read (a new statement, hence a new
//! `READ COMMITTED` snapshot) sees every earlier writer of those keys.
//! Locks are taken in one statement in ascending order, so Citadel's own commits never deadlock
//! with each other; a `serialization_failure` or `deadlock_detected` (possible only if the server
//! forces another isolation level, or from foreign lock holders) is retried a few times anyway.
//! A failing precondition rolls the transaction back before anything was written, so a conflict
//! writes nothing.
//! Lock ids are the first 8 bytes of SHA-256 over the table and key, so that every node and every
//! build computes the same id; two keys sharing an id only wait for each other.
//! [`Store::clear`] takes one global advisory lock exclusively, and commits take it shared, so a
//! clear never interleaves with a commit.
//!
//! The writes are reduced to each key's final state (a later write of a key wins) and applied with
//! one `INSERT ... ON CONFLICT DO UPDATE` and one `DELETE`, pipelined with the notification below,
//! so a commit costs four round trips whatever its size.
//!
//! # Ordering with submitted batches
//!
//! [`Store::submit`] hands batches to a background task that commits them in order, merging
//! consecutive batches without preconditions into one transaction (the audit records of read-only
//! calls).
//! The contract says a batch committed after a submission sees it, so [`Store::commit`] first waits
//! until the background task has committed everything submitted before it; it waits only when
//! something is pending.
//! The commit itself runs in a spawned task: a caller that gives up waiting cannot cancel it
//! between `COMMIT` and the generation bump that must follow it.
//!
//! # Generations across nodes
//!
//! Several nodes share one database, and each keeps caches keyed by [`Store::generation`].
//! Every commit that writes runs `pg_notify('citadel_changes', '<node id>|<table>,<table>')` inside
//! its transaction; PostgreSQL delivers the notification only once the commit is visible.
//! A dedicated connection per node `LISTEN`s on that channel and bumps the named tables' local
//! counters when another node's notification arrives (its own commits were bumped right after
//! `COMMIT`, before the caller was answered).
//! If the listening connection drops, or stops answering its heartbeat, notifications may have
//! been lost, so after reconnecting the listener bumps every table (one shared epoch added to every
//! counter, as [`Store::clear`] does).
//!
//! # Known weaknesses
//!
//! - Connections are plaintext (`NoTls`); the database is expected on a trusted network or socket.
//! - `NOTIFY` takes a cluster-wide lock at commit time, so commits that write are serialized at
//!   their very end; PostgreSQL's own group commit still shares the WAL flushes.
//! - A node learns about another node's write a notification's latency after it is visible
//!   (typically well under a millisecond on one host), so cross-node caches are eventually
//!   consistent; conditional writes are always checked against the database.
//! - Durability is PostgreSQL's: a server configured with `synchronous_commit = off` acknowledges
//!   commits that a crash can lose.
//! - Advisory lock ids share PostgreSQL's advisory lock space with any other application using the
//!   same database; a collision only makes the two wait for each other.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, IsolationLevel, NoTls};

use crate::batch::{Expected, WriteBatch, WriteOp};
use crate::error::{CommitError, StoreError};
use crate::store::{Rows, Snapshot, Store};

/// The notification channel every node commits to and listens on.
const CHANNEL: &str = "citadel_changes";
/// The notification payload's table list meaning "every table" (a clear, or a list too long).
const ALL_TABLES: &str = "*";
/// PostgreSQL rejects notification payloads of 8,000 bytes or more; longer lists become `*`.
const MAX_PAYLOAD: usize = 7_900;
/// The first half of Citadel's two-integer advisory lock ids (`CITD`), which keeps them apart
/// from the one-integer key locks.
const LOCK_CLASS: i32 = 0x4349_5444;
/// The advisory lock serializing schema creation between nodes starting at once.
const SCHEMA_LOCK: i32 = 1;
/// The advisory lock a clear takes exclusively and every commit shares.
const CLEAR_LOCK: i32 = 2;
/// The most submitted batches the background task takes from its queue at once.
const MAX_GROUP: usize = 1024;
/// How many times a commit is retried after `serialization_failure` or `deadlock_detected`.
const MAX_RETRIES: u32 = 8;
/// How often the listener checks that its connection still answers.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long the listener waits for an answer before treating its connection as dead.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause before the first attempt to reconnect the listener; it doubles on each failure.
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(50);
/// The longest pause between two attempts to reconnect the listener.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

const CREATE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS citadel_kv (\
     tbl text COLLATE \"C\" NOT NULL, \
     k bytea NOT NULL, \
     v bytea NOT NULL, \
     PRIMARY KEY (tbl, k))";
const GET: &str = "SELECT v FROM citadel_kv WHERE tbl = $1 AND k = $2";
const SCAN_UP: &str = "SELECT k, v FROM citadel_kv WHERE tbl = $1 AND k >= $2 ORDER BY k LIMIT $3";
const SCAN_UP_TO: &str = "SELECT k, v FROM citadel_kv WHERE tbl = $1 AND k >= $2 AND k < $3 ORDER BY k LIMIT $4";
const SCAN_DOWN: &str = "SELECT k, v FROM citadel_kv WHERE tbl = $1 AND k >= $2 ORDER BY k DESC LIMIT $3";
const SCAN_DOWN_TO: &str = "SELECT k, v FROM citadel_kv WHERE tbl = $1 AND k >= $2 AND k < $3 ORDER BY k DESC LIMIT $4";
/// The non-empty table names, by walking the primary key index from one table to the next
/// (a loose index scan) rather than reading every row as `SELECT DISTINCT` would.
const TABLES: &str = "WITH RECURSIVE t(tbl) AS (\
     (SELECT tbl FROM citadel_kv ORDER BY tbl LIMIT 1) \
     UNION ALL \
     SELECT (SELECT kv.tbl FROM citadel_kv kv WHERE kv.tbl > t.tbl ORDER BY kv.tbl LIMIT 1) \
     FROM t WHERE t.tbl IS NOT NULL) \
     SELECT tbl FROM t WHERE tbl IS NOT NULL";
const LOCK_SHARED: &str = "SELECT pg_advisory_xact_lock_shared($1::int4, $2::int4)";
const LOCK_EXCLUSIVE: &str = "SELECT pg_advisory_xact_lock($1::int4, $2::int4)";
/// `unnest` yields the ids in array order, and the array is sorted, so locks are taken in ascending
/// order and two commits cannot deadlock.
const LOCK_KEYS: &str = "SELECT pg_advisory_xact_lock(id) FROM unnest($1::int8[]) AS id";
const READ_PRECONDITIONS: &str = "SELECT t.ord, kv.v \
     FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS t(tbl, k, ord) \
     LEFT JOIN citadel_kv kv ON kv.tbl = t.tbl AND kv.k = t.k";
const UPSERT: &str = "INSERT INTO citadel_kv (tbl, k, v) \
     SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[]) \
     ON CONFLICT (tbl, k) DO UPDATE SET v = EXCLUDED.v";
const DELETE: &str = "DELETE FROM citadel_kv AS kv USING unnest($1::text[], $2::bytea[]) AS d(tbl, k) \
     WHERE kv.tbl = d.tbl AND kv.k = d.k";
const NOTIFY: &str = "SELECT pg_notify($1, $2)";
const CLEAR: &str = "DELETE FROM citadel_kv";

/// Tuning for [`PgStore::connect_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// The most pooled connections (reads, commits and open snapshots each hold one while they
    /// run); the listener has one more of its own.
    pub pool_size: usize,
    /// How long a call waits for a free pooled connection before failing.
    pub wait_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            wait_timeout: Duration::from_secs(30),
        }
    }
}

/// A [`Store`] on a PostgreSQL database, shareable by several Citadel nodes.
///
/// Invariant: while the store is open, a listener task holds one connection that `LISTEN`s on
/// `citadel_changes`, and a committer task drains [`Store::submit`]'s queue; both stop on
/// [`Store::close`] or when the store is dropped.
pub struct PgStore {
    core: Arc<Core>,
    /// The submission queue; `None` once closed.
    /// The lock also keeps sequence numbers in queue order (see [`Store::submit`]).
    submissions: Mutex<Option<mpsc::UnboundedSender<(u64, WriteBatch)>>>,
    /// The sequence number of the last submission the committer has finished with.
    committed: watch::Receiver<u64>,
    committer: Mutex<Option<JoinHandle<()>>>,
    listener_stop: Mutex<Option<oneshot::Sender<()>>>,
    listener: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
}

/// What the store's tasks share with it.
struct Core {
    pool: Pool,
    /// Random per process, so a node can recognize its own notifications.
    node_id: String,
    generations: RwLock<HashMap<String, u64>>,
    /// Added to every table's counter: bumped by clear and by a listener reconnect.
    epoch: AtomicU64,
    /// The sequence number of the last submission.
    submitted: AtomicU64,
    /// A submitted batch the committer could not commit, reported by the next flush.
    lost_submission: Mutex<Option<StoreError>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("node_id", &self.core.node_id)
            .field("open", &!self.closed.load(Ordering::Acquire))
            .finish()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`) with default
    /// [`PgOptions`], creating the schema if it is missing.
    ///
    /// # Errors
    /// Fails with [`StoreError::Backend`] if the URL is invalid, the server cannot be reached, or
    /// the schema cannot be created.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// Like [`PgStore::connect`], with explicit pool options.
    ///
    /// It returns only once the listener is listening, so no other node's commit after this call
    /// returns can go unnoticed.
    ///
    /// # Errors
    /// As [`PgStore::connect`].
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        // The parse error never echoes the URL, which may hold a password.
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|err| StoreError::Backend(format!("invalid PostgreSQL URL: {}", describe(&err))))?;
        if config.get_application_name().is_none() {
            config.application_name("citadel");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        // Dead peers are noticed in about a minute rather than the kernel's two hours.
        config.keepalives_idle(Duration::from_secs(30));
        let mut listener_config = config.clone();
        listener_config.application_name("citadel-listener");

        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(Duration::from_secs(15)))
            .build()
            .map_err(StoreError::backend)?;
        ensure_schema(&pool).await?;

        let core = Arc::new(Core {
            pool,
            node_id: format!("{:016x}", rand::random::<u64>()),
            generations: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            submitted: AtomicU64::new(0),
            lost_submission: Mutex::new(None),
        });

        let (listener_stop, stop) = oneshot::channel();
        let (ready, listening) = oneshot::channel();
        let listener = tokio::spawn(run_listener(listener_config, core.clone(), stop, ready));
        match listening.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                core.pool.close();
                return Err(err);
            }
            Err(_) => {
                core.pool.close();
                return Err(StoreError::Backend("the PostgreSQL listener task stopped".into()));
            }
        }

        let (sender, receiver) = mpsc::unbounded_channel();
        let (committed_sender, committed) = watch::channel(0);
        let committer = tokio::spawn(run_committer(core.clone(), receiver, committed_sender));
        Ok(PgStore {
            core,
            submissions: Mutex::new(Some(sender)),
            committed,
            committer: Mutex::new(Some(committer)),
            listener_stop: Mutex::new(Some(listener_stop)),
            listener: Mutex::new(Some(listener)),
            closed: AtomicBool::new(false),
        })
    }

    /// This node's random id, as it appears in its change notifications.
    pub fn node_id(&self) -> &str {
        &self.core.node_id
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Waits until the committer has finished with everything submitted before this call.
    async fn wait_for_submissions(&self) -> Result<(), StoreError> {
        let target = self.core.submitted.load(Ordering::Acquire);
        if *self.committed.borrow() >= target {
            return Ok(());
        }
        let mut committed = self.committed.clone();
        committed
            .wait_for(|done| *done >= target)
            .await
            .map(|_| ())
            .map_err(|_| StoreError::Closed)
    }
}

/// Creates `citadel_kv` if it is missing, one node at a time.
async fn ensure_schema(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let txn = client
        .transaction()
        .await
        .map_err(|err| pg_error("create schema", err))?;
    txn.execute(LOCK_EXCLUSIVE, &[&LOCK_CLASS, &SCHEMA_LOCK])
        .await
        .map_err(|err| pg_error("create schema", err))?;
    txn.batch_execute(CREATE_SCHEMA)
        .await
        .map_err(|err| pg_error("create schema", err))?;
    txn.commit().await.map_err(|err| pg_error("create schema", err))
}

impl Core {
    fn bump(&self, tables: &[String]) {
        let mut generations = self.generations.write();
        for table in tables {
            let counter = generations.entry(table.clone()).or_insert(0);
            *counter = counter.wrapping_add(1);
        }
    }

    fn bump_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Commits one batch in its own transaction, retrying transient lock failures, and bumps the
    /// generations of the tables it wrote once the commit is visible.
    async fn commit_batch(&self, batch: WriteBatch) -> Result<(), CommitError> {
        let plan = Plan::new(batch, &self.node_id);
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let mut attempt = 0;
        loop {
            match apply(&mut client, &plan).await {
                Ok(Ok(())) => {
                    self.bump(&plan.tables_written);
                    return Ok(());
                }
                Ok(Err(conflict)) => return Err(conflict),
                Err(err) if is_transient(&err) && attempt < MAX_RETRIES => {
                    attempt += 1;
                    let jitter = u64::from(rand::random::<u8>() % 8);
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 2 + jitter)).await;
                }
                Err(err) => return Err(CommitError::Backend(pg_error("commit", err))),
            }
        }
    }

    /// Deletes every row under the exclusive clear lock and tells every node to drop its caches.
    async fn clear(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let txn = client.transaction().await.map_err(|err| pg_error("clear", err))?;
        txn.execute(LOCK_EXCLUSIVE, &[&LOCK_CLASS, &CLEAR_LOCK])
            .await
            .map_err(|err| pg_error("clear", err))?;
        txn.batch_execute(CLEAR).await.map_err(|err| pg_error("clear", err))?;
        let payload = format!("{}|{ALL_TABLES}", self.node_id);
        txn.execute(NOTIFY, &[&CHANNEL, &payload])
            .await
            .map_err(|err| pg_error("clear", err))?;
        txn.commit().await.map_err(|err| pg_error("clear", err))?;
        self.bump_all();
        Ok(())
    }
}

/// A batch prepared for one transaction: its locks, its preconditions as columns, and its writes
/// reduced to each key's final state.
struct Plan {
    lock_ids: Vec<i64>,
    check_tables: Vec<String>,
    check_keys: Vec<Vec<u8>>,
    expectations: Vec<Expected>,
    put_tables: Vec<String>,
    put_keys: Vec<Vec<u8>>,
    put_values: Vec<Vec<u8>>,
    delete_tables: Vec<String>,
    delete_keys: Vec<Vec<u8>>,
    tables_written: Vec<String>,
    /// `<node id>|<tables>`, or `None` for a batch that writes nothing.
    notification: Option<String>,
}

impl Plan {
    fn new(batch: WriteBatch, node_id: &str) -> Plan {
        let tables_written: Vec<String> = batch.tables_written().into_iter().map(str::to_owned).collect();
        let (ops, preconditions) = batch.into_parts();
        let mut lock_ids = Vec::with_capacity(ops.len() + preconditions.len());

        // Later writes of a key replace earlier ones, so only each key's last write is applied;
        // this also keeps `INSERT ... ON CONFLICT` from touching one row twice.
        let mut last_write: HashMap<(String, Vec<u8>), Option<Vec<u8>>> = HashMap::new();
        let mut order: Vec<(String, Vec<u8>)> = Vec::new();
        for op in ops {
            let (table, key, value) = match op {
                WriteOp::Put { table, key, value } => (table, key, Some(value)),
                WriteOp::Delete { table, key } => (table, key, None),
            };
            let slot = (table, key);
            if !last_write.contains_key(&slot) {
                lock_ids.push(lock_id(&slot.0, &slot.1));
                order.push(slot.clone());
            }
            last_write.insert(slot, value);
        }
        let mut plan = Plan {
            lock_ids: Vec::new(),
            check_tables: Vec::with_capacity(preconditions.len()),
            check_keys: Vec::with_capacity(preconditions.len()),
            expectations: Vec::with_capacity(preconditions.len()),
            put_tables: Vec::new(),
            put_keys: Vec::new(),
            put_values: Vec::new(),
            delete_tables: Vec::new(),
            delete_keys: Vec::new(),
            notification: notification(node_id, &tables_written),
            tables_written,
        };
        for slot in order {
            let value = last_write.remove(&slot).flatten();
            let (table, key) = slot;
            match value {
                Some(value) => {
                    plan.put_tables.push(table);
                    plan.put_keys.push(key);
                    plan.put_values.push(value);
                }
                None => {
                    plan.delete_tables.push(table);
                    plan.delete_keys.push(key);
                }
            }
        }
        for precondition in preconditions {
            lock_ids.push(lock_id(&precondition.table, &precondition.key));
            plan.check_tables.push(precondition.table);
            plan.check_keys.push(precondition.key);
            plan.expectations.push(precondition.expected);
        }
        lock_ids.sort_unstable();
        lock_ids.dedup();
        plan.lock_ids = lock_ids;
        plan
    }
}

/// The advisory lock id of a key: stable across nodes, builds and versions.
fn lock_id(table: &str, key: &[u8]) -> i64 {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    // The length prefix keeps ("ab", "c") and ("a", "bc") apart.
    context.update(&(table.len() as u64).to_be_bytes());
    context.update(table.as_bytes());
    context.update(key);
    let digest = context.finish();
    let mut id = [0u8; 8];
    for (slot, byte) in id.iter_mut().zip(digest.as_ref()) {
        *slot = *byte;
    }
    i64::from_be_bytes(id)
}

/// The payload announcing a commit to `tables`; `*` when the list cannot be sent as is.
fn notification(node_id: &str, tables: &[String]) -> Option<String> {
    if tables.is_empty() {
        return None;
    }
    let listable = tables
        .iter()
        .all(|table| !table.contains([',', '|']) && table != ALL_TABLES);
    let list = tables.join(",");
    if listable && node_id.len() + 1 + list.len() <= MAX_PAYLOAD {
        Some(format!("{node_id}|{list}"))
    } else {
        Some(format!("{node_id}|{ALL_TABLES}"))
    }
}

/// Runs one attempt of a plan: `Ok(Err(conflict))` when a precondition failed (nothing written),
/// `Err` for a database error (retryable or not; the transaction was rolled back).
async fn apply(
    client: &mut deadpool_postgres::Object,
    plan: &Plan,
) -> Result<Result<(), CommitError>, tokio_postgres::Error> {
    let txn = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await?;
    // The three statements are sent together (tokio-postgres pipelines concurrent queries on one
    // connection) and run in order: the shared clear lock, the key locks, then the reads.
    let clear_lock = async {
        let statement = txn.prepare_cached(LOCK_SHARED).await?;
        txn.execute(&statement, &[&LOCK_CLASS, &CLEAR_LOCK]).await
    };
    let key_locks = async {
        let statement = txn.prepare_cached(LOCK_KEYS).await?;
        txn.execute(&statement, &[&plan.lock_ids]).await
    };
    let current = async {
        if plan.expectations.is_empty() {
            return Ok(Vec::new());
        }
        let statement = txn.prepare_cached(READ_PRECONDITIONS).await?;
        txn.query(&statement, &[&plan.check_tables, &plan.check_keys]).await
    };
    let (_, _, rows) = futures::try_join!(clear_lock, key_locks, current)?;

    let mut values: Vec<Option<Vec<u8>>> = vec![None; plan.expectations.len()];
    for row in rows {
        let ordinal: i64 = row.try_get(0)?;
        let value: Option<Vec<u8>> = row.try_get(1)?;
        if let Some(slot) = usize::try_from(ordinal - 1)
            .ok()
            .and_then(|index| values.get_mut(index))
        {
            *slot = value;
        }
    }
    let checks = plan
        .check_tables
        .iter()
        .zip(&plan.check_keys)
        .zip(&plan.expectations)
        .zip(&values);
    for (((table, key), expected), current) in checks {
        if !expected.holds(current.as_deref()) {
            txn.rollback().await?;
            return Ok(Err(CommitError::Conflict {
                table: table.clone(),
                key: key.clone(),
            }));
        }
    }

    let upsert = async {
        if plan.put_keys.is_empty() {
            return Ok(0);
        }
        let statement = txn.prepare_cached(UPSERT).await?;
        txn.execute(&statement, &[&plan.put_tables, &plan.put_keys, &plan.put_values])
            .await
    };
    let delete = async {
        if plan.delete_keys.is_empty() {
            return Ok(0);
        }
        let statement = txn.prepare_cached(DELETE).await?;
        txn.execute(&statement, &[&plan.delete_tables, &plan.delete_keys]).await
    };
    let notify = async {
        let Some(payload) = &plan.notification else {
            return Ok(0);
        };
        let statement = txn.prepare_cached(NOTIFY).await?;
        txn.execute(&statement, &[&CHANNEL, payload]).await
    };
    futures::try_join!(upsert, delete, notify)?;
    txn.commit().await?;
    Ok(Ok(()))
}

/// Whether a failed attempt wrote nothing and may simply be tried again.
fn is_transient(err: &tokio_postgres::Error) -> bool {
    matches!(
        err.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// A readable message for a PostgreSQL error: tokio-postgres's `Display` says only "db error",
/// so the server's severity, code, message and detail are spelled out.
fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut message = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            message.push_str(" (");
            message.push_str(detail);
            message.push(')');
        }
        return message;
    }
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn pg_error(context: &str, err: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(format!("PostgreSQL {context}: {}", describe(&err)))
}

fn pool_error(err: PoolError) -> StoreError {
    match err {
        PoolError::Closed => StoreError::Closed,
        PoolError::Backend(err) => pg_error("connect", err),
        PoolError::Timeout(kind) => StoreError::Backend(format!("PostgreSQL connection pool timed out ({kind:?})")),
        other => StoreError::Backend(format!("PostgreSQL connection pool: {other}")),
    }
}

async fn read_get(client: &impl GenericClient, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    let statement = client.prepare_cached(GET).await.map_err(|err| pg_error("get", err))?;
    let row = client
        .query_opt(&statement, &[&table, &key])
        .await
        .map_err(|err| pg_error("get", err))?;
    match row {
        Some(row) => Ok(Some(row.try_get(0).map_err(|err| pg_error("get", err))?)),
        None => Ok(None),
    }
}

async fn read_scan(
    client: &impl GenericClient,
    table: &str,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
    reverse: bool,
) -> Result<Rows, StoreError> {
    if limit == 0 || end.is_some_and(|end| end <= start) {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = match (end, reverse) {
        (None, false) => query(client, SCAN_UP, &[&table, &start, &limit]).await,
        (None, true) => query(client, SCAN_DOWN, &[&table, &start, &limit]).await,
        (Some(end), false) => query(client, SCAN_UP_TO, &[&table, &start, &end, &limit]).await,
        (Some(end), true) => query(client, SCAN_DOWN_TO, &[&table, &start, &end, &limit]).await,
    }
    .map_err(|err| pg_error("scan", err))?;
    rows.into_iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<Rows, tokio_postgres::Error>>()
        .map_err(|err| pg_error("scan", err))
}

async fn read_tables(client: &impl GenericClient) -> Result<Vec<String>, StoreError> {
    let rows = query(client, TABLES, &[])
        .await
        .map_err(|err| pg_error("list tables", err))?;
    rows.into_iter()
        .map(|row| row.try_get(0))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|err| pg_error("list tables", err))
}

async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query(&statement, params).await
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_open()?;
        let client = self.core.pool.get().await.map_err(pool_error)?;
        read_get(&client, table, key).await
    }

    async fn scan(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Rows, StoreError> {
        self.check_open()?;
        let client = self.core.pool.get().await.map_err(pool_error)?;
        read_scan(&client, table, start, end, limit, reverse).await
    }

    async fn commit(&self, batch: WriteBatch) -> Result<(), CommitError> {
        self.check_open()?;
        if batch.is_empty() {
            return Ok(());
        }
        self.wait_for_submissions().await?;
        let core = self.core.clone();
        tokio::spawn(async move { core.commit_batch(batch).await })
            .await
            .unwrap_or_else(|err| {
                Err(CommitError::Backend(StoreError::Backend(format!(
                    "the commit task failed: {err}"
                ))))
            })
    }

    fn submit(&self, batch: WriteBatch) {
        if batch.is_empty() {
            return;
        }
        let submissions = self.submissions.lock();
        let Some(sender) = submissions.as_ref() else {
            *self.core.lost_submission.lock() = Some(StoreError::Closed);
            return;
        };
        // Numbered under the lock, so that numbers reach the committer in increasing order and
        // "the committer is done with number n" means it is done with everything before n too.
        let sequence = self.core.submitted.load(Ordering::Acquire) + 1;
        if sender.send((sequence, batch)).is_ok() {
            self.core.submitted.store(sequence, Ordering::Release);
        } else {
            *self.core.lost_submission.lock() = Some(StoreError::Closed);
        }
    }

    fn backlog(&self) -> usize {
        let pending = self
            .core
            .submitted
            .load(Ordering::Acquire)
            .saturating_sub(*self.committed.borrow());
        usize::try_from(pending).unwrap_or(usize::MAX)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.check_open()?;
        self.wait_for_submissions().await?;
        match self.core.lost_submission.lock().take() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn generation(&self, table: &str) -> u64 {
        let own = self.core.generations.read().get(table).copied().unwrap_or(0);
        own.wrapping_add(self.core.epoch.load(Ordering::Acquire))
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>, StoreError> {
        self.check_open()?;
        let client = self.core.pool.get().await.map_err(pool_error)?;
        let (requests, receiver) = mpsc::channel(8);
        let (ready, started) = oneshot::channel();
        tokio::spawn(serve_snapshot(client, receiver, ready));
        match started.await {
            Ok(Ok(())) => Ok(Box::new(PgSnapshot { requests })),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(StoreError::Backend("the PostgreSQL snapshot task stopped".into())),
        }
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.check_open()?;
        self.wait_for_submissions().await?;
        self.core.clear().await
    }

    async fn close(&self) -> Result<(), StoreError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Dropping the sender lets the committer drain what was submitted, then stop.
        drop(self.submissions.lock().take());
        let committer = self.committer.lock().take();
        if let Some(committer) = committer {
            let _ = committer.await;
        }
        drop(self.listener_stop.lock().take());
        let listener = self.listener.lock().take();
        if let Some(listener) = listener {
            let _ = listener.await;
        }
        self.core.pool.close();
        match self.core.lost_submission.lock().take() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

/// The background committer: commits submitted batches in order, merging runs of batches without
/// preconditions into one transaction, and publishes how far it got.
async fn run_committer(
    core: Arc<Core>,
    mut queue: mpsc::UnboundedReceiver<(u64, WriteBatch)>,
    committed: watch::Sender<u64>,
) {
    let mut pending = Vec::new();
    while let Some(first) = queue.recv().await {
        pending.push(first);
        while pending.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => pending.push(job),
                Err(_) => break,
            }
        }
        let last = pending.last().map_or(0, |(sequence, _)| *sequence);
        let mut group = WriteBatch::new();
        for (_, batch) in pending.drain(..) {
            if batch.preconditions().is_empty() {
                group.append(batch);
            } else {
                commit_submitted(&core, std::mem::take(&mut group)).await;
                commit_submitted(&core, batch).await;
            }
        }
        commit_submitted(&core, group).await;
        committed.send_replace(last);
    }
}

async fn commit_submitted(core: &Core, batch: WriteBatch) {
    if batch.is_empty() {
        return;
    }
    match core.commit_batch(batch).await {
        // A submitted batch whose precondition fails is dropped: nobody waits for it.
        Ok(()) | Err(CommitError::Conflict { .. }) => {}
        Err(CommitError::Backend(err)) => *core.lost_submission.lock() = Some(err),
    }
}

/// Why one listening session ended.
enum ListenEnd {
    /// The store was closed or dropped.
    Stopped,
    /// The connection failed; the message says how.
    Failed(StoreError),
}

/// The listener: keeps one connection listening on [`CHANNEL`], reconnecting with backoff.
/// `ready` is answered after the first `LISTEN` (or its failure, which ends the task).
async fn run_listener(
    config: tokio_postgres::Config,
    core: Arc<Core>,
    mut stop: oneshot::Receiver<()>,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    let mut ready = Some(ready);
    let mut delay = FIRST_RECONNECT_DELAY;
    loop {
        match listen_once(&config, &core, &mut stop, &mut ready, &mut delay).await {
            ListenEnd::Stopped => return,
            ListenEnd::Failed(err) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(err));
                    return;
                }
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_RECONNECT_DELAY);
    }
}

/// One listening session: connect, `LISTEN`, then apply notifications until the connection fails
/// or the store stops.
async fn listen_once(
    config: &tokio_postgres::Config,
    core: &Core,
    stop: &mut oneshot::Receiver<()>,
    ready: &mut Option<oneshot::Sender<Result<(), StoreError>>>,
    reconnect_delay: &mut Duration,
) -> ListenEnd {
    let connected = tokio::select! {
        _ = &mut *stop => return ListenEnd::Stopped,
        connected = config.connect(NoTls) => connected,
    };
    let (client, mut connection) = match connected {
        Ok(pair) => pair,
        Err(err) => return ListenEnd::Failed(pg_error("listener connect", err)),
    };
    // The connection must be polled for queries to progress and notifications to arrive; a task
    // does that and forwards what it receives.
    let (messages_sender, mut messages) = mpsc::unbounded_channel();
    let driver = AbortOnDrop(tokio::spawn(async move {
        loop {
            let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            let end = !matches!(message, Some(Ok(_)));
            if messages_sender.send(message).is_err() || end {
                return;
            }
        }
    }));
    let listen = format!("LISTEN {CHANNEL}");
    let listening = tokio::time::timeout(HEARTBEAT_TIMEOUT, client.batch_execute(&listen));
    match listening.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return ListenEnd::Failed(pg_error("listen", err)),
        Err(_) => return ListenEnd::Failed(StoreError::Backend("PostgreSQL LISTEN timed out".into())),
    }
    // A session that got this far was healthy: the next failure is retried quickly again.
    *reconnect_delay = FIRST_RECONNECT_DELAY;
    match ready.take() {
        Some(ready) => {
            let _ = ready.send(Ok(()));
        }
        // Notifications may have been missed while disconnected: every cache must re-read.
        None => core.bump_all(),
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        tokio::select! {
            _ = &mut *stop => break ListenEnd::Stopped,
            message = messages.recv() => match message {
                Some(Some(Ok(AsyncMessage::Notification(notification)))) => {
                    apply_notification(core, notification.payload());
                }
                Some(Some(Ok(_))) => {}
                Some(Some(Err(err))) => break ListenEnd::Failed(pg_error("listener", err)),
                Some(None) | None => {
                    break ListenEnd::Failed(StoreError::Backend("PostgreSQL listener connection closed".into()));
                }
            },
            _ = heartbeat.tick() => {
                match tokio::time::timeout(HEARTBEAT_TIMEOUT, client.simple_query("")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => break ListenEnd::Failed(pg_error("listener heartbeat", err)),
                    Err(_) => break ListenEnd::Failed(StoreError::Backend("PostgreSQL listener heartbeat timed out".into())),
                }
            }
        }
    };
    drop(driver);
    end
}

/// Bumps the generations another node's commit announced.
fn apply_notification(core: &Core, payload: &str) {
    let Some((node_id, tables)) = payload.split_once('|') else {
        // Not ours to parse: the safe reading is "anything may have changed".
        core.bump_all();
        return;
    };
    if node_id == core.node_id {
        // Our own commit, already bumped right after it became visible.
        return;
    }
    if tables == ALL_TABLES {
        core.bump_all();
    } else {
        let tables: Vec<String> = tables.split(',').map(str::to_owned).collect();
        core.bump(&tables);
    }
}

/// Aborts a spawned task when dropped, so no task outlives the session that owns it.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A request to a snapshot's task.
enum SnapshotRequest {
    Get {
        table: String,
        key: Vec<u8>,
        reply: oneshot::Sender<Result<Option<Vec<u8>>, StoreError>>,
    },
    Scan {
        table: String,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: usize,
        reverse: bool,
        reply: oneshot::Sender<Result<Rows, StoreError>>,
    },
    Tables {
        reply: oneshot::Sender<Result<Vec<String>, StoreError>>,
    },
}

/// A `REPEATABLE READ, READ ONLY` transaction on a pooled connection, owned by a task.
///
/// A task owns the connection and the transaction (which borrows it) because a struct cannot hold
/// both; when the snapshot is dropped, its request channel closes, the task rolls the transaction
/// back and the connection returns to the pool.
/// If the task is cancelled instead (runtime shutdown), tokio-postgres still queues the rollback
/// when the transaction is dropped, so a pooled connection never carries a transaction.
struct PgSnapshot {
    requests: mpsc::Sender<SnapshotRequest>,
}

async fn serve_snapshot(
    mut client: deadpool_postgres::Object,
    mut requests: mpsc::Receiver<SnapshotRequest>,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    let started = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await;
    let txn = match started {
        Ok(txn) => txn,
        Err(err) => {
            let _ = ready.send(Err(pg_error("snapshot", err)));
            return;
        }
    };
    // PostgreSQL takes a REPEATABLE READ snapshot at the transaction's first statement, not at
    // BEGIN, so one statement runs now to fix the point in time before the caller continues.
    if let Err(err) = txn.batch_execute("SELECT 1").await {
        let _ = ready.send(Err(pg_error("snapshot", err)));
        return;
    }
    if ready.send(Ok(())).is_err() {
        return;
    }
    while let Some(request) = requests.recv().await {
        match request {
            SnapshotRequest::Get { table, key, reply } => {
                let _ = reply.send(read_get(&txn, &table, &key).await);
            }
            SnapshotRequest::Scan {
                table,
                start,
                end,
                limit,
                reverse,
                reply,
            } => {
                let _ = reply.send(read_scan(&txn, &table, &start, end.as_deref(), limit, reverse).await);
            }
            SnapshotRequest::Tables { reply } => {
                let _ = reply.send(read_tables(&txn).await);
            }
        }
    }
    // The snapshot was dropped; a failed rollback leaves the connection to the pool's recycling,
    // which discards closed connections.
    let _ = txn.rollback().await;
}

impl PgSnapshot {
    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> SnapshotRequest,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(request(reply))
            .await
            .map_err(|_| StoreError::Backend("the PostgreSQL snapshot task stopped".into()))?;
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Backend("the PostgreSQL snapshot task stopped".into())))
    }
}

#[async_trait::async_trait]
impl Snapshot for PgSnapshot {
    async fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.ask(|reply| SnapshotRequest::Get {
            table: table.to_owned(),
            key: key.to_vec(),
            reply,
        })
        .await
    }

    async fn scan(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        reverse: bool,
    ) -> Result<Rows, StoreError> {
        self.ask(|reply| SnapshotRequest::Scan {
            table: table.to_owned(),
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            limit,
            reverse,
            reply,
        })
        .await
    }

    async fn tables(&self) -> Result<Vec<String>, StoreError> {
        self.ask(|reply| SnapshotRequest::Tables { reply }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_ids_are_stable_and_separate_table_from_key() {
        assert_eq!(lock_id("t", b"k"), lock_id("t", b"k"));
        assert_ne!(lock_id("ab", b"c"), lock_id("a", b"bc"));
        assert_ne!(lock_id("t", b"k"), lock_id("u", b"k"));
    }

    #[test]
    fn notifications_list_tables_or_say_all() {
        let tables = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();
        assert_eq!(notification("n", &[]), None);
        assert_eq!(notification("n", &tables(&["a", "b"])).as_deref(), Some("n|a,b"));
        assert_eq!(notification("n", &tables(&["a,b"])).as_deref(), Some("n|*"));
        assert_eq!(notification("n", &tables(&["*"])).as_deref(), Some("n|*"));
        let long = "x".repeat(MAX_PAYLOAD);
        assert_eq!(notification("n", &tables(&[&long])).as_deref(), Some("n|*"));
    }

    #[test]
    fn plans_keep_each_keys_last_write_and_sort_locks() {
        let mut batch = WriteBatch::new();
        batch
            .put("t", b"a", b"1")
            .delete("t", b"a")
            .put("t", b"b", b"2")
            .delete("t", b"c")
            .put("t", b"a", b"3")
            .expect("t", b"b", None);
        let plan = Plan::new(batch, "node");
        assert_eq!(plan.put_keys, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(plan.put_values, vec![b"3".to_vec(), b"2".to_vec()]);
        assert_eq!(plan.delete_keys, vec![b"c".to_vec()]);
        assert_eq!(plan.lock_ids.len(), 3);
        assert!(plan.lock_ids.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(plan.notification.as_deref(), Some("node|t"));
    }
}
