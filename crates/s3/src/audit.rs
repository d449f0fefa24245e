//! CloudTrail records for S3 requests.
//!
//! A request that changes metadata gets its record inside the change's own batch
//! ([`crate::engine::Inner::commit`]); every other request that got as far as routing (reads,
//! denials, failures) gets one here, once the response is known. S3 records follow CloudTrail's
//! S3 shape: `requestParameters` with `bucketName`, `Host` and `key`, `resources` with the object
//! and bucket ARNs, `additionalEventData` with the signature version and authentication method.
//! Bucket configuration calls are management events; object calls and listings are data events.

use crate::engine::Inner;
use crate::frontend::RequestState;
use crate::names::{bucket_arn, object_arn};
use citadel_core::AuditResource;
use citadel_core::audit::{self, EventFacts};
use citadel_store::WriteBatch;
use serde_json::{Value, json};

/// The record of the current request, keyed for the `events` table.
pub(crate) fn build_record(
    inner: &Inner,
    state: &RequestState,
    error: Option<(&str, &str)>,
    response: Option<Value>,
) -> Option<(Vec<u8>, Value)> {
    let facts = state.audit.lock();
    let op = facts.op?;
    let principal = state.principal();
    let recipient = facts
        .owner
        .clone()
        .or_else(|| (!principal.account_id.is_empty()).then(|| principal.account_id.clone()))
        .unwrap_or_else(|| inner.account_id.clone());
    let ctx = state.context(principal, op.name, &inner.region);
    let mut resources = Vec::new();
    let mut params = serde_json::Map::new();
    if let Some(bucket) = &facts.bucket {
        params.insert("bucketName".into(), json!(bucket));
        params.insert("Host".into(), json!(state.host));
        if let Some(key) = &facts.key {
            params.insert("key".into(), json!(key));
            resources.push(AuditResource {
                arn: object_arn(bucket, key),
                account_id: recipient.clone(),
                resource_type: "AWS::S3::Object",
            });
        }
        resources.push(AuditResource {
            arn: bucket_arn(bucket),
            account_id: recipient.clone(),
            resource_type: "AWS::S3::Bucket",
        });
    } else {
        params.insert("Host".into(), json!(state.host));
    }
    for (name, value) in &facts.params {
        params.insert(name.clone(), value.clone());
    }
    let event_id = inner.ids.uuid();
    let mut record = audit::record(EventFacts {
        ctx: &ctx,
        event_source: "s3.amazonaws.com",
        read_only: op.read_only,
        management: op.management,
        request: Some(Value::Object(params)),
        response,
        error,
        resources: &resources,
        event_id: event_id.clone(),
        recipient_account_id: &recipient,
    });
    if let Some(map) = record.as_object_mut() {
        let method = match state.auth_type {
            Some("REST-QUERY-STRING") => "QueryString",
            Some("POST") => "HTTPPost",
            _ => "AuthHeader",
        };
        let signature = match state.signature_version {
            Some("AWS") => "SigV2",
            Some(_) => "SigV4",
            None => "",
        };
        let mut extra = serde_json::Map::new();
        if !signature.is_empty() {
            extra.insert("SignatureVersion".into(), json!(signature));
            extra.insert("AuthenticationMethod".into(), json!(method));
        }
        extra.insert("x-amz-id-2".into(), json!(state.host_id));
        map.insert("additionalEventData".into(), Value::Object(extra));
    }
    let millis = u64::try_from(state.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    Some((audit::event_key(&recipient, millis, &event_id), record))
}

/// Adds the response headers every S3 reply carries, and records the request if no handler did.
pub(crate) async fn finish(
    inner: &Inner,
    state: &RequestState,
    response: http::Response<s3s::Body>,
) -> http::Response<s3s::Body> {
    let (mut parts, body) = response.into_parts();
    if let Ok(value) = http::HeaderValue::from_str(&state.request_id) {
        parts.headers.insert("x-amz-request-id", value);
    }
    if let Ok(value) = http::HeaderValue::from_str(&state.host_id) {
        parts.headers.insert("x-amz-id-2", value);
    }
    let recorded = state.audit.lock().recorded;
    if !recorded {
        let status = parts.status.as_u16();
        let error = if status >= 300 {
            let text = body
                .bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let code = xml_element(&text, "Code").unwrap_or_else(|| status.to_string());
            let message = xml_element(&text, "Message").unwrap_or_default();
            Some((code, message))
        } else {
            None
        };
        let error_ref = error.as_ref().map(|(c, m)| (c.as_str(), m.as_str()));
        if let Some((key, record)) = build_record(inner, state, error_ref, None) {
            let mut batch = WriteBatch::new();
            batch.put(audit::EVENTS, &key, &serde_json::to_vec(&record).unwrap_or_default());
            inner.store.submit(batch);
        }
    }
    http::Response::from_parts(parts, body)
}

/// The text of the first `<name>` element of an error document.
fn xml_element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(unescape(&xml[start..end]))
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_documents_give_code_and_message() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>a &amp; b</Message></Error>";
        assert_eq!(xml_element(xml, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(xml_element(xml, "Message").as_deref(), Some("a & b"));
        assert_eq!(xml_element(xml, "Key"), None);
    }
}
