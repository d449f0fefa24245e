//! Self-contained session tokens.
//!
//! A session token carries everything needed to authenticate its temporary credentials: the secret
//! access key, the principal facts and the session facts, sealed with AES-256-GCM under a key derived
//! from the master key (`sts-session`) and bound to the access key id as associated data. Any node
//! holding the master key can therefore authenticate an `ASIA...` key without a lookup, a token can
//! never be paired with another key id, and a flipped bit anywhere makes the token invalid.
//!
//! Layout: standard base64 of `seal(deflate(json(SessionClaims)))`, with associated data
//! `citadel-sts-session-v1 \0 <access key id>`.

use base64::Engine;
use citadel_core::identity::{CredentialError, ResolvedCredential};
use citadel_core::{Principal, PrincipalKind, SessionInfo};
use citadel_store::MasterKey;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::sync::Arc;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// The label of the derived sealing key.
const KEY_LABEL: &str = "sts-session";
/// The associated-data prefix; a new layout gets a new prefix.
const AAD_PREFIX: &[u8] = b"citadel-sts-session-v1\0";
/// Largest decompressed claims accepted, so a crafted token cannot inflate without bound.
const MAX_CLAIMS_BYTES: u64 = 256 * 1024;

/// Who the session is, as sealed in the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum ClaimKind {
    /// The account root (GetSessionToken, or root's GetFederationToken issuer).
    Root,
    /// An IAM user (GetSessionToken).
    User {
        /// The user name.
        name: String,
        /// The user path.
        path: String,
    },
    /// A role session.
    AssumedRole {
        /// The role ARN with its path.
        role_arn: String,
        /// The role name.
        role_name: String,
        /// The role's unique id (`AROA...`).
        role_id: String,
        /// The session name.
        session_name: String,
    },
    /// A federated user (GetFederationToken).
    FederatedUser {
        /// The federated user name.
        name: String,
        /// The ARN of the user or root that asked for the token.
        issuer_arn: String,
    },
}

/// Everything a session token carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The secret access key of the temporary credentials.
    pub secret: String,
    /// The principal's account.
    pub account: String,
    /// The caller ARN (session ARN for role sessions).
    pub arn: String,
    /// The principal id as GetCallerIdentity shows it.
    pub principal_id: String,
    /// The principal kind.
    pub kind: ClaimKind,
    /// Tags of the user or role when the session was made.
    #[serde(default)]
    pub principal_tags: Vec<(String, String)>,
    /// Issue time, epoch seconds.
    pub issued: i64,
    /// Expiry, epoch seconds.
    pub expires: i64,
    /// When MFA was verified, epoch seconds.
    #[serde(default)]
    pub mfa_at: Option<i64>,
    /// `aws:SourceIdentity`.
    #[serde(default)]
    pub source_identity: Option<String>,
    /// Session tags.
    #[serde(default)]
    pub session_tags: Vec<(String, String)>,
    /// Keys of the session tags that pass on to chained role sessions.
    #[serde(default)]
    pub transitive_tag_keys: Vec<String>,
    /// Session policy documents, when the session has any.
    #[serde(default)]
    pub policies: Option<Vec<String>>,
    /// The STS operation that made the session.
    pub issuer_operation: String,
    /// The federated provider of web identity and SAML sessions.
    #[serde(default)]
    pub federated_provider: Option<String>,
}

impl SessionClaims {
    /// The principal these claims authenticate, signing with `access_key_id`.
    pub fn principal(&self, access_key_id: &str) -> Principal {
        let kind = match &self.kind {
            ClaimKind::Root => PrincipalKind::Root,
            ClaimKind::User { name, path } => PrincipalKind::User {
                name: name.clone(),
                path: path.clone(),
            },
            ClaimKind::AssumedRole {
                role_arn,
                role_name,
                role_id,
                session_name,
            } => PrincipalKind::AssumedRole {
                role_arn: role_arn.clone(),
                role_name: role_name.clone(),
                role_id: role_id.clone(),
                session_name: session_name.clone(),
            },
            ClaimKind::FederatedUser { name, issuer_arn } => PrincipalKind::FederatedUser {
                name: name.clone(),
                issuer_arn: issuer_arn.clone(),
            },
        };
        Principal {
            account_id: self.account.clone(),
            arn: self.arn.clone(),
            principal_id: self.principal_id.clone(),
            kind,
            access_key_id: Some(access_key_id.to_string()),
            tags: self.principal_tags.clone(),
            session: Some(SessionInfo {
                issued_at: epoch(self.issued),
                expires_at: epoch(self.expires),
                mfa_authenticated_at: self.mfa_at.map(epoch),
                source_identity: self.source_identity.clone(),
                tags: self.session_tags.clone(),
                policies: self.policies.clone(),
                issuer_operation: self.issuer_operation.clone(),
                federated_provider: self.federated_provider.clone(),
            }),
        }
    }
}

fn epoch(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Seals and opens session tokens.
pub struct TokenSealer {
    key: MasterKey,
}

impl std::fmt::Debug for TokenSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSealer")
    }
}

fn aad(access_key_id: &str) -> Vec<u8> {
    let mut aad = AAD_PREFIX.to_vec();
    aad.extend_from_slice(access_key_id.as_bytes());
    aad
}

impl TokenSealer {
    /// A sealer under the `sts-session` subkey of `master`.
    pub fn new(master: &MasterKey) -> Self {
        Self {
            key: MasterKey::from_bytes(*master.derive(KEY_LABEL)),
        }
    }

    /// The session token for `access_key_id` carrying `claims`.
    pub fn seal(&self, access_key_id: &str, claims: &SessionClaims) -> String {
        let json = Zeroizing::new(serde_json::to_vec(claims).unwrap_or_default());
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        // Writing to a Vec cannot fail; an empty result would simply never open.
        let packed = Zeroizing::new(
            encoder
                .write_all(&json)
                .and_then(|()| encoder.finish())
                .unwrap_or_default(),
        );
        base64::engine::general_purpose::STANDARD.encode(self.key.seal(&packed, &aad(access_key_id)))
    }

    /// Opens a token presented with `access_key_id`; any mismatch or damage is `InvalidToken`.
    pub fn open(&self, access_key_id: &str, token: &str) -> Result<SessionClaims, CredentialError> {
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .map_err(|_| CredentialError::InvalidToken)?;
        let packed = self
            .key
            .unseal(&sealed, &aad(access_key_id))
            .map_err(|_| CredentialError::InvalidToken)?;
        let mut json = Zeroizing::new(Vec::new());
        flate2::read::DeflateDecoder::new(packed.as_slice())
            .take(MAX_CLAIMS_BYTES)
            .read_to_end(&mut json)
            .map_err(|_| CredentialError::InvalidToken)?;
        serde_json::from_slice(&json).map_err(|_| CredentialError::InvalidToken)
    }

    /// Authenticates temporary credentials at `now`: the token must open for the key and be unexpired.
    pub fn resolve(
        &self,
        access_key_id: &str,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<ResolvedCredential, CredentialError> {
        let claims = self.open(access_key_id, token)?;
        if now.unix_timestamp() >= claims.expires {
            return Err(CredentialError::ExpiredToken);
        }
        let principal = claims.principal(access_key_id);
        Ok(ResolvedCredential {
            secret: Arc::new(Zeroizing::new(claims.secret.clone().into_bytes())),
            principal: Arc::new(principal),
        })
    }
}
