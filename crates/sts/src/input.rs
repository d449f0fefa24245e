//! Reading and checking the session parameters STS operations share: durations, session policies,
//! session tags, and the request-context keys they contribute to the trust-policy evaluation.

use crate::directory::IdentityDirectory;
use citadel_wire::AwsError;
use serde_json::Value;
use std::io::Write;

/// At most this many managed policy ARNs may be passed as session policies.
const MAX_POLICY_ARNS: usize = 10;
/// At most this many session tags.
const MAX_SESSION_TAGS: usize = 50;
/// Longest session tag key.
const MAX_TAG_KEY: usize = 128;
/// Longest session tag value.
const MAX_TAG_VALUE: usize = 256;
/// The packed (compressed) budget shared by session policies and session tags, in bytes.
///
/// AWS does not publish its packed format; Citadel packs with DEFLATE and reports the share of
/// this budget as `PackedPolicySize`, so that a full-size inline policy fits and fifty maximal
/// tags do not, as with AWS.
const PACKED_BUDGET: usize = 1024;

/// A string member, if present.
pub fn opt_str<'a>(input: &'a Value, member: &str) -> Option<&'a str> {
    input.get(member).and_then(Value::as_str)
}

/// A required string member; a missing one is the query protocol's null-member validation error.
pub fn req_str<'a>(input: &'a Value, member: &str) -> Result<&'a str, AwsError> {
    opt_str(input, member).ok_or_else(|| {
        let wire = citadel_wire::codec::validate::lower_camel(member);
        AwsError::new(
            "ValidationError",
            400,
            format!("1 validation error detected: Value null at '{wire}' failed to satisfy constraint: Member must not be null"),
        )
    })
}

/// An integer member, if present.
pub fn opt_i64(input: &Value, member: &str) -> Option<i64> {
    input
        .get(member)
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
}

/// A `ValidationError` with `message`.
pub fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new("ValidationError", 400, message)
}

/// An `InvalidParameterValue` error (STS's code for bad tag combinations).
pub fn invalid_parameter(message: impl Into<String>) -> AwsError {
    AwsError::new("InvalidParameterValue", 400, message)
}

/// The session tags of a request, checked: count, lengths, and keys unique case-insensitively.
pub fn session_tags(input: &Value) -> Result<Vec<(String, String)>, AwsError> {
    let Some(list) = input.get("Tags").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    if list.len() > MAX_SESSION_TAGS {
        return Err(validation(format!(
            "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to {MAX_SESSION_TAGS}"
        )));
    }
    let mut tags: Vec<(String, String)> = Vec::with_capacity(list.len());
    for tag in list {
        let key = tag.get("Key").and_then(Value::as_str).unwrap_or_default();
        let value = tag.get("Value").and_then(Value::as_str).unwrap_or_default();
        if key.is_empty() || key.chars().count() > MAX_TAG_KEY || value.chars().count() > MAX_TAG_VALUE {
            return Err(validation(
                "1 validation error detected: Value at 'tags' failed to satisfy constraint: Tag keys must be 1 to 128 characters and values at most 256 characters",
            ));
        }
        if tags.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
            return Err(invalid_parameter(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
            ));
        }
        tags.push((key.to_string(), value.to_string()));
    }
    Ok(tags)
}

/// The transitive tag keys of a request; each must name one of the passed `tags`.
pub fn transitive_keys(input: &Value, tags: &[(String, String)]) -> Result<Vec<String>, AwsError> {
    let keys: Vec<String> = input
        .get("TransitiveTagKeys")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    for key in &keys {
        if !tags.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
            return Err(invalid_parameter(format!(
                "The specified transitive tag key {key} must be included in the requested tags."
            )));
        }
    }
    Ok(keys)
}

/// Request-context keys for passed session tags: `aws:RequestTag/<k>`, `aws:TagKeys`,
/// `sts:TransitiveTagKeys`.
pub fn tag_context(tags: &[(String, String)], transitive: &[String]) -> Vec<(String, Vec<String>)> {
    let mut context = Vec::new();
    if tags.is_empty() {
        return context;
    }
    for (key, value) in tags {
        context.push((format!("aws:RequestTag/{key}"), vec![value.clone()]));
    }
    context.push(("aws:TagKeys".into(), tags.iter().map(|(k, _)| k.clone()).collect()));
    if !transitive.is_empty() {
        context.push(("sts:TransitiveTagKeys".into(), transitive.to_vec()));
    }
    context
}

/// Session policies as passed: the inline document and the managed policy ARNs.
#[derive(Debug, Default)]
pub struct SessionPolicies {
    /// The documents the session carries (inline first, then each managed policy's default version).
    pub documents: Vec<String>,
    /// The inline document, compacted, for the packed size.
    pub inline_compact: Option<String>,
    /// The ARNs passed.
    pub arns: Vec<String>,
}

impl SessionPolicies {
    /// True when no session policy was passed.
    pub fn is_empty(&self) -> bool {
        self.documents.is_empty() && self.arns.is_empty()
    }

    /// The documents as the session's policy list: `None` without any session policy.
    pub fn for_session(&self) -> Option<Vec<String>> {
        (!self.is_empty()).then(|| self.documents.clone())
    }
}

/// Reads and validates `Policy` and `PolicyArns`, expanding ARNs to documents in `account`.
pub async fn session_policies(
    input: &Value,
    directory: &dyn IdentityDirectory,
    account: &str,
) -> Result<SessionPolicies, AwsError> {
    let mut out = SessionPolicies::default();
    if let Some(text) = opt_str(input, "Policy") {
        citadel_policy::Policy::parse(text, citadel_policy::PolicyKind::Identity)
            .map_err(|e| AwsError::new(e.aws_code(), 400, e.to_string()))?;
        let compact = serde_json::from_str::<Value>(text)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| text.to_string());
        out.inline_compact = Some(compact);
        out.documents.push(text.to_string());
    }
    let arns: Vec<String> = input
        .get("PolicyArns")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|d| d.get("arn").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if arns.len() > MAX_POLICY_ARNS {
        return Err(validation(format!(
            "1 validation error detected: Value at 'policyArns' failed to satisfy constraint: Member must have length less than or equal to {MAX_POLICY_ARNS}"
        )));
    }
    for arn in &arns {
        let document = directory
            .managed_policy_document(account, arn)
            .await?
            .ok_or_else(|| invalid_parameter(format!("Policy {arn} does not exist or is not attachable.")))?;
        out.documents.push(document);
    }
    out.arns = arns;
    Ok(out)
}

/// `PackedPolicySize` for the session policies and tags, or `PackedPolicyTooLarge`.
///
/// Returns `None` when nothing was passed (AWS then omits the member).
pub fn packed_size(policies: &SessionPolicies, tags: &[(String, String)]) -> Result<Option<i64>, AwsError> {
    if policies.is_empty() && tags.is_empty() {
        return Ok(None);
    }
    let mut plain = Vec::new();
    if let Some(inline) = &policies.inline_compact {
        plain.extend_from_slice(inline.as_bytes());
    }
    for arn in &policies.arns {
        plain.push(0);
        plain.extend_from_slice(arn.as_bytes());
    }
    for (key, value) in tags {
        plain.push(0);
        plain.extend_from_slice(key.as_bytes());
        plain.push(b'=');
        plain.extend_from_slice(value.as_bytes());
    }
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let packed = encoder
        .write_all(&plain)
        .and_then(|()| encoder.finish())
        .map(|v| v.len())
        .unwrap_or(plain.len());
    let percent = (packed * 100).div_ceil(PACKED_BUDGET);
    if percent > 100 {
        return Err(AwsError::new(
            "PackedPolicyTooLarge",
            400,
            format!("Packed policy consumes {percent}% of allotted space, please use smaller policy for this session."),
        ));
    }
    Ok(Some(i64::try_from(percent).unwrap_or(100)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn session_tags_are_checked() {
        let ok = session_tags(&json!({"Tags": [{"Key": "team", "Value": "a"}, {"Key": "env", "Value": ""}]})).unwrap();
        assert_eq!(ok, vec![("team".into(), "a".into()), ("env".into(), "".into())]);
        let cases = [
            (
                json!({"Tags": [{"Key": "team", "Value": "a"}, {"Key": "TEAM", "Value": "b"}]}),
                "InvalidParameterValue",
            ),
            (json!({"Tags": [{"Key": "", "Value": "a"}]}), "ValidationError"),
            (
                json!({"Tags": [{"Key": "k", "Value": "v".repeat(257)}]}),
                "ValidationError",
            ),
            (
                json!({"Tags": (0..51).map(|i| json!({"Key": format!("k{i}"), "Value": "v"})).collect::<Vec<_>>()}),
                "ValidationError",
            ),
        ];
        for (input, code) in cases {
            assert_eq!(session_tags(&input).unwrap_err().code, code, "{input}");
        }
    }

    #[test]
    fn transitive_keys_must_be_passed_tags() {
        let tags = vec![("team".to_string(), "a".to_string())];
        assert_eq!(
            transitive_keys(&json!({"TransitiveTagKeys": ["Team"]}), &tags).unwrap(),
            vec!["Team".to_string()]
        );
        assert_eq!(
            transitive_keys(&json!({"TransitiveTagKeys": ["other"]}), &tags)
                .unwrap_err()
                .code,
            "InvalidParameterValue"
        );
    }

    #[test]
    fn tag_context_lists_request_tags_and_keys() {
        let tags = vec![
            ("team".to_string(), "a".to_string()),
            ("env".to_string(), "p".to_string()),
        ];
        let context = tag_context(&tags, &["team".to_string()]);
        assert!(context.contains(&("aws:RequestTag/team".to_string(), vec!["a".to_string()])));
        assert!(context.contains(&("aws:TagKeys".to_string(), vec!["team".to_string(), "env".to_string()])));
        assert!(context.contains(&("sts:TransitiveTagKeys".to_string(), vec!["team".to_string()])));
        assert!(tag_context(&[], &[]).is_empty());
    }

    #[test]
    fn packed_size_grows_with_content_and_overflows() {
        let none = SessionPolicies::default();
        assert_eq!(packed_size(&none, &[]).unwrap(), None);
        let small = packed_size(&none, &[("a".into(), "b".into())]).unwrap().unwrap();
        assert!((1..=5).contains(&small), "{small}");
        // Fifty maximal tags of incompressible text cannot fit.
        let mut state = 0x1234_5678u32;
        let mut noise = |n: usize| -> String {
            (0..n)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    char::from(b'a' + ((state >> 16) % 26) as u8)
                })
                .collect()
        };
        let big: Vec<(String, String)> = (0..50).map(|_| (noise(128), noise(256))).collect();
        assert_eq!(packed_size(&none, &big).unwrap_err().code, "PackedPolicyTooLarge");
    }
}
