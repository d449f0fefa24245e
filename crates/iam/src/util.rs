//! IAM's error vocabulary and small helpers for reading inputs and writing outputs.
//!
//! Errors carry IAM's exact codes, statuses and message wording, because clients and scripts match
//! on them (`NoSuchEntity` 404 "The user with name X cannot be found.").

use crate::model::Tag;
use citadel_wire::AwsError;
use serde_json::Value;

/// `NoSuchEntity` 404.
pub fn no_such_entity(message: impl Into<String>) -> AwsError {
    AwsError::new("NoSuchEntity", 404, message)
}

/// `NoSuchEntity` for a named entity: "The user with name bob cannot be found."
pub fn not_found(kind: &str, name: &str) -> AwsError {
    no_such_entity(format!("The {kind} with name {name} cannot be found."))
}

/// `EntityAlreadyExists` 409.
pub fn already_exists(message: impl Into<String>) -> AwsError {
    AwsError::new("EntityAlreadyExists", 409, message)
}

/// `DeleteConflict` 409.
pub fn delete_conflict(message: impl Into<String>) -> AwsError {
    AwsError::new("DeleteConflict", 409, message)
}

/// `LimitExceeded` 409.
pub fn limit_exceeded(message: impl Into<String>) -> AwsError {
    AwsError::new("LimitExceeded", 409, message)
}

/// `InvalidInput` 400.
pub fn invalid_input(message: impl Into<String>) -> AwsError {
    AwsError::new("InvalidInput", 400, message)
}

/// `ValidationError` 400.
pub fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new("ValidationError", 400, message)
}

/// `MalformedPolicyDocument` 400 (or the policy engine's own code for the character constraint).
pub fn malformed(err: &citadel_policy::PolicyError) -> AwsError {
    AwsError::new(err.aws_code(), 400, err.to_string())
}

/// A string member of the input.
pub fn opt_str<'a>(input: &'a Value, name: &str) -> Option<&'a str> {
    input.get(name).and_then(Value::as_str)
}

/// A required string member; a missing one is the validation error the codec would give.
pub fn req_str<'a>(input: &'a Value, name: &str) -> Result<&'a str, AwsError> {
    opt_str(input, name).ok_or_else(|| {
        let mut member = name.to_string();
        if let Some(first) = member.get(..1) {
            let lower = first.to_lowercase();
            member.replace_range(..1, &lower);
        }
        validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

/// A boolean member.
pub fn opt_bool(input: &Value, name: &str) -> Option<bool> {
    match input.get(name)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => Some(s.eq_ignore_ascii_case("true")),
        _ => None,
    }
}

/// An integer member.
pub fn opt_i64(input: &Value, name: &str) -> Option<i64> {
    match input.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A list of strings member.
pub fn str_list(input: &Value, name: &str) -> Vec<String> {
    input
        .get(name)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// The `Tags` member, checked against IAM's tag rules.
pub fn tags_input(input: &Value, name: &str) -> Result<Vec<Tag>, AwsError> {
    let mut tags: Vec<Tag> = Vec::new();
    for item in input
        .get(name)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let key = opt_str(item, "Key").unwrap_or_default().to_string();
        let value = opt_str(item, "Value").unwrap_or_default().to_string();
        if key.is_empty() || key.chars().count() > 128 {
            return Err(validation(format!(
                "1 validation error detected: Value '{key}' at 'tags.1.member.key' failed to satisfy constraint: Member must have length between 1 and 128"
            )));
        }
        if value.chars().count() > 256 {
            return Err(validation(format!(
                "1 validation error detected: Value '{value}' at 'tags.1.member.value' failed to satisfy constraint: Member must have length less than or equal to 256"
            )));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid_input("User-defined tag keys can't start with 'aws:'."));
        }
        if tags.iter().any(|t| t.key.eq_ignore_ascii_case(&key)) {
            return Err(invalid_input(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
            ));
        }
        tags.push(Tag { key, value });
    }
    Ok(tags)
}

/// Checks the tag count after a change.
pub fn check_tag_count(tags: &[Tag]) -> Result<(), AwsError> {
    if tags.len() > 50 {
        return Err(limit_exceeded("The number of tags has reached the maximum limit."));
    }
    Ok(())
}

/// A path: `/` by default; must start and end with `/`.
pub fn path_input(input: &Value, member: &str) -> Result<String, AwsError> {
    let path = opt_str(input, member).unwrap_or("/");
    check_path(path, member)?;
    Ok(path.to_string())
}

/// Checks IAM's path pattern `(\u002F)|(\u002F[\u0021-\u007E]+\u002F)`, up to 512 characters.
pub fn check_path(path: &str, member: &str) -> Result<(), AwsError> {
    let ok = path.len() <= 512
        && path.starts_with('/')
        && path.ends_with('/')
        && path.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if ok {
        return Ok(());
    }
    let mut field = member.to_string();
    if let Some(first) = field.get(..1) {
        let lower = first.to_lowercase();
        field.replace_range(..1, &lower);
    }
    Err(validation(format!(
        "1 validation error detected: Value '{path}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)"
    )))
}

/// Checks an entity name: `[\w+=,.@-]+` up to `max` characters.
pub fn check_name(name: &str, field: &str, max: usize) -> Result<(), AwsError> {
    if name.is_empty() || name.chars().count() > max {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at '{field}' failed to satisfy constraint: Member must have length less than or equal to {max}"
        )));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)) {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
        )));
    }
    Ok(())
}

/// One page of a list: items from `marker` on, at most `max_items` (default 100).
///
/// Items come sorted by a key; the marker is the key of the first item of the next page, so a
/// page boundary stays put when earlier items are deleted between calls.
pub fn paginate<T>(items: Vec<(String, T)>, input: &Value) -> (Vec<T>, Option<String>) {
    let max = opt_i64(input, "MaxItems")
        .filter(|n| *n > 0)
        .map_or(100, |n| n.min(1000)) as usize;
    let marker = opt_str(input, "Marker").and_then(decode_marker);
    let mut out = Vec::new();
    let mut next = None;
    for (key, item) in items {
        if marker.as_ref().is_some_and(|m| key.as_str() < m.as_str()) {
            continue;
        }
        if out.len() == max {
            next = Some(encode_marker(&key));
            break;
        }
        out.push(item);
    }
    (out, next)
}

/// The page size a list call asks for: `MaxItems`, 100 by default, at most 1000.
pub fn page_size(input: &Value) -> usize {
    opt_i64(input, "MaxItems")
        .filter(|n| *n > 0)
        .map_or(100, |n| n.min(1000)) as usize
}

/// Adds `IsTruncated` and `Marker` to a list output.
pub fn page_output(mut output: serde_json::Map<String, Value>, next: Option<String>) -> Value {
    output.insert("IsTruncated".into(), Value::Bool(next.is_some()));
    if let Some(marker) = next {
        output.insert("Marker".into(), Value::String(marker));
    }
    Value::Object(output)
}

/// Encodes a pagination marker (the sort key of the first item of the next page).
pub fn encode_marker(key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// Decodes a pagination marker.
pub fn decode_marker(marker: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(marker).ok()?;
    String::from_utf8(bytes).ok()
}

/// The ARN of an IAM entity: `arn:aws:iam::ACCT:<kind><path><name>`.
pub fn entity_arn(account: &str, kind: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:{kind}{path}{name}")
}

/// The name in an IAM ARN (its last `/` segment) and the path before it.
pub fn split_arn_name(arn: &str) -> Option<(&str, &str, &str)> {
    // arn:aws:iam::ACCOUNT:kind/path/name
    let mut parts = arn.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let _partition = parts.next()?;
    if parts.next()? != "iam" {
        return None;
    }
    let _region = parts.next()?;
    let account = parts.next()?;
    let resource = parts.next()?;
    let slash = resource.find('/')?;
    let last = resource.rfind('/')?;
    Some((account, resource.get(slash..=last)?, resource.get(last + 1..)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pagination_walks_every_item_once() {
        let items: Vec<(String, i32)> = (0..7).map(|i| (format!("k{i}"), i)).collect();
        let mut seen = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut input = json!({"MaxItems": 3});
            if let Some(m) = &marker {
                input["Marker"] = json!(m);
            }
            let (page, next) = paginate(items.clone(), &input);
            seen.extend(page);
            match next {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn paths_and_names_are_checked() {
        let cases = [
            ("/", true),
            ("/a/b/", true),
            ("a/", false),
            ("/a", false),
            ("/a b/", false),
        ];
        for (path, ok) in cases {
            assert_eq!(check_path(path, "Path").is_ok(), ok, "{path}");
        }
        assert!(check_name("bob+x=y,z.@-_", "userName", 64).is_ok());
        assert!(check_name("bob smith", "userName", 64).is_err());
        assert!(check_name(&"a".repeat(65), "userName", 64).is_err());
    }

    #[test]
    fn splits_iam_arns() {
        assert_eq!(
            split_arn_name("arn:aws:iam::123:policy/a/b/P"),
            Some(("123", "/a/b/", "P"))
        );
        assert_eq!(
            split_arn_name("arn:aws:iam::aws:policy/AdministratorAccess"),
            Some(("aws", "/", "AdministratorAccess"))
        );
        assert_eq!(split_arn_name("arn:aws:s3:::b/k"), None);
    }

    #[test]
    fn tags_reject_duplicates_and_aws_prefix() {
        let ok = json!({"Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}]});
        assert_eq!(tags_input(&ok, "Tags").unwrap().len(), 2);
        let dup = json!({"Tags": [{"Key": "a", "Value": "1"}, {"Key": "A", "Value": "2"}]});
        assert_eq!(tags_input(&dup, "Tags").unwrap_err().code, "InvalidInput");
        let aws = json!({"Tags": [{"Key": "aws:x", "Value": "1"}]});
        assert_eq!(tags_input(&aws, "Tags").unwrap_err().code, "InvalidInput");
    }
}
