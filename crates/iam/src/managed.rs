//! AWS managed policies (`arn:aws:iam::aws:policy/...`), served read-only from embedded data.
//!
//! The documents are AWS's own, extracted by `scripts/extract_managed_policies.py` into
//! `data/managed_policies.json`; they are parsed once, on first use.

use serde::Deserialize;
use std::sync::OnceLock;

/// One AWS managed policy.
#[derive(Debug, Clone, Deserialize)]
pub struct AwsManagedPolicy {
    /// The name, e.g. `AdministratorAccess`.
    pub name: String,
    /// The path, `/` or e.g. `/job-function/`.
    pub path: String,
    /// The ARN.
    pub arn: String,
    /// The default version id.
    pub version_id: String,
    /// Creation time as AWS reports it (RFC 3339).
    #[serde(default)]
    pub create_date: Option<String>,
    /// Last update time (RFC 3339).
    #[serde(default)]
    pub update_date: Option<String>,
    /// The default version's document.
    pub document: String,
}

impl AwsManagedPolicy {
    /// A stable policy id in IAM's format (`ANPA` + 17 characters), derived from the name.
    pub fn policy_id(&self) -> String {
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.arn.as_bytes());
        let mut id = String::from("ANPA");
        for byte in digest.as_ref().iter().take(17) {
            id.push(char::from(ALPHABET[usize::from(*byte) % 32]));
        }
        id
    }
}

static DATA: &str = include_str!("../data/managed_policies.json");
static POLICIES: OnceLock<Vec<AwsManagedPolicy>> = OnceLock::new();

/// Every embedded AWS managed policy, sorted by name.
pub fn all() -> &'static [AwsManagedPolicy] {
    POLICIES.get_or_init(|| {
        let mut list: Vec<AwsManagedPolicy> = serde_json::from_str(DATA).unwrap_or_else(|err| {
            tracing::error!(error = %err, "embedded managed policies do not parse");
            Vec::new()
        });
        list.sort_by_key(|p| p.name.to_lowercase());
        list
    })
}

/// The AWS managed policy with this ARN.
pub fn by_arn(arn: &str) -> Option<&'static AwsManagedPolicy> {
    all().iter().find(|p| p.arn == arn)
}

/// True when an ARN is in the AWS managed namespace.
pub fn is_aws_arn(arn: &str) -> bool {
    arn.starts_with("arn:aws:iam::aws:policy/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_policies_are_there_and_parse_as_identity_policies() {
        let list = all();
        assert!(list.len() >= 40, "{}", list.len());
        for name in [
            "AdministratorAccess",
            "ReadOnlyAccess",
            "SecurityAudit",
            "IAMFullAccess",
            "AmazonS3ReadOnlyAccess",
        ] {
            assert!(list.iter().any(|p| p.name == name), "{name} missing");
        }
        for policy in list {
            citadel_policy::Policy::parse(&policy.document, citadel_policy::PolicyKind::Identity)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", policy.name));
            assert_eq!(
                policy.arn,
                format!("arn:aws:iam::aws:policy{}{}", policy.path, policy.name)
            );
        }
        let view_only = by_arn("arn:aws:iam::aws:policy/job-function/ViewOnlyAccess").unwrap();
        assert_eq!(view_only.path, "/job-function/");
        assert_eq!(view_only.policy_id().len(), 21);
    }
}
