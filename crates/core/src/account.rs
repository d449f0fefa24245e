//! Accounts and their root credentials.

use crate::identity::{ACCESS_KEYS, AccessKeyRecord, KeyOwner};
use crate::random::IdGen;
use citadel_store::{CommitError, MasterKey, Store, WriteBatch};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The table of accounts, keyed by account id.
pub const ACCOUNTS: &str = "accounts";

/// A stored account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountRecord {
    /// The twelve-digit id.
    pub account_id: String,
    /// A display name.
    pub name: String,
    /// Creation time, epoch seconds.
    pub created: i64,
    /// The root user's access key id.
    pub root_access_key_id: String,
}

/// Root credentials, shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootCredentials {
    /// The account.
    pub account_id: String,
    /// `AKIA...`.
    pub access_key_id: String,
    /// The 40-character secret.
    pub secret_access_key: String,
}

/// Errors from account bootstrap.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] citadel_store::StoreError),
    /// The commit failed.
    #[error("commit: {0}")]
    Commit(#[from] CommitError),
    /// The account exists already.
    #[error("account {0} exists already")]
    Exists(String),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
}

/// Loads an account.
pub async fn load_account(store: &dyn Store, account_id: &str) -> Result<Option<AccountRecord>, AccountError> {
    Ok(store
        .get(ACCOUNTS, account_id.as_bytes())
        .await?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Lists all accounts.
pub async fn list_accounts(store: &dyn Store) -> Result<Vec<AccountRecord>, AccountError> {
    let rows = store.scan(ACCOUNTS, b"", None, usize::MAX, false).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
        .collect())
}

/// Creates an account with root credentials (given, or generated), atomically.
///
/// Returns [`AccountError::Exists`] if the account id is taken.
pub async fn create_account(
    store: &dyn Store,
    master: &MasterKey,
    ids: &IdGen,
    account_id: &str,
    name: &str,
    credentials: Option<(String, String)>,
    now: OffsetDateTime,
) -> Result<RootCredentials, AccountError> {
    if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AccountError::Invalid(format!(
            "account id must be 12 digits: {account_id}"
        )));
    }
    let (access_key_id, secret_access_key) =
        credentials.unwrap_or_else(|| (ids.aws_id("AKIA"), ids.secret_access_key()));
    if access_key_id.len() < 16 || secret_access_key.len() < 16 {
        return Err(AccountError::Invalid("root credentials are too short".into()));
    }
    let account = AccountRecord {
        account_id: account_id.to_string(),
        name: name.to_string(),
        created: now.unix_timestamp(),
        root_access_key_id: access_key_id.clone(),
    };
    let key = AccessKeyRecord {
        access_key_id: access_key_id.clone(),
        account_id: account_id.to_string(),
        owner: KeyOwner::Root,
        secret_sealed: AccessKeyRecord::seal_secret(master, &access_key_id, &secret_access_key),
        status: "Active".into(),
        created: now.unix_timestamp(),
        last_used: None,
    };
    let mut batch = WriteBatch::new();
    batch.expect(ACCOUNTS, account_id.as_bytes(), None);
    batch.expect(ACCESS_KEYS, access_key_id.as_bytes(), None);
    batch.put(
        ACCOUNTS,
        account_id.as_bytes(),
        &serde_json::to_vec(&account).unwrap_or_default(),
    );
    batch.put(
        ACCESS_KEYS,
        access_key_id.as_bytes(),
        &serde_json::to_vec(&key).unwrap_or_default(),
    );
    match store.commit(batch).await {
        Ok(()) => Ok(RootCredentials {
            account_id: account_id.to_string(),
            access_key_id,
            secret_access_key,
        }),
        Err(CommitError::Conflict { .. }) => Err(AccountError::Exists(account_id.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Picks a fresh random twelve-digit account id that is not in use.
pub async fn fresh_account_id(store: &dyn Store, ids: &IdGen) -> Result<String, AccountError> {
    loop {
        let raw = u64::from_le_bytes(ids.bytes::<8>());
        let candidate = format!("{:012}", raw % 1_000_000_000_000);
        if candidate.starts_with('0') {
            continue;
        }
        if load_account(store, &candidate).await?.is_none() {
            return Ok(candidate);
        }
    }
}
