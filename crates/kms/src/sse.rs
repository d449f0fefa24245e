//! SSE-KMS: KMS as S3's data key provider.
//!
//! S3 stores every SSE-KMS object's data key as a KMS ciphertext blob (the format of
//! [`crate::crypto`]), made under the object's KMS key and bound to the object's encryption
//! context (`aws:s3:arn` = the object ARN, or the bucket ARN with S3 Bucket Keys). Reading the
//! object decrypts that blob with the same context, so a blob moved to another object fails.
//!
//! [`KmsDataKeys`] implements S3's [`DataKeyProvider`] with KMS's own key loading (lazy rotation
//! and deletion included), key state checks and ciphertext format. It does not authorize: S3 asks
//! [`DataKeyProvider::key_for_use`] for the key ARN and key policy (with applicable grants folded
//! in) and evaluates `kms:GenerateDataKey` / `kms:Decrypt` for its caller itself, because on AWS
//! the caller, not S3, must be allowed to use the key.
//!
//! # The AWS managed key
//!
//! A request that names no key uses `alias/aws/s3`, which is created on first use in the caller's
//! account, as AWS does: `KeyManager` `AWS`, yearly automatic rotation, and AWS's default policy
//! for AWS managed keys (any principal of the account may use it through S3, checked with
//! `kms:ViaService` and `kms:CallerAccount`; the account may only read its metadata directly).
//!
//! # Errors
//!
//! KMS errors reach S3 clients as S3 reports them: the KMS code prefixed with `KMS.`
//! (`KMS.DisabledException`, `KMS.NotFoundException`, `KMS.KMSInvalidStateException`), HTTP 400.

use crate::Kms;
use crate::authz::{self, KeyRef};
use crate::crypto;
use crate::data;
use crate::error;
use crate::model::{self, ALIASES, AliasRecord, KEYS, KeyHandle, KeyRecord, KeyState};
use citadel_core::{Clock, IdGen};
use citadel_s3::crypto::{CryptoError, DataKey, DataKeyProvider, Key256, ManagedKeyUse, WrappedDataKey};
use citadel_store::{CommitError, MasterKey, Store, WriteBatch};
use citadel_wire::AwsError;
use citadel_wire::arn::Arn;
use std::collections::BTreeMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The alias of S3's AWS managed key.
pub const S3_MANAGED_ALIAS: &str = "alias/aws/s3";
/// The description AWS gives S3's AWS managed key.
pub const S3_MANAGED_DESCRIPTION: &str = "Default key that protects my S3 objects when no other key is defined";
/// How often AWS managed keys rotate.
const MANAGED_ROTATION_DAYS: i64 = 365;
/// How often a lost race to create the managed key or to save a lazily maintained key is retried.
const RETRIES: usize = 5;

/// The key policy AWS gives an AWS managed key of `service` (for example `s3`).
pub fn aws_managed_policy(account: &str, region: &str, service: &str) -> String {
    let doc = serde_json::json!({
        "Version": "2012-10-17",
        "Id": format!("auto-{service}-2"),
        "Statement": [
            {
                "Sid": format!("Allow access through {} for all principals in the account that are authorized to use {}", service.to_ascii_uppercase(), service.to_ascii_uppercase()),
                "Effect": "Allow",
                "Principal": { "AWS": "*" },
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        "kms:CallerAccount": account,
                        "kms:ViaService": format!("{service}.{region}.amazonaws.com"),
                    }
                }
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{account}:root") },
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
                "Resource": "*"
            }
        ]
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// KMS as S3's SSE-KMS data key provider; see the module docs.
pub struct KmsDataKeys {
    kms: Kms,
    clock: Arc<dyn Clock>,
}

impl KmsDataKeys {
    /// A provider over the same store, master key and ids as the [`Kms`] service, reading the
    /// time (for lazy rotation and deletion) from `clock`.
    pub fn new(store: Arc<dyn Store>, master: Arc<MasterKey>, ids: IdGen, clock: Arc<dyn Clock>) -> Self {
        Self {
            kms: Kms::new(store, master, ids),
            clock,
        }
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    /// Finds the key S3 should use for a caller of `account` in `region`: a key id, key ARN,
    /// alias name or alias ARN, or (for `None`) the AWS managed key `alias/aws/s3`, created on
    /// first use. Lazy maintenance (due rotations) is saved before the key is used, so a data key
    /// is never sealed under material the store does not hold.
    pub async fn resolve_for_s3(
        &self,
        account: &str,
        region: &str,
        key_id: Option<&str>,
    ) -> Result<KeyHandle, AwsError> {
        let text = key_id.unwrap_or(S3_MANAGED_ALIAS);
        for _ in 0..RETRIES {
            let handle = match authz::parse_key_ref(text, account, region, true)? {
                KeyRef::Key {
                    account,
                    region,
                    key_id,
                } => self.load(&account, &region, &key_id).await?,
                KeyRef::Alias { account, region, name } => {
                    match model::load_alias(self.kms.store(), &account, &region, &name).await? {
                        Some((alias, _)) => self.load(&account, &region, &alias.target_key_id).await?,
                        None if name == S3_MANAGED_ALIAS => match self.create_managed_key(&account, &region).await? {
                            Some(handle) => handle,
                            None => continue,
                        },
                        None => return Err(error::alias_not_found(&model::alias_arn(&region, &account, &name))),
                    }
                }
            };
            if !handle.dirty {
                return Ok(handle);
            }
            let mut batch = WriteBatch::new();
            handle.save(&mut batch)?;
            match self.kms.store().commit(batch).await {
                Ok(()) => return Ok(handle),
                Err(CommitError::Conflict { .. }) => continue,
                Err(err) => return Err(error::internal(format!("store: {err}"))),
            }
        }
        Err(error::internal("the key kept changing while S3 used it"))
    }

    async fn load(&self, account: &str, region: &str, key_id: &str) -> Result<KeyHandle, AwsError> {
        self.kms.load_key(account, region, key_id, self.now_ms()).await
    }

    /// Creates `alias/aws/s3` and its key; `None` when another request created it first.
    async fn create_managed_key(&self, account: &str, region: &str) -> Result<Option<KeyHandle>, AwsError> {
        let now = self.now_ms();
        let key_id = self.kms.ids().uuid();
        let mut record = KeyRecord {
            key_id: key_id.clone(),
            account: account.to_string(),
            region: region.to_string(),
            created_ms: now,
            description: S3_MANAGED_DESCRIPTION.to_string(),
            key_usage: crypto::KeyUsage::EncryptDecrypt.as_str().to_string(),
            key_spec: crypto::KeySpec::SymmetricDefault.as_str().to_string(),
            origin: "AWS_KMS".to_string(),
            state: KeyState::Enabled,
            deletion_ms: None,
            pending_window_days: None,
            policy: aws_managed_policy(account, region, "s3"),
            tags: Vec::new(),
            rotation_period_days: Some(MANAGED_ROTATION_DAYS),
            next_rotation_ms: Some(now + MANAGED_ROTATION_DAYS * model::DAY_MS),
            on_demand_rotation_ms: None,
            materials: Vec::new(),
            valid_to_ms: None,
            expiration_model: None,
            import_fingerprint: None,
            key_manager: Some("AWS".to_string()),
        };
        record
            .materials
            .push(model::new_material(self.kms.master(), &record, 0, now, None)?);
        let alias = AliasRecord {
            name: S3_MANAGED_ALIAS.to_string(),
            target_key_id: key_id.clone(),
            created_ms: now,
            updated_ms: now,
        };
        let key_row = model::key_key(account, region, &key_id);
        let alias_row = model::alias_key(account, region, S3_MANAGED_ALIAS);
        let mut batch = WriteBatch::new();
        batch.expect(KEYS, &key_row, None);
        batch.expect(ALIASES, &alias_row, None);
        batch.put(KEYS, &key_row, &serde_json::to_vec(&record).map_err(error::internal)?);
        batch.put(
            ALIASES,
            &alias_row,
            &serde_json::to_vec(&alias).map_err(error::internal)?,
        );
        match self.kms.store().commit(batch).await {
            Ok(()) => {}
            Err(CommitError::Conflict { .. }) => return Ok(None),
            Err(err) => return Err(error::internal(format!("store: {err}"))),
        }
        self.load(account, region, &key_id).await.map(Some)
    }

    /// The key of a KMS key ARN (how S3 names the key of a stored data key).
    async fn by_arn(&self, arn: &str) -> Result<KeyHandle, AwsError> {
        let parsed = Arn::parse(arn).ok_or_else(|| error::invalid_key_id(arn))?;
        self.resolve_for_s3(&parsed.account, &parsed.region, Some(arn)).await
    }

    /// The key policy for `action` with every grant of the key that allows it under `context`.
    async fn policy_for(
        &self,
        record: &KeyRecord,
        action: &str,
        context: &BTreeMap<String, String>,
    ) -> Result<String, AwsError> {
        let operation = action.strip_prefix("kms:").unwrap_or(action);
        let grants = model::list_key_grants(self.kms.store(), &record.account, &record.region, &record.key_id).await?;
        let applicable: Vec<&model::GrantRecord> = grants
            .iter()
            .map(|(grant, _)| grant)
            .filter(|grant| grant.operations.iter().any(|op| op == operation) && grant.constraints.allow(context))
            .collect();
        Ok(authz::policy_with_grants(&record.policy, &applicable, action))
    }
}

/// A KMS error as S3 reports it: `KMS.<code>`, HTTP 400 (internal faults stay 500).
pub fn s3_error(err: AwsError) -> CryptoError {
    if err.status >= 500 {
        return CryptoError::Service {
            code: "InternalError".into(),
            status: 500,
            message: "We encountered an internal error. Please try again.".into(),
        };
    }
    CryptoError::Service {
        code: format!("KMS.{}", err.code),
        status: 400,
        message: err.message,
    }
}

fn context_map(context: &[(String, String)]) -> BTreeMap<String, String> {
    context.iter().cloned().collect()
}

#[async_trait::async_trait]
impl DataKeyProvider for KmsDataKeys {
    fn algorithm(&self) -> &'static str {
        "aws:kms"
    }

    async fn key_for_use(
        &self,
        account: &str,
        region: &str,
        key_id: Option<&str>,
        action: &str,
        context: &[(String, String)],
    ) -> Result<Option<ManagedKeyUse>, CryptoError> {
        let handle = self.resolve_for_s3(account, region, key_id).await.map_err(s3_error)?;
        let record = &handle.record;
        let policy = self
            .policy_for(record, action, &context_map(context))
            .await
            .map_err(s3_error)?;
        Ok(Some(ManagedKeyUse {
            arn: record.arn(),
            account: record.account.clone(),
            policy,
            tags: record.tag_pairs(),
        }))
    }

    async fn generate(&self, key_id: Option<&str>, context: &[(String, String)]) -> Result<DataKey, CryptoError> {
        let arn = key_id.ok_or_else(|| s3_error(error::internal("SSE-KMS data key requested without a key ARN")))?;
        let handle = self.by_arn(arn).await.map_err(s3_error)?;
        let record = &handle.record;
        data::require_symmetric(record, "GenerateDataKey").map_err(s3_error)?;
        let (material, meta) = data::current(&self.kms, &handle).map_err(s3_error)?;
        let plaintext: Key256 = citadel_s3::crypto::new_data_key();
        let blob = crypto::encrypt(
            &material,
            &record.id_bytes().map_err(s3_error)?,
            meta.version,
            plaintext.as_slice(),
            &context_map(context),
        )
        .map_err(|e| s3_error(data::map_crypto(e)))?;
        Ok(DataKey {
            plaintext,
            wrapped: WrappedDataKey {
                key_id: Some(record.arn()),
                blob,
            },
        })
    }

    async fn decrypt(&self, wrapped: &WrappedDataKey, context: &[(String, String)]) -> Result<Key256, CryptoError> {
        let arn = wrapped
            .key_id
            .as_deref()
            .ok_or_else(|| s3_error(error::internal("SSE-KMS object without a key ARN")))?;
        let handle = self.by_arn(arn).await.map_err(s3_error)?;
        let record = &handle.record;
        let header = crypto::BlobHeader::parse(&wrapped.blob).map_err(|_| s3_error(error::invalid_ciphertext()))?;
        if header.key_id_string() != record.key_id {
            return Err(s3_error(error::incorrect_key()));
        }
        data::require_symmetric(record, "Decrypt").map_err(s3_error)?;
        record.check_usable().map_err(s3_error)?;
        let meta = record
            .material(header.material_version)
            .ok_or_else(|| s3_error(error::invalid_ciphertext()))?;
        let material = handle.unsealed(self.kms.master(), meta).map_err(s3_error)?;
        let plain = crypto::decrypt(&material, &wrapped.blob, &context_map(context))
            .map_err(|e| s3_error(data::map_crypto(e)))?;
        if plain.len() != 32 {
            return Err(s3_error(error::invalid_ciphertext()));
        }
        let mut key: Key256 = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&plain);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use citadel_core::clock::ManualClock;
    use citadel_store::RedbStore;
    use time::OffsetDateTime;

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "us-east-1";

    struct Env {
        keys: KmsDataKeys,
        store: Arc<dyn Store>,
        clock: ManualClock,
        _dir: tempfile::TempDir,
    }

    fn env() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.path().join("t.redb")).unwrap());
        let master = Arc::new(MasterKey::generate());
        let ids = IdGen::new(Arc::new(citadel_core::random::OsRandom));
        let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap());
        Env {
            keys: KmsDataKeys::new(store.clone(), master, ids, Arc::new(clock.clone())),
            store,
            clock,
            _dir: dir,
        }
    }

    fn object_context(key: &str) -> Vec<(String, String)> {
        vec![("aws:s3:arn".into(), format!("arn:aws:s3:::bucket/{key}"))]
    }

    async fn set_state(env: &Env, arn: &str, state: KeyState) {
        let handle = env.keys.by_arn(arn).await.unwrap();
        let mut record = (*handle.record).clone();
        record.state = state;
        let mut batch = WriteBatch::new();
        batch.put(
            KEYS,
            &model::key_key(&record.account, &record.region, &record.key_id),
            &serde_json::to_vec(&record).unwrap(),
        );
        env.store.commit(batch).await.unwrap();
    }

    fn code(err: CryptoError) -> String {
        match err {
            CryptoError::Service { code, .. } => code,
            other => format!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_aws_managed_key_is_created_once_with_aws_metadata() {
        let env = env();
        let first = env
            .keys
            .key_for_use(ACCOUNT, REGION, None, "kms:GenerateDataKey", &[])
            .await
            .unwrap()
            .unwrap();
        let again = env
            .keys
            .key_for_use(ACCOUNT, REGION, Some(S3_MANAGED_ALIAS), "kms:Decrypt", &[])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.arn, again.arn);
        assert!(first.arn.starts_with(&format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/")));
        let aliases = model::list_alias_records(env.store.as_ref(), ACCOUNT, REGION)
            .await
            .unwrap();
        assert_eq!(aliases.len(), 1);
        assert_eq!(aliases[0].name, S3_MANAGED_ALIAS);
        let handle = env.keys.by_arn(&first.arn).await.unwrap();
        let meta = handle.record.metadata();
        assert_eq!(meta["KeyManager"], "AWS");
        assert_eq!(meta["Description"], S3_MANAGED_DESCRIPTION);
        let policy: serde_json::Value = serde_json::from_str(&first.policy).unwrap();
        let condition = &policy["Statement"][0]["Condition"]["StringEquals"];
        assert_eq!(condition["kms:ViaService"], "s3.us-east-1.amazonaws.com");
        assert_eq!(condition["kms:CallerAccount"], ACCOUNT);
        // Another account gets its own managed key.
        let other = env
            .keys
            .key_for_use("444455556666", REGION, None, "kms:GenerateDataKey", &[])
            .await
            .unwrap()
            .unwrap();
        assert_ne!(other.arn, first.arn);
        assert_eq!(other.account, "444455556666");
    }

    #[tokio::test]
    async fn data_keys_round_trip_only_under_their_context() {
        let env = env();
        let key = env
            .keys
            .key_for_use(ACCOUNT, REGION, None, "kms:GenerateDataKey", &[])
            .await
            .unwrap()
            .unwrap();
        let context = object_context("a.txt");
        let data_key = env.keys.generate(Some(&key.arn), &context).await.unwrap();
        assert_eq!(data_key.wrapped.key_id.as_deref(), Some(key.arn.as_str()));
        // The wrapped key is a KMS blob, never the key itself.
        assert!(
            !data_key
                .wrapped
                .blob
                .windows(32)
                .any(|w| w == data_key.plaintext.as_slice())
        );
        let header = crypto::BlobHeader::parse(&data_key.wrapped.blob).unwrap();
        assert!(key.arn.ends_with(&header.key_id_string()));
        let back = env.keys.decrypt(&data_key.wrapped, &context).await.unwrap();
        assert_eq!(*back, *data_key.plaintext);
        let moved = env.keys.decrypt(&data_key.wrapped, &object_context("b.txt")).await;
        assert_eq!(code(moved.err().unwrap()), "KMS.InvalidCiphertextException");
        let mut tampered = data_key.wrapped.clone();
        if let Some(last) = tampered.blob.last_mut() {
            *last ^= 1;
        }
        let err = env.keys.decrypt(&tampered, &context).await.err().unwrap();
        assert_eq!(code(err), "KMS.InvalidCiphertextException");
    }

    #[tokio::test]
    async fn unusable_and_unknown_keys_fail_as_s3_reports_them() {
        let env = env();
        let key = env
            .keys
            .key_for_use(ACCOUNT, REGION, None, "kms:GenerateDataKey", &[])
            .await
            .unwrap()
            .unwrap();
        let context = object_context("x");
        let data_key = env.keys.generate(Some(&key.arn), &context).await.unwrap();
        let cases = [
            (KeyState::Disabled, "KMS.DisabledException"),
            (KeyState::PendingDeletion, "KMS.KMSInvalidStateException"),
        ];
        for (state, want) in cases {
            set_state(&env, &key.arn, state).await;
            let generate = env.keys.generate(Some(&key.arn), &context).await;
            assert_eq!(code(generate.err().unwrap()), want, "{state:?}");
            let decrypt = env.keys.decrypt(&data_key.wrapped, &context).await;
            assert_eq!(code(decrypt.err().unwrap()), want, "{state:?}");
        }
        set_state(&env, &key.arn, KeyState::Enabled).await;
        assert!(env.keys.decrypt(&data_key.wrapped, &context).await.is_ok());
        let missing = [
            ("alias/nope", "KMS.NotFoundException"),
            ("not-a-key", "KMS.NotFoundException"),
            ("1234abcd-12ab-34cd-56ef-1234567890ab", "KMS.NotFoundException"),
        ];
        for (text, want) in missing {
            let err = env
                .keys
                .key_for_use(ACCOUNT, REGION, Some(text), "kms:GenerateDataKey", &[])
                .await
                .err()
                .unwrap();
            assert_eq!(code(err), want, "{text}");
        }
    }

    #[tokio::test]
    async fn due_rotations_are_saved_before_use() {
        let env = env();
        let key = env
            .keys
            .key_for_use(ACCOUNT, REGION, None, "kms:GenerateDataKey", &[])
            .await
            .unwrap()
            .unwrap();
        let context = object_context("r");
        let old = env.keys.generate(Some(&key.arn), &context).await.unwrap();
        env.clock.advance(time::Duration::days(MANAGED_ROTATION_DAYS + 1));
        let new = env.keys.generate(Some(&key.arn), &context).await.unwrap();
        let version = |blob: &[u8]| crypto::BlobHeader::parse(blob).unwrap().material_version;
        assert_eq!(version(&old.wrapped.blob), 0);
        assert_eq!(version(&new.wrapped.blob), 1);
        // Both decrypt, so the rotated material was stored before it was used.
        for data_key in [&old, &new] {
            let back = env.keys.decrypt(&data_key.wrapped, &context).await.unwrap();
            assert_eq!(*back, *data_key.plaintext);
        }
    }

    #[tokio::test]
    async fn grants_for_the_action_are_folded_into_the_policy() {
        let env = env();
        let key = env
            .keys
            .key_for_use(ACCOUNT, REGION, None, "kms:Decrypt", &[])
            .await
            .unwrap()
            .unwrap();
        let handle = env.keys.by_arn(&key.arn).await.unwrap();
        let grant = model::GrantRecord {
            grant_id: "ab".repeat(32),
            key_id: handle.record.key_id.clone(),
            name: None,
            created_ms: 0,
            grantee: format!("arn:aws:iam::{ACCOUNT}:role/reader"),
            retiring: None,
            issuing_account: ACCOUNT.into(),
            operations: vec!["Decrypt".into()],
            constraints: model::GrantConstraints {
                subset: Some(BTreeMap::from([(
                    "aws:s3:arn".to_string(),
                    "arn:aws:s3:::bucket/g".to_string(),
                )])),
                equals: None,
            },
        };
        let mut batch = WriteBatch::new();
        batch.put(
            model::GRANTS,
            &model::grant_key(ACCOUNT, REGION, &grant.key_id, &grant.grant_id),
            &serde_json::to_vec(&grant).unwrap(),
        );
        env.store.commit(batch).await.unwrap();
        let statements = |policy: &str| {
            let doc: serde_json::Value = serde_json::from_str(policy).unwrap();
            doc["Statement"].as_array().unwrap().len()
        };
        let cases = [
            ("kms:Decrypt", "g", 3),
            ("kms:Decrypt", "other", 2),
            ("kms:GenerateDataKey", "g", 2),
        ];
        for (action, object, want) in cases {
            let key = env
                .keys
                .key_for_use(ACCOUNT, REGION, Some(&key.arn), action, &object_context(object))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(statements(&key.policy), want, "{action} {object}");
        }
    }
}
