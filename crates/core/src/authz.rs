//! Authorization: every check of a request goes to the policy engine.
//!
//! The policies of a principal (identity policies, permissions boundary) come from the IAM service
//! through [`PolicySource`]; resource policies come with each [`Check`]; session policies come with
//! the principal's session. Until IAM installs a policy source, principals have no policies, so only
//! the account root is allowed (on its own account's resources).

use crate::context::RequestContext;
use crate::principal::{Principal, PrincipalKind};
use crate::service::{Authorization, Check, ResourcePolicyKind};
use citadel_policy as policy;
use citadel_wire::AwsError;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// The identity-side policies of a principal, compiled.
#[derive(Debug, Default)]
pub struct PrincipalPolicies {
    /// Identity-based policies with their ids (policy ARN, or `user/NAME/inline/POLICY`).
    pub identity: Vec<(String, Arc<policy::Policy>)>,
    /// The permissions boundary, if set.
    pub boundary: Option<(String, Arc<policy::Policy>)>,
}

/// Supplies principals' policies (implemented by IAM).
#[async_trait::async_trait]
pub trait PolicySource: Send + Sync + 'static {
    /// The policies attached to `principal` (for a role session: the role's).
    async fn principal_policies(&self, principal: &Principal) -> Result<Arc<PrincipalPolicies>, AwsError>;
}

/// A denied request, with AWS's message.
#[derive(Debug, Clone)]
pub struct Denial {
    /// `User: ... is not authorized to perform: ...`.
    pub message: String,
    /// The action that was denied.
    pub action: String,
}

/// Evaluates requests with the policy engine.
#[derive(Default)]
pub struct Authorizer {
    source: RwLock<Option<Arc<dyn PolicySource>>>,
    resource_policies: RwLock<HashMap<Arc<str>, Arc<policy::Policy>>>,
    session_policies: RwLock<HashMap<String, Arc<Vec<Arc<policy::Policy>>>>>,
}

impl Authorizer {
    /// Installs the source of principals' policies.
    pub fn set_source(&self, source: Arc<dyn PolicySource>) {
        *self.source.write() = Some(source);
    }

    /// Checks every permission `authz` lists for the caller of `ctx`.
    pub async fn authorize(
        &self,
        ctx: &RequestContext,
        authz: &Authorization,
        quote_resource: bool,
    ) -> Result<(), Denial> {
        if authz.always_allowed {
            return Ok(());
        }
        let principal = &ctx.principal;
        if let Some(message) = temporary_credential_restriction(ctx) {
            return Err(Denial {
                message,
                action: format!("{}:{}", ctx.service, ctx.operation),
            });
        }
        let source = self.source.read().clone();
        let policies = match (&principal.kind, source) {
            (
                PrincipalKind::User { .. } | PrincipalKind::AssumedRole { .. } | PrincipalKind::FederatedUser { .. },
                Some(source),
            ) => source.principal_policies(principal).await.map_err(|e| Denial {
                message: e.message,
                action: String::new(),
            })?,
            _ => Arc::new(PrincipalPolicies::default()),
        };
        let session = self.session_policies_of(principal);
        let context = crate::conditions::request_context(ctx, authz);
        for check in &authz.checks {
            self.evaluate_check(ctx, check, &policies, session.as_deref(), &context, quote_resource)?;
        }
        Ok(())
    }

    fn session_policies_of(&self, principal: &Principal) -> Option<Arc<Vec<Arc<policy::Policy>>>> {
        let session = principal.session.as_ref()?;
        let texts = session.policies.as_ref()?;
        let cache_key = texts.join("\u{1}");
        if let Some(hit) = self.session_policies.read().get(&cache_key) {
            return Some(hit.clone());
        }
        let parsed: Vec<Arc<policy::Policy>> = texts
            .iter()
            .filter_map(|text| {
                policy::Policy::parse(text, policy::PolicyKind::Identity)
                    .ok()
                    .map(Arc::new)
            })
            .collect();
        let parsed = Arc::new(parsed);
        let mut cache = self.session_policies.write();
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(cache_key, parsed.clone());
        Some(parsed)
    }

    fn resource_policy(&self, text: &Arc<str>, kind: ResourcePolicyKind) -> Option<Arc<policy::Policy>> {
        if let Some(hit) = self.resource_policies.read().get(text) {
            return Some(hit.clone());
        }
        let policy_kind = match kind {
            ResourcePolicyKind::TrustPolicy => policy::PolicyKind::Trust,
            _ => policy::PolicyKind::ResourceBased,
        };
        let parsed = Arc::new(policy::Policy::parse(text, policy_kind).ok()?);
        let mut cache = self.resource_policies.write();
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(text.clone(), parsed.clone());
        Some(parsed)
    }

    fn evaluate_check(
        &self,
        ctx: &RequestContext,
        check: &Check,
        policies: &PrincipalPolicies,
        session: Option<&Vec<Arc<policy::Policy>>>,
        context: &policy::Context,
        quote_resource: bool,
    ) -> Result<(), Denial> {
        let principal = &ctx.principal;
        let resource_account = check.resource_account.as_deref().unwrap_or(&principal.account_id);
        let resource_policy = check
            .resource_policy
            .as_ref()
            .and_then(|text| self.resource_policy(text, check.resource_policy_kind));
        let resource = (check.resource != "*").then_some(check.resource.as_str());
        // Resource tags belong to this check's resource, so they extend the request-wide context here.
        let with_tags;
        let context = if check.resource_tags.is_empty() {
            context
        } else {
            let mut extended = context.clone();
            for (key, value) in &check.resource_tags {
                extended.insert(&format!("aws:ResourceTag/{key}"), value.as_str());
            }
            with_tags = extended;
            &with_tags
        };
        let request = policy::Request {
            principal: crate::conditions::policy_principal(principal, policies.boundary.is_some()),
            action: &check.action,
            resource,
            resource_account: Some(resource_account),
            context,
        };
        let set = policy::PolicySet {
            identity: policies
                .identity
                .iter()
                .map(|(id, p)| policy::PolicyRef { id, policy: p })
                .collect(),
            resource: resource_policy.as_deref().map(|p| policy::ResourcePolicy {
                policy: policy::PolicyRef {
                    id: "resource-policy",
                    policy: p,
                },
                kind: match check.resource_policy_kind {
                    ResourcePolicyKind::Generic => policy::ResourcePolicyKind::Generic,
                    ResourcePolicyKind::KeyPolicy => policy::ResourcePolicyKind::KeyPolicy,
                    ResourcePolicyKind::TrustPolicy => policy::ResourcePolicyKind::TrustPolicy,
                },
            }),
            permissions_boundary: policies
                .boundary
                .as_ref()
                .map(|(id, p)| policy::PolicyRef { id, policy: p }),
            session_policies: session.map(|list| {
                list.iter()
                    .map(|p| policy::PolicyRef {
                        id: "session-policy",
                        policy: p,
                    })
                    .collect()
            }),
            scp_levels: Vec::new(),
            root_implicit_allow: true,
        };
        let decision = policy::evaluate(&request, &set);
        if decision.is_allowed() {
            return Ok(());
        }
        let style = policy::MessageStyle {
            quote_resource,
            append_policy_arn: true,
        };
        Err(Denial {
            message: decision
                .access_denied_message(&request, style)
                .unwrap_or_else(|| "Access Denied".into()),
            action: check.action.clone(),
        })
    }
}

/// AWS's fixed limits on what temporary credentials may call, independent of any policy.
///
/// Federation-token sessions cannot call IAM, nor STS other than GetCallerIdentity; GetSessionToken
/// sessions cannot call IAM without MFA, nor STS other than AssumeRole and GetCallerIdentity; role
/// sessions cannot call GetFederationToken or GetSessionToken.
fn temporary_credential_restriction(ctx: &RequestContext) -> Option<String> {
    let session = ctx.principal.session.as_ref()?;
    let action = format!("{}:{}", ctx.service, ctx.operation);
    let refused = match (session.issuer_operation.as_str(), ctx.service) {
        ("GetFederationToken", "iam") => true,
        ("GetFederationToken", "sts") => ctx.operation != "GetCallerIdentity",
        ("GetSessionToken", "iam") => session.mfa_authenticated_at.is_none(),
        ("GetSessionToken", "sts") => !matches!(ctx.operation, "AssumeRole" | "GetCallerIdentity"),
        (_, "sts") if matches!(ctx.principal.kind, PrincipalKind::AssumedRole { .. }) => {
            matches!(ctx.operation, "GetFederationToken" | "GetSessionToken")
        }
        _ => false,
    };
    refused.then(|| {
        format!(
            "User: {} is not authorized to perform: {action} because temporary credentials from {} cannot call this operation",
            ctx.principal.arn, session.issuer_operation
        )
    })
}
