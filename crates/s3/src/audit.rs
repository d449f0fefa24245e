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

/// Tells S3 whether an account has a trail that may deliver S3 data events.
///
/// CloudTrail records S3 object-level calls (data events) only for trails whose event selectors ask
/// for them; without such a trail AWS keeps no record of them at all (LookupEvents shows
/// management events only). Citadel does the same, so that an account that logs no data events does
/// not pay a durable row per GET and PUT. Management events are always recorded.
#[async_trait::async_trait]
pub trait DataEventGate: Send + Sync {
    /// Whether `account` has a trail whose selectors may select S3 data events. Answering `true`
    /// too often only records events no trail delivers; `false` must be exact.
    async fn records_data_events(&self, account: &str) -> bool;
}

/// Whether the current request gets a CloudTrail record: every management event, and data events
/// when the recipient account has a trail that may deliver them (or no gate is installed).
pub(crate) async fn wanted(inner: &Inner, state: &RequestState) -> bool {
    let recipient = {
        let facts = state.audit.lock();
        let Some(op) = facts.op else {
            return false;
        };
        if op.management {
            return true;
        }
        facts.owner.clone()
    };
    let gate = inner.data_events.read().clone();
    let Some(gate) = gate else {
        return true;
    };
    let recipient = recipient_account(inner, recipient, &state.principal());
    gate.records_data_events(&recipient).await
}

/// The account a record goes to: the bucket owner, else the caller's account, else the default.
fn recipient_account(inner: &Inner, owner: Option<String>, principal: &citadel_core::Principal) -> String {
    owner
        .or_else(|| (!principal.account_id.is_empty()).then(|| principal.account_id.clone()))
        .unwrap_or_else(|| inner.account_id.clone())
}

/// The record of the current request, keyed for the `events` table.
pub(crate) fn build_record(
    inner: &Inner,
    state: &RequestState,
    error: Option<(&str, &str)>,
    response: Option<Value>,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let facts = state.audit.lock();
    let op = facts.op?;
    let principal = state.principal();
    let recipient = recipient_account(inner, facts.owner.clone(), &principal);
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
    // Written straight into bytes (`record_bytes`), not through a `serde_json::Value` tree: every
    // S3 request stores one record, and building and dropping the tree was about 8 % of a 4 KiB
    // GET's CPU. The record is exactly `record`'s, with `additionalEventData` appended last.
    let mut record = audit::record_bytes(EventFacts {
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
    {
        let method = match state.auth_type {
            Some("REST-QUERY-STRING") => "QueryString",
            Some("POST") => "HTTPPost",
            _ => "AuthHeader",
        };
        let signature = match state.signature_version {
            Some("AWS") => Some("SigV2"),
            Some(_) => Some("SigV4"),
            None => None,
        };
        let extra = AdditionalEventData {
            signature_version: signature,
            authentication_method: signature.map(|_| method),
            host_id: &state.host_id,
        };
        append_member(&mut record, "additionalEventData", &extra);
    }
    let millis = u64::try_from(state.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    Some((audit::event_key(&recipient, millis, &event_id), record))
}

/// Appends `"name": value` as the last member of the JSON object serialized in `object`.
fn append_member(object: &mut Vec<u8>, name: &str, value: &impl serde::Serialize) {
    if object.last() != Some(&b'}') {
        return;
    }
    object.pop();
    if object.len() > 1 {
        object.push(b',');
    }
    let written = serde_json::to_writer(&mut *object, name).and_then(|()| {
        object.push(b':');
        serde_json::to_writer(&mut *object, value)
    });
    debug_assert!(written.is_ok(), "writing JSON into a Vec cannot fail");
    object.push(b'}');
}

/// `additionalEventData` of an S3 record, in AWS's key order.
#[derive(serde::Serialize)]
struct AdditionalEventData<'a> {
    #[serde(rename = "SignatureVersion", skip_serializing_if = "Option::is_none")]
    signature_version: Option<&'static str>,
    #[serde(rename = "AuthenticationMethod", skip_serializing_if = "Option::is_none")]
    authentication_method: Option<&'static str>,
    #[serde(rename = "x-amz-id-2")]
    host_id: &'a str,
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
        if wanted(inner, state).await
            && let Some((key, record)) = build_record(inner, state, error_ref, None)
        {
            let mut batch = WriteBatch::new();
            batch.put(audit::EVENTS, &key, &record);
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
    fn additional_event_data_is_the_last_member() {
        let mut record = br#"{"eventVersion":"1.09","readOnly":true}"#.to_vec();
        let extra = AdditionalEventData {
            signature_version: Some("SigV4"),
            authentication_method: Some("AuthHeader"),
            host_id: "abc=",
        };
        append_member(&mut record, "additionalEventData", &extra);
        let parsed: Value = serde_json::from_slice(&record).unwrap();
        let keys: Vec<&String> = parsed.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["eventVersion", "readOnly", "additionalEventData"]);
        assert_eq!(
            parsed["additionalEventData"],
            json!({"SignatureVersion": "SigV4", "AuthenticationMethod": "AuthHeader", "x-amz-id-2": "abc="})
        );
        let mut unsigned = b"{}".to_vec();
        let anonymous = AdditionalEventData {
            signature_version: None,
            authentication_method: None,
            host_id: "x",
        };
        append_member(&mut unsigned, "additionalEventData", &anonymous);
        assert_eq!(unsigned, br#"{"additionalEventData":{"x-amz-id-2":"x"}}"#);
    }

    #[test]
    fn error_documents_give_code_and_message() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>a &amp; b</Message></Error>";
        assert_eq!(xml_element(xml, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(xml_element(xml, "Message").as_deref(), Some("a & b"));
        assert_eq!(xml_element(xml, "Key"), None);
    }
}
