//! Leases: background work that must run on exactly one node at a time.
//!
//! Several Citadel nodes may share one store (PostgreSQL). Work such as CloudTrail delivery and
//! digest signing must happen once, not once per node, and must be taken over when the node doing
//! it dies. A lease is one row, `(holder, expires)`, claimed and renewed with the store's
//! compare-and-set preconditions, so it needs nothing beyond the [`Store`] trait and behaves the
//! same on both backends (with one embedded node it is simply always held).
//!
//! A holder renews before each unit of work; a lease not renewed within its time to live is free
//! for any node. Work done under a lease should itself be idempotent or cursor-guarded, because a
//! holder paused longer than the time to live (a stop-the-world pause, a frozen VM) can overlap
//! with its successor for one unit of work.

use std::sync::Arc;

use citadel_store::{CommitError, Store, StoreError, WriteBatch};

use crate::clock::Clock;

/// The table of leases, keyed by lease name.
pub const LEASES: &str = "leases";

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct LeaseRecord {
    holder: String,
    /// Unix milliseconds after which the lease is free.
    expires_ms: i64,
}

/// A named lease this node tries to hold.
#[derive(Clone)]
pub struct Lease {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    name: String,
    holder: String,
    ttl: std::time::Duration,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("holder", &self.holder)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Lease {
    /// A lease called `name`, claimed for `holder` (unique per process) for `ttl` at a time.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Self {
        Self {
            store,
            clock,
            name: name.to_string(),
            holder: holder.to_string(),
            ttl,
        }
    }

    /// The holder id this node claims with.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Claims the lease if it is free or expired, or renews it if this node holds it.
    /// Returns whether this node holds it now, for another `ttl`.
    ///
    /// # Errors
    /// A store failure (treat as "not held").
    pub async fn acquire(&self) -> Result<bool, StoreError> {
        let now_ms = millis(self.clock.now());
        let current = self.store.get(LEASES, self.name.as_bytes()).await?;
        if let Some(raw) = &current
            && let Ok(record) = serde_json::from_slice::<LeaseRecord>(raw)
            && record.holder != self.holder
            && record.expires_ms > now_ms
        {
            return Ok(false);
        }
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let record = LeaseRecord {
            holder: self.holder.clone(),
            expires_ms: now_ms.saturating_add(ttl_ms),
        };
        let mut batch = WriteBatch::new();
        batch.expect(LEASES, self.name.as_bytes(), current.as_deref());
        batch.put(
            LEASES,
            self.name.as_bytes(),
            &serde_json::to_vec(&record).unwrap_or_default(),
        );
        match self.store.commit(batch).await {
            Ok(()) => Ok(true),
            // Another node claimed or renewed it between our read and our write.
            Err(CommitError::Conflict { .. }) => Ok(false),
            Err(CommitError::Backend(err)) => Err(err),
        }
    }

    /// Gives the lease up at once (on graceful shutdown), so another node need not wait for it to
    /// expire. Does nothing if another node holds it.
    ///
    /// # Errors
    /// A store failure.
    pub async fn release(&self) -> Result<(), StoreError> {
        let Some(raw) = self.store.get(LEASES, self.name.as_bytes()).await? else {
            return Ok(());
        };
        let mine = serde_json::from_slice::<LeaseRecord>(&raw).is_ok_and(|r| r.holder == self.holder);
        if !mine {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        batch.expect(LEASES, self.name.as_bytes(), Some(&raw));
        batch.delete(LEASES, self.name.as_bytes());
        match self.store.commit(batch).await {
            Ok(()) | Err(CommitError::Conflict { .. }) => Ok(()),
            Err(CommitError::Backend(err)) => Err(err),
        }
    }
}

fn millis(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use citadel_store::RedbStore;

    #[tokio::test]
    async fn one_holder_at_a_time_and_takeover_after_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.path().join("l.redb")).unwrap());
        let clock = Arc::new(ManualClock::new(
            time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20000),
        ));
        let ttl = std::time::Duration::from_secs(10);
        let a = Lease::new(store.clone(), clock.clone(), "cloudtrail-delivery", "node-a", ttl);
        let b = Lease::new(store.clone(), clock.clone(), "cloudtrail-delivery", "node-b", ttl);
        assert!(a.acquire().await.unwrap());
        assert!(!b.acquire().await.unwrap(), "held by a");
        clock.advance(time::Duration::seconds(5));
        assert!(a.acquire().await.unwrap(), "a renews");
        clock.advance(time::Duration::seconds(9));
        assert!(!b.acquire().await.unwrap(), "renewal extended a's lease");
        clock.advance(time::Duration::seconds(2));
        assert!(b.acquire().await.unwrap(), "a stopped renewing: b takes over");
        assert!(!a.acquire().await.unwrap());
        b.release().await.unwrap();
        assert!(a.acquire().await.unwrap(), "released leases are free at once");
        b.release().await.unwrap();
        assert!(
            !b.acquire().await.unwrap(),
            "releasing someone else's lease does nothing"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn contenders_never_both_win() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.path().join("l.redb")).unwrap());
        let clock = Arc::new(ManualClock::new(
            time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20000),
        ));
        let mut tasks = Vec::new();
        for i in 0..16 {
            let lease = Lease::new(
                store.clone(),
                clock.clone(),
                "x",
                &format!("node-{i}"),
                std::time::Duration::from_secs(30),
            );
            tasks.push(tokio::spawn(async move { lease.acquire().await.unwrap() }));
        }
        let mut winners = 0;
        for task in tasks {
            winners += usize::from(task.await.unwrap());
        }
        assert_eq!(winners, 1);
    }
}
