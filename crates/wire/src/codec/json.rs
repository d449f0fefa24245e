//! The `json` 1.0/1.1 protocol (KMS, CloudTrail, Logs, CloudWatch) and the JSON bodies of rest-json.
//!
//! Requests are routed on `X-Amz-Target: <targetPrefix>.<Operation>`. The body is re-read through the
//! input shape: members are picked by their wire name, type-checked, timestamps are normalised to
//! epoch seconds and members the shape does not know are dropped (AWS's JSON services ignore them).
//! Responses go through the output shape the same way, so a handler cannot leak internal fields.

use serde_json::{Map, Value};

use super::model::{Operation, ServiceModel, ShapeRef, ShapeType};
use super::{scalar, timestamp};
use crate::AwsError;

/// Routes on the `X-Amz-Target` value and decodes the body into the operation's input shape.
pub(crate) fn decode(
    model: &'static ServiceModel,
    target: Option<&str>,
    body: &[u8],
) -> Result<(&'static Operation, Value), AwsError> {
    let unknown = || AwsError::new("UnknownOperationException", 400, "");
    let target = target.ok_or_else(unknown)?;
    let (prefix, name) = target.rsplit_once('.').ok_or_else(unknown)?;
    if model.metadata.target_prefix.as_deref() != Some(prefix) {
        return Err(unknown());
    }
    let operation = model.operation(name).ok_or_else(unknown)?;
    let document = parse_body(body)?;
    let input = match operation.input.as_ref() {
        Some(input) => read_value(model, input, &document)
            .map_err(serialization)?
            .unwrap_or_else(|| Value::Object(Map::new())),
        None => Value::Object(Map::new()),
    };
    Ok((operation, input))
}

/// Parses a JSON request body that must be an object; an empty body means no members.
pub(crate) fn parse_body(body: &[u8]) -> Result<Value, AwsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(serialization("Start of list found where not expected".into())),
        Err(_) => Err(serialization("Could not parse the request body as JSON".into())),
    }
}

fn serialization(message: String) -> AwsError {
    AwsError::new("SerializationException", 400, message)
}

/// Reads `value` as the shape of `target`; `Ok(None)` for JSON `null` (the member is absent).
pub(crate) fn read_value(model: &ServiceModel, target: &ShapeRef, value: &Value) -> Result<Option<Value>, String> {
    if value.is_null() {
        return Ok(None);
    }
    let Some(shape) = model.shape(&target.shape) else {
        return Ok(None);
    };
    let mismatch = |expected: &str| Err(format!("{} can not be converted to {expected}", json_kind(value)));
    let converted = match shape.kind {
        ShapeType::Structure => {
            let Value::Object(object) = value else {
                return Err(format!(
                    "Start of structure or map expected, found {}",
                    json_kind(value)
                ));
            };
            let mut out = Map::new();
            for member in &shape.members {
                // rest-json binds located members elsewhere; the body holds the others.
                if member.target.location.is_some() {
                    continue;
                }
                if let Some(child) = object.get(member.wire_name())
                    && let Some(read) = read_value(model, &member.target, child)?
                {
                    out.insert(member.name.clone(), read);
                }
            }
            Value::Object(out)
        }
        ShapeType::List => {
            let Value::Array(items) = value else {
                return mismatch("a list");
            };
            let Some(member) = shape.member.as_ref() else {
                return Ok(None);
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(read_value(model, member, item)?.unwrap_or(Value::Null));
            }
            Value::Array(out)
        }
        ShapeType::Map => {
            let Value::Object(entries) = value else {
                return Err(format!(
                    "Start of structure or map expected, found {}",
                    json_kind(value)
                ));
            };
            let Some(value_ref) = shape.value.as_ref() else {
                return Ok(None);
            };
            let mut out = Map::new();
            for (key, item) in entries {
                if let Some(read) = read_value(model, value_ref, item)? {
                    out.insert(key.clone(), read);
                }
            }
            Value::Object(out)
        }
        ShapeType::String => match value {
            Value::String(_) => value.clone(),
            _ => return mismatch("a String"),
        },
        ShapeType::Boolean => match value {
            Value::Bool(_) => value.clone(),
            _ => return mismatch("a Boolean"),
        },
        kind if kind.is_integer() => match value {
            Value::Number(number) if number.is_i64() || number.is_u64() => value.clone(),
            Value::Number(number) => match number.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Value::from(f as i64),
                _ => return mismatch("an Integer"),
            },
            _ => return mismatch("an Integer"),
        },
        ShapeType::Double | ShapeType::Float => match value {
            Value::Number(_) => value.clone(),
            _ => return mismatch("a Double"),
        },
        ShapeType::Timestamp => match timestamp::from_value(value) {
            Some(seconds) => timestamp::epoch_number(seconds),
            None => return mismatch("a Timestamp"),
        },
        ShapeType::Blob => match value {
            Value::String(text) if scalar::is_base64(text) => value.clone(),
            Value::String(_) => return Err("Base64 encoded value expected".into()),
            _ => return mismatch("a Blob"),
        },
        _ => value.clone(),
    };
    Ok(Some(converted))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL_VALUE",
        Value::Bool(_) => "BOOLEAN_VALUE",
        Value::Number(_) => "NUMBER_VALUE",
        Value::String(_) => "STRING_VALUE",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
    }
}

/// The JSON body of an output shaped by `target` (see [`write_value`]); `{}` when nothing is left.
pub(crate) fn write_body(model: &ServiceModel, target: &ShapeRef, output: &Value) -> Vec<u8> {
    write_value(model, target, output).map_or_else(|| b"{}".to_vec(), |value| to_bytes(&value))
}

/// A JSON document's bytes. `serde_json::to_vec` writes straight into the buffer; `Value`'s
/// `Display` (what `to_string` uses) goes through `fmt::Formatter` for every token and costs about
/// twice as much on a KMS reply.
pub(crate) fn to_bytes(value: &Value) -> Vec<u8> {
    // Serializing a `Value` into a `Vec` has no failure path: keys are strings, and `Vec` writes succeed.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Re-keys and filters an output value by the shape: members by wire name, timestamps as epoch
/// seconds (or the shape's `timestampFormat`), unknown members dropped.
pub(crate) fn write_value(model: &ServiceModel, target: &ShapeRef, value: &Value) -> Option<Value> {
    if value.is_null() {
        return None;
    }
    let shape = model.shape(&target.shape)?;
    let written = match (shape.kind, value) {
        (ShapeType::Structure, Value::Object(object)) => {
            let mut out = Map::new();
            for member in &shape.members {
                if member.target.location.is_some() {
                    continue;
                }
                if let Some(child) = object.get(&member.name)
                    && let Some(child) = write_value(model, &member.target, child)
                {
                    out.insert(member.wire_name().to_owned(), child);
                }
            }
            Value::Object(out)
        }
        (ShapeType::List, Value::Array(items)) => {
            let member = shape.member.as_ref()?;
            Value::Array(
                items
                    .iter()
                    .map(|item| write_value(model, member, item).unwrap_or(Value::Null))
                    .collect(),
            )
        }
        (ShapeType::Map, Value::Object(entries)) => {
            let value_ref = shape.value.as_ref()?;
            let mut out = Map::new();
            for (key, item) in entries {
                if let Some(item) = write_value(model, value_ref, item) {
                    out.insert(key.clone(), item);
                }
            }
            Value::Object(out)
        }
        (ShapeType::Timestamp, _) => {
            let seconds = timestamp::from_value(value)?;
            match target.timestamp_format.as_deref().or(shape.timestamp_format.as_deref()) {
                Some("iso8601") => Value::String(timestamp::format_iso8601(seconds)?),
                Some("rfc822") => Value::String(timestamp::format_http_date(seconds)?),
                _ => timestamp::epoch_number(seconds),
            }
        }
        (kind, Value::Number(number)) if kind.is_integer() && !number.is_i64() && !number.is_u64() => {
            Value::from(number.as_f64()?.trunc() as i64)
        }
        (ShapeType::Structure | ShapeType::List | ShapeType::Map, _) => return None,
        _ => value.clone(),
    };
    Some(written)
}
