//! The evaluation entry point: [`evaluate`] turns a [`Request`] and a [`PolicySet`] into a [`Decision`].
//!
//! The order follows the current AWS logic (see the crate docs): explicit deny anywhere wins, then
//! SCP levels, then the resource-based policy (whose meaning depends on how it names the caller and
//! on its [`ResourcePolicyKind`]), then identity policies, permissions boundary and session policies.
//! Every applicable policy is scanned exactly once; the decision is then computed from the scan
//! summaries, so the order of checks never changes which statements are reported.

use smallvec::SmallVec;

use crate::arn::split_arn;
use crate::condition::Scratch;
use crate::context::Context;
use crate::keys::Values;
use crate::policy::{Effect, Policy};
use crate::principal::{Principal, PrincipalKind, PrincipalMatch};

/// A request to authorize.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The caller.
    pub principal: Principal<'a>,
    /// The action, such as `s3:GetObject` (any case).
    pub action: &'a str,
    /// The resource ARN, `*`, or `None` for actions without a resource.
    pub resource: Option<&'a str>,
    /// The account that owns the resource; `None` means the caller's own account.
    pub resource_account: Option<&'a str>,
    /// The condition context.
    pub context: &'a Context,
}

/// A compiled policy with the id decisions use to name it (a policy ARN, `user/NAME/inline/POLICY`, ...).
#[derive(Debug, Clone, Copy)]
pub struct PolicyRef<'p> {
    /// The id reported in [`MatchedStatement::policy_id`].
    pub id: &'p str,
    /// The compiled policy.
    pub policy: &'p Policy,
}

/// What kind of resource policy a [`ResourcePolicy`] is; key and trust policies are mandatory grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourcePolicyKind {
    /// A bucket policy or any other resource policy: optional in the same account.
    Generic,
    /// A KMS key policy: it must allow, and identity policies count only when it allows the account.
    KeyPolicy,
    /// A role trust policy: it must allow, and naming only the account needs an identity-policy allow.
    TrustPolicy,
}

/// The resource-based policy of the resource.
#[derive(Debug, Clone, Copy)]
pub struct ResourcePolicy<'p> {
    /// The policy.
    pub policy: PolicyRef<'p>,
    /// Its kind.
    pub kind: ResourcePolicyKind,
}

/// Every policy that applies to one request.
#[derive(Debug, Clone, Default)]
pub struct PolicySet<'p> {
    /// Identity-based policies of the caller (user inline + attached + groups', or the role's).
    pub identity: Vec<PolicyRef<'p>>,
    /// The resource-based policy, if the resource has one.
    pub resource: Option<ResourcePolicy<'p>>,
    /// The permissions boundary of the user or role, if any.
    pub permissions_boundary: Option<PolicyRef<'p>>,
    /// `None`: no session policy; `Some(list)`: the session's policies (inline and managed), which cap the session.
    pub session_policies: Option<Vec<PolicyRef<'p>>>,
    /// SCPs by level of the OU path (root, OUs, account); each level needs at least one allow.
    pub scp_levels: Vec<Vec<PolicyRef<'p>>>,
    /// Whether the account root user is implicitly allowed everything on its own account's resources.
    pub root_implicit_allow: bool,
}

/// The outcome of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Allowed.
    Allowed,
    /// Denied by a matching `Deny` statement.
    ExplicitDeny,
    /// Denied because nothing allowed it.
    ImplicitDeny,
}

impl Outcome {
    /// The IAM policy simulator's word: `allowed`, `explicitDeny` or `implicitDeny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::ExplicitDeny => "explicitDeny",
            Outcome::ImplicitDeny => "implicitDeny",
        }
    }
}

/// A policy type, as AccessDenied messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyType {
    /// `identity-based policy`.
    IdentityBased,
    /// `resource-based policy`.
    ResourceBased,
    /// `permissions boundary`.
    PermissionsBoundary,
    /// `session policy`.
    SessionPolicy,
    /// `service control policy`.
    ServiceControlPolicy,
}

impl PolicyType {
    /// The words AWS uses in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyType::IdentityBased => "identity-based policy",
            PolicyType::ResourceBased => "resource-based policy",
            PolicyType::PermissionsBoundary => "permissions boundary",
            PolicyType::SessionPolicy => "session policy",
            PolicyType::ServiceControlPolicy => "service control policy",
        }
    }

    fn article(self) -> &'static str {
        match self {
            PolicyType::IdentityBased => "an",
            _ => "a",
        }
    }
}

/// A statement that matched the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchedStatement<'p> {
    /// The id of the policy it belongs to.
    pub policy_id: &'p str,
    /// The type of that policy.
    pub policy_type: PolicyType,
    /// The statement's index in the document.
    pub statement_index: usize,
    /// The statement's `Sid`.
    pub sid: Option<&'p str>,
    /// The statement's effect.
    pub effect: Effect,
}

/// How the AccessDenied message renders the resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageStyle {
    /// Put the resource ARN in double quotes, as S3 does.
    pub quote_resource: bool,
    /// Append `: <policy id>` after an explicit deny in an identity-based policy whose id is an ARN.
    pub append_policy_arn: bool,
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'p> {
    /// Allowed, explicit deny or implicit deny.
    pub outcome: Outcome,
    /// The policy type that decided it: the denying or failing type, or the type whose allow
    /// granted (`None` for the root user's implicit allow).
    pub policy_type: Option<PolicyType>,
    /// The statements behind the outcome: the matching `Deny` statements for an explicit deny,
    /// the matching `Allow` statements of the consulted policies for an allow, none for an implicit deny.
    pub matched: SmallVec<[MatchedStatement<'p>; 4]>,
    /// Lower-cased condition keys (and policy-variable keys) read by statements whose action matched, absent from the context.
    pub missing_context_keys: SmallVec<[&'p str; 4]>,
}

impl Decision<'_> {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.outcome == Outcome::Allowed
    }

    /// AWS's AccessDenied message, or `None` when allowed.
    pub fn access_denied_message(&self, req: &Request<'_>, style: MessageStyle) -> Option<String> {
        let policy_type = match self.outcome {
            Outcome::Allowed => return None,
            _ => self.policy_type.unwrap_or(PolicyType::IdentityBased),
        };
        let mut message = format!(
            "User: {} is not authorized to perform: {}",
            req.principal.arn, req.action
        );
        if let Some(resource) = req.resource {
            if style.quote_resource {
                message.push_str(&format!(" on resource: \"{resource}\""));
            } else {
                message.push_str(&format!(" on resource: {resource}"));
            }
        }
        match self.outcome {
            Outcome::ExplicitDeny => {
                message.push_str(&format!(
                    " with an explicit deny in {} {}",
                    policy_type.article(),
                    policy_type.as_str()
                ));
                if style.append_policy_arn
                    && policy_type == PolicyType::IdentityBased
                    && let Some(first) = self.matched.iter().find(|m| m.policy_type == policy_type)
                    && first.policy_id.starts_with("arn:")
                {
                    message.push_str(&format!(": {}", first.policy_id));
                }
            }
            _ => message.push_str(&format!(
                " because no {} allows the {} action",
                policy_type.as_str(),
                req.action
            )),
        }
        Some(message)
    }
}

/// An owned copy of a [`Decision`], for callers that drop the policies before using the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedDecision {
    /// See [`Decision::outcome`].
    pub outcome: Outcome,
    /// See [`Decision::policy_type`].
    pub policy_type: Option<PolicyType>,
    /// `(policy id, policy type, statement index, sid, effect)` for each matched statement.
    pub matched: Vec<(String, PolicyType, usize, Option<String>, Effect)>,
    /// See [`Decision::missing_context_keys`].
    pub missing_context_keys: Vec<String>,
    /// The AccessDenied message (unquoted resource), or `None` when allowed.
    pub message: Option<String>,
}

impl Decision<'_> {
    /// Copies the decision, rendering the message for `req`.
    pub fn to_owned_decision(&self, req: &Request<'_>) -> OwnedDecision {
        OwnedDecision {
            outcome: self.outcome,
            policy_type: self.policy_type,
            matched: self
                .matched
                .iter()
                .map(|m| {
                    (
                        m.policy_id.to_owned(),
                        m.policy_type,
                        m.statement_index,
                        m.sid.map(str::to_owned),
                        m.effect,
                    )
                })
                .collect(),
            missing_context_keys: self.missing_context_keys.iter().map(|k| (*k).to_owned()).collect(),
            message: self.access_denied_message(req, MessageStyle::default()),
        }
    }
}

/// Per-request state shared by every policy scan.
struct Env<'r> {
    action_lower: &'r str,
    service_lower: &'r str,
    resource: &'r str,
    resource_parts: Option<[&'r str; 6]>,
    values: Values<'r>,
    principal: &'r Principal<'r>,
}

/// What one scan found.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    deny: bool,
    /// The strongest principal match among matching `Allow` statements; `Exact` for policies without principals.
    allow: Option<PrincipalMatch>,
}

impl Summary {
    fn allows(self) -> bool {
        self.allow.is_some_and(|m| m > PrincipalMatch::None)
    }
}

struct Acc<'p> {
    matched: SmallVec<[MatchedStatement<'p>; 4]>,
    missing: SmallVec<[&'p str; 4]>,
    scratch: Scratch,
}

fn scan<'p, 'r>(
    policy: PolicyRef<'p>,
    remap: &'r [u16],
    policy_type: PolicyType,
    env: &Env<'r>,
    acc: &mut Acc<'p>,
) -> Summary {
    let mut summary = Summary::default();
    let statements = &policy.policy.statements;
    // Each interned key is looked up in the context at most once per policy (or never, when a
    // compiled set looked them all up already).
    let values = &env.values;
    values.reset(remap);
    policy.policy.for_candidates(env.service_lower, |index| {
        let Some(statement) = statements.get(index) else {
            return;
        };
        if !statement.actions.matches(env.action_lower) {
            return;
        }
        // Every key a statement with a matching action reads counts for missing-context reporting,
        // including variables in its resource patterns, even when the resource or principal then fails.
        let record_missing_conditions = |acc: &mut Acc<'p>| {
            for key in statement.condition_keys.iter() {
                if values.get(key).is_none() && !acc.missing.contains(&&*key.lower) {
                    acc.missing.push(&key.lower);
                }
            }
        };
        if let Some(block) = &statement.resources {
            for pattern in &block.patterns {
                if let Some(template) = pattern.template() {
                    for key in template.variables() {
                        if values.get(key).is_none() && !acc.missing.contains(&&*key.lower) {
                            acc.missing.push(&key.lower);
                        }
                    }
                }
            }
            let any = block.patterns.iter().any(|p| {
                p.matches(
                    env.resource,
                    env.resource_parts.as_ref(),
                    values,
                    &mut acc.scratch.tokens,
                )
            });
            if any == block.negated {
                record_missing_conditions(acc);
                return;
            }
        }
        let level = match &statement.principal {
            Some(block) => block.level(env.principal),
            None => PrincipalMatch::Exact,
        };
        if level == PrincipalMatch::None {
            record_missing_conditions(acc);
            return;
        }
        // Once a clause fails the statement cannot match, so the remaining clauses are only checked
        // for missing keys, recording exactly what evaluating them would have recorded.
        let mut conditions_hold = true;
        let missing = &mut acc.missing;
        let mut record = |key: &'p str| {
            if !missing.contains(&key) {
                missing.push(key);
            }
        };
        for clause in &statement.conditions {
            if conditions_hold {
                conditions_hold = clause.evaluate(values, &mut acc.scratch, &mut record);
            } else {
                clause.record_if_missing(values, &mut record);
            }
        }
        if !conditions_hold {
            return;
        }
        match statement.effect {
            Effect::Deny => summary.deny = true,
            Effect::Allow => summary.allow = summary.allow.max(Some(level)),
        }
        acc.matched.push(MatchedStatement {
            policy_id: policy.id,
            policy_type,
            statement_index: index,
            sid: statement.sid.as_deref(),
            effect: statement.effect,
        });
    });
    summary
}

fn scan_all<'p, 'r>(
    policies: &[PolicyRef<'p>],
    remaps: &'r [Box<[u16]>],
    policy_type: PolicyType,
    env: &Env<'r>,
    acc: &mut Acc<'p>,
) -> Summary {
    let mut total = Summary::default();
    for (index, policy) in policies.iter().enumerate() {
        let remap = remaps.get(index).map_or(&[][..], |r| &r[..]);
        let summary = scan(*policy, remap, policy_type, env, acc);
        total.deny |= summary.deny;
        total.allow = total.allow.max(summary.allow);
    }
    total
}

/// The longest action lower-cased on the stack; longer ones (never real actions) are lower-cased on the heap.
const ACTION_BUFFER: usize = 128;

/// Evaluates `req` against `policies`.
pub fn evaluate<'p>(req: &Request<'_>, policies: &PolicySet<'p>) -> Decision<'p> {
    evaluate_parts(
        req,
        &Parts {
            identity: &policies.identity,
            resource: policies.resource,
            permissions_boundary: policies.permissions_boundary,
            session_policies: policies.session_policies.as_deref(),
            scp_levels: &policies.scp_levels,
            root_implicit_allow: policies.root_implicit_allow,
            resolved: None,
        },
    )
}

/// A [`PolicySet`] by borrowed parts, so that [`crate::CompiledSet`] can evaluate without building one.
pub(crate) struct Parts<'s, 'p> {
    pub(crate) identity: &'s [PolicyRef<'p>],
    pub(crate) resource: Option<ResourcePolicy<'p>>,
    pub(crate) permissions_boundary: Option<PolicyRef<'p>>,
    pub(crate) session_policies: Option<&'s [PolicyRef<'p>]>,
    pub(crate) scp_levels: &'s [Vec<PolicyRef<'p>>],
    pub(crate) root_implicit_allow: bool,
    /// From a compiled set: the request's values for every key the set reads, and for each policy
    /// (identity policies, then the boundary, then session policies, as the set numbers its slots)
    /// the map from its key ids to indexes into those values.
    pub(crate) resolved: Option<Preresolved<'s>>,
}

/// The request's values for each key a compiled set reads, and each policy's map into them.
pub(crate) type Preresolved<'s> = (&'s [Option<&'s [Box<str>]>], &'s [Box<[u16]>]);

/// [`evaluate`] over [`Parts`].
pub(crate) fn evaluate_parts<'p>(req: &Request<'_>, policies: &Parts<'_, 'p>) -> Decision<'p> {
    // Lower-case the action once, on the stack.
    let mut buffer = [0u8; ACTION_BUFFER];
    let heap;
    let action_lower: &str = match buffer.get_mut(..req.action.len()) {
        Some(bytes) => {
            bytes.copy_from_slice(req.action.as_bytes());
            bytes.make_ascii_lowercase();
            match std::str::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    heap = req.action.to_ascii_lowercase();
                    &heap
                }
            }
        }
        None => {
            heap = req.action.to_ascii_lowercase();
            &heap
        }
    };
    let service_lower = action_lower
        .split_once(':')
        .map_or(action_lower, |(service, _)| service);
    let resource = req.resource.unwrap_or("*");
    let env = Env {
        action_lower,
        service_lower,
        resource,
        resource_parts: split_arn(resource),
        values: match policies.resolved {
            Some((resolved, _)) => Values::preresolved(req.context, resolved),
            None => Values::new(req.context),
        },
        principal: &req.principal,
    };
    let mut acc = Acc {
        matched: SmallVec::new(),
        missing: SmallVec::new(),
        scratch: Scratch::default(),
    };

    let remaps: &[Box<[u16]>] = policies.resolved.map_or(&[], |(_, remaps)| remaps);
    let n_identity = policies.identity.len();
    let n_boundary = usize::from(policies.permissions_boundary.is_some());
    let identity = scan_all(
        policies.identity,
        remaps.get(..n_identity).unwrap_or_default(),
        PolicyType::IdentityBased,
        &env,
        &mut acc,
    );
    let resource_summary = policies
        .resource
        .map(|r| (r.kind, scan(r.policy, &[], PolicyType::ResourceBased, &env, &mut acc)));
    let boundary = policies.permissions_boundary.map(|b| {
        let remap = remaps.get(n_identity).map_or(&[][..], |r| &r[..]);
        scan(b, remap, PolicyType::PermissionsBoundary, &env, &mut acc)
    });
    let session = policies.session_policies.map(|list| {
        let remaps = remaps.get(n_identity + n_boundary..).unwrap_or_default();
        scan_all(list, remaps, PolicyType::SessionPolicy, &env, &mut acc)
    });
    let mut scp_deny = false;
    let mut scp_allows_every_level = true;
    for level in policies.scp_levels {
        let summary = scan_all(level, &[], PolicyType::ServiceControlPolicy, &env, &mut acc);
        scp_deny |= summary.deny;
        scp_allows_every_level &= summary.allows();
    }

    let finish = |acc: Acc<'p>, outcome: Outcome, policy_type: Option<PolicyType>| {
        let mut matched = acc.matched;
        match outcome {
            Outcome::ExplicitDeny => matched.retain(|m| m.effect == Effect::Deny),
            Outcome::Allowed => matched.retain(|m| m.effect == Effect::Allow),
            Outcome::ImplicitDeny => matched.clear(),
        }
        Decision {
            outcome,
            policy_type,
            matched,
            missing_context_keys: acc.missing,
        }
    };

    // Step 1: an explicit deny anywhere wins. When several types deny, name the outermost one.
    let deny_type = if scp_deny {
        Some(PolicyType::ServiceControlPolicy)
    } else if resource_summary.is_some_and(|(_, s)| s.deny) {
        Some(PolicyType::ResourceBased)
    } else if identity.deny {
        Some(PolicyType::IdentityBased)
    } else if boundary.is_some_and(|s| s.deny) {
        Some(PolicyType::PermissionsBoundary)
    } else if session.is_some_and(|s| s.deny) {
        Some(PolicyType::SessionPolicy)
    } else {
        None
    };
    if let Some(deny_type) = deny_type {
        let mut decision = finish(acc, Outcome::ExplicitDeny, Some(deny_type));
        // Report the deciding type's statements first.
        decision.matched.sort_by_key(|m| m.policy_type != deny_type);
        return decision;
    }

    // Step 3: every SCP level must allow.
    if !scp_allows_every_level {
        return finish(acc, Outcome::ImplicitDeny, Some(PolicyType::ServiceControlPolicy));
    }

    let principal = &req.principal;
    let resource_match = resource_summary
        .and_then(|(_, s)| s.allow)
        .unwrap_or(PrincipalMatch::None);
    let resource_kind = resource_summary.map(|(kind, _)| kind);

    // Anonymous callers and service principals have no identity policies: only a resource policy can allow.
    if matches!(
        principal.kind,
        PrincipalKind::Anonymous | PrincipalKind::Service { .. } | PrincipalKind::WebIdentity { .. }
    ) {
        return if resource_match == PrincipalMatch::Exact {
            finish(acc, Outcome::Allowed, Some(PolicyType::ResourceBased))
        } else {
            finish(acc, Outcome::ImplicitDeny, Some(PolicyType::ResourceBased))
        };
    }

    let same_account = req.resource_account.is_none_or(|account| account == principal.account);
    let resource_required = !same_account
        || matches!(
            resource_kind,
            Some(ResourcePolicyKind::KeyPolicy | ResourcePolicyKind::TrustPolicy)
        );
    let root_allow = policies.root_implicit_allow && principal.kind == PrincipalKind::Root && same_account;
    let identity_allows = identity.allows() || root_allow;

    // Step 4: the resource-based policy.
    if resource_required && resource_match == PrincipalMatch::None {
        // Name the identity side when it fails too and no key or trust policy is involved.
        let failing = if !identity_allows && matches!(resource_kind, None | Some(ResourcePolicyKind::Generic)) {
            PolicyType::IdentityBased
        } else {
            PolicyType::ResourceBased
        };
        return finish(acc, Outcome::ImplicitDeny, Some(failing));
    }
    if same_account && resource_match == PrincipalMatch::Exact {
        return finish(acc, Outcome::Allowed, Some(PolicyType::ResourceBased));
    }

    // Step 5: identity-based policies, unless a same-account resource policy named the role.
    let role_named = same_account && resource_match == PrincipalMatch::Role;
    if !identity_allows && !role_named {
        return finish(acc, Outcome::ImplicitDeny, Some(PolicyType::IdentityBased));
    }

    // Step 6: the permissions boundary.
    if boundary.is_some_and(|s| !s.allows()) {
        return finish(acc, Outcome::ImplicitDeny, Some(PolicyType::PermissionsBoundary));
    }

    // Step 7: session policies.
    match (principal.kind, session) {
        (PrincipalKind::AssumedRole { .. } | PrincipalKind::FederatedUser, Some(s)) if !s.allows() => {
            return finish(acc, Outcome::ImplicitDeny, Some(PolicyType::SessionPolicy));
        }
        (PrincipalKind::FederatedUser, None) => {
            return finish(acc, Outcome::ImplicitDeny, Some(PolicyType::SessionPolicy));
        }
        _ => {}
    }

    let allowed_by = if identity.allows() {
        Some(PolicyType::IdentityBased)
    } else if resource_match > PrincipalMatch::None {
        Some(PolicyType::ResourceBased)
    } else {
        None
    };
    finish(acc, Outcome::Allowed, allowed_by)
}
