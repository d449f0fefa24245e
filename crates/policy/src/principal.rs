//! Callers ([`Principal`]) and the `Principal`/`NotPrincipal` element of resource-based policies.
//!
//! Matching a caller against a `Principal` element yields a [`PrincipalMatch`] level rather than a
//! boolean, because the evaluation rules depend on *how* the caller was named: naming the user or
//! session ARN grants on its own in the same account, naming the role ARN frees the caller from
//! needing an identity-policy allow, and naming only the account is delegation to the account's
//! identity policies.

/// What kind of caller a [`Principal`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind<'a> {
    /// The account root user (`arn:aws:iam::ACCT:root`).
    Root,
    /// An IAM user (`arn:aws:iam::ACCT:user/path/name`).
    User,
    /// A role session (`arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`) from AssumeRole, AssumeRoleWithWebIdentity or AssumeRoleWithSAML.
    AssumedRole {
        /// The ARN of the role the session belongs to (`arn:aws:iam::ACCT:role/path/ROLE`).
        role_arn: &'a str,
    },
    /// A GetFederationToken session (`arn:aws:sts::ACCT:federated-user/NAME`).
    FederatedUser,
    /// An unsigned request (S3 only).
    Anonymous,
    /// An AWS service principal acting on its own behalf.
    Service {
        /// The service principal name, such as `cloudtrail.amazonaws.com`.
        name: &'a str,
    },
    /// An identity from an external provider, before it becomes a role session
    /// (the caller of AssumeRoleWithWebIdentity/AssumeRoleWithSAML as seen by the trust policy).
    WebIdentity {
        /// The provider, such as `accounts.google.com` or an OIDC/SAML provider ARN.
        provider: &'a str,
    },
}

/// The caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal<'a> {
    /// The caller's ARN as it appears in AccessDenied messages (session ARN for role sessions).
    pub arn: &'a str,
    /// The caller's account id; empty for anonymous callers and services.
    pub account: &'a str,
    /// What kind of caller this is.
    pub kind: PrincipalKind<'a>,
    /// Whether a permissions boundary is attached (changes how `NotPrincipal` with `Deny` applies).
    pub has_permissions_boundary: bool,
    /// The S3 canonical user id, when known, for `CanonicalUser` principals.
    pub canonical_user_id: Option<&'a str>,
}

impl<'a> Principal<'a> {
    /// A principal of `kind` with no boundary and no canonical id.
    pub fn new(arn: &'a str, account: &'a str, kind: PrincipalKind<'a>) -> Principal<'a> {
        Principal {
            arn,
            account,
            kind,
            has_permissions_boundary: false,
            canonical_user_id: None,
        }
    }
}

/// An owned principal built from an ARN string, for tools such as `citadel policy eval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedPrincipal {
    arn: String,
    account: String,
    kind: OwnedKind,
    /// Whether a permissions boundary is attached.
    pub has_permissions_boundary: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnedKind {
    Root,
    User,
    AssumedRole(String),
    FederatedUser,
    Anonymous,
    Service(String),
    WebIdentity(String),
}

impl OwnedPrincipal {
    /// Recognises `arn:aws:iam::A:root`, `...:user/...`, `...:role/...` (treated as a session of that role),
    /// `arn:aws:sts::A:assumed-role/R/S`, `arn:aws:sts::A:federated-user/N`, `*`/`anonymous`, and
    /// service principal names (`x.amazonaws.com`). Returns `None` for anything else.
    pub fn from_arn(arn: &str) -> Option<OwnedPrincipal> {
        let make = |account: &str, kind| OwnedPrincipal {
            arn: arn.to_owned(),
            account: account.to_owned(),
            kind,
            has_permissions_boundary: false,
        };
        if arn == "*" || arn.eq_ignore_ascii_case("anonymous") {
            return Some(make("", OwnedKind::Anonymous));
        }
        if !arn.starts_with("arn:") {
            if arn.ends_with(".amazonaws.com") || arn.ends_with(".amazonaws.com.cn") {
                return Some(make("", OwnedKind::Service(arn.to_owned())));
            }
            if is_account_id(arn) {
                let root = format!("arn:aws:iam::{arn}:root");
                return Some(OwnedPrincipal {
                    arn: root,
                    account: arn.to_owned(),
                    kind: OwnedKind::Root,
                    has_permissions_boundary: false,
                });
            }
            return Some(make("", OwnedKind::WebIdentity(arn.to_owned())));
        }
        let [_, partition, service, _, account, resource] = crate::arn::split_arn(arn)?;
        match (service, resource) {
            ("iam", "root") => Some(make(account, OwnedKind::Root)),
            ("iam", r) if r.starts_with("user/") => Some(make(account, OwnedKind::User)),
            ("iam", r) if r.starts_with("role/") => Some(make(account, OwnedKind::AssumedRole(arn.to_owned()))),
            ("iam", r) if r.starts_with("oidc-provider/") || r.starts_with("saml-provider/") => {
                Some(make("", OwnedKind::WebIdentity(arn.to_owned())))
            }
            ("sts", r) if r.starts_with("assumed-role/") => {
                let role_name = r.strip_prefix("assumed-role/")?.split('/').next()?;
                let role_arn = format!("arn:{partition}:iam::{account}:role/{role_name}");
                Some(make(account, OwnedKind::AssumedRole(role_arn)))
            }
            ("sts", r) if r.starts_with("federated-user/") => Some(make(account, OwnedKind::FederatedUser)),
            _ => None,
        }
    }

    /// Borrows this as a [`Principal`].
    pub fn as_principal(&self) -> Principal<'_> {
        let kind = match &self.kind {
            OwnedKind::Root => PrincipalKind::Root,
            OwnedKind::User => PrincipalKind::User,
            OwnedKind::AssumedRole(role_arn) => PrincipalKind::AssumedRole { role_arn },
            OwnedKind::FederatedUser => PrincipalKind::FederatedUser,
            OwnedKind::Anonymous => PrincipalKind::Anonymous,
            OwnedKind::Service(name) => PrincipalKind::Service { name },
            OwnedKind::WebIdentity(provider) => PrincipalKind::WebIdentity { provider },
        };
        Principal {
            arn: &self.arn,
            account: &self.account,
            kind,
            has_permissions_boundary: self.has_permissions_boundary,
            canonical_user_id: None,
        }
    }
}

/// Whether `text` is a 12-digit account id.
pub(crate) fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// How strongly a `Principal` element names the caller; ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PrincipalMatch {
    /// Not named.
    None,
    /// Only the caller's account is named: delegation to the account's identity policies.
    Account,
    /// The role of a role session is named: no identity-policy allow needed, boundary and session policies still apply.
    Role,
    /// The caller itself is named (user, session, federated user, service, provider, `*`).
    Exact,
}

/// A compiled `Principal` or `NotPrincipal` element.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PrincipalBlock {
    /// `NotPrincipal` rather than `Principal`.
    pub(crate) negated: bool,
    /// `"*"` or `{"AWS": "*"}`.
    pub(crate) any: bool,
    /// Account ids named by id or by `arn:aws:iam::ID:root`.
    pub(crate) accounts: Vec<Box<str>>,
    /// Other AWS principal ARNs (users, roles, sessions, federated users, unique ids).
    pub(crate) arns: Vec<Box<str>>,
    /// `Service` names.
    pub(crate) services: Vec<Box<str>>,
    /// `Federated` providers.
    pub(crate) federated: Vec<Box<str>>,
    /// `CanonicalUser` ids.
    pub(crate) canonical: Vec<Box<str>>,
}

impl PrincipalBlock {
    /// Adds one `AWS` principal value.
    pub(crate) fn add_aws(&mut self, value: &str) {
        if value == "*" {
            self.any = true;
        } else if is_account_id(value) {
            self.accounts.push(value.into());
        } else if let Some([_, _, "iam", _, account, "root"]) = crate::arn::split_arn(value) {
            self.accounts.push(account.into());
        } else {
            self.arns.push(value.into());
        }
    }

    fn names_arn(&self, arn: &str) -> bool {
        self.arns.iter().any(|a| **a == *arn)
    }

    fn names_account(&self, account: &str) -> bool {
        !account.is_empty() && self.accounts.iter().any(|a| **a == *account)
    }

    /// How a positive `Principal` element names the caller.
    fn positive_level(&self, p: &Principal<'_>) -> PrincipalMatch {
        if self.any {
            return PrincipalMatch::Exact;
        }
        if let Some(id) = p.canonical_user_id
            && self.canonical.iter().any(|c| **c == *id)
        {
            return PrincipalMatch::Exact;
        }
        match p.kind {
            PrincipalKind::Anonymous => PrincipalMatch::None,
            PrincipalKind::Service { name } => level(self.services.iter().any(|s| **s == *name)),
            PrincipalKind::WebIdentity { provider } => level(self.federated.iter().any(|f| **f == *provider)),
            PrincipalKind::Root => {
                if self.names_account(p.account) {
                    PrincipalMatch::Account
                } else {
                    PrincipalMatch::None
                }
            }
            PrincipalKind::User | PrincipalKind::FederatedUser => {
                if self.names_arn(p.arn) {
                    PrincipalMatch::Exact
                } else if self.names_account(p.account) {
                    PrincipalMatch::Account
                } else {
                    PrincipalMatch::None
                }
            }
            PrincipalKind::AssumedRole { role_arn } => {
                if self.names_arn(p.arn) {
                    PrincipalMatch::Exact
                } else if self.names_arn(role_arn) {
                    PrincipalMatch::Role
                } else if self.names_account(p.account) {
                    PrincipalMatch::Account
                } else {
                    PrincipalMatch::None
                }
            }
        }
    }

    /// Whether a `NotPrincipal` element exempts the caller.
    ///
    /// AWS evaluates every identity in the caller's chain (account, then role, then session), so the caller
    /// is exempt only when each of them is listed; a caller with a permissions boundary is never exempt.
    fn exempts(&self, p: &Principal<'_>) -> bool {
        if self.any {
            return true;
        }
        if p.has_permissions_boundary {
            return false;
        }
        match p.kind {
            PrincipalKind::Anonymous => false,
            PrincipalKind::Service { name } => self.services.iter().any(|s| **s == *name),
            PrincipalKind::WebIdentity { provider } => self.federated.iter().any(|f| **f == *provider),
            PrincipalKind::Root => self.names_account(p.account),
            PrincipalKind::User | PrincipalKind::FederatedUser => {
                self.names_account(p.account) && self.names_arn(p.arn)
            }
            PrincipalKind::AssumedRole { role_arn } => {
                self.names_account(p.account) && self.names_arn(role_arn) && self.names_arn(p.arn)
            }
        }
    }

    /// How this element applies to the caller.
    ///
    /// A `NotPrincipal` that does not exempt the caller applies as strongly as `"*"` would.
    pub(crate) fn level(&self, p: &Principal<'_>) -> PrincipalMatch {
        if self.negated {
            if self.exempts(p) {
                PrincipalMatch::None
            } else {
                PrincipalMatch::Exact
            }
        } else {
            self.positive_level(p)
        }
    }
}

fn level(named: bool) -> PrincipalMatch {
    if named {
        PrincipalMatch::Exact
    } else {
        PrincipalMatch::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_principal_from_arn_table() {
        let cases: &[(&str, &str)] = &[
            ("arn:aws:iam::123456789012:root", "Root"),
            ("123456789012", "Root"),
            ("arn:aws:iam::123456789012:user/div/bob", "User"),
            ("arn:aws:sts::123456789012:assumed-role/R/s", "AssumedRole"),
            ("arn:aws:iam::123456789012:role/R", "AssumedRole"),
            ("arn:aws:sts::123456789012:federated-user/f", "FederatedUser"),
            ("*", "Anonymous"),
            ("cloudtrail.amazonaws.com", "Service"),
            ("accounts.google.com", "WebIdentity"),
        ];
        for &(arn, expected) in cases {
            let owned = OwnedPrincipal::from_arn(arn).unwrap();
            let kind = format!("{:?}", owned.as_principal().kind);
            assert!(kind.starts_with(expected), "{arn}: {kind}");
        }
        let session = OwnedPrincipal::from_arn("arn:aws:sts::123456789012:assumed-role/R/s").unwrap();
        assert_eq!(
            session.as_principal().kind,
            PrincipalKind::AssumedRole {
                role_arn: "arn:aws:iam::123456789012:role/R"
            }
        );
        assert!(OwnedPrincipal::from_arn("arn:aws:s3:::bucket").is_none());
    }
}
