//! Key lifecycle handlers: create, describe, list, enable/disable, deletion, description,
//! key policy and tags.

use crate::Kms;
use crate::authz::{self, now_ms, resolve_member};
use crate::crypto::{KeySpec, KeyUsage};
use crate::error;
use crate::input::{self, opt_str};
use crate::model::{self, DAY_MS, KEYS, KeyRecord, KeyState, Tag, key_key};
use citadel_core::{AuditResource, Call, Effect};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde_json::{Value, json};
use std::sync::Arc;

/// The most tags a key may carry.
const MAX_TAGS: usize = 50;

fn audit(record: &KeyRecord) -> AuditResource {
    AuditResource {
        arn: record.arn(),
        account_id: record.account.clone(),
        resource_type: "AWS::KMS::Key",
    }
}

fn write(output: Value, batch: WriteBatch, record: &KeyRecord) -> Effect {
    Effect {
        output,
        batch,
        resources: vec![audit(record)],
    }
}

/// Reads and validates a `Tags` list (`TagKey`/`TagValue`), as TagResource and CreateKey take it.
pub(crate) fn parse_tags(value: Option<&Value>) -> Result<Vec<Tag>, AwsError> {
    let mut tags: Vec<Tag> = Vec::new();
    for item in value.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        let key = item.get("TagKey").and_then(Value::as_str).unwrap_or_default();
        let value = item.get("TagValue").and_then(Value::as_str).unwrap_or_default();
        if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(error::tag(
                "Tag keys must be 1 to 128 characters and values at most 256 characters.",
            ));
        }
        if key.starts_with("aws:") {
            return Err(error::tag("Tags beginning with aws: are reserved."));
        }
        match tags.iter_mut().find(|t| t.key == key) {
            Some(existing) => existing.value = value.to_string(),
            None => tags.push(Tag {
                key: key.to_string(),
                value: value.to_string(),
            }),
        }
    }
    Ok(tags)
}

fn merge_tags(existing: &mut Vec<Tag>, new: Vec<Tag>) -> Result<(), AwsError> {
    for tag in new {
        match existing.iter_mut().find(|t| t.key == tag.key) {
            Some(found) => found.value = tag.value,
            None => existing.push(tag),
        }
    }
    if existing.len() > MAX_TAGS {
        return Err(error::tag(format!("A KMS key can have at most {MAX_TAGS} tags.")));
    }
    Ok(())
}

/// CreateKey.
pub async fn create_key(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let input = &call.input;
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let now = now_ms(call);
    if opt_str(input, "CustomKeyStoreId").is_some() || opt_str(input, "XksKeyId").is_some() {
        return Err(error::custom_key_store_not_found());
    }
    if input::flag(input, "MultiRegion") {
        return Err(error::unsupported("Citadel does not support multi-Region keys."));
    }
    let spec_name = opt_str(input, "KeySpec")
        .or_else(|| opt_str(input, "CustomerMasterKeySpec"))
        .unwrap_or("SYMMETRIC_DEFAULT");
    if input.get("KeySpec").is_some() && input.get("CustomerMasterKeySpec").is_some() {
        return Err(error::validation(
            "You cannot specify KeySpec and CustomerMasterKeySpec in the same request.",
        ));
    }
    let spec = KeySpec::parse(spec_name)
        .ok_or_else(|| error::unsupported(format!("KeySpec {spec_name} is not supported by Citadel.")))?;
    let usage = match opt_str(input, "KeyUsage") {
        Some(text) => {
            KeyUsage::parse(text).ok_or_else(|| error::unsupported(format!("KeyUsage {text} is not supported.")))?
        }
        None => KeyUsage::EncryptDecrypt,
    };
    if !spec.allowed_usages().contains(&usage) {
        return Err(error::validation(format!(
            "KeyUsage {} is not compatible with KeySpec {}",
            usage.as_str(),
            spec.as_str()
        )));
    }
    let origin = opt_str(input, "Origin").unwrap_or("AWS_KMS");
    match origin {
        "AWS_KMS" => {}
        "EXTERNAL" if spec == KeySpec::SymmetricDefault => {}
        "EXTERNAL" => {
            return Err(error::unsupported(
                "Citadel imports key material only into SYMMETRIC_DEFAULT keys.",
            ));
        }
        other => {
            return Err(error::unsupported(format!(
                "Origin {other} is not supported by Citadel."
            )));
        }
    }
    let tags = parse_tags(input.get("Tags"))?;
    if tags.len() > MAX_TAGS {
        return Err(error::tag(format!("A KMS key can have at most {MAX_TAGS} tags.")));
    }
    let key_id = kms.ids().uuid();
    let arn = model::key_arn(region, account, &key_id);
    let policy = match opt_str(input, "Policy") {
        Some(text) => {
            let parsed = authz::validate_key_policy(text)?;
            if !input::flag(input, "BypassPolicyLockoutSafetyCheck") {
                authz::lockout_check(&parsed, &call.ctx.principal, &arn)?;
            }
            text.to_string()
        }
        None => model::default_policy(account),
    };
    let mut record = KeyRecord {
        key_id: key_id.clone(),
        account: account.to_string(),
        region: region.to_string(),
        created_ms: now,
        description: opt_str(input, "Description").unwrap_or("").to_string(),
        key_usage: usage.as_str().to_string(),
        key_spec: spec.as_str().to_string(),
        origin: origin.to_string(),
        state: if origin == "EXTERNAL" {
            KeyState::PendingImport
        } else {
            KeyState::Enabled
        },
        deletion_ms: None,
        pending_window_days: None,
        policy,
        tags,
        rotation_period_days: None,
        next_rotation_ms: None,
        on_demand_rotation_ms: None,
        materials: Vec::new(),
        valid_to_ms: None,
        expiration_model: None,
        import_fingerprint: None,
        key_manager: None,
    };
    if origin == "AWS_KMS" {
        let material = model::new_material(kms.master(), &record, 0, now, None)?;
        record.materials.push(material);
    }
    let mut batch = WriteBatch::new();
    model::purge_due(kms.store(), account, region, now, &mut batch).await?;
    let store_key = key_key(account, region, &key_id);
    batch.expect(KEYS, &store_key, None);
    batch.put(KEYS, &store_key, &serde_json::to_vec(&record).map_err(error::internal)?);
    Ok(write(json!({ "KeyMetadata": record.metadata() }), batch, &record))
}

/// DescribeKey.
pub async fn describe_key(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let resolved = resolve_member(kms, call, "KeyId").await?;
    let mut batch = WriteBatch::new();
    resolved.handle.save_if_dirty(&mut batch)?;
    Ok(Effect::write(
        json!({ "KeyMetadata": resolved.handle.record.metadata() }),
        batch,
    ))
}

/// ListKeys.
pub async fn list_keys(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let now = now_ms(call);
    let limit = input::limit(&call.input, 1000)?;
    let records = model::list_key_records(kms.store(), account, region).await?;
    let live: Vec<KeyRecord> = records
        .into_iter()
        .map(|(r, _)| r)
        .filter(|r| !model::deletion_due(r, now))
        .collect();
    let (page, next) = input::paginate(live, |r| r.key_id.clone(), opt_str(&call.input, "Marker"), limit)?;
    let keys: Vec<Value> = page
        .iter()
        .map(|r| json!({ "KeyId": r.key_id, "KeyArn": r.arn() }))
        .collect();
    let mut output = json!({ "Keys": keys, "Truncated": next.is_some() });
    if let (Some(next), Some(map)) = (next, output.as_object_mut()) {
        map.insert("NextMarker".into(), json!(next));
    }
    let mut batch = WriteBatch::new();
    model::purge_due(kms.store(), account, region, now, &mut batch).await?;
    Ok(Effect::write(output, batch))
}

/// Loads the `KeyId` key for a management change and applies `change` to its record.
async fn modify(
    kms: &Kms,
    call: &Call,
    change: impl FnOnce(&mut KeyRecord) -> Result<Value, AwsError>,
) -> Result<Effect, AwsError> {
    let mut handle = resolve_member(kms, call, "KeyId").await?.handle;
    let output = change(Arc::make_mut(&mut handle.record))?;
    let mut batch = WriteBatch::new();
    handle.save(&mut batch)?;
    Ok(write(output, batch, &handle.record))
}

/// EnableKey.
pub async fn enable_key(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let now = now_ms(call);
    modify(kms, call, |record| {
        match record.state {
            KeyState::PendingDeletion => {
                return Err(error::invalid_state(format!("{} is pending deletion.", record.arn())));
            }
            KeyState::PendingImport => {
                return Err(error::invalid_state(format!("{} is pending import.", record.arn())));
            }
            KeyState::Enabled => {}
            KeyState::Disabled => {
                record.state = KeyState::Enabled;
                // Rotations missed while disabled did not happen; an overdue key rotates once, now.
                if record.next_rotation_ms.is_some_and(|next| next < now) {
                    record.next_rotation_ms = Some(now);
                }
            }
        }
        Ok(json!({}))
    })
    .await
}

/// DisableKey.
pub async fn disable_key(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    modify(kms, call, |record| {
        match record.state {
            KeyState::PendingDeletion => {
                return Err(error::invalid_state(format!("{} is pending deletion.", record.arn())));
            }
            KeyState::PendingImport => {
                return Err(error::invalid_state(format!("{} is pending import.", record.arn())));
            }
            KeyState::Enabled | KeyState::Disabled => record.state = KeyState::Disabled,
        }
        Ok(json!({}))
    })
    .await
}

/// ScheduleKeyDeletion (7 to 30 days, 30 by default).
pub async fn schedule_key_deletion(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let days = input::opt_i64(&call.input, "PendingWindowInDays").unwrap_or(30);
    if !(7..=30).contains(&days) {
        return Err(error::validation(format!(
            "1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value {}",
            if days < 7 {
                "greater than or equal to 7"
            } else {
                "less than or equal to 30"
            }
        )));
    }
    let now = now_ms(call);
    modify(kms, call, |record| {
        record.check_not_pending_deletion()?;
        let deletion = now + days * DAY_MS;
        record.state = KeyState::PendingDeletion;
        record.deletion_ms = Some(deletion);
        record.pending_window_days = Some(days);
        Ok(json!({
            "KeyId": record.arn(),
            "DeletionDate": input::time_value(deletion),
            "KeyState": "PendingDeletion",
            "PendingWindowInDays": days,
        }))
    })
    .await
}

/// CancelKeyDeletion: the key comes back disabled (or pending import, without material).
pub async fn cancel_key_deletion(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    modify(kms, call, |record| {
        if record.state != KeyState::PendingDeletion {
            return Err(error::invalid_state(format!(
                "{} is not pending deletion.",
                record.arn()
            )));
        }
        record.state = if record.origin == "EXTERNAL" && record.materials.is_empty() {
            KeyState::PendingImport
        } else {
            KeyState::Disabled
        };
        record.deletion_ms = None;
        record.pending_window_days = None;
        Ok(json!({ "KeyId": record.arn() }))
    })
    .await
}

/// UpdateKeyDescription.
pub async fn update_key_description(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let description = input::req_str(&call.input, "Description")?.to_string();
    modify(kms, call, |record| {
        record.check_not_pending_deletion()?;
        record.description = description;
        Ok(json!({}))
    })
    .await
}

fn check_policy_name(input: &Value) -> Result<(), AwsError> {
    match opt_str(input, "PolicyName") {
        None | Some("default") => Ok(()),
        Some(_) => Err(error::not_found("No such policy exists")),
    }
}

/// GetKeyPolicy.
pub async fn get_key_policy(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    check_policy_name(&call.input)?;
    let resolved = resolve_member(kms, call, "KeyId").await?;
    let mut batch = WriteBatch::new();
    resolved.handle.save_if_dirty(&mut batch)?;
    Ok(Effect::write(
        json!({ "Policy": resolved.handle.record.policy, "PolicyName": "default" }),
        batch,
    ))
}

/// PutKeyPolicy, with the lockout safety check unless bypassed.
pub async fn put_key_policy(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    check_policy_name(&call.input)?;
    let text = input::req_str(&call.input, "Policy")?.to_string();
    let parsed = authz::validate_key_policy(&text)?;
    let bypass = input::flag(&call.input, "BypassPolicyLockoutSafetyCheck");
    modify(kms, call, |record| {
        if !bypass {
            authz::lockout_check(&parsed, &call.ctx.principal, &record.arn())?;
        }
        record.policy = text;
        Ok(json!({}))
    })
    .await
}

/// ListKeyPolicies: every key has exactly one policy, `default`.
pub async fn list_key_policies(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    input::limit(&call.input, 100)?;
    resolve_member(kms, call, "KeyId").await?;
    Ok(Effect::read(json!({ "PolicyNames": ["default"], "Truncated": false })))
}

/// TagResource.
pub async fn tag_resource(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let tags = parse_tags(call.input.get("Tags"))?;
    modify(kms, call, |record| {
        record.check_not_pending_deletion()?;
        merge_tags(&mut record.tags, tags)?;
        Ok(json!({}))
    })
    .await
}

/// UntagResource.
pub async fn untag_resource(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let keys = input::str_list(&call.input, "TagKeys");
    modify(kms, call, |record| {
        record.check_not_pending_deletion()?;
        record.tags.retain(|t| !keys.contains(&t.key));
        Ok(json!({}))
    })
    .await
}

/// ListResourceTags (in insertion order; the marker is the index of the next tag).
pub async fn list_resource_tags(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let limit = input::limit(&call.input, 50)?;
    let resolved = resolve_member(kms, call, "KeyId").await?;
    let tags = &resolved.handle.record.tags;
    let start = match opt_str(&call.input, "Marker") {
        None => 0,
        Some(marker) => marker.parse::<usize>().map_err(|_| error::invalid_marker())?,
    };
    let page: Vec<Value> = tags
        .iter()
        .skip(start)
        .take(limit)
        .map(|t| json!({ "TagKey": t.key, "TagValue": t.value }))
        .collect();
    let end = start.saturating_add(page.len());
    let mut output = json!({ "Tags": page, "Truncated": end < tags.len() });
    if end < tags.len()
        && let Some(map) = output.as_object_mut()
    {
        map.insert("NextMarker".into(), json!(end.to_string()));
    }
    Ok(Effect::read(output))
}
