//! From an access key id to a principal: the credential half of authentication.
//!
//! Long-term keys (the account root's and IAM users') live in one table, `access_keys`, so that
//! authenticating any request is a single lookup. Temporary credentials (`ASIA...`) are resolved by
//! the STS service through [`SessionResolver`]. Users are described by the IAM service through
//! [`PrincipalDirectory`]. Both are traits so that `core` does not depend on the services.
//!
//! Resolved credentials are cached per access key and dropped whenever the tables they came
//! from change (the store's per-table generation counters), so a deactivated key stops working
//! on the next request.

use crate::principal::Principal;
use citadel_store::{MasterKey, Store};
use citadel_wire::AwsError;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// The table of long-term access keys, keyed by access key id.
pub const ACCESS_KEYS: &str = "access_keys";

/// Who owns a long-term access key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum KeyOwner {
    /// The account root user.
    Root,
    /// An IAM user, by unique id and name.
    User {
        /// The user's unique id (`AIDA...`).
        user_id: String,
        /// The user's name when the key was made (informational; the directory is authoritative).
        user_name: String,
    },
}

/// A stored long-term access key. The secret is sealed under the master key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    /// The key id, `AKIA...`.
    pub access_key_id: String,
    /// The owning account.
    pub account_id: String,
    /// The owner.
    pub owner: KeyOwner,
    /// The secret, sealed with the access key id as associated data (base64).
    pub secret_sealed: String,
    /// `Active` or `Inactive`.
    pub status: String,
    /// Creation time, epoch seconds.
    pub created: i64,
    /// Last use, epoch seconds, with service and region (GetAccessKeyLastUsed).
    #[serde(default)]
    pub last_used: Option<(i64, String, String)>,
}

impl AccessKeyRecord {
    /// Seals `secret` for storage.
    pub fn seal_secret(master: &MasterKey, access_key_id: &str, secret: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(master.seal(secret.as_bytes(), access_key_id.as_bytes()))
    }

    /// Unseals the secret.
    pub fn secret(&self, master: &MasterKey) -> Option<Zeroizing<Vec<u8>>> {
        use base64::Engine;
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&self.secret_sealed)
            .ok()?;
        master.unseal(&sealed, self.access_key_id.as_bytes()).ok()
    }
}

/// Why a credential could not be resolved; the pipeline maps each to the protocol's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialError {
    /// No such key, an inactive key, or a temporary key without its token.
    UnknownKey,
    /// The session token is malformed or does not belong to the key.
    InvalidToken,
    /// The session token has expired.
    ExpiredToken,
}

/// A credential ready to verify a signature with.
#[derive(Debug, Clone)]
pub struct ResolvedCredential {
    /// The secret access key.
    pub secret: Arc<Zeroizing<Vec<u8>>>,
    /// The principal it authenticates.
    pub principal: Arc<Principal>,
}

/// Resolves temporary credentials (implemented by STS).
#[async_trait::async_trait]
pub trait SessionResolver: Send + Sync + 'static {
    /// Resolves an `ASIA...` key with its session token.
    async fn resolve(
        &self,
        access_key_id: &str,
        session_token: &str,
        now: OffsetDateTime,
    ) -> Result<ResolvedCredential, CredentialError>;
}

/// Describes IAM users (implemented by IAM).
#[async_trait::async_trait]
pub trait PrincipalDirectory: Send + Sync + 'static {
    /// The principal of an IAM user, or `None` if the user no longer exists.
    async fn user_principal(
        &self,
        account_id: &str,
        user_id: &str,
        access_key_id: &str,
    ) -> Result<Option<Principal>, AwsError>;
    /// Tables whose changes invalidate resolved users.
    fn tables(&self) -> &'static [&'static str];
}

/// Resolves access key ids to credentials, with a cache.
pub struct CredentialResolver {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    directory: RwLock<Option<Arc<dyn PrincipalDirectory>>>,
    sessions: RwLock<Option<Arc<dyn SessionResolver>>>,
    cache: RwLock<CredentialCache>,
    last_noted: parking_lot::Mutex<HashMap<String, i64>>,
}

/// How often a key's last use is written back (AWS reports it with coarse granularity too).
const LAST_USED_GRANULARITY_SECONDS: i64 = 60;

#[derive(Default)]
struct CredentialCache {
    stamp: u64,
    entries: HashMap<String, ResolvedCredential>,
}

impl CredentialResolver {
    /// A resolver over the store's `access_keys` table.
    pub fn new(store: Arc<dyn Store>, master: Arc<MasterKey>) -> Self {
        Self {
            store,
            master,
            directory: RwLock::new(None),
            sessions: RwLock::new(None),
            cache: RwLock::new(CredentialCache::default()),
            last_noted: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Installs the IAM user directory.
    pub fn set_directory(&self, directory: Arc<dyn PrincipalDirectory>) {
        *self.directory.write() = Some(directory);
    }

    /// Installs the STS session resolver.
    pub fn set_sessions(&self, sessions: Arc<dyn SessionResolver>) {
        *self.sessions.write() = Some(sessions);
    }

    /// The sum of the generations of every table a cached credential depends on.
    fn stamp(&self) -> u64 {
        let mut stamp = self.store.generation(ACCESS_KEYS);
        if let Some(directory) = self.directory.read().as_ref() {
            for table in directory.tables() {
                stamp = stamp.wrapping_add(self.store.generation(table));
            }
        }
        stamp
    }

    /// Resolves a key (and its session token for temporary keys).
    pub async fn resolve(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<ResolvedCredential, CredentialError> {
        if access_key_id.starts_with("ASIA") {
            let token = session_token.ok_or(CredentialError::UnknownKey)?;
            let sessions = self.sessions.read().clone().ok_or(CredentialError::UnknownKey)?;
            return sessions.resolve(access_key_id, token, now).await;
        }
        if session_token.is_some() {
            // A long-term key never carries a token; AWS rejects the pair.
            return Err(CredentialError::InvalidToken);
        }
        let stamp = self.stamp();
        {
            let cache = self.cache.read();
            if cache.stamp == stamp
                && let Some(hit) = cache.entries.get(access_key_id)
            {
                return Ok(hit.clone());
            }
        }
        let resolved = self.resolve_uncached(access_key_id).await?;
        let mut cache = self.cache.write();
        if cache.stamp != stamp {
            cache.entries.clear();
            cache.stamp = stamp;
        }
        if cache.entries.len() > 100_000 {
            cache.entries.clear();
        }
        cache.entries.insert(access_key_id.to_string(), resolved.clone());
        Ok(resolved)
    }

    /// Records that a long-term key was used (GetAccessKeyLastUsed, the credential report).
    ///
    /// At most one write per key per minute, made in the background so requests never wait for it;
    /// a lost race with a concurrent change of the key is simply skipped.
    pub fn note_use(&self, access_key_id: &str, service: &str, region: &str, now: OffsetDateTime) {
        if !access_key_id.starts_with("AKIA") {
            return;
        }
        let now_seconds = now.unix_timestamp();
        {
            let mut noted = self.last_noted.lock();
            if noted
                .get(access_key_id)
                .is_some_and(|at| now_seconds - at < LAST_USED_GRANULARITY_SECONDS)
            {
                return;
            }
            if noted.len() > 100_000 {
                noted.clear();
            }
            noted.insert(access_key_id.to_string(), now_seconds);
        }
        let store = self.store.clone();
        let (access_key_id, service, region) = (access_key_id.to_string(), service.to_string(), region.to_string());
        tokio::spawn(async move {
            let Ok(Some(old)) = store.get(ACCESS_KEYS, access_key_id.as_bytes()).await else {
                return;
            };
            let Ok(mut record) = serde_json::from_slice::<AccessKeyRecord>(&old) else {
                return;
            };
            record.last_used = Some((now_seconds, service, region));
            let Ok(new) = serde_json::to_vec(&record) else { return };
            let mut batch = citadel_store::WriteBatch::new();
            batch.expect(ACCESS_KEYS, access_key_id.as_bytes(), Some(&old));
            batch.put(ACCESS_KEYS, access_key_id.as_bytes(), &new);
            let _ = store.commit(batch).await;
        });
    }

    async fn resolve_uncached(&self, access_key_id: &str) -> Result<ResolvedCredential, CredentialError> {
        let record = load_access_key(self.store.as_ref(), access_key_id)
            .await
            .map_err(|_| CredentialError::UnknownKey)?
            .ok_or(CredentialError::UnknownKey)?;
        if record.status != "Active" {
            return Err(CredentialError::UnknownKey);
        }
        let secret = record.secret(&self.master).ok_or(CredentialError::UnknownKey)?;
        let principal = match &record.owner {
            KeyOwner::Root => Principal::root(&record.account_id, Some(access_key_id.to_string())),
            KeyOwner::User { user_id, .. } => {
                let directory = self.directory.read().clone().ok_or(CredentialError::UnknownKey)?;
                directory
                    .user_principal(&record.account_id, user_id, access_key_id)
                    .await
                    .map_err(|_| CredentialError::UnknownKey)?
                    .ok_or(CredentialError::UnknownKey)?
            }
        };
        Ok(ResolvedCredential {
            secret: Arc::new(secret),
            principal: Arc::new(principal),
        })
    }
}

/// Reads one access key record.
pub async fn load_access_key(
    store: &dyn Store,
    access_key_id: &str,
) -> Result<Option<AccessKeyRecord>, citadel_store::StoreError> {
    let Some(bytes) = store.get(ACCESS_KEYS, access_key_id.as_bytes()).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice(&bytes).ok())
}
