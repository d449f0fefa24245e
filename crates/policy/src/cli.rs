//! One-call evaluation from policy texts, for `citadel policy eval` and tests.
//!
//! This is a convenience layer over [`Policy::parse`] and [`evaluate`]: it parses every text,
//! builds the principal from its ARN and the context from `KEY=VALUE` pairs, and returns an owned decision.

use crate::context::Context;
use crate::error::PolicyError;
use crate::eval::{OwnedDecision, PolicyRef, PolicySet, Request, ResourcePolicy, ResourcePolicyKind, evaluate};
use crate::policy::{Policy, PolicyKind};
use crate::principal::{OwnedPrincipal, PrincipalKind};

/// The inputs of [`evaluate_texts`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalInput<'a> {
    /// Identity-based policy documents.
    pub identity_policies: &'a [&'a str],
    /// The permissions boundary document.
    pub permissions_boundary: Option<&'a str>,
    /// Session policy documents; `None` means no session policy.
    pub session_policies: Option<&'a [&'a str]>,
    /// The resource-based policy document and its kind.
    pub resource_policy: Option<(&'a str, ResourcePolicyKind)>,
    /// The caller's ARN (see [`OwnedPrincipal::from_arn`]).
    pub principal_arn: &'a str,
    /// Whether the caller has a permissions boundary even if none is given here.
    pub principal_has_boundary: bool,
    /// The action, such as `s3:GetObject`.
    pub action: &'a str,
    /// The resource ARN.
    pub resource: Option<&'a str>,
    /// The resource's account; `None` means the caller's account.
    pub resource_account: Option<&'a str>,
    /// `KEY=VALUE` context entries; a repeated key becomes multi-valued.
    pub context: &'a [&'a str],
    /// Whether the root user gets its implicit allow on its own account.
    pub root_implicit_allow: bool,
}

/// Why [`evaluate_texts`] could not evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalInputError {
    /// A policy document did not parse; `which` names it (`identity[0]`, `boundary`, `session[1]`, `resource`).
    #[error("{which}: {error}")]
    Policy {
        /// Which document.
        which: String,
        /// The parse error.
        error: PolicyError,
    },
    /// The principal ARN is not one of the recognised forms.
    #[error("unrecognised principal: {0}")]
    Principal(String),
    /// A context entry without `=`.
    #[error("context entry must be KEY=VALUE: {0}")]
    Context(String),
}

/// Parses everything in `input`, evaluates, and returns the owned decision (with its AccessDenied message).
///
/// The context also receives the principal-derived keys (`aws:PrincipalArn`, `aws:username`, ...)
/// unless the entries set them.
///
/// # Errors
///
/// See [`EvalInputError`].
pub fn evaluate_texts(input: &EvalInput<'_>) -> Result<OwnedDecision, EvalInputError> {
    let parse = |text: &str, kind: PolicyKind, which: String| {
        Policy::parse(text, kind).map_err(|error| EvalInputError::Policy { which, error })
    };
    let identity: Vec<(String, Policy)> = input
        .identity_policies
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let id = format!("identity[{i}]");
            parse(text, PolicyKind::Identity, id.clone()).map(|p| (id, p))
        })
        .collect::<Result<_, _>>()?;
    let boundary = input
        .permissions_boundary
        .map(|text| parse(text, PolicyKind::Identity, "boundary".into()))
        .transpose()?;
    let session: Option<Vec<(String, Policy)>> = input
        .session_policies
        .map(|texts| {
            texts
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    let id = format!("session[{i}]");
                    parse(text, PolicyKind::Identity, id.clone()).map(|p| (id, p))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let resource = input
        .resource_policy
        .map(|(text, kind)| {
            let policy_kind = if kind == ResourcePolicyKind::TrustPolicy {
                PolicyKind::Trust
            } else {
                PolicyKind::ResourceBased
            };
            parse(text, policy_kind, "resource".into()).map(|p| (p, kind))
        })
        .transpose()?;

    let mut owned_principal = OwnedPrincipal::from_arn(input.principal_arn)
        .ok_or_else(|| EvalInputError::Principal(input.principal_arn.to_owned()))?;
    owned_principal.has_permissions_boundary = input.principal_has_boundary || boundary.is_some();
    let principal = owned_principal.as_principal();

    let mut context = Context::new();
    for entry in input.context {
        let (key, value) = entry
            .split_once('=')
            .ok_or_else(|| EvalInputError::Context((*entry).to_owned()))?;
        context.push(key.trim(), value);
    }
    context.insert_principal_defaults(&principal);

    let set = PolicySet {
        identity: identity.iter().map(|(id, policy)| PolicyRef { id, policy }).collect(),
        resource: resource.as_ref().map(|(policy, kind)| ResourcePolicy {
            policy: PolicyRef { id: "resource", policy },
            kind: *kind,
        }),
        permissions_boundary: boundary.as_ref().map(|policy| PolicyRef { id: "boundary", policy }),
        session_policies: session
            .as_ref()
            .map(|list| list.iter().map(|(id, policy)| PolicyRef { id, policy }).collect()),
        scp_levels: Vec::new(),
        root_implicit_allow: input.root_implicit_allow && principal.kind == PrincipalKind::Root,
    };
    let request = Request {
        principal,
        action: input.action,
        resource: input.resource,
        resource_account: input.resource_account,
        context: &context,
    };
    let decision = evaluate(&request, &set);
    Ok(decision.to_owned_decision(&request))
}
