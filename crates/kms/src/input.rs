//! Reading the decoded input `Value`: members, blobs (base64), encryption contexts, limits.
//!
//! The pipeline validates the input against the model after authorization, but handlers are also
//! called directly in unit tests and `authorize` runs before validation, so these helpers never
//! assume a member is present or well-typed.

use crate::error;
use base64::Engine;
use citadel_wire::AwsError;
use serde_json::Value;
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// A string member, if present.
pub fn opt_str<'a>(input: &'a Value, name: &str) -> Option<&'a str> {
    input.get(name).and_then(Value::as_str)
}

/// A required string member.
pub fn req_str<'a>(input: &'a Value, name: &str) -> Result<&'a str, AwsError> {
    opt_str(input, name).ok_or_else(|| {
        error::validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_camel(name)
        ))
    })
}

/// An integer member, if present.
pub fn opt_i64(input: &Value, name: &str) -> Option<i64> {
    input
        .get(name)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

/// A boolean member, false when absent.
pub fn flag(input: &Value, name: &str) -> bool {
    input.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// A timestamp member as epoch milliseconds, if present.
pub fn opt_time_ms(input: &Value, name: &str) -> Option<i64> {
    input
        .get(name)
        .and_then(Value::as_f64)
        .map(|seconds| (seconds * 1000.0) as i64)
}

/// A list of strings (missing means empty).
pub fn str_list(input: &Value, name: &str) -> Vec<String> {
    input
        .get(name)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// A base64 blob member, decoded; `None` when absent.
pub fn opt_blob(input: &Value, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, AwsError> {
    let Some(text) = opt_str(input, name) else {
        return Ok(None);
    };
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(|bytes| Some(Zeroizing::new(bytes)))
        .map_err(|_| error::validation(format!("Member {name} is not valid base64.")))
}

/// A required base64 blob of `min..=max` bytes, with AWS's length messages.
pub fn req_blob(input: &Value, name: &str, min: usize, max: usize) -> Result<Zeroizing<Vec<u8>>, AwsError> {
    let blob = opt_blob(input, name)?.ok_or_else(|| {
        error::validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_camel(name)
        ))
    })?;
    if blob.len() < min {
        return Err(error::validation(format!(
            "1 validation error detected: Value at '{}' failed to satisfy constraint: Member must have length greater than or equal to {min}",
            lower_camel(name)
        )));
    }
    if blob.len() > max {
        return Err(error::validation(format!(
            "1 validation error detected: Value at '{}' failed to satisfy constraint: Member must have length less than or equal to {max}",
            lower_camel(name)
        )));
    }
    Ok(blob)
}

/// Encodes bytes as the base64 text the codec sends for blobs.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64.
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// An encryption context member (a string map); missing means empty.
pub fn context(input: &Value, name: &str) -> Result<BTreeMap<String, String>, AwsError> {
    let Some(map) = input.get(name).and_then(Value::as_object) else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let value = value
            .as_str()
            .ok_or_else(|| error::validation(format!("Encryption context values must be strings ({key}).")))?;
        out.insert(key.clone(), value.to_string());
    }
    Ok(out)
}

/// `Limit` with AWS's range 1..=1000 and a default.
pub fn limit(input: &Value, default: usize) -> Result<usize, AwsError> {
    match opt_i64(input, "Limit") {
        None => Ok(default),
        Some(n) if (1..=1000).contains(&n) => Ok(usize::try_from(n).unwrap_or(default)),
        Some(n) => Err(error::validation(format!(
            "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value {}",
            if n < 1 {
                "greater than or equal to 1"
            } else {
                "less than or equal to 1000"
            }
        ))),
    }
}

/// Milliseconds since the epoch as the epoch-seconds number the codec sends.
pub fn time_value(ms: i64) -> Value {
    serde_json::json!(ms as f64 / 1000.0)
}

/// `KeyId` -> `keyId`, as AWS's validation messages name members.
pub fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// One page of `items` (already in listing order) after `marker`, which is the id of the last item of
/// the previous page; returns the page and the marker of the next one.
pub fn paginate<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> String,
    marker: Option<&str>,
    limit: usize,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    // Items are sorted by id, so the next page starts at the first id after the marker; a marker
    // whose item has since been deleted still lands in the right place.
    let start = match marker {
        None => 0,
        Some(marker) => items
            .iter()
            .position(|item| id(item).as_str() > marker)
            .unwrap_or(items.len()),
    };
    let mut rest: Vec<T> = items.into_iter().skip(start).collect();
    if rest.len() > limit {
        rest.truncate(limit);
        let next = rest.last().map(&id);
        return Ok((rest, next));
    }
    Ok((rest, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paginates_by_marker() {
        let items: Vec<String> = ["a", "b", "c", "d", "e"].iter().map(|s| s.to_string()).collect();
        let (page, next) = paginate(items.clone(), |s| s.clone(), None, 2).unwrap();
        assert_eq!(page, vec!["a", "b"]);
        assert_eq!(next.as_deref(), Some("b"));
        let (page, next) = paginate(items.clone(), |s| s.clone(), next.as_deref(), 2).unwrap();
        assert_eq!(page, vec!["c", "d"]);
        let (page, next) = paginate(items.clone(), |s| s.clone(), next.as_deref(), 2).unwrap();
        assert_eq!((page, next), (vec!["e".to_string()], None));
        let (page, next) = paginate(items, |s| s.clone(), None, 5).unwrap();
        assert_eq!((page.len(), next), (5, None));
    }

    #[test]
    fn reads_contexts_and_limits() {
        let input = serde_json::json!({"EncryptionContext": {"b": "2", "a": "1"}, "Limit": 0});
        let ctx = context(&input, "EncryptionContext").unwrap();
        assert_eq!(ctx.keys().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(limit(&input, 100).unwrap_err().code, "ValidationException");
        assert_eq!(limit(&serde_json::json!({}), 100).unwrap(), 100);
        assert!(context(&serde_json::json!({"EncryptionContext": {"a": 1}}), "EncryptionContext").is_err());
    }
}
