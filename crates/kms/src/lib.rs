//! citadel-kms: AWS Key Management Service with real cryptography (aws-lc-rs).
//!
//! The service keeps KMS keys, aliases and grants in the store and does every cryptographic
//! operation for real: AES-256-GCM for symmetric keys (see [`crypto`] for the ciphertext blob
//! layout), RSA-OAEP, RSA-PSS/PKCS#1 v1.5 and ECDSA for key pairs, and HMAC for MAC keys.
//!
//! # Map
//!
//! - [`crypto`]: the pure cryptographic layer and the ciphertext format; no state, no I/O.
//! - [`spec`]: [`SPEC`], the operation registry (IAM action and resource of every operation).
//! - [`model`]: the stored records (keys, aliases, grants), their tables and the lazy maintenance
//!   (due deletion, due rotation, expired imported material) applied when a key is read.
//! - [`authz`]: how a call maps to permission checks: the key found from `KeyId` (id, ARN, alias
//!   name or alias ARN) or from the ciphertext, its key policy, the `kms:*` condition keys, and grants.
//! - [`cache`]: this node's key, alias and grant rows, validated by the store's table generations
//!   on every lookup, with key material unsealed once per version and wiped on eviction.
//! - [`sse`]: [`KmsDataKeys`], KMS as S3's SSE-KMS data key provider (and the AWS managed key
//!   `alias/aws/s3`).
//! - `keys`, `aliases`, `data`, `grants`, `rotation`, `import`: the handlers.
//!
//! # Invariants
//!
//! - Key material never reaches the store in clear: it is sealed with the store's [`MasterKey`]
//!   bound to the key ARN and material version, and unsealed copies are `Zeroizing` buffers that are
//!   wiped when dropped (the cache's copies when their entry is evicted).
//! - A cached row is used only while its table's generation is the one it was read under, so a
//!   committed change (from any node) is seen by the next request.
//! - Handlers never write: they return an [`Effect`] whose batch carries a precondition on every
//!   record they read and change, so a concurrent change makes the pipeline re-run them.
//! - Time comes only from the request context (the injected clock); due deletions, rotations and
//!   material expiry are applied lazily when a key is read, never by a background task.
//!
//! # Grants
//!
//! The pipeline knows only key policies. A grant is therefore presented to it as an extra `Allow`
//! statement appended to the key policy text of the check (see [`authz`]): the statement names the
//! grantee principal and the one action the grant covers, and is added only when the grant lists
//! the operation and the request's encryption context satisfies the grant's constraints.
//! Explicit denies in the key policy or in IAM policies still win, as in AWS.

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod authz;
pub mod cache;
pub mod crypto;
pub mod error;
pub mod model;
pub mod spec;
pub mod sse;

mod aliases;
mod data;
mod grants;
mod import;
mod input;
mod keys;
mod rotation;

pub use spec::SPEC;
pub use sse::KmsDataKeys;

use cache::KmsCache;
use citadel_core::{Authorization, Authorized, Call, Effect, IdGen, Service, ServiceSpec};
use citadel_store::{MasterKey, Store};
use citadel_wire::AwsError;
use std::sync::Arc;

/// The KMS service: what the pipeline dispatches `kms` requests to.
pub struct Kms {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    ids: IdGen,
    /// This node's generation-validated key, alias and grant rows (see [`cache`]).
    cache: KmsCache,
}

impl Kms {
    /// A KMS over `store`, sealing key material with `master` and drawing key and grant ids from `ids`.
    ///
    /// Key material and nonces always come from the operating system's CSPRNG (aws-lc), never from
    /// `ids`, so a seeded id generator in tests cannot weaken keys.
    pub fn new(store: Arc<dyn Store>, master: Arc<MasterKey>, ids: IdGen) -> Self {
        Self {
            store,
            master,
            ids,
            cache: KmsCache::default(),
        }
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub(crate) fn master(&self) -> &MasterKey {
        &self.master
    }

    pub(crate) fn ids(&self) -> &IdGen {
        &self.ids
    }

    pub(crate) fn cache(&self) -> &KmsCache {
        &self.cache
    }

    /// Loads a key through this node's cache with lazy maintenance at `now_ms` ([`model::load_key`]).
    pub(crate) async fn load_key(
        &self,
        account: &str,
        region: &str,
        key_id: &str,
        now_ms: i64,
    ) -> Result<model::KeyHandle, AwsError> {
        model::load_key(
            self.store(),
            self.master(),
            &self.cache,
            account,
            region,
            key_id,
            now_ms,
        )
        .await
    }
}

#[async_trait::async_trait]
impl Service for Kms {
    fn spec(&self) -> &'static ServiceSpec {
        &SPEC
    }

    async fn authorize(&self, call: &Call) -> Result<Authorization, AwsError> {
        authz::authorize(self, call).await
    }

    async fn execute(&self, call: &Call, _proof: &Authorized) -> Result<Effect, AwsError> {
        let effect = self.dispatch(call).await?;
        if is_dry_run(call) {
            // The pipeline authorized the call and the handler found it would succeed; its effect
            // is dropped unwritten, so a dry run changes nothing.
            return Err(error::dry_run());
        }
        Ok(effect)
    }
}

/// Whether the call sets `DryRun` (only operations whose model has the member accept it).
fn is_dry_run(call: &Call) -> bool {
    match call.input.get("DryRun") {
        Some(serde_json::Value::Bool(flag)) => *flag,
        Some(serde_json::Value::String(text)) => text.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

impl Kms {
    /// Runs the handler of the call's operation.
    async fn dispatch(&self, call: &Call) -> Result<Effect, AwsError> {
        match call.op.name {
            "CreateKey" => keys::create_key(self, call).await,
            "DescribeKey" => keys::describe_key(self, call).await,
            "ListKeys" => keys::list_keys(self, call).await,
            "EnableKey" => keys::enable_key(self, call).await,
            "DisableKey" => keys::disable_key(self, call).await,
            "ScheduleKeyDeletion" => keys::schedule_key_deletion(self, call).await,
            "CancelKeyDeletion" => keys::cancel_key_deletion(self, call).await,
            "UpdateKeyDescription" => keys::update_key_description(self, call).await,
            "GetKeyPolicy" => keys::get_key_policy(self, call).await,
            "PutKeyPolicy" => keys::put_key_policy(self, call).await,
            "ListKeyPolicies" => keys::list_key_policies(self, call).await,
            "TagResource" => keys::tag_resource(self, call).await,
            "UntagResource" => keys::untag_resource(self, call).await,
            "ListResourceTags" => keys::list_resource_tags(self, call).await,
            "CreateAlias" => aliases::create_alias(self, call).await,
            "UpdateAlias" => aliases::update_alias(self, call).await,
            "DeleteAlias" => aliases::delete_alias(self, call).await,
            "ListAliases" => aliases::list_aliases(self, call).await,
            "Encrypt" => data::encrypt(self, call).await,
            "Decrypt" => data::decrypt(self, call).await,
            "ReEncrypt" => data::re_encrypt(self, call).await,
            "GenerateDataKey" => data::generate_data_key(self, call, true).await,
            "GenerateDataKeyWithoutPlaintext" => data::generate_data_key(self, call, false).await,
            "GenerateDataKeyPair" => data::generate_data_key_pair(self, call, true).await,
            "GenerateDataKeyPairWithoutPlaintext" => data::generate_data_key_pair(self, call, false).await,
            "GenerateRandom" => data::generate_random(call),
            "Sign" => data::sign(self, call).await,
            "Verify" => data::verify(self, call).await,
            "GetPublicKey" => data::get_public_key(self, call).await,
            "GenerateMac" => data::generate_mac(self, call).await,
            "VerifyMac" => data::verify_mac(self, call).await,
            "EnableKeyRotation" => rotation::enable_key_rotation(self, call).await,
            "DisableKeyRotation" => rotation::disable_key_rotation(self, call).await,
            "GetKeyRotationStatus" => rotation::get_key_rotation_status(self, call).await,
            "RotateKeyOnDemand" => rotation::rotate_key_on_demand(self, call).await,
            "ListKeyRotations" => rotation::list_key_rotations(self, call).await,
            "CreateGrant" => grants::create_grant(self, call).await,
            "ListGrants" => grants::list_grants(self, call).await,
            "ListRetirableGrants" => grants::list_retirable_grants(self, call).await,
            "RetireGrant" => grants::retire_grant(self, call).await,
            "RevokeGrant" => grants::revoke_grant(self, call).await,
            "GetParametersForImport" => import::get_parameters_for_import(self, call).await,
            "ImportKeyMaterial" => import::import_key_material(self, call).await,
            "DeleteImportedKeyMaterial" => import::delete_imported_key_material(self, call).await,
            other => Err(AwsError::new(
                "UnsupportedOperationException",
                400,
                format!("Citadel does not implement the operation {other}."),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
