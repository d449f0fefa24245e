//! Who is calling: the authenticated principal of a request.

use time::OffsetDateTime;

/// The kind of principal, with the facts each kind carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The account's root user.
    Root,
    /// An IAM user.
    User {
        /// The user's name.
        name: String,
        /// The user's path (`/` by default).
        path: String,
    },
    /// A role session from AssumeRole, AssumeRoleWithWebIdentity, AssumeRoleWithSAML or instance credentials.
    AssumedRole {
        /// The role's ARN (with path).
        role_arn: String,
        /// The role's name.
        role_name: String,
        /// The role's unique id (`AROA...`).
        role_id: String,
        /// The session name.
        session_name: String,
    },
    /// A federated user from GetFederationToken.
    FederatedUser {
        /// The name given to GetFederationToken.
        name: String,
        /// The ARN of the IAM user or root that asked for it.
        issuer_arn: String,
    },
    /// An unsigned S3 request.
    Anonymous,
    /// An AWS service principal acting on its own (CloudTrail writing to a bucket).
    Service {
        /// The service principal name, e.g. `cloudtrail.amazonaws.com`.
        name: String,
    },
}

/// How a session was created; `None` for long-term credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    /// When the temporary credentials were issued (`aws:TokenIssueTime`).
    pub issued_at: OffsetDateTime,
    /// When they expire.
    pub expires_at: OffsetDateTime,
    /// Whether the session was created with MFA, and when MFA was verified.
    pub mfa_authenticated_at: Option<OffsetDateTime>,
    /// `aws:SourceIdentity`, when set.
    pub source_identity: Option<String>,
    /// Session tags (they override the role's tags for `aws:PrincipalTag`).
    pub tags: Vec<(String, String)>,
    /// Session policies (inline JSON documents and managed policy ARNs expanded to documents), if any.
    pub policies: Option<Vec<String>>,
    /// The STS operation that created the session: `AssumeRole`, `GetSessionToken`, ...
    pub issuer_operation: String,
    /// The federated provider for web identity and SAML sessions.
    pub federated_provider: Option<String>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The account the principal belongs to (`"anonymous"` is not used: anonymous callers have an empty account).
    pub account_id: String,
    /// The caller ARN as CloudTrail and AccessDenied messages show it.
    pub arn: String,
    /// The principal id as GetCallerIdentity's `UserId` shows it.
    pub principal_id: String,
    /// What kind of principal.
    pub kind: PrincipalKind,
    /// The access key the request was signed with.
    pub access_key_id: Option<String>,
    /// Tags of the user or role (`aws:PrincipalTag`).
    pub tags: Vec<(String, String)>,
    /// Session facts for temporary credentials.
    pub session: Option<SessionInfo>,
}

impl Principal {
    /// The root user of `account_id`.
    pub fn root(account_id: &str, access_key_id: Option<String>) -> Self {
        Self {
            account_id: account_id.to_string(),
            arn: format!("arn:aws:iam::{account_id}:root"),
            principal_id: account_id.to_string(),
            kind: PrincipalKind::Root,
            access_key_id,
            tags: Vec::new(),
            session: None,
        }
    }

    /// An anonymous caller.
    pub fn anonymous() -> Self {
        Self {
            account_id: String::new(),
            arn: String::new(),
            principal_id: "anonymous".to_string(),
            kind: PrincipalKind::Anonymous,
            access_key_id: None,
            tags: Vec::new(),
            session: None,
        }
    }

    /// True for the account root user (also when it uses GetSessionToken credentials).
    pub fn is_root(&self) -> bool {
        matches!(self.kind, PrincipalKind::Root)
    }

    /// CloudTrail's `userIdentity.type`.
    pub fn identity_type(&self) -> &'static str {
        match &self.kind {
            PrincipalKind::Root => "Root",
            PrincipalKind::User { .. } => "IAMUser",
            PrincipalKind::AssumedRole { .. } => match self.session.as_ref().map(|s| s.issuer_operation.as_str()) {
                Some("AssumeRoleWithWebIdentity") => "WebIdentityUser",
                Some("AssumeRoleWithSAML") => "SAMLUser",
                _ => "AssumedRole",
            },
            PrincipalKind::FederatedUser { .. } => "FederatedUser",
            PrincipalKind::Anonymous => "AWSAccount",
            PrincipalKind::Service { .. } => "AWSService",
        }
    }

    /// `aws:PrincipalType`.
    pub fn principal_type(&self) -> &'static str {
        match &self.kind {
            PrincipalKind::Root => "Account",
            PrincipalKind::User { .. } => "User",
            PrincipalKind::AssumedRole { .. } => "AssumedRole",
            PrincipalKind::FederatedUser { .. } => "FederatedUser",
            PrincipalKind::Anonymous => "Anonymous",
            PrincipalKind::Service { .. } => "Service",
        }
    }

    /// `aws:PrincipalArn`: the role ARN for role sessions, else the caller ARN.
    pub fn principal_arn(&self) -> &str {
        match &self.kind {
            PrincipalKind::AssumedRole { role_arn, .. } => role_arn,
            _ => &self.arn,
        }
    }
}
