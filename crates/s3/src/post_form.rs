//! Browser POST uploads (PostObject) in AWS's words.
//!
//! s3s 0.14 does the work of a POST upload: it parses the multipart form, verifies the SigV4 policy
//! signature with the secret our auth hook resolves, checks the policy's expiration and every
//! condition (`eq`, `starts-with`, `content-length-range`, `bucket`), and answers with
//! `success_action_status` or `success_action_redirect`.
//! Citadel adds authorization (the access hook's `put_object` hook asks the authorizer for
//! `s3:PutObject` on the form's key) and, here, the error codes AWS gives: a failed condition or an
//! expired policy is `403 AccessDenied` with "Invalid according to Policy: ...", where s3s says
//! `400 InvalidPolicyDocument` with its own wording.

use crate::frontend::RequestState;
use s3s::{S3Error, S3ErrorCode};

/// Characters of a key percent-encoded in a URL path: everything but unreserved characters and `/`.
const KEY_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Rewrites s3s's POST policy errors into AWS's code, status and message, and adds the `Location`
/// of an uploaded object; other responses pass.
pub(crate) fn finish(state: &RequestState, mut response: http::Response<s3s::Body>) -> http::Response<s3s::Body> {
    if state.auth_type != Some("POST") {
        return response;
    }
    if response.status().is_success() && !response.headers().contains_key(http::header::LOCATION) {
        let (bucket, key) = {
            let facts = state.audit.lock();
            (facts.bucket.clone(), facts.key.clone())
        };
        if let (Some(bucket), Some(key)) = (bucket, key) {
            let scheme = if state.secure { "https" } else { "http" };
            let key = percent_encoding::utf8_percent_encode(&key, KEY_ENCODE);
            let location = format!("{scheme}://{}/{bucket}/{key}", state.host);
            if let Ok(value) = http::HeaderValue::from_str(&location) {
                response.headers_mut().insert(http::header::LOCATION, value);
            }
        }
        return response;
    }
    if response.status().as_u16() < 400 {
        return response;
    }
    let Some(text) = response
        .body()
        .bytes()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
    else {
        return response;
    };
    let code = element(&text, "Code").unwrap_or_default();
    let message = element(&text, "Message").unwrap_or_default();
    let Some(aws_message) = aws_message(&code, &message) else {
        return response;
    };
    let mut err = S3Error::with_message(S3ErrorCode::AccessDenied, aws_message);
    err.set_status_code(http::StatusCode::FORBIDDEN);
    err.set_request_id(state.request_id.clone());
    err.to_http_response().unwrap_or(response)
}

/// Adds the `ETag` header AWS sends with a successful POST upload (s3s's PostObject answer carries
/// only the status); PUT responses are left alone.
pub(crate) fn add_response_headers(response: &mut s3s::S3Response<s3s::dto::PutObjectOutput>) {
    let Ok(state) = crate::frontend::current() else { return };
    if state.audit.lock().op.is_none_or(|op| op.name != "PostObject") {
        return;
    }
    if let Some(etag) = &response.output.e_tag
        && let Ok(value) = http::HeaderValue::from_str(&format!("\"{}\"", etag.value()))
    {
        response.headers.insert(http::header::ETAG, value);
    }
}

/// AWS's message for an s3s POST policy failure, or `None` when the error is not one.
fn aws_message(code: &str, message: &str) -> Option<String> {
    if code == "AccessDenied" && message == "Request has expired" {
        return Some("Invalid according to Policy: Policy expired.".to_string());
    }
    if code == "AccessDenied" && message.starts_with("Each form field") {
        let field = message.split('"').nth(1).unwrap_or_default();
        return Some(format!("Invalid according to Policy: Extra input fields: {field}"));
    }
    if code != "InvalidPolicyDocument" {
        return None;
    }
    // s3s: "Policy condition 'eq' for field 'key' failed: expected 'a', got 'b'".
    let rest = message.strip_prefix("Policy condition '")?;
    let (operator, rest) = rest.split_once("' for field '")?;
    let (field, rest) = rest.split_once("' failed: expected ")?;
    let expected = rest.strip_prefix("prefix ").unwrap_or(rest);
    let expected = expected.strip_prefix('\'')?;
    let (value, _) = expected.rsplit_once("', got '")?;
    Some(format!(
        "Invalid according to Policy: Policy Condition failed: [\"{operator}\", \"${field}\", \"{value}\"]"
    ))
}

/// The text of the first `<name>` element.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml.get(start..)?.find(&close)? + start;
    xml.get(start..end)
        .map(|t| t.replace("&apos;", "'").replace("&quot;", "\"").replace("&amp;", "&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3s_policy_errors_become_aws_messages() {
        let cases = [
            (
                "InvalidPolicyDocument",
                "Policy condition 'eq' for field 'key' failed: expected 'a.txt', got 'b.txt'",
                Some("Invalid according to Policy: Policy Condition failed: [\"eq\", \"$key\", \"a.txt\"]"),
            ),
            (
                "InvalidPolicyDocument",
                "Policy condition 'starts-with' for field 'key' failed: expected prefix 'user/', got 'x'",
                Some("Invalid according to Policy: Policy Condition failed: [\"starts-with\", \"$key\", \"user/\"]"),
            ),
            (
                "AccessDenied",
                "Request has expired",
                Some("Invalid according to Policy: Policy expired."),
            ),
            (
                "AccessDenied",
                "Each form field that you specify in a form must appear in the list of policy conditions. \"x-amz-meta-a\" not specified in the policy.",
                Some("Invalid according to Policy: Extra input fields: x-amz-meta-a"),
            ),
            ("SignatureDoesNotMatch", "whatever", None),
            (
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed object size.",
                None,
            ),
        ];
        for (code, message, want) in cases {
            assert_eq!(aws_message(code, message).as_deref(), want, "{code} {message}");
        }
    }
}
