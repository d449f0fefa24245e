//! Key rotation handlers.
//!
//! Rotation adds a material version and never removes one, so ciphertexts made before a rotation
//! still decrypt (their blob names the version). Automatic rotation is due every
//! `RotationPeriodInDays` (90 to 2560, 365 by default) and is applied lazily when the key is read
//! (see [`crate::model::maintain`]); on-demand rotations are immediate and limited to ten per key.
//! Only enabled symmetric keys with KMS-generated material rotate.

use crate::Kms;
use crate::authz::{now_ms, resolve_member};
use crate::crypto::KeySpec;
use crate::error;
use crate::input::{self, opt_str, time_value};
use crate::model::{self, DAY_MS, KeyRecord, KeyState};
use citadel_core::{Call, Effect};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde_json::{Value, json};
use std::sync::Arc;

/// The most on-demand rotations of one key.
const MAX_ON_DEMAND_ROTATIONS: usize = 10;

fn require_rotatable(record: &KeyRecord) -> Result<(), AwsError> {
    if record.spec() != KeySpec::SymmetricDefault {
        return Err(error::unsupported(format!(
            "{} does not support automatic key rotation.",
            record.arn()
        )));
    }
    Ok(())
}

fn require_enabled(record: &KeyRecord) -> Result<(), AwsError> {
    match record.state {
        KeyState::Enabled => Ok(()),
        _ => record.check_usable(),
    }
}

async fn modify(
    kms: &Kms,
    call: &Call,
    change: impl FnOnce(&mut KeyRecord) -> Result<Value, AwsError>,
) -> Result<Effect, AwsError> {
    let mut handle = resolve_member(kms, call, "KeyId").await?.handle;
    let output = change(Arc::make_mut(&mut handle.record))?;
    let mut batch = WriteBatch::new();
    handle.save(&mut batch)?;
    Ok(Effect::write(output, batch))
}

/// EnableKeyRotation.
pub async fn enable_key_rotation(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let period = input::opt_i64(&call.input, "RotationPeriodInDays").unwrap_or(365);
    if !(90..=2560).contains(&period) {
        return Err(error::validation(format!(
            "1 validation error detected: Value '{period}' at 'rotationPeriodInDays' failed to satisfy constraint: Member must have value {}",
            if period < 90 {
                "greater than or equal to 90"
            } else {
                "less than or equal to 2560"
            }
        )));
    }
    let now = now_ms(call);
    modify(kms, call, |record| {
        require_enabled(record)?;
        require_rotatable(record)?;
        if record.origin != "AWS_KMS" {
            return Err(error::unsupported(format!(
                "{} has imported key material and cannot rotate automatically.",
                record.arn()
            )));
        }
        record.rotation_period_days = Some(period);
        record.next_rotation_ms = Some(now + period * DAY_MS);
        Ok(json!({}))
    })
    .await
}

/// DisableKeyRotation.
pub async fn disable_key_rotation(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    modify(kms, call, |record| {
        require_enabled(record)?;
        require_rotatable(record)?;
        record.rotation_period_days = None;
        record.next_rotation_ms = None;
        Ok(json!({}))
    })
    .await
}

/// GetKeyRotationStatus.
pub async fn get_key_rotation_status(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let resolved = resolve_member(kms, call, "KeyId").await?;
    let record = &resolved.handle.record;
    require_rotatable(record)?;
    record.check_not_pending_deletion()?;
    let mut output = json!({ "KeyRotationEnabled": record.rotation_period_days.is_some(), "KeyId": record.arn() });
    if let Some(map) = output.as_object_mut() {
        if let Some(period) = record.rotation_period_days {
            map.insert("RotationPeriodInDays".into(), json!(period));
        }
        if let Some(next) = record.next_rotation_ms {
            map.insert("NextRotationDate".into(), time_value(next));
        }
        if let Some(started) = record.on_demand_rotation_ms {
            map.insert("OnDemandRotationStartDate".into(), time_value(started));
        }
    }
    let mut batch = WriteBatch::new();
    resolved.handle.save_if_dirty(&mut batch)?;
    Ok(Effect::write(output, batch))
}

/// RotateKeyOnDemand.
pub async fn rotate_key_on_demand(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let now = now_ms(call);
    let master = kms.master();
    modify(kms, call, |record| {
        require_enabled(record)?;
        require_rotatable(record)?;
        if record.origin != "AWS_KMS" {
            return Err(error::unsupported(format!(
                "{} has imported key material.",
                record.arn()
            )));
        }
        let on_demand = record
            .materials
            .iter()
            .filter(|m| m.rotation_type.as_deref() == Some("ON_DEMAND"))
            .count();
        if on_demand >= MAX_ON_DEMAND_ROTATIONS {
            return Err(error::limit_exceeded(format!(
                "{} has reached the limit of {MAX_ON_DEMAND_ROTATIONS} on-demand rotations.",
                record.arn()
            )));
        }
        let version = record.materials.last().map_or(0, |m| m.version.saturating_add(1));
        let material = model::new_material(master, record, version, now, Some("ON_DEMAND"))?;
        record.materials.push(material);
        record.on_demand_rotation_ms = Some(now);
        Ok(json!({ "KeyId": record.key_id }))
    })
    .await
}

/// ListKeyRotations: completed rotations, oldest first (`ALL_KEY_MATERIAL` adds the original material).
pub async fn list_key_rotations(kms: &Kms, call: &Call) -> Result<Effect, AwsError> {
    let limit = input::limit(&call.input, 100)?;
    let include_all = opt_str(&call.input, "IncludeKeyMaterial") == Some("ALL_KEY_MATERIAL");
    let resolved = resolve_member(kms, call, "KeyId").await?;
    let record = &resolved.handle.record;
    require_rotatable(record)?;
    record.check_not_pending_deletion()?;
    let current_version = record.current_material().map(|m| m.version);
    let entries: Vec<(String, Value)> = record
        .materials
        .iter()
        .filter(|m| include_all || m.rotation_type.is_some())
        .map(|m| {
            let mut entry = json!({
                "KeyId": record.arn(),
                "KeyMaterialId": m.id,
                "KeyMaterialState": if Some(m.version) == current_version { "CURRENT" } else { "NON_CURRENT" },
            });
            if let (Some(kind), Some(map)) = (&m.rotation_type, entry.as_object_mut()) {
                map.insert("RotationDate".into(), time_value(m.created_ms));
                map.insert("RotationType".into(), json!(kind));
            }
            (format!("{:010}", m.version), entry)
        })
        .collect();
    let (page, next) = input::paginate(entries, |(k, _)| k.clone(), opt_str(&call.input, "Marker"), limit)?;
    let rotations: Vec<Value> = page.into_iter().map(|(_, v)| v).collect();
    let mut output = json!({ "Rotations": rotations, "Truncated": next.is_some() });
    if let (Some(next), Some(map)) = (next, output.as_object_mut()) {
        map.insert("NextMarker".into(), json!(next));
    }
    let mut batch = WriteBatch::new();
    resolved.handle.save_if_dirty(&mut batch)?;
    Ok(Effect::write(output, batch))
}
