//! IAM's stored records, their tables and keys, and the read/write helpers every handler uses.
//!
//! Every entity lives in its own table under the tuple key `(account, lower-cased name)`, which makes
//! names unique case-insensitively per account through an "absent" precondition. Relations between
//! entities (group membership, attachments, instance-profile roles, MFA assignment) are stored on both
//! sides by unique id, so that a rename only moves one row and the id index, and so that every change
//! of a relation rewrites both rows with "unchanged since read" preconditions: two concurrent calls
//! that touch the same entity can never both commit.

use citadel_store::keys::{Key, prefix_range};
use citadel_store::{Store, WriteBatch};
use citadel_wire::AwsError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Users: `(account, lower(name))` -> [`UserRecord`].
pub const USERS: &str = "iam_users";
/// Groups: `(account, lower(name))` -> [`GroupRecord`].
pub const GROUPS: &str = "iam_groups";
/// Roles: `(account, lower(name))` -> [`RoleRecord`].
pub const ROLES: &str = "iam_roles";
/// Customer managed policies: `(account, lower(name))` -> [`PolicyRecord`].
pub const POLICIES: &str = "iam_policies";
/// Instance profiles: `(account, lower(name))` -> [`InstanceProfileRecord`].
pub const INSTANCE_PROFILES: &str = "iam_instance_profiles";
/// Virtual MFA devices: `(account, serial number)` -> [`MfaRecord`].
pub const MFA: &str = "iam_mfa";
/// OpenID Connect providers: `(account, arn)` -> [`OidcRecord`].
pub const OIDC: &str = "iam_oidc";
/// SAML providers: `(account, arn)` -> [`SamlRecord`].
pub const SAML: &str = "iam_saml";
/// Account settings: `(account, setting)` -> JSON (alias, password policy, credential report).
pub const ACCOUNT: &str = "iam_account";
/// Unique ids: `(account, id)` -> [`IdEntry`], to resolve relations and access-key owners.
pub const IDS: &str = "iam_ids";
/// Server certificates: `(account, lower(name))` -> [`ServerCertificateRecord`].
pub const SERVER_CERTIFICATES: &str = "iam_server_certificates";
/// Asynchronous-looking jobs (service-linked role deletions, last-accessed reports):
/// `(account, job id)` -> [`JobRecord`].
pub const JOBS: &str = "iam_jobs";
/// Every table IAM writes (AWS managed policies are embedded data and are not stored).
pub const TABLES: &[&str] = &[
    USERS,
    GROUPS,
    ROLES,
    POLICIES,
    INSTANCE_PROFILES,
    MFA,
    OIDC,
    SAML,
    ACCOUNT,
    IDS,
    SERVER_CERTIFICATES,
    JOBS,
];

/// A tag on an IAM entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// The key (case-sensitive, unique case-insensitively per entity).
    pub key: String,
    /// The value (may be empty).
    pub value: String,
}

/// An inline policy embedded in a user, group or role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlinePolicy {
    /// The policy name (unique per entity, case-sensitive as IAM keeps it).
    pub name: String,
    /// The document as given.
    pub document: String,
}

/// A login profile (console password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginProfile {
    /// The salted password hash (`pbkdf2-sha256$iterations$salt$hash`).
    pub password_hash: String,
    /// Creation time, epoch seconds.
    pub created: i64,
    /// Whether the user must set a new password at next sign-in.
    pub reset_required: bool,
    /// When the password was last set, epoch seconds.
    #[serde(default)]
    pub changed: i64,
    /// Hashes of earlier passwords, newest first, for the reuse-prevention rule.
    #[serde(default)]
    pub previous_hashes: Vec<String>,
}

/// A stored IAM user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The name as created.
    pub name: String,
    /// The unique id, `AIDA...`.
    pub id: String,
    /// The path, `/` by default.
    pub path: String,
    /// Creation time, epoch seconds.
    pub created: i64,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The permissions boundary policy ARN.
    #[serde(default)]
    pub boundary: Option<String>,
    /// Inline policies.
    #[serde(default)]
    pub inline: Vec<InlinePolicy>,
    /// Attached managed policy ARNs.
    #[serde(default)]
    pub attached: Vec<String>,
    /// Ids of the groups the user belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Ids of the user's access keys.
    #[serde(default)]
    pub access_keys: Vec<String>,
    /// Serial numbers of the MFA devices enabled for the user.
    #[serde(default)]
    pub mfa_devices: Vec<String>,
    /// The console password, if any.
    #[serde(default)]
    pub login_profile: Option<LoginProfile>,
    /// When the password was last used, epoch seconds.
    #[serde(default)]
    pub password_last_used: Option<i64>,
}

/// A stored IAM group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The name as created.
    pub name: String,
    /// The unique id, `AGPA...`.
    pub id: String,
    /// The path.
    pub path: String,
    /// Creation time, epoch seconds.
    pub created: i64,
    /// Inline policies.
    #[serde(default)]
    pub inline: Vec<InlinePolicy>,
    /// Attached managed policy ARNs.
    #[serde(default)]
    pub attached: Vec<String>,
    /// Ids of member users, in the order they were added.
    #[serde(default)]
    pub members: Vec<String>,
}

/// A stored IAM role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRecord {
    /// The name as created.
    pub name: String,
    /// The unique id, `AROA...`.
    pub id: String,
    /// The path.
    pub path: String,
    /// Creation time, epoch seconds.
    pub created: i64,
    /// The trust policy document as given.
    pub trust_policy: String,
    /// The description.
    #[serde(default)]
    pub description: Option<String>,
    /// The maximum session duration in seconds (3600..=43200).
    pub max_session_duration: i64,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The permissions boundary policy ARN.
    #[serde(default)]
    pub boundary: Option<String>,
    /// Inline policies.
    #[serde(default)]
    pub inline: Vec<InlinePolicy>,
    /// Attached managed policy ARNs.
    #[serde(default)]
    pub attached: Vec<String>,
    /// Ids of the instance profiles that contain the role.
    #[serde(default)]
    pub instance_profiles: Vec<String>,
    /// The AWS service (`autoscaling.amazonaws.com`) of a service-linked role; such a role can only
    /// be changed through that service, so IAM refuses to edit or delete it directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_linked: Option<String>,
}

/// One version of a customer managed policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// `v1`, `v2`, ...
    pub id: String,
    /// The document as given.
    pub document: String,
    /// Creation time, epoch seconds.
    pub created: i64,
}

/// A stored customer managed policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// The name.
    pub name: String,
    /// The unique id, `ANPA...`.
    pub id: String,
    /// The path.
    pub path: String,
    /// The description.
    #[serde(default)]
    pub description: Option<String>,
    /// Creation time, epoch seconds.
    pub created: i64,
    /// Last change of the default version, epoch seconds.
    pub updated: i64,
    /// The default version id.
    pub default_version: String,
    /// The number the next version gets.
    pub next_version: u32,
    /// The stored versions, oldest first.
    pub versions: Vec<PolicyVersion>,
    /// How many users, groups and roles have it attached.
    #[serde(default)]
    pub attachment_count: i64,
    /// How many users and roles use it as their permissions boundary.
    #[serde(default)]
    pub boundary_count: i64,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

impl PolicyRecord {
    /// The default version's document.
    pub fn default_document(&self) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.id == self.default_version)
            .map(|v| v.document.as_str())
    }
}

/// A stored instance profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceProfileRecord {
    /// The name.
    pub name: String,
    /// The unique id, `AIPA...`.
    pub id: String,
    /// The path.
    pub path: String,
    /// Creation time, epoch seconds.
    pub created: i64,
    /// Ids of its roles (at most one).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A stored virtual MFA device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaRecord {
    /// The serial number (the device ARN).
    pub serial: String,
    /// The TOTP seed, sealed under the master key with the serial as associated data (base64).
    pub seed_sealed: String,
    /// Creation time, epoch seconds.
    pub created: i64,
    /// The id of the user the device is enabled for.
    #[serde(default)]
    pub user_id: Option<String>,
    /// When it was enabled, epoch seconds.
    #[serde(default)]
    pub enabled: Option<i64>,
    /// The last TOTP time step accepted, so a code cannot be replayed.
    #[serde(default)]
    pub last_counter: Option<u64>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A stored OpenID Connect provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcRecord {
    /// The provider ARN.
    pub arn: String,
    /// The issuer URL.
    pub url: String,
    /// Audiences.
    pub client_ids: Vec<String>,
    /// Certificate thumbprints.
    pub thumbprints: Vec<String>,
    /// Creation time, epoch seconds.
    pub created: i64,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A stored SAML provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamlRecord {
    /// The provider ARN.
    pub arn: String,
    /// The name.
    pub name: String,
    /// The metadata document.
    pub metadata: String,
    /// Creation time, epoch seconds.
    pub created: i64,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A stored server certificate.
///
/// The private key is sealed under the master key with the certificate id as associated data, so
/// a sealed key copied onto another certificate's row does not open; it is never returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCertificateRecord {
    /// The name as uploaded (or renamed).
    pub name: String,
    /// The unique id, `ASCA...`.
    pub id: String,
    /// The path.
    pub path: String,
    /// Upload time, epoch seconds.
    pub uploaded: i64,
    /// The certificate's `notAfter`, epoch seconds.
    pub expiration: i64,
    /// The certificate body, PEM, as uploaded (trimmed).
    pub body: String,
    /// The chain, PEM, as uploaded (trimmed).
    #[serde(default)]
    pub chain: Option<String>,
    /// The private key, PEM, sealed under the master key (base64).
    pub private_key_sealed: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A job IAM reports on later: its result is computed when the job is created, so reading it is
/// one lookup and the result does not drift while a client pages through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// `service-linked-role-deletion` or `service-last-accessed`.
    pub kind: String,
    /// Creation time, epoch seconds.
    pub created: i64,
    /// Completion time, epoch seconds.
    pub completed: i64,
    /// `SUCCEEDED`/`FAILED` for deletions, `COMPLETED`/`FAILED` for reports.
    pub status: String,
    /// The job's result, shaped for its Get operation.
    pub result: serde_json::Value,
}

/// What a unique id names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdEntry {
    /// `user`, `group`, `role`, `policy` or `instance-profile`.
    pub kind: String,
    /// The current name.
    pub name: String,
}

/// A row read from the store, with the bytes it had, for "unchanged since read" preconditions.
#[derive(Debug, Clone)]
pub struct Row<T> {
    /// The table.
    pub table: &'static str,
    /// The encoded key.
    pub key: Vec<u8>,
    /// The value as read.
    pub raw: Vec<u8>,
    /// The decoded value.
    pub value: T,
}

/// The key of a named entity.
pub fn name_key(account: &str, name: &str) -> Vec<u8> {
    Key::new().str(account).str(&name.to_lowercase()).finish()
}

/// The key of an entity known by an exact string (MFA serial, provider ARN, setting name, id).
pub fn exact_key(account: &str, id: &str) -> Vec<u8> {
    Key::new().str(account).str(id).finish()
}

/// Maps a store failure to IAM's generic error (the detail goes to the log).
pub fn store_error(err: impl std::fmt::Display) -> AwsError {
    tracing::error!(error = %err, "iam store access failed");
    AwsError::new(
        "ServiceFailure",
        500,
        "The request processing has failed because of an unknown error, exception or failure.",
    )
}

/// Reads and decodes one row.
pub async fn get<T: DeserializeOwned>(
    store: &dyn Store,
    table: &'static str,
    key: Vec<u8>,
) -> Result<Option<Row<T>>, AwsError> {
    let Some(raw) = store.get(table, &key).await.map_err(store_error)? else {
        return Ok(None);
    };
    let value = serde_json::from_slice(&raw).map_err(store_error)?;
    Ok(Some(Row { table, key, raw, value }))
}

/// Reads every row of an account in a table, in key order (lower-cased name order).
pub async fn scan_account<T: DeserializeOwned>(
    store: &dyn Store,
    table: &'static str,
    account: &str,
) -> Result<Vec<Row<T>>, AwsError> {
    let prefix = Key::new().str(account).finish();
    let (start, end) = prefix_range(&prefix);
    let rows = store
        .scan(table, &start, end.as_deref(), usize::MAX, false)
        .await
        .map_err(store_error)?;
    let mut out = Vec::with_capacity(rows.len());
    for (key, raw) in rows {
        match serde_json::from_slice(&raw) {
            Ok(value) => out.push(Row { table, key, raw, value }),
            Err(err) => tracing::warn!(table, error = %err, "skipping undecodable iam row"),
        }
    }
    Ok(out)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Writes a new row that must not exist yet (uniqueness).
pub fn insert<T: Serialize>(batch: &mut WriteBatch, table: &str, key: &[u8], value: &T) {
    batch.expect(table, key, None);
    batch.put(table, key, &encode(value));
}

/// Replaces a row that must still hold what was read.
pub fn replace<T: Serialize>(batch: &mut WriteBatch, row: &Row<T>, value: &T) {
    batch.expect(row.table, &row.key, Some(&row.raw));
    batch.put(row.table, &row.key, &encode(value));
}

/// Deletes a row that must still hold what was read.
pub fn remove<T>(batch: &mut WriteBatch, row: &Row<T>) {
    batch.expect(row.table, &row.key, Some(&row.raw));
    batch.delete(row.table, &row.key);
}

/// Requires a row to be unchanged without writing it.
pub fn keep<T>(batch: &mut WriteBatch, row: &Row<T>) {
    batch.expect(row.table, &row.key, Some(&row.raw));
}

/// Writes the id index entry of an entity.
pub fn put_id(batch: &mut WriteBatch, account: &str, id: &str, kind: &str, name: &str) {
    let entry = IdEntry {
        kind: kind.to_string(),
        name: name.to_string(),
    };
    batch.put(IDS, &exact_key(account, id), &encode(&entry));
}

/// Deletes the id index entry of an entity.
pub fn delete_id(batch: &mut WriteBatch, account: &str, id: &str) {
    batch.delete(IDS, &exact_key(account, id));
}

/// Resolves a unique id.
pub async fn lookup_id(store: &dyn Store, account: &str, id: &str) -> Result<Option<IdEntry>, AwsError> {
    Ok(get::<IdEntry>(store, IDS, exact_key(account, id))
        .await?
        .map(|row| row.value))
}

/// Tags as the output shape `Tag` lists them.
pub fn tags_json(tags: &[Tag]) -> serde_json::Value {
    serde_json::Value::Array(
        tags.iter()
            .map(|t| serde_json::json!({"Key": t.key, "Value": t.value}))
            .collect(),
    )
}

/// Applies new tags over old ones (same key case-insensitively replaces), keeping order.
pub fn merge_tags(existing: &mut Vec<Tag>, new: Vec<Tag>) {
    for tag in new {
        match existing.iter_mut().find(|t| t.key.eq_ignore_ascii_case(&tag.key)) {
            Some(slot) => *slot = tag,
            None => existing.push(tag),
        }
    }
}

/// Counts rows per kind, for GetAccountSummary.
pub type Counts = BTreeMap<&'static str, i64>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_keys_are_case_insensitive_and_account_scoped() {
        assert_eq!(name_key("1", "Bob"), name_key("1", "bOB"));
        assert_ne!(name_key("1", "bob"), name_key("2", "bob"));
        assert!(name_key("1", "bob").starts_with(&Key::new().str("1").finish()));
    }

    #[test]
    fn merge_tags_replaces_case_insensitively() {
        let mut tags = vec![Tag {
            key: "Team".into(),
            value: "a".into(),
        }];
        merge_tags(
            &mut tags,
            vec![
                Tag {
                    key: "team".into(),
                    value: "b".into(),
                },
                Tag {
                    key: "env".into(),
                    value: "".into(),
                },
            ],
        );
        assert_eq!(tags.len(), 2);
        assert_eq!(
            tags[0],
            Tag {
                key: "team".into(),
                value: "b".into()
            }
        );
    }
}
