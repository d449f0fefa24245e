//! Per-node caches of KMS records, so that a cryptographic call does not read, parse and unseal
//! its key on every request.
//!
//! # Why this is never stale
//!
//! Each cache holds one table's rows as they were read from the store, stamped with that table's
//! generation taken *before* the read ([`Store::generation`] is bumped after a commit becomes
//! visible, and on every node by PostgreSQL `NOTIFY` when another node commits). A lookup compares
//! the stamp with the table's current generation, so any commit to the table (DisableKey, a
//! rotation, a new key policy, RevokeGrant, from this node or another) drops every cached row of
//! that table before the next request reads it. Time-dependent state (a due deletion, a due
//! rotation, expired imported material) is not cached: [`crate::model::load_key`]'s lazy
//! maintenance is applied to the cached record on every call with that call's time.
//!
//! # Key material
//!
//! A cached key keeps its material sealed in the record, as stored, and unseals a version on first
//! use into a `Zeroizing` buffer owned by the cache entry; it is wiped when the entry is dropped
//! (a generation change, the size bound, or the service being dropped). Material only ever
//! reaches the cache unsealed from the record it belongs to, and only from records read from the
//! store (never from a record lazily changed in memory, whose new material may lose a race).

use crate::error;
use crate::model::{self, AliasRecord, GrantRecord, KeyRecord, Material};
use citadel_store::{MasterKey, Store};
use citadel_wire::AwsError;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use zeroize::Zeroizing;

/// Most rows one cache holds; past that it starts again empty, so memory stays bounded whatever
/// the number of keys.
const MAX_ENTRIES: usize = 10_000;

/// Unsealed key material, wiped when the last reference goes.
pub type MaterialBytes = Arc<Zeroizing<Vec<u8>>>;

/// A key row as read from the store: the parsed record, the bytes (for write preconditions) and
/// the material versions unsealed so far.
#[derive(Debug)]
pub struct StoredKey {
    /// The record exactly as stored.
    pub record: Arc<KeyRecord>,
    /// The stored bytes.
    pub raw: Arc<[u8]>,
    /// The unsealed material of `record.materials[i]`, filled on first use.
    unsealed: Vec<OnceLock<MaterialBytes>>,
}

impl StoredKey {
    /// Parses a stored key row.
    pub fn parse(raw: Vec<u8>) -> Result<Self, AwsError> {
        let record: KeyRecord = serde_json::from_slice(&raw).map_err(error::internal)?;
        let unsealed = record.materials.iter().map(|_| OnceLock::new()).collect();
        Ok(Self {
            record: Arc::new(record),
            raw: Arc::from(raw),
            unsealed,
        })
    }

    /// The unsealed bytes of `material` when it is one of this stored record's versions
    /// (same version and same sealed text), unsealing it on first use; `None` when `material` is
    /// not from this record (lazily added in memory), which the caller then unseals itself.
    pub fn unsealed(&self, master: &MasterKey, material: &Material) -> Option<Result<MaterialBytes, AwsError>> {
        let index = self
            .record
            .materials
            .iter()
            .position(|m| m.version == material.version && m.sealed == material.sealed)?;
        let slot = self.unsealed.get(index)?;
        if let Some(bytes) = slot.get() {
            return Some(Ok(bytes.clone()));
        }
        let bytes = match model::unseal_material(master, &self.record, material) {
            Ok(bytes) => Arc::new(bytes),
            Err(err) => return Some(Err(err)),
        };
        // Two requests may unseal at once; both results are the same bytes, the first one stays.
        Some(Ok(slot.get_or_init(|| bytes).clone()))
    }
}

/// One table's cached rows and the generation they were read under.
#[derive(Debug)]
struct Stamped<V> {
    stamp: u64,
    rows: HashMap<Vec<u8>, V>,
}

impl<V: Clone> Stamped<V> {
    fn new() -> Self {
        Self {
            stamp: 0,
            rows: HashMap::new(),
        }
    }
}

/// A generation-validated cache of one table.
#[derive(Debug)]
struct TableCache<V> {
    table: &'static str,
    inner: RwLock<Stamped<V>>,
}

impl<V: Clone> TableCache<V> {
    fn new(table: &'static str) -> Self {
        Self {
            table,
            inner: RwLock::new(Stamped::new()),
        }
    }

    /// The cached row of `key` if the table has not changed since it was read, and the current
    /// generation (to stamp a fresh read with).
    fn get(&self, store: &dyn Store, key: &[u8]) -> (Option<V>, u64) {
        let generation = store.generation(self.table);
        let inner = self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        if inner.stamp == generation
            && let Some(row) = inner.rows.get(key)
        {
            return (Some(row.clone()), generation);
        }
        (None, generation)
    }

    /// Keeps `value`, read after the table was at `generation`.
    fn put(&self, generation: u64, key: Vec<u8>, value: V) {
        let mut inner = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if inner.stamp != generation {
            if generation < inner.stamp {
                // Read before a change another request has already seen: it may be stale.
                return;
            }
            inner.rows.clear();
            inner.stamp = generation;
        }
        if inner.rows.len() >= MAX_ENTRIES {
            inner.rows.clear();
        }
        inner.rows.insert(key, value);
    }
}

/// An alias record with the stored bytes it was decoded from (kept for preconditions).
pub type CachedAlias = Arc<(AliasRecord, Vec<u8>)>;

/// The KMS caches of one service instance (one per node and store).
#[derive(Debug)]
pub struct KmsCache {
    keys: TableCache<Arc<StoredKey>>,
    aliases: TableCache<Option<CachedAlias>>,
    grants: TableCache<Arc<[GrantRecord]>>,
}

impl Default for KmsCache {
    fn default() -> Self {
        Self {
            keys: TableCache::new(model::KEYS),
            aliases: TableCache::new(model::ALIASES),
            grants: TableCache::new(model::GRANTS),
        }
    }
}

fn store_error(err: impl std::fmt::Display) -> AwsError {
    error::internal(format!("store: {err}"))
}

impl KmsCache {
    /// The stored key row of (account, region, key id), or `None` when there is none.
    pub async fn key(
        &self,
        store: &dyn Store,
        account: &str,
        region: &str,
        key_id: &str,
    ) -> Result<Option<Arc<StoredKey>>, AwsError> {
        let row = model::key_key(account, region, key_id);
        let (hit, generation) = self.keys.get(store, &row);
        if let Some(stored) = hit {
            return Ok(Some(stored));
        }
        // Missing keys are not cached: a key id that names nothing is not a hot path.
        let Some(raw) = store.get(model::KEYS, &row).await.map_err(store_error)? else {
            return Ok(None);
        };
        let stored = Arc::new(StoredKey::parse(raw)?);
        self.keys.put(generation, row, stored.clone());
        Ok(Some(stored))
    }

    /// The alias record (and its bytes) of (account, region, alias name), if any.
    pub async fn alias(
        &self,
        store: &dyn Store,
        account: &str,
        region: &str,
        alias_name: &str,
    ) -> Result<Option<CachedAlias>, AwsError> {
        let row = model::alias_key(account, region, alias_name);
        let (hit, generation) = self.aliases.get(store, &row);
        if let Some(alias) = hit {
            return Ok(alias);
        }
        let alias = model::load_alias(store, account, region, alias_name)
            .await?
            .map(Arc::new);
        self.aliases.put(generation, row, alias.clone());
        Ok(alias)
    }

    /// The grants of one key, by grant id.
    pub async fn grants(
        &self,
        store: &dyn Store,
        account: &str,
        region: &str,
        key_id: &str,
    ) -> Result<Arc<[GrantRecord]>, AwsError> {
        let prefix = model::key_grants_prefix(account, region, key_id);
        let (hit, generation) = self.grants.get(store, &prefix);
        if let Some(grants) = hit {
            return Ok(grants);
        }
        let grants: Arc<[GrantRecord]> = model::list_key_grants(store, account, region, key_id)
            .await?
            .into_iter()
            .map(|(grant, _)| grant)
            .collect();
        self.grants.put(generation, prefix, grants.clone());
        Ok(grants)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeySpec;

    fn record(master: &MasterKey) -> KeyRecord {
        let mut record: KeyRecord = serde_json::from_value(serde_json::json!({
            "key_id": "1234abcd-12ab-34cd-56ef-1234567890ab",
            "account": "111122223333",
            "region": "us-east-1",
            "created_ms": 0,
            "description": "",
            "key_usage": "ENCRYPT_DECRYPT",
            "key_spec": KeySpec::SymmetricDefault.as_str(),
            "origin": "AWS_KMS",
            "state": "Enabled",
            "policy": "{}",
        }))
        .unwrap();
        let material = model::new_material(master, &record, 0, 0, None).unwrap();
        record.materials.push(material);
        record
    }

    #[test]
    fn unseals_only_the_records_own_material_once() {
        let master = MasterKey::generate();
        let record = record(&master);
        let stored = StoredKey::parse(serde_json::to_vec(&record).unwrap()).unwrap();
        let own = &record.materials[0];
        let first = stored.unsealed(&master, own).unwrap().unwrap();
        let again = stored.unsealed(&master, own).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the second use must come from the cache");
        assert_eq!(first.len(), 32);
        // Same version, other material (a rotation made in memory by a request that may lose its
        // commit): not this record's, so the cache neither serves nor keeps it.
        let other = model::new_material(&master, &record, 0, 0, None).unwrap();
        assert!(stored.unsealed(&master, &other).is_none());
        let next = model::new_material(&master, &record, 1, 0, None).unwrap();
        assert!(stored.unsealed(&master, &next).is_none());
    }

    #[tokio::test]
    async fn a_commit_to_the_table_drops_cached_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = citadel_store::RedbStore::open(&dir.path().join("t.redb")).unwrap();
        let master = MasterKey::generate();
        let mut record = record(&master);
        let row = model::key_key(&record.account, &record.region, &record.key_id);
        let mut batch = citadel_store::WriteBatch::new();
        batch.put(model::KEYS, &row, &serde_json::to_vec(&record).unwrap());
        store.commit(batch).await.unwrap();
        let cache = KmsCache::default();
        let (account, region, key_id) = (record.account.clone(), record.region.clone(), record.key_id.clone());
        let first = cache.key(&store, &account, &region, &key_id).await.unwrap().unwrap();
        let hit = cache.key(&store, &account, &region, &key_id).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &hit));
        record.state = model::KeyState::Disabled;
        let mut batch = citadel_store::WriteBatch::new();
        batch.put(model::KEYS, &row, &serde_json::to_vec(&record).unwrap());
        store.commit(batch).await.unwrap();
        let fresh = cache.key(&store, &account, &region, &key_id).await.unwrap().unwrap();
        assert_eq!(fresh.record.state, model::KeyState::Disabled);
        // A write to another table leaves the key rows cached.
        let mut batch = citadel_store::WriteBatch::new();
        batch.put(model::GRANTS, b"unrelated", b"{}");
        store.commit(batch).await.unwrap();
        let still = cache.key(&store, &account, &region, &key_id).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&fresh, &still));
        // A row read under an older generation than the cache's is not kept.
        cache.keys.put(0, b"old".to_vec(), fresh.clone());
        assert!(cache.keys.get(&store, b"old").0.is_none());
    }
}
