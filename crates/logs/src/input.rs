//! Reading members of a decoded input (a JSON value shaped like the botocore input shape).
//!
//! The codec has already type-checked members against the model and the pipeline has validated
//! required members, so these helpers only fall back to errors for direct (test) callers.

use citadel_wire::AwsError;
use serde_json::Value;

/// A required string member.
pub fn req_str<'a>(input: &'a Value, name: &str, missing: fn(&str) -> AwsError) -> Result<&'a str, AwsError> {
    input.get(name).and_then(Value::as_str).ok_or_else(|| missing(name))
}

/// An optional string member.
pub fn opt_str<'a>(input: &'a Value, name: &str) -> Option<&'a str> {
    input.get(name).and_then(Value::as_str)
}

/// An optional integer member (also accepts integral floats).
pub fn opt_i64(input: &Value, name: &str) -> Option<i64> {
    let v = input.get(name)?;
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
}

/// An optional number member.
pub fn opt_f64(input: &Value, name: &str) -> Option<f64> {
    input.get(name).and_then(Value::as_f64)
}

/// An optional boolean member.
pub fn opt_bool(input: &Value, name: &str) -> Option<bool> {
    input.get(name).and_then(Value::as_bool)
}

/// An optional list of strings.
pub fn str_list<'a>(input: &'a Value, name: &str) -> Vec<&'a str> {
    input
        .get(name)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A Logs `missing member` error.
pub fn logs_missing(name: &str) -> AwsError {
    crate::error::invalid(format!("Missing required parameter {name}"))
}

/// Milliseconds since the epoch of the request time.
pub fn now_millis(time: time::OffsetDateTime) -> i64 {
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Encodes a pagination position as an opaque token.
pub fn encode_token(position: &Value) -> String {
    hex::encode(position.to_string())
}

/// Decodes a token made by [`encode_token`].
pub fn decode_token(token: &str) -> Option<Value> {
    let bytes = hex::decode(token).ok()?;
    serde_json::from_slice(&bytes).ok()
}
