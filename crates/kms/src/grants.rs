//! Grant handlers and grant tokens.
//!
//! A grant lets its grantee principal call the listed operations on one key, optionally only with
//! an encryption context that equals or contains given pairs. The pipeline sees grants as extra key
//! policy statements (see [`crate::authz`]).
//!
//! Grant tokens are `base64url(key id ":" grant id ":" hex(HMAC-SHA256(k, key id ":" grant id)))`
//! with `k` derived from the master key, so a token cannot be forged or pointed at another grant.
//! Grants are effective immediately in Citadel, so tokens are only checked for authenticity.

use crate::Kms;
use crate::authz::{GRANT_OPERATIONS, now_ms, resolve_member};
use crate::crypto::{KeySpec, KeyUsage};
use crate::error;
use crate::input::{self, opt_str};
use crate::model::{self, GRANTS, GrantConstraints, GrantRecord, KeyRecord, KeyState, grant_key};
use aws_lc_rs::hmac;
use base64::Engine;
use citadel_core::{Call, Effect};
use citadel_store::{MasterKey, WriteBatch};
use citadel_wire::AwsError;
use serde_json::{Value, json};

const TOKEN_LABEL: &str = "citadel kms grant token v1";

fn token_mac(master: &MasterKey, body: &str) -> String {
    let key = master.derive(TOKEN_LABEL);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key.as_slice()), body.as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The grant token of a grant.
pub fn make_token(master: &MasterKey, key_id: &str, grant_id: &str) -> String {
    let body = format!("{key_id}:{grant_id}");
    let mac = token_mac(master, &body);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{body}:{mac}"))
}

/// The key id and grant id of an authentic token.
pub fn parse_token(master: &MasterKey, token: &str) -> Option<(String, String)> {
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (body, mac) = text.rsplit_once(':')?;
    let expected = token_mac(master, body);
    // Constant-time comparison of the two hex strings.
    if aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), mac.as_bytes()).is_err() {
        return None;
    }
    let (key_id, grant_id) = body.split_once(':')?;
    Some((key_id.to_string(), grant_id.to_string()))
}

fn valid_for_key(operation: &str, record: &KeyRecord) -> bool {
    let spec = record.spec();
    match operation {
        "Encrypt" | "Decrypt" | "ReEncryptFrom" | "ReEncryptTo" => record.usage() == KeyUsage::EncryptDecrypt,
        "GenerateDataKey"
        | "GenerateDataKeyWithoutPlaintext"
        | "GenerateDataKeyPair"
        | "GenerateDataKeyPairWithoutPlaintext" => spec == KeySpec::SymmetricDefault,
        "Sign" | "Verify" => record.usage() == KeyUsage::SignVerify,
        "GetPublicKey" => spec.is_asymmetric(),
        "GenerateMac" | "VerifyMac" => spec.is_hmac(),
        _ => true,
    }
}

fn parse_constraints(input: &Value) -> Result<GrantConstraints, AwsError> {
    let Some(constraints) = input.get("Constraints") else {
        return Ok(GrantConstraints::default());
    };
    let read = |name: &str| -> Result<Option<std::collections::BTreeMap<String, String>>, AwsError> {
        if constraints.get(name).is_none() {
            return Ok(None);
        }
        input::context(constraints, name).map(Some)
    };
    Ok(GrantConstraints {
        subset: read("EncryptionContextSubset")?,
        equals: read("EncryptionContextEquals")?,
    })
}

fn validate_principal(text: &str, member: &str) -> Result<(), AwsError> {
    let ok = !text.is_empty()
        && text.len() <= 256
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/-_".contains(&b))
        && (text.starts_with("arn:") || text.ends_with(".amazonaws.com") || text.len() == 12);
    if !ok {
        return Err(error::validation(format!("{member} {text} is not a valid principal.")));
    }
    Ok(())
}

/// CreateGrant.
pub async fn create_grant(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let input = &call.input;
    let grantee = input::req_str(input, "GranteePrincipal")?.to_string();
    validate_principal(&grantee, "GranteePrincipal")?;
    let retiring = opt_str(input, "RetiringPrincipal").map(str::to_string);
    if let Some(retiring) = &retiring {
        validate_principal(retiring, "RetiringPrincipal")?;
    }
    let operations = input::str_list(input, "Operations");
    if operations.is_empty() {
        return Err(error::validation(
            "Operations must contain at least one grant operation.",
        ));
    }
    if let Some(bad) = operations.iter().find(|op| !GRANT_OPERATIONS.contains(&op.as_str())) {
        return Err(error::validation(format!("{bad} is not a valid grant operation.")));
    }
    let constraints = parse_constraints(input)?;
    let name = opt_str(input, "Name").map(str::to_string);
    let handle = resolve_member(kms, call, "KeyId").await?.handle;
    let record = &handle.record;
    match record.state {
        KeyState::Disabled => return Err(error::disabled(&record.arn())),
        KeyState::PendingDeletion => {
            return Err(error::invalid_state(format!("{} is pending deletion.", record.arn())));
        }
        KeyState::Enabled | KeyState::PendingImport => {}
    }
    if let Some(bad) = operations.iter().find(|op| !valid_for_key(op, record)) {
        return Err(error::validation(format!(
            "Grant operation {bad} is not valid for {}.",
            record.arn()
        )));
    }
    let (account, region) = (record.account.as_str(), record.region.as_str());
    let existing = model::list_key_grants(kms.store(), account, region, &record.key_id).await?;
    // A retried CreateGrant with the same name and parameters returns the existing grant.
    if let Some((same, _)) = existing.iter().find(|(g, _)| {
        name.is_some()
            && g.name == name
            && g.grantee == grantee
            && g.retiring == retiring
            && g.operations == operations
            && g.constraints == constraints
    }) {
        let token = make_token(kms.master(), &record.key_id, &same.grant_id);
        return Ok(Effect::read(json!({ "GrantToken": token, "GrantId": same.grant_id })));
    }
    let grant_id: String = crate::crypto::random_bytes(32)
        .map_err(error::internal)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let grant = GrantRecord {
        grant_id: grant_id.clone(),
        key_id: record.key_id.clone(),
        name,
        created_ms: now_ms(call),
        grantee,
        retiring,
        issuing_account: call.ctx.account_id().to_string(),
        operations,
        constraints,
    };
    let mut batch = WriteBatch::new();
    handle.expect_unchanged(&mut batch);
    handle.save_if_dirty(&mut batch)?;
    let key = grant_key(account, region, &record.key_id, &grant_id);
    batch.expect(GRANTS, &key, None);
    batch.put(GRANTS, &key, &serde_json::to_vec(&grant).map_err(error::internal)?);
    let token = make_token(kms.master(), &record.key_id, &grant_id);
    Ok(Effect::write(
        json!({ "GrantToken": token, "GrantId": grant_id }),
        batch,
    ))
}

fn grants_page(grants: Vec<GrantRecord>, call: &Call, region: &str, account: &str) -> Result<Value, AwsError> {
    let limit = input::limit(&call.input, 50)?;
    let (page, next) = input::paginate(
        grants,
        |g| format!("{}:{}", g.key_id, g.grant_id),
        opt_str(&call.input, "Marker"),
        limit,
    )?;
    let entries: Vec<Value> = page.iter().map(|g| g.to_value(region, account)).collect();
    let mut output = json!({ "Grants": entries, "Truncated": next.is_some() });
    if let (Some(next), Some(map)) = (next, output.as_object_mut()) {
        map.insert("NextMarker".into(), json!(next));
    }
    Ok(output)
}

/// ListGrants, optionally filtered by grant id or grantee.
pub async fn list_grants(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let handle = resolve_member(kms, call, "KeyId").await?.handle;
    let record = &handle.record;
    let grant_id = opt_str(&call.input, "GrantId");
    let grantee = opt_str(&call.input, "GranteePrincipal");
    let grants: Vec<GrantRecord> = model::list_key_grants(kms.store(), &record.account, &record.region, &record.key_id)
        .await?
        .into_iter()
        .map(|(g, _)| g)
        .filter(|g| grant_id.is_none_or(|id| g.grant_id == id))
        .filter(|g| grantee.is_none_or(|p| g.grantee == p))
        .collect();
    Ok(Effect::read(grants_page(
        grants,
        call,
        &record.region,
        &record.account,
    )?))
}

/// ListRetirableGrants: the grants of the caller's account and region that name the principal as
/// retiring principal.
pub async fn list_retirable_grants(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let retiring = input::req_str(&call.input, "RetiringPrincipal")?;
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let grants: Vec<GrantRecord> = model::list_scope_grants(kms.store(), account, region)
        .await?
        .into_iter()
        .filter(|g| g.retiring.as_deref() == Some(retiring))
        .collect();
    Ok(Effect::read(grants_page(grants, call, region, account)?))
}

/// Loads a grant of a key, with `NotFoundException` when it is gone.
async fn load_grant(kms: &Kms, record: &KeyRecord, grant_id: &str) -> Result<(GrantRecord, Vec<u8>), AwsError> {
    model::list_key_grants(kms.store(), &record.account, &record.region, &record.key_id)
        .await?
        .into_iter()
        .find(|(g, _)| g.grant_id == grant_id)
        .ok_or_else(|| error::not_found(format!("Grant ID {grant_id} not found")))
}

fn delete_grant(record: &KeyRecord, grant: &GrantRecord, raw: &[u8]) -> WriteBatch {
    let key = grant_key(&record.account, &record.region, &record.key_id, &grant.grant_id);
    let mut batch = WriteBatch::new();
    batch.expect(GRANTS, &key, Some(raw));
    batch.delete(GRANTS, &key);
    batch
}

/// RetireGrant, by token or by key and grant id. Allowed for the retiring principal, for the grantee
/// when the grant lists `RetireGrant`, and for the key's account root.
pub async fn retire_grant(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let input = &call.input;
    let (key_text, grant_id) = match (
        opt_str(input, "GrantToken"),
        opt_str(input, "KeyId"),
        opt_str(input, "GrantId"),
    ) {
        (Some(token), _, _) => {
            let (key_id, grant_id) = parse_token(kms.master(), token).ok_or_else(error::invalid_grant_token)?;
            (key_id, grant_id)
        }
        (None, Some(key), Some(grant)) => (key.to_string(), grant.to_string()),
        _ => {
            return Err(error::validation(
                "Specify either GrantToken, or both KeyId and GrantId.",
            ));
        }
    };
    let handle = crate::authz::resolve_text(kms, call, &key_text).await?.handle;
    let record = &handle.record;
    let (grant, raw) = load_grant(kms, record, &grant_id).await?;
    let principal = &call.ctx.principal;
    let names_caller = |who: &str| who == principal.arn || who == principal.principal_arn();
    let allowed = grant.retiring.as_deref().is_some_and(names_caller)
        || (names_caller(&grant.grantee) && grant.operations.iter().any(|op| op == "RetireGrant"))
        || (principal.is_root() && principal.account_id == record.account);
    if !allowed {
        return Err(error::access_denied(format!(
            "User: {} is not authorized to perform: kms:RetireGrant on resource: {}",
            principal.arn,
            record.arn()
        )));
    }
    Ok(Effect::write(json!({}), delete_grant(record, &grant, &raw)))
}

/// RevokeGrant.
pub async fn revoke_grant(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let grant_id = input::req_str(&call.input, "GrantId")?;
    let handle = resolve_member(kms, call, "KeyId").await?.handle;
    let (grant, raw) = load_grant(kms, &handle.record, grant_id).await?;
    Ok(Effect::write(json!({}), delete_grant(&handle.record, &grant, &raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_authentic_and_bound() {
        let master = MasterKey::from_bytes([3; 32]);
        let token = make_token(&master, "key-1", "grant-1");
        assert_eq!(parse_token(&master, &token), Some(("key-1".into(), "grant-1".into())));
        assert_eq!(parse_token(&MasterKey::from_bytes([4; 32]), &token), None);
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("key-1:grant-2:00");
        assert_eq!(parse_token(&master, &forged), None);
        assert_eq!(parse_token(&master, "not base64 !"), None);
    }
}
