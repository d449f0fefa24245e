//! What every way into a role session shares once the caller is known.
//!
//! `AssumeRole`, `AssumeRoleWithWebIdentity` and `AssumeRoleWithSAML` differ in how they learn who
//! the caller is and in what the session carries beyond the role.
//! From there on they take one path: the role's trust policy is asked by the policy engine, the
//! duration is held to the role's maximum, and the session is minted and answered with the same
//! members and the role as the audited resource.
//! The instance metadata listener shares the trust question and the claims, and answers in its own
//! document format.
//! That path lives here so that a change to it (a new claim, a new output member, another audited
//! resource) is made once for all of them.

use crate::input::validation;
use crate::token::{ClaimKind, SessionClaims};
use crate::{RoleInfo, Sts};
use citadel_core::{AuditResource, Call, Effect};
use citadel_policy as policy;
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde_json::{Map, Value, json};

/// Whether `role`'s trust policy allows `principal` every one of `actions` in `context`.
///
/// A trust policy that no longer parses allows nothing.
pub(crate) fn trust_policy_allows(
    role: &RoleInfo,
    principal: policy::Principal<'_>,
    actions: &[&str],
    context: &policy::Context,
) -> bool {
    let Ok(trust) = policy::Policy::parse(&role.trust_policy, policy::PolicyKind::Trust) else {
        return false;
    };
    let set = policy::PolicySet {
        resource: Some(policy::ResourcePolicy {
            policy: policy::PolicyRef {
                id: "trust-policy",
                policy: &trust,
            },
            kind: policy::ResourcePolicyKind::TrustPolicy,
        }),
        ..Default::default()
    };
    actions.iter().all(|action| {
        let request = policy::Request {
            principal,
            action,
            resource: Some(role.arn.as_str()),
            resource_account: Some(role.account.as_str()),
            context,
        };
        policy::evaluate(&request, &set).is_allowed()
    })
}

/// An identity provider as the trust policy sees it: a federated principal named by its ARN.
pub(crate) fn federated_principal(provider_arn: &str) -> policy::Principal<'_> {
    policy::Principal::new(
        provider_arn,
        "",
        policy::PrincipalKind::WebIdentity { provider: provider_arn },
    )
}

/// The condition keys every federated trust evaluation has, before the provider's own
/// (`<issuer>:sub`, `saml:aud`, ...) are added.
pub(crate) fn federated_context(call: &Call, provider_arn: &str, session_name: &str) -> policy::Context {
    let mut context = policy::Context::new();
    context.insert_date("aws:CurrentTime", call.ctx.time);
    context.insert_number("aws:EpochTime", call.ctx.time.unix_timestamp());
    context.insert_ip("aws:SourceIp", call.ctx.source_ip);
    context.insert("aws:UserAgent", call.ctx.user_agent.as_str());
    context.insert("aws:FederatedProvider", provider_arn);
    context.insert("sts:RoleSessionName", session_name);
    context
}

/// Refuses a session longer than the role's `MaxSessionDuration`.
pub(crate) fn check_duration(role: &RoleInfo, duration: i64) -> Result<(), AwsError> {
    if duration > role.max_session_duration {
        return Err(validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }
    Ok(())
}

/// The claims of a session of `role` named `session_name`, valid from `issued` to `expires`, that
/// carries nothing beyond the role's own facts.
///
/// Callers fill in what their operation adds (MFA, source identity, session tags and policies,
/// the federated provider) with struct update syntax, so that each field is written in one place.
pub(crate) fn claims(
    role: &RoleInfo,
    session_name: &str,
    issued: i64,
    expires: i64,
    issuer_operation: &str,
) -> SessionClaims {
    SessionClaims {
        secret: String::new(),
        account: role.account.clone(),
        arn: format!(
            "arn:aws:sts::{}:assumed-role/{}/{session_name}",
            role.account, role.name
        ),
        principal_id: format!("{}:{session_name}", role.id),
        kind: ClaimKind::AssumedRole {
            role_arn: role.arn.clone(),
            role_name: role.name.clone(),
            role_id: role.id.clone(),
            session_name: session_name.to_string(),
        },
        principal_tags: role.tags.clone(),
        issued,
        expires,
        mfa_at: None,
        source_identity: None,
        session_tags: Vec::new(),
        transitive_tag_keys: Vec::new(),
        policies: None,
        issuer_operation: issuer_operation.to_string(),
        federated_provider: None,
    }
}

impl Sts {
    /// Mints the session `claims` describe and answers with it.
    ///
    /// `output` holds the operation's own members; `AssumedRoleUser` and `Credentials` join them,
    /// then `PackedPolicySize` (when session policies or tags were passed) and `SourceIdentity`
    /// (when the session has one). The role is the audited resource; `batch` carries whatever the
    /// operation records besides (an MFA code's use).
    pub(crate) fn start_role_session(
        &self,
        role: &RoleInfo,
        claims: SessionClaims,
        packed_policy_size: Option<i64>,
        mut output: Map<String, Value>,
        batch: WriteBatch,
    ) -> Result<Effect, AwsError> {
        let source_identity = claims.source_identity.clone();
        output.insert(
            "AssumedRoleUser".into(),
            json!({"AssumedRoleId": claims.principal_id, "Arn": claims.arn}),
        );
        output.insert("Credentials".into(), self.mint(claims)?);
        if let Some(packed) = packed_policy_size {
            output.insert("PackedPolicySize".into(), json!(packed));
        }
        if let Some(source) = source_identity {
            output.insert("SourceIdentity".into(), json!(source));
        }
        Ok(Effect {
            output: Value::Object(output),
            batch,
            resources: vec![AuditResource {
                arn: role.arn.clone(),
                account_id: role.account.clone(),
                resource_type: "AWS::IAM::Role",
            }],
        })
    }
}
