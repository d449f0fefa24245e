//! Authorization: every check of a request goes to the policy engine.
//!
//! The policies of a principal (identity policies, permissions boundary) come from the IAM service
//! through [`PolicySource`]; resource policies come with each [`Check`]; session policies come with
//! the principal's session. Until IAM installs a policy source, principals have no policies, so only
//! the account root is allowed (on its own account's resources).

use crate::conditions::KeysRead;
use crate::context::RequestContext;
use crate::principal::{Principal, PrincipalKind};
use crate::service::{Authorization, Check, ResourcePolicyKind};
use citadel_policy as policy;
use citadel_wire::AwsError;
use parking_lot::{Mutex, RwLock};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The identity-side policies of a principal, compiled.
///
/// The policy source caches one value per principal and replaces it whenever a policy, attachment
/// or membership changes; the compiled sets (and their decision caches) live inside it, so a change
/// starts them afresh and no cached decision outlives the policies it came from.
#[derive(Debug, Default)]
pub struct PrincipalPolicies {
    /// Identity-based policies with their ids (policy ARN, or `user/NAME/inline/POLICY`).
    pub identity: Vec<(String, Arc<policy::Policy>)>,
    /// The permissions boundary, if set.
    pub boundary: Option<(String, Arc<policy::Policy>)>,
    /// The set without session policies, compiled on first use.
    compiled: OnceLock<PreparedSet>,
    /// Sets with a session's policies, by the session policies' texts (few per principal).
    with_session: Mutex<HashMap<Box<str>, Arc<PreparedSet>>>,
}

/// A compiled set with the global context keys its policies read.
#[derive(Debug)]
struct PreparedSet {
    set: policy::CompiledSet,
    reads: KeysRead,
}

/// A parsed resource policy with the global context keys it reads.
#[derive(Debug)]
struct PreparedPolicy {
    policy: policy::Policy,
    reads: KeysRead,
}

/// The most session-policy variants kept per principal before the map is cleared.
const SESSION_SETS_PER_PRINCIPAL: usize = 64;

impl PrincipalPolicies {
    /// A principal's identity policies and permissions boundary.
    pub fn new(identity: Vec<(String, Arc<policy::Policy>)>, boundary: Option<(String, Arc<policy::Policy>)>) -> Self {
        PrincipalPolicies {
            identity,
            boundary,
            ..PrincipalPolicies::default()
        }
    }

    fn spec(&self, session: Option<&[Arc<policy::Policy>]>) -> policy::SetSpec {
        let has_policies = !self.identity.is_empty() || self.boundary.is_some() || session.is_some();
        policy::SetSpec {
            identity: self.identity.clone(),
            permissions_boundary: self.boundary.clone(),
            session_policies: session
                .map(|list| list.iter().map(|p| ("session-policy".to_string(), p.clone())).collect()),
            root_implicit_allow: true,
            // With no policies an evaluation is cheaper than a cache lookup.
            cache_capacity: if has_policies {
                policy::DEFAULT_CACHE_CAPACITY
            } else {
                0
            },
        }
    }

    /// The compiled set for this principal with `session`'s policies (or none).
    fn compiled(&self, session: Option<(&str, &[Arc<policy::Policy>])>) -> SetHandle<'_> {
        let Some((texts, policies)) = session else {
            return SetHandle::Borrowed(self.compiled.get_or_init(|| compile(self.spec(None))));
        };
        let mut sets = self.with_session.lock();
        if let Some(hit) = sets.get(texts) {
            return SetHandle::Shared(hit.clone());
        }
        if sets.len() >= SESSION_SETS_PER_PRINCIPAL {
            sets.clear();
        }
        let set = Arc::new(compile(self.spec(Some(policies))));
        sets.insert(texts.into(), set.clone());
        SetHandle::Shared(set)
    }
}

/// Compiles a set; a set that reads the clock keeps no cache, since its decisions repeat only
/// within the same second and every miss would pay for building the key.
fn compile(spec: policy::SetSpec) -> PreparedSet {
    let mut set = policy::CompiledSet::new(spec.clone());
    if set.time_dependent() && spec.cache_capacity > 0 {
        set = policy::CompiledSet::new(policy::SetSpec {
            cache_capacity: 0,
            ..spec
        });
    }
    let reads = KeysRead::of(set.referenced_keys());
    PreparedSet { set, reads }
}

enum SetHandle<'a> {
    Borrowed(&'a PreparedSet),
    Shared(Arc<PreparedSet>),
}

impl std::ops::Deref for SetHandle<'_> {
    type Target = PreparedSet;
    fn deref(&self) -> &PreparedSet {
        match self {
            SetHandle::Borrowed(set) => set,
            SetHandle::Shared(set) => set,
        }
    }
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
    resource_policies: RwLock<HashMap<Arc<str>, Arc<PreparedPolicy>>>,
    session_policies: RwLock<HashMap<String, Arc<Vec<Arc<policy::Policy>>>>>,
    /// The set of principals without policies of their own (root, anonymous).
    no_policies: OnceLock<Arc<PrincipalPolicies>>,
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
            _ => self.no_policies.get_or_init(Default::default).clone(),
        };
        let session = self.session_policies_of(principal);
        let set = policies.compiled(session.as_ref().map(|(key, list)| (key.as_str(), list.as_slice())));
        let resource_policies: SmallVec<[Option<Arc<PreparedPolicy>>; 2]> = authz
            .checks
            .iter()
            .map(|check| {
                check
                    .resource_policy
                    .as_ref()
                    .and_then(|text| self.resource_policy(text, check.resource_policy_kind))
            })
            .collect();
        let reads = resource_policies
            .iter()
            .flatten()
            .fold(set.reads, |reads, p| reads.union(p.reads));
        let wanted = |key: &str| set.set.reads(key) || resource_policies.iter().flatten().any(|p| p.policy.reads(key));
        let context = crate::conditions::request_context_for(ctx, authz, reads, &wanted);
        let request = PerRequest {
            ctx,
            set: &set.set,
            has_boundary: policies.boundary.is_some(),
            context: &context,
            wanted_tags: reads.resource_tags().then_some(&wanted),
            quote_resource,
        };
        for (check, resource_policy) in authz.checks.iter().zip(&resource_policies) {
            request.evaluate(check, resource_policy.as_deref().map(|p| &p.policy))?;
        }
        Ok(())
    }

    /// The session's policies, parsed once, with the key that names them.
    fn session_policies_of(&self, principal: &Principal) -> Option<(String, Arc<Vec<Arc<policy::Policy>>>)> {
        let session = principal.session.as_ref()?;
        let texts = session.policies.as_ref()?;
        let cache_key = texts.join("\u{1}");
        if let Some(hit) = self.session_policies.read().get(&cache_key) {
            return Some((cache_key, hit.clone()));
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
        cache.insert(cache_key.clone(), parsed.clone());
        Some((cache_key, parsed))
    }

    fn resource_policy(&self, text: &Arc<str>, kind: ResourcePolicyKind) -> Option<Arc<PreparedPolicy>> {
        if let Some(hit) = self.resource_policies.read().get(text) {
            return Some(hit.clone());
        }
        let policy_kind = match kind {
            ResourcePolicyKind::TrustPolicy => policy::PolicyKind::Trust,
            _ => policy::PolicyKind::ResourceBased,
        };
        let policy = policy::Policy::parse(text, policy_kind).ok()?;
        let reads = KeysRead::of(policy.referenced_keys());
        let parsed = Arc::new(PreparedPolicy { policy, reads });
        let mut cache = self.resource_policies.write();
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(text.clone(), parsed.clone());
        Some(parsed)
    }
}

/// What every check of one request shares.
struct PerRequest<'a> {
    ctx: &'a RequestContext,
    set: &'a policy::CompiledSet,
    has_boundary: bool,
    context: &'a policy::Context,
    /// Present when a policy reads `aws:ResourceTag/<k>`: which tag keys to add.
    wanted_tags: Option<&'a dyn Fn(&str) -> bool>,
    quote_resource: bool,
}

impl PerRequest<'_> {
    fn evaluate(&self, check: &Check, resource_policy: Option<&policy::Policy>) -> Result<(), Denial> {
        let PerRequest {
            ctx,
            set,
            has_boundary,
            context,
            wanted_tags,
            quote_resource,
        } = *self;
        let principal = &ctx.principal;
        let resource_account = check.resource_account.as_deref().unwrap_or(&principal.account_id);
        let resource = (check.resource != "*").then_some(check.resource.as_str());
        // Resource tags belong to this check's resource, so they extend the request-wide context here.
        let with_tags;
        let tag_keys: SmallVec<[(String, &str); 4]> = match wanted_tags {
            None => SmallVec::new(),
            Some(wanted) => check
                .resource_tags
                .iter()
                .map(|(key, value)| (format!("aws:resourcetag/{key}"), value.as_str()))
                .filter(|(name, _)| wanted(name))
                .collect(),
        };
        let context = if tag_keys.is_empty() {
            context
        } else {
            let mut extended = context.clone();
            for (name, value) in &tag_keys {
                extended.insert(name, *value);
            }
            with_tags = extended;
            &with_tags
        };
        let request = policy::Request {
            principal: crate::conditions::policy_principal(principal, has_boundary),
            action: &check.action,
            resource,
            resource_account: Some(resource_account),
            context,
        };
        let resource_policy = resource_policy.map(|p| policy::ResourcePolicy {
            policy: policy::PolicyRef {
                id: "resource-policy",
                policy: p,
            },
            kind: match check.resource_policy_kind {
                ResourcePolicyKind::Generic => policy::ResourcePolicyKind::Generic,
                ResourcePolicyKind::KeyPolicy => policy::ResourcePolicyKind::KeyPolicy,
                ResourcePolicyKind::TrustPolicy => policy::ResourcePolicyKind::TrustPolicy,
            },
        });
        let decision = set.evaluate(&request, resource_policy);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Check;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    struct Fixed(Arc<PrincipalPolicies>);

    #[async_trait::async_trait]
    impl PolicySource for Fixed {
        async fn principal_policies(&self, _: &Principal) -> Result<Arc<PrincipalPolicies>, AwsError> {
            Ok(self.0.clone())
        }
    }

    fn run_now<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("authorization waited"),
        }
    }

    fn authorizer(documents: &[&str]) -> Authorizer {
        let identity = documents
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let policy = policy::Policy::parse(text, policy::PolicyKind::Identity).expect("test policy parses");
                (format!("arn:aws:iam::000000000000:policy/p{i}"), Arc::new(policy))
            })
            .collect();
        let authorizer = Authorizer::default();
        authorizer.set_source(Arc::new(Fixed(Arc::new(PrincipalPolicies::new(identity, None)))));
        authorizer
    }

    fn request(ip: &str, tag: &str) -> RequestContext {
        RequestContext {
            request_id: "r".into(),
            principal: Arc::new(Principal {
                account_id: "000000000000".into(),
                arn: "arn:aws:iam::000000000000:user/alice".into(),
                principal_id: "AIDAALICE".into(),
                kind: PrincipalKind::User {
                    name: "alice".into(),
                    path: "/".into(),
                },
                access_key_id: None,
                tags: vec![("Team".into(), tag.into())],
                session: None,
            }),
            region: "us-east-1".into(),
            source_ip: ip.parse().expect("ip"),
            user_agent: "test".into(),
            secure_transport: false,
            time: time::OffsetDateTime::UNIX_EPOCH,
            service: "s3",
            operation: "GetObject",
        }
    }

    fn check(resource_tag: &str, context_value: &str) -> Authorization {
        let mut check = Check::new("s3:GetObject", "arn:aws:s3:::bucket/key");
        check.resource_tags = vec![("Stage".into(), resource_tag.into())];
        Authorization {
            checks: vec![check],
            context: vec![("s3:ExistingObjectTag/Class".into(), vec![context_value.into()])],
            always_allowed: false,
        }
    }

    /// The context is built from the keys the policies read (in any case); every kind of key
    /// (global, principal tag, resource tag, service key) still decides, and repeating a request
    /// (a cache hit) gives the same answer as the first time.
    #[test]
    fn filtered_context_and_cache_decide_like_a_full_context() {
        let authorizer = authorizer(&[r#"{"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
            "Condition": {
                "IpAddress": {"AWS:SourceIP": "10.0.0.0/8"},
                "StringEquals": {"aws:PrincipalTag/team": "blue", "AWS:ResourceTag/STAGE": "prod",
                                 "s3:existingobjecttag/class": "public"}}}]}"#]);
        let cases = [
            ("10.1.2.3", "blue", "prod", "public", true),
            ("192.168.1.1", "blue", "prod", "public", false),
            ("10.1.2.3", "red", "prod", "public", false),
            ("10.1.2.3", "blue", "dev", "public", false),
            ("10.1.2.3", "blue", "prod", "secret", false),
        ];
        for _ in 0..3 {
            for (ip, tag, stage, class, expected) in cases {
                let allowed = run_now(authorizer.authorize(&request(ip, tag), &check(stage, class), true)).is_ok();
                assert_eq!(allowed, expected, "{ip} {tag} {stage} {class}");
            }
        }
    }

    /// A deny message names the action and resource as AWS does, also from a cached decision.
    #[test]
    fn denial_message_from_the_cache_is_complete() {
        let authorizer = authorizer(&[r#"{"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}"#]);
        for _ in 0..2 {
            let denial = run_now(authorizer.authorize(&request("10.0.0.1", "blue"), &check("prod", "x"), true))
                .expect_err("explicit deny");
            assert!(
                denial
                    .message
                    .contains("is not authorized to perform: s3:GetObject on resource: \"arn:aws:s3:::bucket/key\""),
                "{}",
                denial.message
            );
            assert!(denial.message.contains("explicit deny"), "{}", denial.message);
        }
    }

    #[test]
    fn keys_read_of_policies() {
        let reads = KeysRead::of(["aws:sourceip", "aws:principaltag/team", "s3:prefix"]);
        assert!(!reads.resource_tags());
        assert!(KeysRead::of(["aws:resourcetag/stage"]).resource_tags());
        assert_eq!(KeysRead::of(std::iter::empty()), KeysRead::default());
    }
}
