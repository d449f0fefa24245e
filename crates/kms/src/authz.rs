//! From a KMS call to the permission checks the pipeline evaluates.
//!
//! A key operation is checked against the key itself: `KeyId` may name it by id, key ARN, alias
//! name or alias ARN (where AWS accepts aliases), and Decrypt and ReEncrypt find the source key
//! inside the ciphertext blob, because that is the key the caller is really using. The check carries
//! the key's policy with [`ResourcePolicyKind::KeyPolicy`], so the pipeline applies KMS's rule that IAM
//! policies count only when the key policy delegates to the account, the key's tags
//! (`aws:ResourceTag/*`), and the `kms:*` condition keys of the request.
//!
//! # Grants as an extra allow path
//!
//! The policy engine knows nothing of grants. For every grant of the key that lists the operation
//! and whose encryption-context constraints the request satisfies, an `Allow` statement naming the
//! grantee and the single action is appended to the key policy text handed to the pipeline. The
//! statement is not stored anywhere; it exists only for this request's evaluation, so revoking a
//! grant takes effect on the next request. Explicit denies (key policy or IAM) still win.

use crate::crypto::{self, BlobHeader};
use crate::error;
use crate::input::{self, opt_str};
use crate::model::{self, GrantRecord, KeyHandle, alias_arn, key_arn};
use crate::{Kms, grants};
use citadel_core::{Authorization, Call, Check, Principal, PrincipalKind, ResourcePolicyKind};
use citadel_wire::AwsError;
use citadel_wire::arn::Arn;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Operations whose `KeyId` may be an alias name or alias ARN (AWS accepts aliases only for
/// cryptographic operations and DescribeKey; management operations need the key id or key ARN).
const ALIAS_OPERATIONS: &[&str] = &[
    "DescribeKey",
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "Sign",
    "Verify",
    "GetPublicKey",
];

/// The operations a grant can allow (AWS's `GrantOperation`).
pub const GRANT_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
];

/// How a `KeyId` names a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A key by id (from a bare id or a key ARN).
    Key {
        /// The owning account.
        account: String,
        /// The region.
        region: String,
        /// The key id.
        key_id: String,
    },
    /// An alias (from an alias name or alias ARN).
    Alias {
        /// The owning account.
        account: String,
        /// The region.
        region: String,
        /// `alias/...`.
        name: String,
    },
}

/// Parses a `KeyId` as AWS does: key id, key ARN, and (when `allow_alias`) alias name or alias ARN.
pub fn parse_key_ref(text: &str, account: &str, region: &str, allow_alias: bool) -> Result<KeyRef, AwsError> {
    let invalid = || error::invalid_key_id(text);
    if text.starts_with("arn:") {
        let arn = Arn::parse(text).ok_or_else(invalid)?;
        if arn.service != "kms" || arn.account.is_empty() {
            return Err(invalid());
        }
        if arn.region != region {
            // Keys are regional: a key ARN of another region names no key here.
            return Err(error::key_not_found(text));
        }
        if let Some(key_id) = arn.resource.strip_prefix("key/") {
            crypto::parse_uuid(key_id).ok_or_else(invalid)?;
            return Ok(KeyRef::Key {
                account: arn.account,
                region: arn.region,
                key_id: key_id.to_string(),
            });
        }
        if arn.resource.starts_with("alias/") && allow_alias {
            return Ok(KeyRef::Alias {
                account: arn.account,
                region: arn.region,
                name: arn.resource,
            });
        }
        return Err(invalid());
    }
    if text.starts_with("alias/") {
        if !allow_alias {
            return Err(invalid());
        }
        return Ok(KeyRef::Alias {
            account: account.to_string(),
            region: region.to_string(),
            name: text.to_string(),
        });
    }
    if crypto::parse_uuid(text).is_some() {
        return Ok(KeyRef::Key {
            account: account.to_string(),
            region: region.to_string(),
            key_id: text.to_string(),
        });
    }
    Err(invalid())
}

/// A key found from a `KeyId`.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The key.
    pub handle: KeyHandle,
    /// The alias used to name it, if any (`kms:RequestAlias`).
    pub alias: Option<String>,
}

/// The request time in epoch milliseconds.
pub fn now_ms(call: &Call) -> i64 {
    i64::try_from(call.ctx.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Finds the key a `KeyId` text names.
pub async fn resolve_text(kms: &Kms, call: &Call, text: &str) -> Result<Resolved, AwsError> {
    let allow_alias = ALIAS_OPERATIONS.contains(&call.op.name);
    let key_ref = parse_key_ref(text, call.ctx.account_id(), &call.ctx.region, allow_alias)?;
    let now = now_ms(call);
    match key_ref {
        KeyRef::Key {
            account,
            region,
            key_id,
        } => {
            let handle = kms.load_key(&account, &region, &key_id, now).await?;
            Ok(Resolved { handle, alias: None })
        }
        KeyRef::Alias { account, region, name } => {
            let Some(alias) = kms.cache().alias(kms.store(), &account, &region, &name).await? else {
                return Err(error::alias_not_found(&alias_arn(&region, &account, &name)));
            };
            let (alias, _) = &*alias;
            let handle = kms.load_key(&account, &region, &alias.target_key_id, now).await?;
            Ok(Resolved {
                handle,
                alias: Some(name),
            })
        }
    }
}

/// Finds the key a required member (`KeyId`, `DestinationKeyId`, ...) names.
pub async fn resolve_member(kms: &Kms, call: &Call, member: &str) -> Result<Resolved, AwsError> {
    let text = input::req_str(&call.input, member)?;
    resolve_text(kms, call, text).await
}

/// What Decrypt (or ReEncrypt's source) decrypts with.
#[derive(Debug, Clone)]
pub enum Source {
    /// A symmetric key; the blob's header names it and its material version.
    Symmetric(Resolved, BlobHeader),
    /// An RSA key named by `KeyId`; the blob is raw RSAES-OAEP output.
    Rsa(Resolved),
}

impl Source {
    /// The key.
    pub fn resolved(&self) -> &Resolved {
        match self {
            Self::Symmetric(resolved, _) | Self::Rsa(resolved) => resolved,
        }
    }
}

/// Finds the key that decrypts `blob`: the one its header names, or the asymmetric key named by
/// `key_member`. A `KeyId` that names another key than the blob is `IncorrectKeyException`.
pub async fn decryption_source(kms: &Kms, call: &Call, blob: &[u8], key_member: &str) -> Result<Source, AwsError> {
    let named = match opt_str(&call.input, key_member) {
        Some(text) => Some(resolve_text(kms, call, text).await?),
        None => None,
    };
    if let Some(resolved) = &named
        && resolved.handle.record.spec().is_rsa()
    {
        return Ok(Source::Rsa(resolved.clone()));
    }
    let header = BlobHeader::parse(blob).map_err(|_| error::invalid_ciphertext())?;
    let key_id = header.key_id_string();
    if let Some(resolved) = named {
        if resolved.handle.record.key_id != key_id {
            return Err(error::incorrect_key());
        }
        return Ok(Source::Symmetric(resolved, header));
    }
    let handle = kms
        .load_key(call.ctx.account_id(), &call.ctx.region, &key_id, now_ms(call))
        .await
        .map_err(|err| {
            if err.code == "NotFoundException" {
                error::invalid_ciphertext()
            } else {
                err
            }
        })?;
    Ok(Source::Symmetric(Resolved { handle, alias: None }, header))
}

/// Adds an `Allow` for each applicable grant to the key policy text.
pub fn policy_with_grants(policy: &str, grants: &[&GrantRecord], action: &str) -> String {
    if grants.is_empty() {
        return policy.to_string();
    }
    let Ok(mut document) = serde_json::from_str::<Value>(policy) else {
        return policy.to_string();
    };
    let Some(map) = document.as_object_mut() else {
        return policy.to_string();
    };
    let mut statements = match map.remove("Statement") {
        Some(Value::Array(items)) => items,
        Some(single) => vec![single],
        None => Vec::new(),
    };
    for grant in grants {
        statements.push(json!({
            "Sid": format!("CitadelGrant{}", grant.grant_id.get(..16).unwrap_or(&grant.grant_id)),
            "Effect": "Allow",
            "Principal": principal_element(&grant.grantee),
            "Action": action,
            "Resource": "*",
        }));
    }
    map.insert("Statement".into(), Value::Array(statements));
    serde_json::to_string(&document).unwrap_or_else(|_| policy.to_string())
}

/// The policy `Principal` element naming a grantee: an ARN or account id is `AWS`, anything else
/// (`s3.amazonaws.com`) is a service principal.
pub fn principal_element(grantee: &str) -> Value {
    if grantee.starts_with("arn:") || (grantee.len() == 12 && grantee.bytes().all(|b| b.is_ascii_digit())) {
        json!({ "AWS": grantee })
    } else {
        json!({ "Service": grantee })
    }
}

/// The check of `action` on a resolved key, with its policy, grants and tags.
async fn key_check(
    kms: &Kms,
    call: &Call,
    resolved: &Resolved,
    action: &str,
    context: &BTreeMap<String, String>,
) -> Result<Check, AwsError> {
    let record = &resolved.handle.record;
    let grant_operation = action.strip_prefix("kms:").unwrap_or(action);
    let mut policy: Arc<str> = Arc::from(record.policy.as_str());
    if GRANT_OPERATIONS.contains(&grant_operation) {
        let grants = kms
            .cache()
            .grants(kms.store(), &record.account, &record.region, &record.key_id)
            .await?;
        let applicable: Vec<&GrantRecord> = grants
            .iter()
            .filter(|grant| grant.operations.iter().any(|op| op == grant_operation) && grant.constraints.allow(context))
            .collect();
        if !applicable.is_empty() {
            policy = Arc::from(policy_with_grants(&record.policy, &applicable, action));
        }
    }
    let _ = call;
    Ok(Check {
        action: action.to_string(),
        resource: record.arn(),
        resource_account: Some(record.account.clone()),
        resource_policy: Some(policy),
        resource_policy_kind: ResourcePolicyKind::KeyPolicy,
        resource_tags: record.tag_pairs(),
    })
}

fn push(context: &mut Vec<(String, Vec<String>)>, key: &str, value: impl Into<String>) {
    context.push((key.to_string(), vec![value.into()]));
}

fn push_encryption_context(context: &mut Vec<(String, Vec<String>)>, encryption_context: &BTreeMap<String, String>) {
    for (key, value) in encryption_context {
        push(context, &format!("kms:EncryptionContext:{key}"), value.clone());
    }
    if !encryption_context.is_empty() {
        context.push((
            "kms:EncryptionContextKeys".into(),
            encryption_context.keys().cloned().collect(),
        ));
    }
}

fn push_key_facts(context: &mut Vec<(String, Vec<String>)>, resolved: &Resolved) {
    let record = &resolved.handle.record;
    push(context, "kms:KeySpec", record.key_spec.clone());
    push(context, "kms:KeyUsage", record.key_usage.clone());
    push(context, "kms:KeyOrigin", record.origin.clone());
    if let Some(alias) = &resolved.alias {
        push(context, "kms:RequestAlias", alias.clone());
    }
}

fn push_request_tags(context: &mut Vec<(String, Vec<String>)>, tags: &Value) {
    let Some(items) = tags.as_array() else {
        return;
    };
    let mut keys = Vec::new();
    for tag in items {
        if let (Some(key), Some(value)) = (
            tag.get("TagKey").and_then(Value::as_str),
            tag.get("TagValue").and_then(Value::as_str),
        ) {
            push(context, &format!("aws:RequestTag/{key}"), value);
            keys.push(key.to_string());
        }
    }
    if !keys.is_empty() {
        context.push(("aws:TagKeys".into(), keys));
    }
}

/// Copies optional string members into condition keys.
fn push_members(context: &mut Vec<(String, Vec<String>)>, input: &Value, pairs: &[(&str, &str)]) {
    for (member, key) in pairs {
        if let Some(value) = input.get(*member) {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            push(context, key, text);
        }
    }
}

/// What `call` needs to be allowed; see the module docs.
pub async fn authorize(kms: &Kms, call: &Call) -> Result<Authorization, AwsError> {
    let input = &call.input;
    let op = call.op;
    let mut authz = Authorization::default();
    push(&mut authz.context, "kms:CallerAccount", call.ctx.account_id());
    for token in input::str_list(input, "GrantTokens") {
        if grants::parse_token(kms.master(), &token).is_none() {
            return Err(error::invalid_grant_token());
        }
    }
    match op.name {
        "RetireGrant" => {
            // Retiring needs no policy: the retiring principal, the grantee (when the grant allows
            // RetireGrant) or the key's account may retire; the handler enforces exactly that.
            authz.always_allowed = true;
        }
        "CreateKey" => {
            authz.checks.push(Check::new(op.action, "*"));
            push_members(
                &mut authz.context,
                input,
                &[
                    ("KeySpec", "kms:KeySpec"),
                    ("KeyUsage", "kms:KeyUsage"),
                    ("Origin", "kms:KeyOrigin"),
                    ("BypassPolicyLockoutSafetyCheck", "kms:BypassPolicyLockoutSafetyCheck"),
                    ("MultiRegion", "kms:MultiRegion"),
                ],
            );
            if input.get("KeySpec").is_none() {
                push(&mut authz.context, "kms:KeySpec", "SYMMETRIC_DEFAULT");
            }
            if input.get("KeyUsage").is_none() {
                push(&mut authz.context, "kms:KeyUsage", "ENCRYPT_DECRYPT");
            }
            if input.get("Origin").is_none() {
                push(&mut authz.context, "kms:KeyOrigin", "AWS_KMS");
            }
            if let Some(tags) = input.get("Tags") {
                push_request_tags(&mut authz.context, tags);
            }
        }
        "ListKeys" | "ListAliases" | "GenerateRandom" | "ListRetirableGrants" => {
            authz.checks.push(Check::new(op.action, "*"));
        }
        "CreateAlias" | "DeleteAlias" | "UpdateAlias" => {
            alias_checks(kms, call, &mut authz).await?;
        }
        "Decrypt" => {
            let blob = input::req_blob(input, "CiphertextBlob", 1, 6144)?;
            let source = decryption_source(kms, call, &blob, "KeyId").await?;
            let context = input::context(input, "EncryptionContext")?;
            push_encryption_context(&mut authz.context, &context);
            push_key_facts(&mut authz.context, source.resolved());
            push_members(
                &mut authz.context,
                input,
                &[("EncryptionAlgorithm", "kms:EncryptionAlgorithm")],
            );
            authz
                .checks
                .push(key_check(kms, call, source.resolved(), op.action, &context).await?);
        }
        "ReEncrypt" => {
            let blob = input::req_blob(input, "CiphertextBlob", 1, 6144)?;
            let source = decryption_source(kms, call, &blob, "SourceKeyId").await?;
            let destination = resolve_member(kms, call, "DestinationKeyId").await?;
            let source_context = input::context(input, "SourceEncryptionContext")?;
            let destination_context = input::context(input, "DestinationEncryptionContext")?;
            let mut merged = source_context.clone();
            merged.extend(destination_context.clone());
            push_encryption_context(&mut authz.context, &merged);
            let same = source.resolved().handle.record.key_id == destination.handle.record.key_id;
            push(&mut authz.context, "kms:ReEncryptOnSameKey", same.to_string());
            authz
                .checks
                .push(key_check(kms, call, source.resolved(), "kms:ReEncryptFrom", &source_context).await?);
            authz
                .checks
                .push(key_check(kms, call, &destination, "kms:ReEncryptTo", &destination_context).await?);
        }
        _ => {
            let resolved = resolve_member(kms, call, "KeyId").await?;
            let context = match op.name {
                "Encrypt"
                | "GenerateDataKey"
                | "GenerateDataKeyWithoutPlaintext"
                | "GenerateDataKeyPair"
                | "GenerateDataKeyPairWithoutPlaintext" => input::context(input, "EncryptionContext")?,
                _ => BTreeMap::new(),
            };
            push_encryption_context(&mut authz.context, &context);
            push_key_facts(&mut authz.context, &resolved);
            push_members(
                &mut authz.context,
                input,
                &[
                    ("EncryptionAlgorithm", "kms:EncryptionAlgorithm"),
                    ("SigningAlgorithm", "kms:SigningAlgorithm"),
                    ("MessageType", "kms:MessageType"),
                    ("MacAlgorithm", "kms:MacAlgorithm"),
                    ("KeyPairSpec", "kms:DataKeyPairSpec"),
                    ("GranteePrincipal", "kms:GranteePrincipal"),
                    ("RetiringPrincipal", "kms:RetiringPrincipal"),
                    ("RotationPeriodInDays", "kms:RotationPeriodInDays"),
                    ("PendingWindowInDays", "kms:ScheduleKeyDeletionPendingWindowInDays"),
                    ("BypassPolicyLockoutSafetyCheck", "kms:BypassPolicyLockoutSafetyCheck"),
                    ("WrappingAlgorithm", "kms:WrappingAlgorithm"),
                    ("WrappingKeySpec", "kms:WrappingKeySpec"),
                    ("ExpirationModel", "kms:ExpirationModel"),
                    ("ValidTo", "kms:ValidTo"),
                ],
            );
            if op.name == "CreateGrant" {
                let operations = input::str_list(input, "Operations");
                if !operations.is_empty() {
                    authz.context.push(("kms:GrantOperations".into(), operations));
                }
                if let Some(constraints) = input.get("Constraints").and_then(Value::as_object) {
                    let kinds: Vec<String> = constraints.keys().cloned().collect();
                    if !kinds.is_empty() {
                        authz.context.push(("kms:GrantConstraintType".into(), kinds));
                    }
                }
            }
            if op.name == "TagResource"
                && let Some(tags) = input.get("Tags")
            {
                push_request_tags(&mut authz.context, tags);
            }
            if op.name == "UntagResource" {
                let keys = input::str_list(input, "TagKeys");
                if !keys.is_empty() {
                    authz.context.push(("aws:TagKeys".into(), keys));
                }
            }
            authz
                .checks
                .push(key_check(kms, call, &resolved, op.action, &context).await?);
        }
    }
    Ok(authz)
}

/// CreateAlias, UpdateAlias and DeleteAlias need the action on the alias and on every key involved.
async fn alias_checks(kms: &Kms, call: &Call, authz: &mut Authorization) -> Result<(), AwsError> {
    let input = &call.input;
    let op = call.op;
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let alias_name = input::req_str(input, "AliasName")?;
    crate::aliases::validate_alias_name(alias_name)?;
    let mut alias_check = Check::new(op.action, alias_arn(region, account, alias_name));
    alias_check.resource_account = Some(account.to_string());
    authz.checks.push(alias_check);
    let empty = BTreeMap::new();
    if op.name != "CreateAlias" {
        let Some((alias, _)) = model::load_alias(kms.store(), account, region, alias_name).await? else {
            return Err(error::alias_not_found(&alias_arn(region, account, alias_name)));
        };
        let handle = kms.load_key(account, region, &alias.target_key_id, now_ms(call)).await;
        match handle {
            Ok(handle) => authz
                .checks
                .push(key_check(kms, call, &Resolved { handle, alias: None }, op.action, &empty).await?),
            // An alias whose key is gone can still be deleted or re-pointed.
            Err(err) if err.code == "NotFoundException" => {
                let mut check = Check::new(op.action, key_arn(region, account, &alias.target_key_id));
                check.resource_account = Some(account.to_string());
                authz.checks.push(check);
            }
            Err(err) => return Err(err),
        }
    }
    if op.name != "DeleteAlias" {
        let target = input::req_str(input, "TargetKeyId")?;
        let key_ref = parse_key_ref(target, account, region, true)?;
        if matches!(key_ref, KeyRef::Alias { .. }) {
            return Err(error::validation("Aliases must refer to keys. Not aliases"));
        }
        let resolved = resolve_text_any(kms, call, key_ref).await?;
        authz
            .checks
            .push(key_check(kms, call, &resolved, op.action, &empty).await?);
    }
    Ok(())
}

async fn resolve_text_any(kms: &Kms, call: &Call, key_ref: KeyRef) -> Result<Resolved, AwsError> {
    match key_ref {
        KeyRef::Key {
            account,
            region,
            key_id,
        } => {
            let handle = kms.load_key(&account, &region, &key_id, now_ms(call)).await?;
            Ok(Resolved { handle, alias: None })
        }
        KeyRef::Alias { name, .. } => Err(error::invalid_key_id(&name)),
    }
}

/// The policy engine's view of a Citadel principal.
fn policy_principal(principal: &Principal) -> citadel_policy::Principal<'_> {
    use citadel_policy::PrincipalKind as K;
    let kind = match &principal.kind {
        PrincipalKind::Root => K::Root,
        PrincipalKind::User { .. } => K::User,
        PrincipalKind::AssumedRole { role_arn, .. } => K::AssumedRole { role_arn },
        PrincipalKind::FederatedUser { .. } => K::FederatedUser,
        PrincipalKind::Anonymous => K::Anonymous,
        PrincipalKind::Service { name } => K::Service { name },
    };
    citadel_policy::Principal::new(&principal.arn, &principal.account_id, kind)
}

/// Parses a key policy, with AWS's `MalformedPolicyDocumentException` for bad documents and
/// `LimitExceededException` above 32 KiB.
pub fn validate_key_policy(text: &str) -> Result<citadel_policy::Policy, AwsError> {
    if text.len() > 32 * 1024 {
        return Err(error::limit_exceeded("Key policy exceeds the 32768 byte limit."));
    }
    citadel_policy::Policy::parse(text, citadel_policy::PolicyKind::ResourceBased)
        .map_err(|e| error::malformed_policy(e.to_string()))
}

/// AWS's policy lockout safety check: the new policy must let the caller (directly, or through its
/// account's IAM policies when it delegates to the account) call PutKeyPolicy later.
///
/// Citadel cannot see the caller's IAM policies here, so delegation to the account is accepted as
/// sufficient; a policy that names neither the caller nor its account is refused.
pub fn lockout_check(policy: &citadel_policy::Policy, principal: &Principal, key_arn: &str) -> Result<(), AwsError> {
    use citadel_policy::{PolicyRef, PolicySet, Request, ResourcePolicy, ResourcePolicyKind as Kind};
    let context = citadel_policy::Context::new();
    let root_arn = format!("arn:aws:iam::{}:root", principal.account_id);
    let callers = [
        policy_principal(principal),
        citadel_policy::Principal::new(&root_arn, &principal.account_id, citadel_policy::PrincipalKind::Root),
    ];
    for caller in callers {
        let request = Request {
            principal: caller,
            action: "kms:PutKeyPolicy",
            resource: Some(key_arn),
            resource_account: Some(&principal.account_id),
            context: &context,
        };
        let set = PolicySet {
            resource: Some(ResourcePolicy {
                policy: PolicyRef {
                    id: "key-policy",
                    policy,
                },
                kind: Kind::KeyPolicy,
            }),
            root_implicit_allow: true,
            ..PolicySet::default()
        };
        if citadel_policy::evaluate(&request, &set).is_allowed() {
            return Ok(());
        }
    }
    Err(error::malformed_policy(
        "The new key policy will not allow you to update the key policy in the future.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_refs_parse_like_aws() {
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        let acct = "111122223333";
        let key = |account: &str| KeyRef::Key {
            account: account.into(),
            region: "us-east-1".into(),
            key_id: id.into(),
        };
        let cases: Vec<(String, bool, Result<KeyRef, &str>)> = vec![
            (id.into(), false, Ok(key(acct))),
            (
                format!("arn:aws:kms:us-east-1:444455556666:key/{id}"),
                false,
                Ok(key("444455556666")),
            ),
            (
                "alias/app".into(),
                true,
                Ok(KeyRef::Alias {
                    account: acct.into(),
                    region: "us-east-1".into(),
                    name: "alias/app".into(),
                }),
            ),
            ("alias/app".into(), false, Err("NotFoundException")),
            (
                "arn:aws:kms:us-east-1:111122223333:alias/app".into(),
                true,
                Ok(KeyRef::Alias {
                    account: acct.into(),
                    region: "us-east-1".into(),
                    name: "alias/app".into(),
                }),
            ),
            (
                format!("arn:aws:kms:eu-west-1:111122223333:key/{id}"),
                false,
                Err("NotFoundException"),
            ),
            ("not-a-key".into(), true, Err("NotFoundException")),
            (
                format!("arn:aws:s3:us-east-1:111122223333:key/{id}"),
                true,
                Err("NotFoundException"),
            ),
        ];
        for (text, allow_alias, want) in cases {
            let got = parse_key_ref(&text, acct, "us-east-1", allow_alias);
            match want {
                Ok(want) => assert_eq!(got.unwrap(), want, "{text}"),
                Err(code) => assert_eq!(got.unwrap_err().code, code, "{text}"),
            }
        }
    }

    #[test]
    fn grants_become_statements() {
        let grant = GrantRecord {
            grant_id: "ab".repeat(32),
            key_id: "k".into(),
            name: None,
            created_ms: 0,
            grantee: "arn:aws:iam::111122223333:role/app".into(),
            retiring: None,
            issuing_account: "111122223333".into(),
            operations: vec!["Decrypt".into()],
            constraints: Default::default(),
        };
        let text = policy_with_grants(&model::default_policy("111122223333"), &[&grant], "kms:Decrypt");
        let doc: Value = serde_json::from_str(&text).unwrap();
        let statements = doc["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[1]["Principal"]["AWS"], "arn:aws:iam::111122223333:role/app");
        assert_eq!(statements[1]["Action"], "kms:Decrypt");
        assert_eq!(principal_element("s3.amazonaws.com")["Service"], "s3.amazonaws.com");
        // No grants: the text is untouched.
        assert_eq!(policy_with_grants("{}", &[], "kms:Decrypt"), "{}");
    }
}
