//! The request context the policy engine sees: global condition keys from the request and the
//! principal, plus the keys a service adds for one call.

use crate::context::RequestContext;
use crate::principal::{Principal, PrincipalKind};
use crate::service::Authorization;
use citadel_policy as policy;

/// Builds the condition-key context of a request (`aws:*` global keys plus the service's keys).
pub fn request_context(ctx: &RequestContext, authz: &Authorization) -> policy::Context {
    request_context_for(ctx, authz, KeysRead::ALL, &|_| true)
}

// Each global key's bit in [`KeysRead`].
const CURRENT_TIME: u32 = 1 << 0;
const EPOCH_TIME: u32 = 1 << 1;
const SECURE_TRANSPORT: u32 = 1 << 2;
const SOURCE_IP: u32 = 1 << 3;
const USER_AGENT: u32 = 1 << 4;
const REQUESTED_REGION: u32 = 1 << 5;
const USER_ID: u32 = 1 << 6;
const USER_NAME: u32 = 1 << 7;
const TOKEN_ISSUE_TIME: u32 = 1 << 8;
const MFA_PRESENT: u32 = 1 << 9;
const MFA_AGE: u32 = 1 << 10;
const SOURCE_IDENTITY: u32 = 1 << 11;
const FEDERATED_PROVIDER: u32 = 1 << 12;
const PRINCIPAL_TYPE: u32 = 1 << 13;
const PRINCIPAL_ARN: u32 = 1 << 14;
const PRINCIPAL_ACCOUNT: u32 = 1 << 15;
/// The global keys [`request_context_for`] can add, with their bits.
const GLOBAL_KEYS: [(&str, u32); 16] = [
    ("aws:currenttime", CURRENT_TIME),
    ("aws:epochtime", EPOCH_TIME),
    ("aws:securetransport", SECURE_TRANSPORT),
    ("aws:sourceip", SOURCE_IP),
    ("aws:useragent", USER_AGENT),
    ("aws:requestedregion", REQUESTED_REGION),
    ("aws:userid", USER_ID),
    ("aws:username", USER_NAME),
    ("aws:tokenissuetime", TOKEN_ISSUE_TIME),
    ("aws:multifactorauthpresent", MFA_PRESENT),
    ("aws:multifactorauthage", MFA_AGE),
    ("aws:sourceidentity", SOURCE_IDENTITY),
    ("aws:federatedprovider", FEDERATED_PROVIDER),
    ("aws:principaltype", PRINCIPAL_TYPE),
    ("aws:principalarn", PRINCIPAL_ARN),
    ("aws:principalaccount", PRINCIPAL_ACCOUNT),
];
const PRINCIPAL_TAG_PREFIX: &str = "aws:principaltag/";
const PRINCIPAL_TAGS: u32 = 1 << 16;
const RESOURCE_TAG_PREFIX: &str = "aws:resourcetag/";
const RESOURCE_TAGS: u32 = 1 << 17;
const PRINCIPAL_DEFAULTS: u32 = USER_ID | USER_NAME | PRINCIPAL_TYPE | PRINCIPAL_ARN | PRINCIPAL_ACCOUNT;

/// Which global keys (and whether any principal or resource tag) a set of policies reads,
/// computed once per compiled set and per resource policy, so that building a request's context
/// costs a bit test per key instead of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeysRead(u32);

impl KeysRead {
    /// Every key: a full context, for callers that do not know the policies.
    pub const ALL: KeysRead = KeysRead(u32::MAX);

    /// The keys among `keys` (lower-cased, as policies report them).
    pub fn of<'k>(keys: impl IntoIterator<Item = &'k str>) -> KeysRead {
        let mut bits = 0;
        for key in keys {
            if let Some((_, bit)) = GLOBAL_KEYS.iter().find(|(name, _)| *name == key) {
                bits |= bit;
            } else if key.starts_with(PRINCIPAL_TAG_PREFIX) {
                bits |= PRINCIPAL_TAGS;
            } else if key.starts_with(RESOURCE_TAG_PREFIX) {
                bits |= RESOURCE_TAGS;
            }
        }
        KeysRead(bits)
    }

    /// The keys either reads.
    pub fn union(self, other: KeysRead) -> KeysRead {
        KeysRead(self.0 | other.0)
    }

    fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    /// Whether any `aws:ResourceTag/<k>` is read.
    pub fn resource_tags(self) -> bool {
        self.0 & RESOURCE_TAGS != 0
    }
}

/// Builds the context with the global keys `read` names, and the tag and service keys `wanted`
/// accepts (asked with lower-cased names where the name is fixed).
///
/// The authorizer passes the keys its policies can read: a key no policy reads cannot change a
/// decision, and formatting and inserting the dozen global keys would otherwise cost more than
/// evaluating a cached decision.
pub fn request_context_for(
    ctx: &RequestContext,
    authz: &Authorization,
    read: KeysRead,
    wanted: &dyn Fn(&str) -> bool,
) -> policy::Context {
    let principal = &ctx.principal;
    let mut context = policy::Context::new();
    if read.has(CURRENT_TIME) {
        context.insert_date("aws:CurrentTime", ctx.time);
    }
    if read.has(EPOCH_TIME) {
        context.insert_number("aws:EpochTime", ctx.time.unix_timestamp());
    }
    if read.has(SECURE_TRANSPORT) {
        context.insert_bool("aws:SecureTransport", ctx.secure_transport);
    }
    if read.has(SOURCE_IP) {
        context.insert_ip("aws:SourceIp", ctx.source_ip);
    }
    if read.has(USER_AGENT) {
        context.insert("aws:UserAgent", ctx.user_agent.as_str());
    }
    if read.has(REQUESTED_REGION) {
        context.insert("aws:RequestedRegion", ctx.region.as_str());
    }
    if read.has(USER_ID) {
        match &principal.kind {
            PrincipalKind::Anonymous => {}
            PrincipalKind::Root => {
                context.insert("aws:userid", principal.account_id.as_str());
            }
            _ => {
                context.insert("aws:userid", principal.principal_id.as_str());
            }
        }
    }
    if let PrincipalKind::User { name, .. } = &principal.kind
        && read.has(USER_NAME)
    {
        context.insert("aws:username", name.as_str());
    }
    // Session tags override the user's or role's tags of the same key.
    let session_tags = principal.session.iter().flat_map(|session| session.tags.iter());
    if read.has(PRINCIPAL_TAGS) {
        for (key, value) in principal.tags.iter().chain(session_tags) {
            let name = format!("{PRINCIPAL_TAG_PREFIX}{key}");
            if wanted(&name) {
                context.insert(&name, value.as_str());
            }
        }
    }
    if let Some(session) = &principal.session {
        if read.has(TOKEN_ISSUE_TIME) {
            context.insert_date("aws:TokenIssueTime", session.issued_at);
        }
        if read.has(MFA_PRESENT) {
            context.insert_bool("aws:MultiFactorAuthPresent", session.mfa_authenticated_at.is_some());
        }
        if let Some(at) = session.mfa_authenticated_at
            && read.has(MFA_AGE)
        {
            context.insert_number("aws:MultiFactorAuthAge", (ctx.time - at).whole_seconds().max(0));
        }
        if let Some(source) = &session.source_identity
            && read.has(SOURCE_IDENTITY)
        {
            context.insert("aws:SourceIdentity", source.as_str());
        }
        if let Some(provider) = &session.federated_provider
            && read.has(FEDERATED_PROVIDER)
        {
            context.insert("aws:FederatedProvider", provider.as_str());
        }
    }
    for (key, values) in authz.context.iter().filter(|(key, _)| wanted(key)) {
        match values.as_slice() {
            [one] => {
                context.insert(key, one.as_str());
            }
            many => {
                context.insert_multi(key, many.iter().map(String::as_str));
            }
        }
    }
    if read.has(PRINCIPAL_DEFAULTS) {
        context.insert_principal_defaults(&policy_principal(principal, false));
    }
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
