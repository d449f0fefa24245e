//! Stored KMS state: key, alias and grant records, their tables, key lookup and lazy maintenance.
//!
//! # Tables
//!
//! | table | key | value |
//! |---|---|---|
//! | `kms_keys` | (account, region, key id) | [`KeyRecord`] as JSON |
//! | `kms_aliases` | (account, region, alias name) | [`AliasRecord`] as JSON |
//! | `kms_grants` | (account, region, key id, grant id) | [`GrantRecord`] as JSON |
//!
//! Keys are regional, as in AWS, so every key starts with the account and the region.
//! Key material is stored only sealed ([`Material::sealed`]): AES-256-GCM under the master key with
//! the key ARN and material version as associated data, so a sealed blob moved to another key or
//! version fails to unseal.
//!
//! # Lazy maintenance
//!
//! Nothing runs in the background. When a key is loaded ([`load_key`]) with the request time:
//! a key whose deletion date has passed is reported as not found (and purged by the next listing
//! or creation in its account and region), due automatic rotations of an enabled key are applied,
//! and imported material past its `ValidTo` is dropped (the key becomes `PendingImport`).
//! Changes made this way mark the [`KeyHandle`] dirty so the handler writes them with its batch.

use crate::cache::{KmsCache, MaterialBytes, StoredKey};
use crate::crypto::{self, KeySpec, KeyUsage};
use crate::error;
use crate::input::{b64, time_value, unb64};
use citadel_store::keys::{Key, prefix_range};
use citadel_store::{MasterKey, Store, WriteBatch};
use citadel_wire::AwsError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The table of keys.
pub const KEYS: &str = "kms_keys";
/// The table of aliases.
pub const ALIASES: &str = "kms_aliases";
/// The table of grants.
pub const GRANTS: &str = "kms_grants";

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// The most automatic rotations applied in one lazy catch-up, so a clock jump cannot loop for long.
const MAX_CATCH_UP_ROTATIONS: usize = 64;

/// The store key of a key record.
pub fn key_key(account: &str, region: &str, key_id: &str) -> Vec<u8> {
    Key::new().str(account).str(region).str(key_id).finish()
}

/// The store key of an alias record.
pub fn alias_key(account: &str, region: &str, alias_name: &str) -> Vec<u8> {
    Key::new().str(account).str(region).str(alias_name).finish()
}

/// The store key of a grant record.
pub fn grant_key(account: &str, region: &str, key_id: &str, grant_id: &str) -> Vec<u8> {
    Key::new().str(account).str(region).str(key_id).str(grant_id).finish()
}

/// The prefix of every record of one account and region (all three tables).
pub fn scope_prefix(account: &str, region: &str) -> Vec<u8> {
    Key::new().str(account).str(region).finish()
}

/// The prefix of the grants of one key.
pub fn key_grants_prefix(account: &str, region: &str, key_id: &str) -> Vec<u8> {
    Key::new().str(account).str(region).str(key_id).finish()
}

/// A key's state (AWS's `KeyState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    /// Usable.
    Enabled,
    /// Disabled by DisableKey.
    Disabled,
    /// Scheduled for deletion.
    PendingDeletion,
    /// An EXTERNAL key without key material.
    PendingImport,
}

impl KeyState {
    /// AWS's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "Enabled",
            Self::Disabled => "Disabled",
            Self::PendingDeletion => "PendingDeletion",
            Self::PendingImport => "PendingImport",
        }
    }
}

/// One version of a key's material.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Material {
    /// The version written into ciphertext blobs (0 for the first material).
    pub version: u32,
    /// AWS's `KeyMaterialId`: 64 hex characters.
    pub id: String,
    /// The material sealed under the master key (base64).
    pub sealed: String,
    /// When the material became current, epoch milliseconds.
    pub created_ms: i64,
    /// `AUTOMATIC` or `ON_DEMAND` for rotations; `None` for the original material.
    #[serde(default)]
    pub rotation_type: Option<String>,
    /// For key pairs, the DER `SubjectPublicKeyInfo` (base64); public, so stored in clear.
    #[serde(default)]
    pub public_key: Option<String>,
}

/// A tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// A stored KMS key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The UUID.
    pub key_id: String,
    /// The owning account.
    pub account: String,
    /// The region.
    pub region: String,
    /// Creation, epoch milliseconds.
    pub created_ms: i64,
    /// The description.
    pub description: String,
    /// `ENCRYPT_DECRYPT`, `SIGN_VERIFY` or `GENERATE_VERIFY_MAC`.
    pub key_usage: String,
    /// The key spec name.
    pub key_spec: String,
    /// `AWS_KMS` or `EXTERNAL`.
    pub origin: String,
    /// The state.
    pub state: KeyState,
    /// When a pending deletion happens, epoch milliseconds.
    #[serde(default)]
    pub deletion_ms: Option<i64>,
    /// The waiting period of a pending deletion.
    #[serde(default)]
    pub pending_window_days: Option<i64>,
    /// The key policy (named `default`).
    pub policy: String,
    /// Tags in insertion order.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The automatic rotation period; `Some` means automatic rotation is enabled.
    #[serde(default)]
    pub rotation_period_days: Option<i64>,
    /// When the next automatic rotation is due, epoch milliseconds.
    #[serde(default)]
    pub next_rotation_ms: Option<i64>,
    /// When the last on-demand rotation started.
    #[serde(default)]
    pub on_demand_rotation_ms: Option<i64>,
    /// Every material version, oldest first; the last one is current. Empty while `PendingImport`.
    #[serde(default)]
    pub materials: Vec<Material>,
    /// When imported material expires, epoch milliseconds.
    #[serde(default)]
    pub valid_to_ms: Option<i64>,
    /// `KEY_MATERIAL_EXPIRES` or `KEY_MATERIAL_DOES_NOT_EXPIRE` for imported material.
    #[serde(default)]
    pub expiration_model: Option<String>,
    /// A keyed fingerprint of the first imported material: re-imports must bring the same bytes.
    #[serde(default)]
    pub import_fingerprint: Option<String>,
    /// `AWS` for AWS managed keys (`alias/aws/<service>`, created by a service on first use);
    /// `None` for customer managed keys.
    #[serde(default)]
    pub key_manager: Option<String>,
}

impl KeyRecord {
    /// The key ARN.
    pub fn arn(&self) -> String {
        key_arn(&self.region, &self.account, &self.key_id)
    }

    /// The key spec (records only ever hold implemented specs).
    pub fn spec(&self) -> KeySpec {
        KeySpec::parse(&self.key_spec).unwrap_or(KeySpec::SymmetricDefault)
    }

    /// The key usage.
    pub fn usage(&self) -> KeyUsage {
        KeyUsage::parse(&self.key_usage).unwrap_or(KeyUsage::EncryptDecrypt)
    }

    /// The current material.
    pub fn current_material(&self) -> Option<&Material> {
        self.materials.last()
    }

    /// The material of `version`.
    pub fn material(&self, version: u32) -> Option<&Material> {
        self.materials.iter().find(|m| m.version == version)
    }

    /// The key's id as 16 bytes for blobs.
    pub fn id_bytes(&self) -> Result<[u8; 16], AwsError> {
        crypto::parse_uuid(&self.key_id).ok_or_else(|| error::internal("stored key id is not a UUID"))
    }

    /// The tag list as condition-key pairs.
    pub fn tag_pairs(&self) -> Vec<(String, String)> {
        self.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect()
    }

    /// Fails unless the key can be used for cryptographic operations now.
    pub fn check_usable(&self) -> Result<(), AwsError> {
        match self.state {
            KeyState::Enabled => Ok(()),
            KeyState::Disabled => Err(error::disabled(&self.arn())),
            KeyState::PendingDeletion => Err(error::invalid_state(format!("{} is pending deletion.", self.arn()))),
            KeyState::PendingImport => Err(error::invalid_state(format!("{} is pending import.", self.arn()))),
        }
    }

    /// Fails when the key is pending deletion (most management operations).
    pub fn check_not_pending_deletion(&self) -> Result<(), AwsError> {
        if self.state == KeyState::PendingDeletion {
            return Err(error::invalid_state(format!("{} is pending deletion.", self.arn())));
        }
        Ok(())
    }

    /// AWS's `KeyMetadata`.
    pub fn metadata(&self) -> Value {
        let spec = self.spec();
        let usage = self.usage();
        let mut meta = json!({
            "AWSAccountId": self.account,
            "KeyId": self.key_id,
            "Arn": self.arn(),
            "CreationDate": time_value(self.created_ms),
            "Enabled": self.state == KeyState::Enabled,
            "Description": self.description,
            "KeyUsage": self.key_usage,
            "KeyState": self.state.as_str(),
            "Origin": self.origin,
            "KeyManager": self.key_manager.as_deref().unwrap_or("CUSTOMER"),
            "CustomerMasterKeySpec": self.key_spec,
            "KeySpec": self.key_spec,
            "MultiRegion": false,
        });
        let Some(map) = meta.as_object_mut() else {
            return meta;
        };
        if let Some(deletion) = self.deletion_ms {
            map.insert("DeletionDate".into(), time_value(deletion));
        }
        if let Some(days) = self.pending_window_days {
            map.insert("PendingDeletionWindowInDays".into(), json!(days));
        }
        if self.origin == "EXTERNAL" {
            let model = self
                .expiration_model
                .clone()
                .unwrap_or_else(|| "KEY_MATERIAL_DOES_NOT_EXPIRE".into());
            if !self.materials.is_empty() || self.expiration_model.is_some() {
                map.insert("ExpirationModel".into(), json!(model));
            }
            if let Some(valid_to) = self.valid_to_ms {
                map.insert("ValidTo".into(), time_value(valid_to));
            }
        }
        let encryption = spec.encryption_algorithms(usage);
        if !encryption.is_empty() {
            map.insert("EncryptionAlgorithms".into(), json!(encryption));
        }
        let signing = spec.signing_algorithms(usage);
        if !signing.is_empty() {
            map.insert("SigningAlgorithms".into(), json!(signing));
        }
        let macs = spec.mac_algorithms();
        if !macs.is_empty() {
            map.insert("MacAlgorithms".into(), json!(macs));
        }
        if spec == KeySpec::SymmetricDefault
            && let Some(current) = self.current_material()
        {
            map.insert("CurrentKeyMaterialId".into(), json!(current.id));
        }
        meta
    }
}

/// `arn:aws:kms:REGION:ACCOUNT:key/ID`.
pub fn key_arn(region: &str, account: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:key/{key_id}")
}

/// `arn:aws:kms:REGION:ACCOUNT:alias/NAME` (`alias_name` includes `alias/`).
pub fn alias_arn(region: &str, account: &str, alias_name: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:{alias_name}")
}

/// The associated data that binds sealed material to its key and version.
fn material_aad(arn: &str, version: u32) -> Vec<u8> {
    format!("citadel-kms-material/v1/{arn}/{version}").into_bytes()
}

/// Seals `material` as version `version` of the key `arn`.
pub fn seal_material(master: &MasterKey, arn: &str, version: u32, material: &[u8]) -> Result<String, AwsError> {
    let sealed = master.seal(material, &material_aad(arn, version));
    if sealed.is_empty() {
        return Err(error::internal("sealing key material failed"));
    }
    Ok(b64(&sealed))
}

/// Unseals one material version of `record`.
pub fn unseal_material(
    master: &MasterKey,
    record: &KeyRecord,
    material: &Material,
) -> Result<Zeroizing<Vec<u8>>, AwsError> {
    let sealed = unb64(&material.sealed).ok_or_else(|| error::internal("sealed material is not base64"))?;
    master
        .unseal(&sealed, &material_aad(&record.arn(), material.version))
        .map_err(|e| error::internal(format!("unsealing material of {}: {e}", record.arn())))
}

/// A fresh 64-hex-character key material id.
pub fn new_material_id() -> Result<String, AwsError> {
    let bytes = crypto::random_bytes(32).map_err(error::internal)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Generates, seals and describes a new material version for `record` (not yet appended).
pub fn new_material(
    master: &MasterKey,
    record: &KeyRecord,
    version: u32,
    created_ms: i64,
    rotation_type: Option<&str>,
) -> Result<Material, AwsError> {
    let spec = record.spec();
    let raw = crypto::generate_material(spec).map_err(error::internal)?;
    let public_key = if spec.is_asymmetric() {
        Some(b64(&crypto::public_key_der(spec, &raw).map_err(error::internal)?))
    } else {
        None
    };
    Ok(Material {
        version,
        id: new_material_id()?,
        sealed: seal_material(master, &record.arn(), version, &raw)?,
        created_ms,
        rotation_type: rotation_type.map(str::to_string),
        public_key,
    })
}

/// A stored alias.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AliasRecord {
    /// `alias/...`.
    pub name: String,
    /// The key id it points to.
    pub target_key_id: String,
    /// Creation, epoch milliseconds.
    pub created_ms: i64,
    /// Last update, epoch milliseconds.
    pub updated_ms: i64,
}

/// Grant constraints on the encryption context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantConstraints {
    /// The request's context must contain these pairs.
    #[serde(default)]
    pub subset: Option<BTreeMap<String, String>>,
    /// The request's context must equal this.
    #[serde(default)]
    pub equals: Option<BTreeMap<String, String>>,
}

impl GrantConstraints {
    /// Whether a request with `context` satisfies the constraints.
    pub fn allow(&self, context: &BTreeMap<String, String>) -> bool {
        if let Some(equals) = &self.equals
            && equals != context
        {
            return false;
        }
        if let Some(subset) = &self.subset
            && !subset.iter().all(|(k, v)| context.get(k) == Some(v))
        {
            return false;
        }
        true
    }

    /// AWS's `GrantConstraints` structure, or `None` when unconstrained.
    pub fn to_value(&self) -> Option<Value> {
        let mut map = serde_json::Map::new();
        if let Some(subset) = &self.subset {
            map.insert("EncryptionContextSubset".into(), json!(subset));
        }
        if let Some(equals) = &self.equals {
            map.insert("EncryptionContextEquals".into(), json!(equals));
        }
        (!map.is_empty()).then_some(Value::Object(map))
    }
}

/// A stored grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantRecord {
    /// 64 hex characters.
    pub grant_id: String,
    /// The key id.
    pub key_id: String,
    /// The optional name (idempotency of CreateGrant).
    #[serde(default)]
    pub name: Option<String>,
    /// Creation, epoch milliseconds.
    pub created_ms: i64,
    /// Who the grant lets use the key.
    pub grantee: String,
    /// Who may retire the grant.
    #[serde(default)]
    pub retiring: Option<String>,
    /// The account that created it.
    pub issuing_account: String,
    /// Grant operation names (`Encrypt`, `ReEncryptFrom`, ...).
    pub operations: Vec<String>,
    /// Encryption context constraints.
    #[serde(default)]
    pub constraints: GrantConstraints,
}

impl GrantRecord {
    /// AWS's `GrantListEntry`.
    pub fn to_value(&self, region: &str, account: &str) -> Value {
        let mut entry = json!({
            "KeyId": key_arn(region, account, &self.key_id),
            "GrantId": self.grant_id,
            "CreationDate": time_value(self.created_ms),
            "GranteePrincipal": self.grantee,
            "IssuingAccount": format!("arn:aws:iam::{}:root", self.issuing_account),
            "Operations": self.operations,
        });
        if let Some(map) = entry.as_object_mut() {
            if let Some(name) = &self.name {
                map.insert("Name".into(), json!(name));
            }
            if let Some(retiring) = &self.retiring {
                map.insert("RetiringPrincipal".into(), json!(retiring));
            }
            if let Some(constraints) = self.constraints.to_value() {
                map.insert("Constraints".into(), constraints);
            }
        }
        entry
    }
}

/// A loaded key with what is needed to write it back under a precondition.
///
/// The record is shared with the node's key cache ([`crate::cache`]) until something changes it:
/// lazy maintenance and management handlers get their own copy through `Arc::make_mut`.
#[derive(Debug, Clone)]
pub struct KeyHandle {
    /// The record, possibly already changed by lazy maintenance.
    pub record: Arc<KeyRecord>,
    /// The stored row it was read from: its bytes (for the precondition) and its unsealed material.
    stored: Arc<StoredKey>,
    /// True when lazy maintenance changed the record.
    pub dirty: bool,
}

impl KeyHandle {
    /// Writes the record (changed or not) with a precondition that it is still what was read.
    pub fn save(&self, batch: &mut WriteBatch) -> Result<(), AwsError> {
        let key = key_key(&self.record.account, &self.record.region, &self.record.key_id);
        let value = serde_json::to_vec(&*self.record).map_err(error::internal)?;
        batch.expect(KEYS, &key, Some(&self.stored.raw));
        batch.put(KEYS, &key, &value);
        Ok(())
    }

    /// Writes the record only if lazy maintenance changed it.
    pub fn save_if_dirty(&self, batch: &mut WriteBatch) -> Result<(), AwsError> {
        if self.dirty { self.save(batch) } else { Ok(()) }
    }

    /// Adds a precondition that the record is unchanged, without writing it.
    pub fn expect_unchanged(&self, batch: &mut WriteBatch) {
        let key = key_key(&self.record.account, &self.record.region, &self.record.key_id);
        batch.expect(KEYS, &key, Some(&self.stored.raw));
    }

    /// The unsealed bytes of one of the record's material versions: from the node's cache when the
    /// version is one the store holds, else (material lazily added by this request) unsealed here.
    pub fn unsealed(&self, master: &MasterKey, material: &Material) -> Result<MaterialBytes, AwsError> {
        match self.stored.unsealed(master, material) {
            Some(result) => result,
            None => Ok(Arc::new(unseal_material(master, &self.record, material)?)),
        }
    }
}

fn store_error(err: impl std::fmt::Display) -> AwsError {
    error::internal(format!("store: {err}"))
}

/// Whether a pending deletion of `record` is due at `now_ms`.
pub fn deletion_due(record: &KeyRecord, now_ms: i64) -> bool {
    record.state == KeyState::PendingDeletion && record.deletion_ms.is_some_and(|at| at <= now_ms)
}

/// Loads a key by account, region and id through the node's key cache, applying lazy maintenance
/// at `now_ms` (never cached: it depends on the request's time).
///
/// A missing key and a key whose deletion is due are both `NotFoundException`.
pub async fn load_key(
    store: &dyn Store,
    master: &MasterKey,
    cache: &KmsCache,
    account: &str,
    region: &str,
    key_id: &str,
    now_ms: i64,
) -> Result<KeyHandle, AwsError> {
    let not_found = || error::key_not_found(&key_arn(region, account, key_id));
    let stored = cache.key(store, account, region, key_id).await?.ok_or_else(not_found)?;
    if deletion_due(&stored.record, now_ms) {
        return Err(not_found());
    }
    let mut record = stored.record.clone();
    let dirty = if maintenance_due(&record, now_ms) {
        maintain(master, Arc::make_mut(&mut record), now_ms)?
    } else {
        false
    };
    Ok(KeyHandle { record, stored, dirty })
}

/// Whether [`maintain`] would change `record` at `now_ms` (cheap: no allocation), so the common
/// case shares the cached record instead of copying it.
fn maintenance_due(record: &KeyRecord, now_ms: i64) -> bool {
    let expiry = record.origin == "EXTERNAL"
        && record.state != KeyState::PendingDeletion
        && record.valid_to_ms.is_some_and(|valid_to| valid_to <= now_ms);
    let rotation = record.state == KeyState::Enabled
        && record.rotation_period_days.is_some()
        && record.next_rotation_ms.is_some_and(|next| next <= now_ms);
    expiry || rotation
}

/// Applies due rotations and material expiry; returns whether anything changed.
pub fn maintain(master: &MasterKey, record: &mut KeyRecord, now_ms: i64) -> Result<bool, AwsError> {
    let mut changed = false;
    if record.origin == "EXTERNAL"
        && record.state != KeyState::PendingDeletion
        && record.valid_to_ms.is_some_and(|valid_to| valid_to <= now_ms)
    {
        record.materials.clear();
        record.valid_to_ms = None;
        record.state = KeyState::PendingImport;
        changed = true;
    }
    if record.state == KeyState::Enabled
        && let (Some(period), Some(mut next)) = (record.rotation_period_days, record.next_rotation_ms)
    {
        let period_ms = period.max(1) * DAY_MS;
        let mut applied = 0;
        while next <= now_ms && applied < MAX_CATCH_UP_ROTATIONS {
            let version = record.materials.last().map_or(0, |m| m.version.saturating_add(1));
            let material = new_material(master, record, version, next, Some("AUTOMATIC"))?;
            record.materials.push(material);
            next += period_ms;
            applied += 1;
        }
        if next <= now_ms {
            next = now_ms + period_ms;
        }
        if applied > 0 {
            record.next_rotation_ms = Some(next);
            changed = true;
        }
    }
    Ok(changed)
}

/// Loads an alias record.
pub async fn load_alias(
    store: &dyn Store,
    account: &str,
    region: &str,
    alias_name: &str,
) -> Result<Option<(AliasRecord, Vec<u8>)>, AwsError> {
    let Some(raw) = store
        .get(ALIASES, &alias_key(account, region, alias_name))
        .await
        .map_err(store_error)?
    else {
        return Ok(None);
    };
    let record = serde_json::from_slice(&raw).map_err(error::internal)?;
    Ok(Some((record, raw)))
}

/// Every alias of an account and region, by name.
pub async fn list_alias_records(store: &dyn Store, account: &str, region: &str) -> Result<Vec<AliasRecord>, AwsError> {
    let (start, end) = prefix_range(&scope_prefix(account, region));
    let rows = store
        .scan(ALIASES, &start, end.as_deref(), usize::MAX, false)
        .await
        .map_err(store_error)?;
    Ok(rows
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
        .collect())
}

/// Every key record of an account and region with its raw bytes, by key id.
pub async fn list_key_records(
    store: &dyn Store,
    account: &str,
    region: &str,
) -> Result<Vec<(KeyRecord, Vec<u8>)>, AwsError> {
    let (start, end) = prefix_range(&scope_prefix(account, region));
    let rows = store
        .scan(KEYS, &start, end.as_deref(), usize::MAX, false)
        .await
        .map_err(store_error)?;
    Ok(rows
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice(&v).ok().map(|r| (r, v)))
        .collect())
}

/// The grants of one key.
pub async fn list_key_grants(
    store: &dyn Store,
    account: &str,
    region: &str,
    key_id: &str,
) -> Result<Vec<(GrantRecord, Vec<u8>)>, AwsError> {
    let (start, end) = prefix_range(&key_grants_prefix(account, region, key_id));
    let rows = store
        .scan(GRANTS, &start, end.as_deref(), usize::MAX, false)
        .await
        .map_err(store_error)?;
    Ok(rows
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice(&v).ok().map(|g| (g, v)))
        .collect())
}

/// Every grant of an account and region.
pub async fn list_scope_grants(store: &dyn Store, account: &str, region: &str) -> Result<Vec<GrantRecord>, AwsError> {
    let (start, end) = prefix_range(&scope_prefix(account, region));
    let rows = store
        .scan(GRANTS, &start, end.as_deref(), usize::MAX, false)
        .await
        .map_err(store_error)?;
    Ok(rows
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
        .collect())
}

/// Deletes, in `batch`, every key of the scope whose deletion is due, with its aliases and grants.
pub async fn purge_due(
    store: &dyn Store,
    account: &str,
    region: &str,
    now_ms: i64,
    batch: &mut WriteBatch,
) -> Result<(), AwsError> {
    let due: Vec<(KeyRecord, Vec<u8>)> = list_key_records(store, account, region)
        .await?
        .into_iter()
        .filter(|(r, _)| deletion_due(r, now_ms))
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    let aliases = list_alias_records(store, account, region).await?;
    for (record, raw) in due {
        let key = key_key(account, region, &record.key_id);
        batch.expect(KEYS, &key, Some(&raw));
        batch.delete(KEYS, &key);
        for alias in aliases.iter().filter(|a| a.target_key_id == record.key_id) {
            batch.delete(ALIASES, &alias_key(account, region, &alias.name));
        }
        for (grant, _) in list_key_grants(store, account, region, &record.key_id).await? {
            batch.delete(GRANTS, &grant_key(account, region, &record.key_id, &grant.grant_id));
        }
    }
    Ok(())
}

/// The default key policy: the account root may do everything, which delegates to IAM policies.
pub fn default_policy(account: &str) -> String {
    format!(
        "{{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"key-default-1\",\n  \"Statement\" : [ {{\n    \"Sid\" : \"Enable IAM User Permissions\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \"AWS\" : \"arn:aws:iam::{account}:root\"\n    }},\n    \"Action\" : \"kms:*\",\n    \"Resource\" : \"*\"\n  }} ]\n}}"
    )
}
