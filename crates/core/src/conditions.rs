//! The request context the policy engine sees: global condition keys from the request and the
//! principal, plus the keys a service adds for one call.

use crate::context::RequestContext;
use crate::principal::{Principal, PrincipalKind};
use crate::service::Authorization;
use citadel_policy as policy;

/// Builds the condition-key context of a request (`aws:*` global keys plus the service's keys).
pub fn request_context(ctx: &RequestContext, authz: &Authorization) -> policy::Context {
    let principal = &ctx.principal;
    let mut context = policy::Context::new();
    context.insert_date("aws:CurrentTime", ctx.time);
    context.insert_number("aws:EpochTime", ctx.time.unix_timestamp());
    context.insert_bool("aws:SecureTransport", ctx.secure_transport);
    context.insert_ip("aws:SourceIp", ctx.source_ip);
    context.insert("aws:UserAgent", ctx.user_agent.as_str());
    context.insert("aws:RequestedRegion", ctx.region.as_str());
    match &principal.kind {
        PrincipalKind::Anonymous => {}
        PrincipalKind::Root => {
            context.insert("aws:userid", principal.account_id.as_str());
        }
        _ => {
            context.insert("aws:userid", principal.principal_id.as_str());
        }
    }
    if let PrincipalKind::User { name, .. } = &principal.kind {
        context.insert("aws:username", name.as_str());
    }
    // Session tags override the user's or role's tags of the same key.
    for (key, value) in &principal.tags {
        context.insert(&format!("aws:PrincipalTag/{key}"), value.as_str());
    }
    if let Some(session) = &principal.session {
        for (key, value) in &session.tags {
            context.insert(&format!("aws:PrincipalTag/{key}"), value.as_str());
        }
        context.insert_date("aws:TokenIssueTime", session.issued_at);
        context.insert_bool("aws:MultiFactorAuthPresent", session.mfa_authenticated_at.is_some());
        if let Some(at) = session.mfa_authenticated_at {
            context.insert_number("aws:MultiFactorAuthAge", (ctx.time - at).whole_seconds().max(0));
        }
        if let Some(source) = &session.source_identity {
            context.insert("aws:SourceIdentity", source.as_str());
        }
        if let Some(provider) = &session.federated_provider {
            context.insert("aws:FederatedProvider", provider.as_str());
        }
    }
    for (key, values) in &authz.context {
        match values.as_slice() {
            [one] => {
                context.insert(key, one.as_str());
            }
            many => {
                context.insert_multi(key, many.iter().map(String::as_str));
            }
        }
    }
    context.insert_principal_defaults(&policy_principal(principal, false));
    context
}

/// The policy engine's view of a principal.
pub fn policy_principal(principal: &Principal, has_boundary: bool) -> policy::Principal<'_> {
    let kind = match &principal.kind {
        PrincipalKind::Root => policy::PrincipalKind::Root,
        PrincipalKind::User { .. } => policy::PrincipalKind::User,
        PrincipalKind::AssumedRole { role_arn, .. } => policy::PrincipalKind::AssumedRole { role_arn },
        PrincipalKind::FederatedUser { .. } => policy::PrincipalKind::FederatedUser,
        PrincipalKind::Anonymous => policy::PrincipalKind::Anonymous,
        PrincipalKind::Service { name } => policy::PrincipalKind::Service { name },
    };
    let mut p = policy::Principal::new(&principal.arn, &principal.account_id, kind);
    p.has_permissions_boundary = has_boundary;
    p
}
