//! What STS needs to know about IAM entities, behind a small trait.
//!
//! STS reads roles (trust policy, maximum session duration, tags), MFA devices (sealed TOTP seeds),
//! identity providers and managed policy documents, all owned by IAM. [`IdentityDirectory`] names
//! exactly those reads so that STS can be tested without IAM; [`IamDirectory`] implements it over
//! IAM's store tables with IAM's own public record types, so that a change of those records is a
//! compile error here rather than a silent mismatch.

use citadel_iam::model::{self, MFA, MfaRecord, OIDC, OidcRecord, ROLES, RoleRecord, Row, SAML, SamlRecord};
use citadel_store::{MasterKey, Store, WriteBatch};
use citadel_wire::AwsError;
use std::sync::Arc;
use zeroize::Zeroizing;

/// A role as STS needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    /// The role ARN, with its path.
    pub arn: String,
    /// The role name.
    pub name: String,
    /// The unique id, `AROA...`.
    pub id: String,
    /// The owning account.
    pub account: String,
    /// The trust policy document.
    pub trust_policy: String,
    /// The maximum session duration in seconds.
    pub max_session_duration: i64,
    /// The role's tags.
    pub tags: Vec<(String, String)>,
}

/// An MFA device assigned to a user.
pub struct MfaDevice {
    /// The serial number (device ARN).
    pub serial: String,
    /// The unique id of the user it is enabled for; `None` while unassigned.
    pub user_id: Option<String>,
    /// The TOTP seed.
    pub seed: Zeroizing<Vec<u8>>,
    /// The last accepted TOTP time step, so that a code is never accepted twice.
    pub last_counter: Option<u64>,
    /// Opaque state the directory uses to record a use ([`IdentityDirectory::record_mfa_use`]).
    pub revision: Vec<u8>,
}

impl std::fmt::Debug for MfaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaDevice")
            .field("serial", &self.serial)
            .field("user_id", &self.user_id)
            .field("last_counter", &self.last_counter)
            .finish_non_exhaustive()
    }
}

/// An OpenID Connect provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcProvider {
    /// The provider ARN (`arn:aws:iam::ACCT:oidc-provider/host/path`).
    pub arn: String,
    /// The issuer URL as registered (with or without `https://`).
    pub url: String,
    /// Accepted audiences.
    pub client_ids: Vec<String>,
    /// Certificate thumbprints (SHA-1 hex).
    pub thumbprints: Vec<String>,
}

/// A SAML provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlProvider {
    /// The provider ARN.
    pub arn: String,
    /// The metadata document.
    pub metadata: String,
}

/// The IAM facts STS reads.
#[async_trait::async_trait]
pub trait IdentityDirectory: Send + Sync + 'static {
    /// The role with this ARN (the path in the ARN must match), or `None`.
    async fn role_by_arn(&self, arn: &str) -> Result<Option<RoleInfo>, AwsError>;
    /// The MFA device with this serial number in `account`.
    async fn mfa_device(&self, account: &str, serial: &str) -> Result<Option<MfaDevice>, AwsError>;
    /// Adds to `batch` the write that marks time step `counter` of `device` as used; the batch fails
    /// to commit if the device changed since it was read.
    fn record_mfa_use(&self, batch: &mut WriteBatch, account: &str, device: &MfaDevice, counter: u64);
    /// The OIDC provider of `account` whose issuer is `issuer` (URL with or without scheme).
    async fn oidc_provider(&self, account: &str, issuer: &str) -> Result<Option<OidcProvider>, AwsError>;
    /// The SAML provider with this ARN.
    async fn saml_provider(&self, arn: &str) -> Result<Option<SamlProvider>, AwsError>;
    /// The default document of a managed policy (AWS managed or customer managed in `account`).
    async fn managed_policy_document(&self, account: &str, arn: &str) -> Result<Option<String>, AwsError>;
}

/// [`IdentityDirectory`] over IAM's tables.
pub struct IamDirectory {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
}

impl IamDirectory {
    /// A directory reading IAM's tables in `store`; MFA seeds are unsealed with `master`.
    pub fn new(store: Arc<dyn Store>, master: Arc<MasterKey>) -> Self {
        Self { store, master }
    }
}

/// `(account, path, name)` of an IAM ARN `arn:aws:iam::ACCT:<kind>/path/name`.
pub fn split_iam_arn<'a>(arn: &'a str, kind: &str) -> Option<(&'a str, &'a str, &'a str)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let after_kind = resource.strip_prefix(kind)?;
    if !after_kind.starts_with('/') {
        return None;
    }
    let i = after_kind.rfind('/')?;
    let (path, name) = (after_kind.get(..=i)?, after_kind.get(i + 1..)?);
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    Some((account, path, name))
}

fn normalize_issuer(url: &str) -> &str {
    let url = url.strip_prefix("https://").unwrap_or(url);
    let url = url.strip_prefix("http://").unwrap_or(url);
    url.trim_end_matches('/')
}

#[async_trait::async_trait]
impl IdentityDirectory for IamDirectory {
    async fn role_by_arn(&self, arn: &str) -> Result<Option<RoleInfo>, AwsError> {
        let Some((account, _, name)) = split_iam_arn(arn, "role") else {
            return Ok(None);
        };
        let row: Option<Row<RoleRecord>> =
            model::get(self.store.as_ref(), ROLES, model::name_key(account, name)).await?;
        Ok(row.and_then(|row| {
            let role = row.value;
            let actual = format!("arn:aws:iam::{account}:role{}{}", role.path, role.name);
            (actual == arn).then(|| RoleInfo {
                arn: actual,
                name: role.name,
                id: role.id,
                account: account.to_string(),
                trust_policy: role.trust_policy,
                max_session_duration: role.max_session_duration,
                tags: role.tags.into_iter().map(|t| (t.key, t.value)).collect(),
            })
        }))
    }

    async fn mfa_device(&self, account: &str, serial: &str) -> Result<Option<MfaDevice>, AwsError> {
        use base64::Engine;
        let row: Option<Row<MfaRecord>> =
            model::get(self.store.as_ref(), MFA, model::exact_key(account, serial)).await?;
        let Some(row) = row else { return Ok(None) };
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&row.value.seed_sealed)
            .map_err(|_| AwsError::internal())?;
        let seed = self
            .master
            .unseal(&sealed, row.value.serial.as_bytes())
            .map_err(|_| AwsError::internal())?;
        Ok(Some(MfaDevice {
            serial: row.value.serial.clone(),
            user_id: row.value.user_id.clone(),
            seed,
            last_counter: row.value.last_counter,
            revision: row.raw,
        }))
    }

    fn record_mfa_use(&self, batch: &mut WriteBatch, account: &str, device: &MfaDevice, counter: u64) {
        let Ok(mut record) = serde_json::from_slice::<MfaRecord>(&device.revision) else {
            return;
        };
        record.last_counter = Some(counter);
        let key = model::exact_key(account, &device.serial);
        batch.expect(MFA, &key, Some(&device.revision));
        batch.put(MFA, &key, &serde_json::to_vec(&record).unwrap_or_default());
    }

    async fn oidc_provider(&self, account: &str, issuer: &str) -> Result<Option<OidcProvider>, AwsError> {
        let wanted = normalize_issuer(issuer);
        let rows: Vec<Row<OidcRecord>> = model::scan_account(self.store.as_ref(), OIDC, account).await?;
        Ok(rows
            .into_iter()
            .map(|r| r.value)
            .find(|p| normalize_issuer(&p.url) == wanted)
            .map(|p| OidcProvider {
                arn: p.arn,
                url: p.url,
                client_ids: p.client_ids,
                thumbprints: p.thumbprints,
            }))
    }

    async fn saml_provider(&self, arn: &str) -> Result<Option<SamlProvider>, AwsError> {
        let Some((account, _, _)) = split_iam_arn(arn, "saml-provider") else {
            return Ok(None);
        };
        let row: Option<Row<SamlRecord>> =
            model::get(self.store.as_ref(), SAML, model::exact_key(account, arn)).await?;
        Ok(row.map(|r| SamlProvider {
            arn: r.value.arn,
            metadata: r.value.metadata,
        }))
    }

    async fn managed_policy_document(&self, account: &str, arn: &str) -> Result<Option<String>, AwsError> {
        if arn.starts_with("arn:aws:iam::aws:policy/") {
            return Ok(citadel_iam::managed::by_arn(arn).map(|p| p.document.clone()));
        }
        let Some((arn_account, _, name)) = split_iam_arn(arn, "policy") else {
            return Ok(None);
        };
        if arn_account != account {
            return Ok(None);
        }
        let row: Option<Row<citadel_iam::model::PolicyRecord>> =
            model::get(self.store.as_ref(), model::POLICIES, model::name_key(account, name)).await?;
        Ok(row.and_then(|r| {
            let policy = r.value;
            let actual = format!("arn:aws:iam::{account}:policy{}{}", policy.path, policy.name);
            if actual != arn {
                return None;
            }
            policy.default_document().map(str::to_string)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_arns_split_into_account_path_and_name() {
        let cases = [
            (
                "arn:aws:iam::123456789012:role/R",
                "role",
                Some(("123456789012", "/", "R")),
            ),
            (
                "arn:aws:iam::123456789012:role/a/b/R",
                "role",
                Some(("123456789012", "/a/b/", "R")),
            ),
            ("arn:aws:iam::123456789012:user/R", "role", None),
            ("arn:aws:iam::1234:role/R", "role", None),
            ("arn:aws:iam::123456789012:role/", "role", None),
            ("arn:aws:sts::123456789012:role/R", "role", None),
        ];
        for (arn, kind, expected) in cases {
            assert_eq!(split_iam_arn(arn, kind), expected, "{arn}");
        }
    }

    #[test]
    fn issuers_compare_without_scheme_or_trailing_slash() {
        assert_eq!(normalize_issuer("https://example.com/x/"), "example.com/x");
        assert_eq!(normalize_issuer("example.com/x"), "example.com/x");
        assert_eq!(normalize_issuer("http://127.0.0.1:8080"), "127.0.0.1:8080");
    }
}
