//! STS: who am I, and temporary credentials, for real.
//!
//! Temporary credentials are `ASIA...` key ids (with the account encoded in them, as AWS does), a
//! 40-character secret and a self-contained session token sealed under a key derived from the master
//! key ([`token`]). Any node authenticates them without a lookup through [`Sts`]'s
//! [`SessionResolver`] implementation, which [`install`] hands to core's credential resolver.
//!
//! Trust is decided by the policy engine, not here: `AssumeRole` asks the pipeline to check
//! `sts:AssumeRole` on the role with the role's trust policy as a trust-kind resource policy (plus
//! `sts:TagSession` and `sts:SetSourceIdentity` when tags or a source identity are passed), so the
//! same code decides same-account and cross-account trust. Session policies travel in the token and
//! the authorizer intersects them with the role's (or the federating user's) policies.
//!
//! Federation: [`webid`] verifies OpenID Connect tokens and [`saml`] SAML 2.0 responses (XML
//! signatures by [`xmldsig`] over the exclusive canonicalization of [`c14n`]); both evaluate the
//! role's trust policy for the provider as a federated principal.
//! Once the caller is known, `AssumeRole`, both federation operations and [`imds`] share one path
//! (the trust-policy question, the session's claims, the answer and its audited resource), kept in
//! the private `role_session` module.
//!
//! IAM facts (roles, MFA devices, identity providers, managed policies) come through the
//! [`IdentityDirectory`] trait; [`IamDirectory`] implements it over IAM's tables.

pub mod c14n;
pub mod directory;
pub mod imds;
pub mod input;
pub mod keyid;
pub mod message;
pub mod oidc_fetch;
mod role_session;
pub mod saml;
pub mod token;
pub mod webid;
pub mod xmldsig;

#[cfg(test)]
mod tests;

pub use directory::{IamDirectory, IdentityDirectory, MfaDevice, OidcProvider, RoleInfo, SamlProvider};
pub use message::encode_authorization_message;
pub use token::{ClaimKind, SessionClaims, TokenSealer};

use citadel_core::identity::{CredentialError, CredentialResolver, ResolvedCredential, SessionResolver};
use citadel_core::{
    Authorization, Authorized, Call, Check, Effect, IdGen, OperationSpec, Principal, PrincipalKind, ResourcePolicyKind,
    Service, ServiceSpec,
};
use citadel_store::{MasterKey, Store, WriteBatch};
use citadel_wire::{AwsError, Protocol};
use input::{opt_i64, opt_str, req_str, validation};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

/// The operations STS implements.
pub static OPERATIONS: &[OperationSpec] = &[
    OperationSpec {
        name: "GetCallerIdentity",
        action: "sts:GetCallerIdentity",
        resource: "*",
        read_only: true,
        condition_keys: &[],
    },
    OperationSpec {
        name: "AssumeRole",
        action: "sts:AssumeRole",
        resource: "{RoleArn}",
        read_only: true,
        condition_keys: &[
            "sts:ExternalId",
            "sts:RoleSessionName",
            "sts:SourceIdentity",
            "sts:TransitiveTagKeys",
            "aws:RequestTag/${TagKey}",
            "aws:TagKeys",
        ],
    },
    OperationSpec {
        name: "GetSessionToken",
        action: "sts:GetSessionToken",
        resource: "*",
        read_only: true,
        condition_keys: &[],
    },
    OperationSpec {
        name: "GetFederationToken",
        action: "sts:GetFederationToken",
        resource: "arn:{partition}:sts::{account}:federated-user/{Name}",
        read_only: true,
        condition_keys: &["aws:RequestTag/${TagKey}", "aws:TagKeys"],
    },
    OperationSpec {
        name: "GetAccessKeyInfo",
        action: "sts:GetAccessKeyInfo",
        resource: "*",
        read_only: true,
        condition_keys: &[],
    },
    OperationSpec {
        name: "DecodeAuthorizationMessage",
        action: "sts:DecodeAuthorizationMessage",
        resource: "*",
        read_only: true,
        condition_keys: &[],
    },
    OperationSpec {
        name: "AssumeRoleWithWebIdentity",
        action: "sts:AssumeRoleWithWebIdentity",
        resource: "{RoleArn}",
        read_only: true,
        condition_keys: &["sts:RoleSessionName"],
    },
    OperationSpec {
        name: "AssumeRoleWithSAML",
        action: "sts:AssumeRoleWithSAML",
        resource: "{RoleArn}",
        read_only: true,
        condition_keys: &[
            "saml:aud",
            "saml:doc",
            "saml:iss",
            "saml:namequalifier",
            "saml:sub",
            "saml:sub_type",
            "sts:RoleSessionName",
            "sts:SourceIdentity",
            "aws:RequestTag/${TagKey}",
            "aws:TagKeys",
        ],
    },
];

/// STS's registry entry.
pub static SPEC: ServiceSpec = ServiceSpec {
    signing_name: "sts",
    event_source: "sts.amazonaws.com",
    protocol: Protocol::Query,
    operations: OPERATIONS,
};

/// The default role session lifetime.
const DEFAULT_ROLE_DURATION: i64 = 3600;
/// Role chaining caps sessions at one hour.
const CHAINED_MAX_DURATION: i64 = 3600;
/// The default lifetime of GetSessionToken and GetFederationToken credentials.
const DEFAULT_USER_DURATION: i64 = 43_200;
/// The account root's sessions are capped at one hour.
const ROOT_MAX_DURATION: i64 = 3600;
/// A trust policy that trusts nobody, for roles that do not exist: AWS answers AccessDenied on the
/// ARN rather than revealing whether the role exists.
const TRUST_NOBODY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"citadel:RoleExists":"true"}}}]}"#;
/// Seconds per TOTP step.
const TOTP_STEP: i64 = 30;
/// Bound on remembered transitive tag keys.
const MAX_REMEMBERED_SESSIONS: usize = 100_000;
/// Opened session tokens kept per node (about 1 KiB each); the cache starts over when full.
const MAX_OPENED_SESSIONS: usize = 10_000;

/// A session token opened once on this node, filed under the access key id it was opened for.
struct OpenedSession {
    token: Box<str>,
    expires: i64,
    credential: ResolvedCredential,
}

/// The STS service; also the resolver of the temporary credentials it issues.
pub struct Sts {
    store: Arc<dyn Store>,
    sealer: TokenSealer,
    messages: MasterKey,
    ids: IdGen,
    directory: Arc<dyn IdentityDirectory>,
    /// Transitive tag keys of sessions authenticated on this node, by access key id: core's
    /// `SessionInfo` has no field for them, and a chained AssumeRole must pass them on.
    transitive: Mutex<HashMap<String, Vec<String>>>,
    /// Session tokens already opened, by the access key id they were opened for: opening one costs
    /// base64, AES-GCM, decompression and JSON parsing on every request otherwise. A hit needs the
    /// presented token to equal the stored one byte for byte: an identical token string is the
    /// identical sealed claims, bound to that key id by the seal's associated data, so a hit is as
    /// authentic as the first opening; expiry is checked on every use. Filing by the 20-character key
    /// id rather than by the token (several hundred bytes) keeps the lookup's hashing short; the one
    /// comparison of the token is constant-time, since key ids are not secret and a byte-by-byte
    /// comparison would time how much of a guessed token matches. Looked up by `&str`, so a hit
    /// allocates nothing.
    opened: Mutex<HashMap<String, OpenedSession>>,
    web: webid::WebIdentityVerifier,
}

impl std::fmt::Debug for Sts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sts")
    }
}

impl Sts {
    /// STS over `store` with an explicit identity directory.
    pub fn new(store: Arc<dyn Store>, master: &MasterKey, ids: IdGen, directory: Arc<dyn IdentityDirectory>) -> Self {
        Self {
            store,
            sealer: TokenSealer::new(master),
            messages: message::message_key(master),
            ids,
            directory,
            transitive: Mutex::new(HashMap::new()),
            opened: Mutex::new(HashMap::new()),
            web: webid::WebIdentityVerifier::default(),
        }
    }

    /// STS reading IAM's tables in `store` (the usual wiring).
    pub fn with_iam(store: Arc<dyn Store>, master: Arc<MasterKey>, ids: IdGen) -> Self {
        let directory = Arc::new(IamDirectory::new(store.clone(), master.clone()));
        Self::new(store, &master, ids, directory)
    }

    /// The token sealer (for tests and tools that mint sessions).
    pub fn sealer(&self) -> &TokenSealer {
        &self.sealer
    }

    /// The verifier of web identity tokens (to configure static JWKS).
    pub fn web_identity(&self) -> &webid::WebIdentityVerifier {
        &self.web
    }
}

/// Makes STS the resolver of temporary (`ASIA...`) credentials.
pub fn install(sts: &Arc<Sts>, resolver: &CredentialResolver) {
    resolver.set_sessions(sts.clone());
}

#[async_trait::async_trait]
impl SessionResolver for Sts {
    async fn resolve(
        &self,
        access_key_id: &str,
        session_token: &str,
        now: OffsetDateTime,
    ) -> Result<ResolvedCredential, CredentialError> {
        if let Ok(opened) = self.opened.lock()
            && let Some(hit) = opened.get(access_key_id)
            && aws_lc_rs::constant_time::verify_slices_are_equal(hit.token.as_bytes(), session_token.as_bytes()).is_ok()
        {
            if now.unix_timestamp() >= hit.expires {
                return Err(CredentialError::ExpiredToken);
            }
            return Ok(hit.credential.clone());
        }
        let claims = self.sealer.open(access_key_id, session_token)?;
        if now.unix_timestamp() >= claims.expires {
            return Err(CredentialError::ExpiredToken);
        }
        if !claims.transitive_tag_keys.is_empty()
            && let Ok(mut remembered) = self.transitive.lock()
        {
            if remembered.len() > MAX_REMEMBERED_SESSIONS {
                remembered.clear();
            }
            remembered.insert(access_key_id.to_string(), claims.transitive_tag_keys.clone());
        }
        let credential = ResolvedCredential {
            secret: Arc::new(zeroize::Zeroizing::new(claims.secret.clone().into_bytes())),
            principal: Arc::new(claims.principal(access_key_id)),
        };
        if let Ok(mut opened) = self.opened.lock() {
            if opened.len() >= MAX_OPENED_SESSIONS {
                opened.clear();
            }
            // Only a token that opened for this key id gets here, so it replaces nothing authentic:
            // each temporary key id has exactly one token.
            opened.insert(
                access_key_id.to_string(),
                OpenedSession {
                    token: session_token.into(),
                    expires: claims.expires,
                    credential: credential.clone(),
                },
            );
        }
        Ok(credential)
    }
}

/// AWS's AccessDenied for the query protocol.
fn access_denied(message: impl Into<String>) -> AwsError {
    AwsError::new("AccessDenied", 403, message)
}

/// A time in epoch seconds as STS writes it in messages and documents (ISO 8601, whole seconds).
fn iso8601_seconds(seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map(citadel_core::clock::iso8601)
        .unwrap_or_default()
}

/// AWS's error for a web identity token or SAML assertion used at `now`, past its `expires`.
fn expired_token(now: i64, expires: i64) -> AwsError {
    AwsError::new(
        "ExpiredTokenException",
        400,
        format!(
            "Token expired: current date/time {} must be before the expiration date/time {}",
            iso8601_seconds(now),
            iso8601_seconds(expires)
        ),
    )
}

fn invalid_mfa_code() -> AwsError {
    access_denied("MultiFactorAuthentication failed with invalid MFA one time pass code.")
}

fn unknown_mfa_device() -> AwsError {
    access_denied(
        "MultiFactorAuthentication failed, unable to validate MFA code.  Please verify your MFA serial number is valid and associated with this user.",
    )
}

/// The TOTP time step `code` matches for `seed` around `now` (one step of drift either way), later
/// than `after`.
pub fn totp_step(seed: &[u8], code: &str, now: i64, after: Option<u64>) -> Option<u64> {
    let current = u64::try_from(now / TOTP_STEP).ok()?;
    (current.saturating_sub(1)..=current + 1)
        .filter(|step| after.is_none_or(|last| *step > last))
        .find(|step| citadel_iam::totp(seed, *step) == code)
}

/// A verified MFA code: the device and the time step to record.
struct VerifiedMfa {
    device: MfaDevice,
    step: u64,
}

impl Sts {
    /// Verifies `SerialNumber` + `TokenCode` against the caller's MFA device, if passed.
    async fn verify_mfa(&self, call: &Call) -> Result<Option<VerifiedMfa>, AwsError> {
        let serial = opt_str(&call.input, "SerialNumber");
        let code = opt_str(&call.input, "TokenCode");
        let (serial, code) = match (serial, code) {
            (None, None) => return Ok(None),
            (Some(serial), Some(code)) => (serial, code),
            _ => {
                return Err(access_denied(
                    "MultiFactorAuthentication failed, must provide both MFA serial number and one time pass code.",
                ));
            }
        };
        let principal = &call.ctx.principal;
        let device = self
            .directory
            .mfa_device(&principal.account_id, serial)
            .await?
            .filter(|d| {
                matches!(principal.kind, PrincipalKind::User { .. })
                    && d.user_id.as_deref() == Some(principal.principal_id.as_str())
            })
            .ok_or_else(unknown_mfa_device)?;
        let step = totp_step(&device.seed, code, call.ctx.time.unix_timestamp(), device.last_counter)
            .ok_or_else(invalid_mfa_code)?;
        Ok(Some(VerifiedMfa { device, step }))
    }

    /// Mints credentials for `claims` (whose secret is filled in here) and returns the output's
    /// `Credentials` member.
    fn mint(&self, mut claims: SessionClaims) -> Result<Value, AwsError> {
        let access_key_id =
            keyid::temporary_key_id(&claims.account, self.ids.bytes::<5>()).ok_or_else(AwsError::internal)?;
        let secret = self.ids.secret_access_key();
        claims.secret = secret.clone();
        let token = self.sealer.seal(&access_key_id, &claims);
        Ok(json!({
            "AccessKeyId": access_key_id,
            "SecretAccessKey": secret,
            "SessionToken": token,
            "Expiration": claims.expires,
        }))
    }

    fn remembered_transitive_keys(&self, principal: &Principal) -> Vec<String> {
        let Some(akid) = &principal.access_key_id else {
            return Vec::new();
        };
        self.transitive
            .lock()
            .ok()
            .and_then(|m| m.get(akid).cloned())
            .unwrap_or_default()
    }
}

/// The caller's session tags that pass on to a chained session.
fn inherited_tags(principal: &Principal, transitive: &[String]) -> Vec<(String, String)> {
    let Some(session) = &principal.session else {
        return Vec::new();
    };
    session
        .tags
        .iter()
        .filter(|(k, _)| transitive.iter().any(|t| t.eq_ignore_ascii_case(k)))
        .cloned()
        .collect()
}

#[async_trait::async_trait]
impl Service for Sts {
    fn spec(&self) -> &'static ServiceSpec {
        &SPEC
    }

    async fn authorize(&self, call: &Call) -> Result<Authorization, AwsError> {
        match call.op.name {
            "GetCallerIdentity" => Ok(Authorization {
                always_allowed: true,
                ..Default::default()
            }),
            // GetSessionToken needs no permission, but only long-term credentials may call it.
            "GetSessionToken" => {
                if call.ctx.principal.session.is_some() {
                    return Err(access_denied("Cannot call GetSessionToken with session credentials"));
                }
                Ok(Authorization {
                    always_allowed: true,
                    ..Default::default()
                })
            }
            "AssumeRole" => self.authorize_assume_role(call).await,
            "GetFederationToken" => {
                let tags = input::session_tags(&call.input)?;
                let mut checks = vec![citadel_core::service::default_check(call)];
                if !tags.is_empty() {
                    let mut tag_check = checks[0].clone();
                    tag_check.action = "sts:TagSession".into();
                    checks.push(tag_check);
                }
                Ok(Authorization {
                    checks,
                    context: input::tag_context(&tags, &[]),
                    always_allowed: false,
                })
            }
            // The caller of these is the external identity, whose trust is evaluated in `execute`
            // against the provider; the request itself needs no IAM permission (AWS accepts it unsigned).
            "AssumeRoleWithWebIdentity" | "AssumeRoleWithSAML" => Ok(Authorization {
                always_allowed: true,
                ..Default::default()
            }),
            _ => Ok(Authorization {
                checks: vec![citadel_core::service::default_check(call)],
                ..Default::default()
            }),
        }
    }

    async fn execute(&self, call: &Call, _proof: &Authorized) -> Result<Effect, AwsError> {
        match call.op.name {
            "GetCallerIdentity" => {
                let principal = &call.ctx.principal;
                Ok(Effect::read(json!({
                    "UserId": principal.principal_id,
                    "Account": principal.account_id,
                    "Arn": principal.arn,
                })))
            }
            "AssumeRole" => self.assume_role(call).await,
            "GetSessionToken" => self.get_session_token(call).await,
            "GetFederationToken" => self.get_federation_token(call).await,
            "GetAccessKeyInfo" => self.get_access_key_info(call).await,
            "DecodeAuthorizationMessage" => self.decode_authorization_message(call),
            "AssumeRoleWithWebIdentity" => self.assume_role_with_web_identity(call).await,
            "AssumeRoleWithSAML" => self.assume_role_with_saml(call).await,
            other => Err(AwsError::new(
                "InvalidAction",
                400,
                format!("Could not find operation {other}"),
            )),
        }
    }
}

impl Sts {
    async fn authorize_assume_role(&self, call: &Call) -> Result<Authorization, AwsError> {
        // AWS never lets the root user assume a role, whatever the trust policy says.
        if call.ctx.principal.is_root() {
            return Err(access_denied("Roles may not be assumed by root accounts."));
        }
        let role_arn = req_str(&call.input, "RoleArn")?;
        let role = self.directory.role_by_arn(role_arn).await?;
        let (trust, account) = match &role {
            Some(role) => (role.trust_policy.clone(), role.account.clone()),
            None => (
                TRUST_NOBODY.to_string(),
                directory::split_iam_arn(role_arn, "role")
                    .map(|(account, _, _)| account.to_string())
                    .unwrap_or_else(|| call.ctx.principal.account_id.clone()),
            ),
        };
        let trust: Arc<str> = Arc::from(trust);
        let check = |action: &str| Check {
            action: action.to_string(),
            resource: role_arn.to_string(),
            resource_account: Some(account.clone()),
            resource_policy: Some(trust.clone()),
            resource_policy_kind: ResourcePolicyKind::TrustPolicy,
            resource_tags: role.as_ref().map(|r| r.tags.clone()).unwrap_or_default(),
        };
        let tags = input::session_tags(&call.input)?;
        let transitive = input::transitive_keys(&call.input, &tags)?;
        let mut checks = vec![check("sts:AssumeRole")];
        if !tags.is_empty() {
            checks.push(check("sts:TagSession"));
        }
        let source_identity = opt_str(&call.input, "SourceIdentity");
        if source_identity.is_some() {
            checks.push(check("sts:SetSourceIdentity"));
        }
        let mut context = input::tag_context(&tags, &transitive);
        if let Some(external_id) = opt_str(&call.input, "ExternalId") {
            context.push(("sts:ExternalId".into(), vec![external_id.to_string()]));
        }
        if let Some(name) = opt_str(&call.input, "RoleSessionName") {
            context.push(("sts:RoleSessionName".into(), vec![name.to_string()]));
        }
        if let Some(source) = source_identity {
            context.push(("sts:SourceIdentity".into(), vec![source.to_string()]));
        }
        // A code passed with the request makes MFA present for the trust policy's conditions.
        if self.verify_mfa(call).await?.is_some() {
            context.push(("aws:MultiFactorAuthPresent".into(), vec!["true".into()]));
            context.push(("aws:MultiFactorAuthAge".into(), vec!["0".into()]));
        }
        Ok(Authorization {
            checks,
            context,
            always_allowed: false,
        })
    }

    async fn assume_role(&self, call: &Call) -> Result<Effect, AwsError> {
        let caller = &call.ctx.principal;
        let role_arn = req_str(&call.input, "RoleArn")?;
        let session_name = req_str(&call.input, "RoleSessionName")?;
        let role = self.directory.role_by_arn(role_arn).await?.ok_or_else(|| {
            access_denied(format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                caller.arn
            ))
        })?;
        let chained = matches!(caller.kind, PrincipalKind::AssumedRole { .. });
        let duration = opt_i64(&call.input, "DurationSeconds").unwrap_or(DEFAULT_ROLE_DURATION);
        if chained && duration > CHAINED_MAX_DURATION {
            return Err(validation(
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
            ));
        }
        role_session::check_duration(&role, duration)?;
        let policies = input::session_policies(&call.input, self.directory.as_ref(), &role.account).await?;
        let passed_tags = input::session_tags(&call.input)?;
        let mut transitive = input::transitive_keys(&call.input, &passed_tags)?;
        // Transitive tags of a chained caller pass on and cannot be overridden.
        let inherited_keys = self.remembered_transitive_keys(caller);
        let inherited = inherited_tags(caller, &inherited_keys);
        for (key, _) in &inherited {
            if passed_tags.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
                return Err(input::invalid_parameter(format!(
                    "One or more of the specified transitive tag keys ({key}) are already set by the calling session and cannot be overridden."
                )));
            }
        }
        let packed = input::packed_size(&policies, &passed_tags)?;
        let mut session_tags = inherited.clone();
        session_tags.extend(passed_tags.iter().cloned());
        for (key, _) in &inherited {
            if !transitive.iter().any(|t| t.eq_ignore_ascii_case(key)) {
                transitive.push(key.clone());
            }
        }
        // A source identity, once set, stays with every session chained from it.
        let inherited_source = caller.session.as_ref().and_then(|s| s.source_identity.clone());
        let requested_source = opt_str(&call.input, "SourceIdentity").map(str::to_string);
        if let (Some(old), Some(new)) = (&inherited_source, &requested_source)
            && old != new
        {
            return Err(access_denied(format!(
                "User: {} is not authorized to perform: sts:SetSourceIdentity on resource: {role_arn} because the source identity of the calling session cannot be changed",
                caller.arn
            )));
        }
        let source_identity = inherited_source.or(requested_source);
        let mfa = self.verify_mfa(call).await?;
        let now = call.ctx.time.unix_timestamp();
        let claims = SessionClaims {
            mfa_at: mfa.as_ref().map(|_| now),
            source_identity,
            session_tags,
            transitive_tag_keys: transitive,
            policies: policies.for_session(),
            ..role_session::claims(&role, session_name, now, now + duration, "AssumeRole")
        };
        let mut batch = WriteBatch::new();
        if let Some(mfa) = &mfa {
            self.directory
                .record_mfa_use(&mut batch, &caller.account_id, &mfa.device, mfa.step);
        }
        self.start_role_session(&role, claims, packed, Map::new(), batch)
    }

    async fn get_session_token(&self, call: &Call) -> Result<Effect, AwsError> {
        let caller = &call.ctx.principal;
        let kind = match &caller.kind {
            PrincipalKind::Root => ClaimKind::Root,
            PrincipalKind::User { name, path } => ClaimKind::User {
                name: name.clone(),
                path: path.clone(),
            },
            _ => return Err(access_denied("Cannot call GetSessionToken with session credentials")),
        };
        let mut duration = opt_i64(&call.input, "DurationSeconds").unwrap_or(DEFAULT_USER_DURATION);
        if caller.is_root() {
            duration = duration.min(ROOT_MAX_DURATION);
        }
        let mfa = self.verify_mfa(call).await?;
        let now = call.ctx.time.unix_timestamp();
        let claims = SessionClaims {
            secret: String::new(),
            account: caller.account_id.clone(),
            arn: caller.arn.clone(),
            principal_id: caller.principal_id.clone(),
            kind,
            principal_tags: caller.tags.clone(),
            issued: now,
            expires: now + duration,
            mfa_at: mfa.as_ref().map(|_| now),
            source_identity: None,
            session_tags: Vec::new(),
            transitive_tag_keys: Vec::new(),
            policies: None,
            issuer_operation: "GetSessionToken".into(),
            federated_provider: None,
        };
        let mut batch = WriteBatch::new();
        if let Some(mfa) = &mfa {
            self.directory
                .record_mfa_use(&mut batch, &caller.account_id, &mfa.device, mfa.step);
        }
        Ok(Effect::write(json!({"Credentials": self.mint(claims)?}), batch))
    }

    async fn get_federation_token(&self, call: &Call) -> Result<Effect, AwsError> {
        let caller = &call.ctx.principal;
        if !matches!(caller.kind, PrincipalKind::Root | PrincipalKind::User { .. }) || caller.session.is_some() {
            return Err(access_denied("Cannot call GetFederationToken with session credentials"));
        }
        let name = req_str(&call.input, "Name")?;
        let mut duration = opt_i64(&call.input, "DurationSeconds").unwrap_or(DEFAULT_USER_DURATION);
        if caller.is_root() {
            duration = duration.min(ROOT_MAX_DURATION);
        }
        let policies = input::session_policies(&call.input, self.directory.as_ref(), &caller.account_id).await?;
        let tags = input::session_tags(&call.input)?;
        let packed = input::packed_size(&policies, &tags)?;
        let now = call.ctx.time.unix_timestamp();
        let account = caller.account_id.clone();
        let claims = SessionClaims {
            secret: String::new(),
            account: account.clone(),
            arn: format!("arn:aws:sts::{account}:federated-user/{name}"),
            principal_id: format!("{account}:{name}"),
            kind: ClaimKind::FederatedUser {
                name: name.to_string(),
                issuer_arn: caller.arn.clone(),
            },
            principal_tags: Vec::new(),
            issued: now,
            expires: now + duration,
            mfa_at: None,
            source_identity: None,
            session_tags: tags,
            transitive_tag_keys: Vec::new(),
            // Without a session policy a federated user may do nothing, so the list is always present.
            policies: Some(policies.documents.clone()),
            issuer_operation: "GetFederationToken".into(),
            federated_provider: None,
        };
        let mut output = Map::new();
        output.insert(
            "FederatedUser".into(),
            json!({"FederatedUserId": claims.principal_id, "Arn": claims.arn}),
        );
        output.insert("Credentials".into(), self.mint(claims)?);
        if let Some(packed) = packed {
            output.insert("PackedPolicySize".into(), json!(packed));
        }
        Ok(Effect::read(Value::Object(output)))
    }

    async fn get_access_key_info(&self, call: &Call) -> Result<Effect, AwsError> {
        let key_id = req_str(&call.input, "AccessKeyId")?;
        let account = if key_id.starts_with("ASIA") {
            keyid::account_of_temporary_key(key_id)
        } else {
            citadel_core::identity::load_access_key(self.store.as_ref(), key_id)
                .await
                .map_err(|_| AwsError::internal())?
                .map(|record| record.account_id)
        };
        let account = account.ok_or_else(|| {
            AwsError::new(
                "InvalidParameterValue",
                400,
                format!("The access key ID {key_id} is not valid."),
            )
        })?;
        Ok(Effect::read(json!({ "Account": account })))
    }

    fn decode_authorization_message(&self, call: &Call) -> Result<Effect, AwsError> {
        let encoded = req_str(&call.input, "EncodedMessage")?;
        let decoded = message::decode(&self.messages, &call.ctx.principal.account_id, encoded)?;
        Ok(Effect::read(json!({ "DecodedMessage": decoded })))
    }
}
