//! AWS error documents, one renderer per protocol.
//!
//! How a client reads an error differs per protocol and per SDK (see `specs/protocols.md` §3-§7):
//! botocore's JSON parser reads only `__type`, aws-sdk-rust reads `x-amzn-ErrorType` first, query
//! clients read `<Error><Code>`. Every renderer therefore writes all the places a client may look,
//! with the same value, and the request id both in the body (where the protocol has one) and in
//! the `x-amzn-RequestId` header.

use serde_json::{Map, Value};

use super::model::ServiceModel;
use super::query::escape_into;
use crate::{AwsError, Protocol};

/// Renders `err` for `protocol`: `(status, headers, body)`.
///
/// `json_version` (`1.0` or `1.1`) picks the JSON content type. `query_xmlns` is the XML namespace of
/// query error documents; for the JSON protocol a non-empty `query_xmlns` marks a query-compatible
/// service (CloudWatch), which also gets `x-amzn-query-error: <Code>;Sender|Receiver` so that
/// botocore reports the legacy query code. [`render_model_error`] derives all of this from the model.
pub fn render_error(
    protocol: Protocol,
    err: &AwsError,
    request_id: &str,
    json_version: &str,
    query_xmlns: &str,
) -> (u16, Vec<(&'static str, String)>, Vec<u8>) {
    let fault = if err.is_sender_fault() { "Sender" } else { "Receiver" };
    let mut headers: Vec<(&'static str, String)> = vec![("x-amzn-RequestId", request_id.to_owned())];
    let body = match protocol {
        Protocol::Query | Protocol::RestXml => {
            headers.push(("Content-Type", "text/xml".to_owned()));
            let mut out = String::with_capacity(256);
            out.push_str("<ErrorResponse");
            if !query_xmlns.is_empty() && protocol == Protocol::Query {
                out.push_str(" xmlns=\"");
                escape_into(&mut out, query_xmlns);
                out.push('"');
            }
            out.push_str("><Error><Type>");
            out.push_str(fault);
            out.push_str("</Type><Code>");
            escape_into(&mut out, &err.code);
            out.push_str("</Code><Message>");
            escape_into(&mut out, &err.message);
            out.push_str("</Message>");
            for (name, value) in &err.extra {
                if is_xml_name(name) {
                    out.push('<');
                    out.push_str(name);
                    out.push('>');
                    match value {
                        Value::String(text) => escape_into(&mut out, text),
                        other => escape_into(&mut out, &other.to_string()),
                    }
                    out.push_str("</");
                    out.push_str(name);
                    out.push('>');
                }
            }
            out.push_str("</Error><RequestId>");
            escape_into(&mut out, request_id);
            out.push_str("</RequestId></ErrorResponse>");
            out.into_bytes()
        }
        Protocol::Json | Protocol::RestJson => {
            let content_type = match protocol {
                Protocol::Json => format!(
                    "application/x-amz-json-{}",
                    if json_version == "1.1" { "1.1" } else { "1.0" }
                ),
                _ => "application/json".to_owned(),
            };
            headers.push(("Content-Type", content_type));
            headers.push(("x-amzn-ErrorType", err.code.to_string()));
            if protocol == Protocol::Json && !query_xmlns.is_empty() {
                headers.push(("x-amzn-query-error", format!("{};{fault}", err.code)));
            }
            let mut object = Map::new();
            object.insert("__type".into(), Value::String(err.code.to_string()));
            object.insert("message".into(), Value::String(err.message.clone()));
            for (name, value) in &err.extra {
                if name != "__type" && name != "message" {
                    object.insert(name.clone(), value.clone());
                }
            }
            super::json::to_bytes(&Value::Object(object))
        }
    };
    (err.status, headers, body)
}

/// Renders `err` with the settings of `model`: the JSON version, the query namespace and, for
/// query-compatible services, `__type` set to the error shape name while `x-amzn-query-error`
/// carries the legacy code (`ResourceNotFound` vs `ResourceNotFoundException` in CloudWatch).
pub fn render_model_error(
    model: &ServiceModel,
    protocol: Protocol,
    err: &AwsError,
    request_id: &str,
) -> (u16, Vec<(&'static str, String)>, Vec<u8>) {
    let xmlns = model.metadata.xml_namespace.as_deref().unwrap_or_default();
    if protocol == Protocol::Json && model.is_query_compatible() {
        let legacy = err.code.to_string();
        let shape_name = model
            .error_shape(&legacy)
            .map_or_else(|| legacy.clone(), |(name, _)| name.to_owned());
        let renamed = AwsError {
            code: shape_name.into(),
            ..err.clone()
        };
        let (status, mut headers, body) = render_error(protocol, &renamed, request_id, model.json_version(), "");
        let fault = if err.is_sender_fault() { "Sender" } else { "Receiver" };
        headers.push(("x-amzn-query-error", format!("{legacy};{fault}")));
        return (status, headers, body);
    }
    let xmlns = if protocol == Protocol::Query { xmlns } else { "" };
    render_error(protocol, err, request_id, model.json_version(), xmlns)
}

/// Looks up a modeled error by the code clients see (or its shape name): `(HTTP status, sender fault)`.
///
/// The status is the model's `httpStatusCode`, else 500 for `fault` shapes and 400 otherwise; the
/// sender fault is `senderFault`, else true for non-`fault` shapes with a 4xx status.
pub fn modeled_error(model: &ServiceModel, code: &str) -> Option<(u16, bool)> {
    let (_, shape) = model.error_shape(code)?;
    let info = shape.error.clone().unwrap_or_default();
    let status = info.http_status_code.unwrap_or(if shape.fault { 500 } else { 400 });
    let sender = info.sender_fault.unwrap_or(!shape.fault && status < 500);
    Some((status, sender))
}

/// Builds an [`AwsError`] for a modeled code with the model's status, or `None` when the model lacks it.
pub fn modeled(model: &ServiceModel, code: &str, message: impl Into<String>) -> Option<AwsError> {
    let (status, _) = modeled_error(model, code)?;
    let (shape_name, shape) = model.error_shape(code)?;
    let wire_code = shape
        .error
        .as_ref()
        .and_then(|e| e.code.clone())
        .unwrap_or_else(|| shape_name.to_owned());
    Some(AwsError::new(wire_code, status, message))
}

fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}
