//! Alias handlers: CreateAlias, UpdateAlias, DeleteAlias, ListAliases.
//!
//! AWS's rules: names start with `alias/`, use `[a-zA-Z0-9/_-]` after it, and `alias/aws/` is
//! reserved for AWS managed keys (`NotAuthorizedException`). An alias points at a key, never at
//! another alias, and is unique per account and region.

use crate::Kms;
use crate::authz::{KeyRef, now_ms, parse_key_ref};
use crate::error;
use crate::input::{self, opt_str};
use crate::model::{self, ALIASES, AliasRecord, KeyState, alias_arn, alias_key};
use citadel_core::{AuditResource, Call, Effect};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde_json::{Value, json};

/// Checks an alias name against AWS's rules.
pub fn validate_alias_name(name: &str) -> Result<(), AwsError> {
    let Some(rest) = name.strip_prefix("alias/") else {
        return Err(error::validation(
            "Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
        ));
    };
    if name.starts_with("alias/aws/") {
        return Err(error::not_authorized(
            "Cannot create, update or delete an alias with the reserved prefix alias/aws/.",
        ));
    }
    if rest.is_empty() || name.len() > 256 {
        return Err(error::invalid_alias_name(format!("Alias name {name} is not valid.")));
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
    {
        return Err(error::invalid_alias_name(format!(
            "{name} contains invalid characters for an alias"
        )));
    }
    Ok(())
}

/// Loads the key an alias is to point at: same account and region, not pending deletion.
async fn target_key(kms: &Kms, call: &Call) -> Result<model::KeyHandle, AwsError> {
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let target = input::req_str(&call.input, "TargetKeyId")?;
    let KeyRef::Key {
        account: key_account,
        region: key_region,
        key_id,
    } = parse_key_ref(target, account, region, true)?
    else {
        return Err(error::validation("Aliases must refer to keys. Not aliases"));
    };
    if key_account != account {
        return Err(error::validation("An alias must refer to a key in the same account."));
    }
    let handle = kms.load_key(account, &key_region, &key_id, now_ms(call)).await?;
    if handle.record.state == KeyState::PendingDeletion {
        return Err(error::invalid_state(format!(
            "{} is pending deletion.",
            handle.record.arn()
        )));
    }
    Ok(handle)
}

fn audit(call: &Call, name: &str) -> AuditResource {
    AuditResource {
        arn: alias_arn(&call.ctx.region, call.ctx.account_id(), name),
        account_id: call.ctx.account_id().to_string(),
        resource_type: "AWS::KMS::Alias",
    }
}

/// CreateAlias.
pub async fn create_alias(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let name = input::req_str(&call.input, "AliasName")?;
    validate_alias_name(name)?;
    let now = now_ms(call);
    let mut batch = WriteBatch::new();
    model::purge_due(kms.store(), account, region, now, &mut batch).await?;
    if let Some((existing, _)) = model::load_alias(kms.store(), account, region, name).await? {
        // An alias of a key whose deletion is due is purged in this same batch, so it no longer counts.
        let target_gone = kms
            .load_key(account, region, &existing.target_key_id, now)
            .await
            .is_err();
        if !target_gone {
            return Err(error::already_exists(format!(
                "An alias with the name {} already exists",
                alias_arn(region, account, name)
            )));
        }
    }
    let handle = target_key(kms, call).await?;
    let record = AliasRecord {
        name: name.to_string(),
        target_key_id: handle.record.key_id.clone(),
        created_ms: now,
        updated_ms: now,
    };
    let key = alias_key(account, region, name);
    handle.expect_unchanged(&mut batch);
    batch.put(ALIASES, &key, &serde_json::to_vec(&record).map_err(error::internal)?);
    Ok(Effect {
        output: json!({}),
        batch,
        resources: vec![audit(call, name)],
    })
}

/// UpdateAlias: the new key must have the same type and usage as the old one.
pub async fn update_alias(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let name = input::req_str(&call.input, "AliasName")?;
    validate_alias_name(name)?;
    let Some((mut record, raw)) = model::load_alias(kms.store(), account, region, name).await? else {
        return Err(error::alias_not_found(&alias_arn(region, account, name)));
    };
    let handle = target_key(kms, call).await?;
    let now = now_ms(call);
    if let Ok(old) = kms.load_key(account, region, &record.target_key_id, now).await {
        let (old, new) = (&old.record, &handle.record);
        if old.spec().is_asymmetric() != new.spec().is_asymmetric()
            || old.spec().is_hmac() != new.spec().is_hmac()
            || old.key_usage != new.key_usage
        {
            return Err(error::validation(format!(
                "{} is not the same key type and key usage as the key the alias currently points to.",
                new.arn()
            )));
        }
    }
    record.target_key_id = handle.record.key_id.clone();
    record.updated_ms = now;
    let key = alias_key(account, region, name);
    let mut batch = WriteBatch::new();
    batch.expect(ALIASES, &key, Some(&raw));
    handle.expect_unchanged(&mut batch);
    batch.put(ALIASES, &key, &serde_json::to_vec(&record).map_err(error::internal)?);
    Ok(Effect {
        output: json!({}),
        batch,
        resources: vec![audit(call, name)],
    })
}

/// DeleteAlias.
pub async fn delete_alias(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let name = input::req_str(&call.input, "AliasName")?;
    validate_alias_name(name)?;
    let Some((_, raw)) = model::load_alias(kms.store(), account, region, name).await? else {
        return Err(error::alias_not_found(&alias_arn(region, account, name)));
    };
    let key = alias_key(account, region, name);
    let mut batch = WriteBatch::new();
    batch.expect(ALIASES, &key, Some(&raw));
    batch.delete(ALIASES, &key);
    Ok(Effect {
        output: json!({}),
        batch,
        resources: vec![audit(call, name)],
    })
}

/// ListAliases, optionally of one key (named by key id or key ARN).
pub async fn list_aliases(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let limit = input::limit(&call.input, 100)?;
    let now = now_ms(call);
    let filter = match opt_str(&call.input, "KeyId") {
        Some(text) => {
            let KeyRef::Key {
                account: key_account,
                region: key_region,
                key_id,
            } = parse_key_ref(text, account, region, false)?
            else {
                return Err(error::invalid_key_id(text));
            };
            kms.load_key(&key_account, &key_region, &key_id, now).await?;
            Some(key_id)
        }
        None => None,
    };
    let live_keys: Vec<String> = model::list_key_records(kms.store(), account, region)
        .await?
        .into_iter()
        .filter(|(r, _)| !model::deletion_due(r, now))
        .map(|(r, _)| r.key_id)
        .collect();
    let aliases: Vec<AliasRecord> = model::list_alias_records(kms.store(), account, region)
        .await?
        .into_iter()
        .filter(|a| live_keys.contains(&a.target_key_id))
        .filter(|a| filter.as_ref().is_none_or(|id| &a.target_key_id == id))
        .collect();
    let (page, next) = input::paginate(aliases, |a| a.name.clone(), opt_str(&call.input, "Marker"), limit)?;
    let entries: Vec<Value> = page
        .iter()
        .map(|a| {
            json!({
                "AliasName": a.name,
                "AliasArn": alias_arn(region, account, &a.name),
                "TargetKeyId": a.target_key_id,
                "CreationDate": input::time_value(a.created_ms),
                "LastUpdatedDate": input::time_value(a.updated_ms),
            })
        })
        .collect();
    let mut output = json!({ "Aliases": entries, "Truncated": next.is_some() });
    if let (Some(next), Some(map)) = (next, output.as_object_mut()) {
        map.insert("NextMarker".into(), json!(next));
    }
    let mut batch = WriteBatch::new();
    model::purge_due(kms.store(), account, region, now, &mut batch).await?;
    Ok(Effect::write(output, batch))
}
