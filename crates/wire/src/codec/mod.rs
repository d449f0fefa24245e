//! Model-driven codecs: requests to `serde_json::Value`, `Value` back to the wire.
//!
//! Service handlers never see the wire. They receive a `Value` shaped like botocore's input shape
//! of the operation (member names as in the model, timestamps as epoch seconds, blobs as base64
//! text) and return a `Value` shaped like the output shape. This module turns bytes into such values
//! and back for the query, json 1.0/1.1 and rest-json protocols, reading botocore's model (the
//! contract every SDK is generated from) instead of per-operation code. Constraint validation is
//! generic as well and words its messages as AWS does.
//!
//! The typical flow in the request pipeline:
//!
//! ```
//! use citadel_wire::codec::{self, RequestParts};
//! let iam = codec::model("iam").unwrap();
//! let headers = http::HeaderMap::new();
//! let request = RequestParts {
//!     method: "POST",
//!     path: "/",
//!     query: "",
//!     headers: &headers,
//!     body: b"Action=GetUser&Version=2010-05-08&UserName=bob",
//! };
//! let decoded = codec::decode_request(iam, &request).unwrap();
//! assert_eq!(decoded.operation, "GetUser");
//! assert_eq!(decoded.input["UserName"], "bob");
//! let output = serde_json::json!({"User": {"UserName": "bob", "Path": "/", "UserId": "AIDA",
//!     "Arn": "arn:aws:iam::123456789012:user/bob", "CreateDate": 1704067200}});
//! let response = codec::encode_response(iam, decoded.operation, decoded.protocol, &output, "req-1").unwrap();
//! assert!(String::from_utf8(response.body).unwrap().contains("<CreateDate>2024-01-01T00:00:00Z</CreateDate>"));
//! ```

mod json;
pub mod model;
mod pattern;
mod query;
mod render;
mod rest_json;
mod scalar;
pub mod timestamp;
pub mod validate;

use serde_json::Value;

pub use model::{ServiceModel, model};
pub use render::{modeled, modeled_error, render_error, render_model_error};

use crate::{AwsError, Protocol};

/// The parts of an HTTP request the codecs read. `path` and `query` are raw (still percent-encoded).
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// Raw path, e.g. `/detector/det%3A1/findings`.
    pub path: &'a str,
    /// Raw query string without the `?`.
    pub query: &'a str,
    /// Request headers.
    pub headers: &'a http::HeaderMap,
    /// Request body.
    pub body: &'a [u8],
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The operation name from the model, e.g. `CreateUser`.
    pub operation: &'static str,
    /// The protocol the request arrived in; the response must use the same one.
    pub protocol: Protocol,
    /// The input, shaped like the operation's input shape.
    pub input: Value,
}

/// An encoded success response.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// HTTP status.
    pub status: u16,
    /// Headers to send, including `Content-Type` and `x-amzn-RequestId`.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Picks the protocol of a request: `X-Amz-Target` means json, form parameters with `Action` mean
/// query (CloudWatch accepts both), otherwise the model's own protocol.
pub fn detect_protocol(model: &ServiceModel, request: &RequestParts<'_>) -> Option<Protocol> {
    if model.supports(Protocol::Json) && request.headers.contains_key("x-amz-target") {
        return Some(Protocol::Json);
    }
    if model.supports(Protocol::Query) {
        let form = request
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let has_action = request.query.split('&').any(|pair| pair.starts_with("Action="));
        if form || has_action || model.protocol() == Some(Protocol::Query) {
            return Some(Protocol::Query);
        }
    }
    model.protocol()
}

/// Decodes and validates a request: routes it to an operation and reads its input.
///
/// # Errors
/// `InvalidAction` / `UnknownOperationException` for unknown operations, `SerializationException`
/// for malformed JSON, `ValidationError` / `ValidationException` for constraint violations.
pub fn decode_request(model: &'static ServiceModel, request: &RequestParts<'_>) -> Result<Decoded, AwsError> {
    let protocol = detect_protocol(model, request)
        .ok_or_else(|| AwsError::new("UnknownOperationException", 400, "Unsupported protocol"))?;
    let (operation, input) = match protocol {
        Protocol::Query => query::decode(model, &query_params(request))?,
        Protocol::Json => {
            let target = request.headers.get("x-amz-target").and_then(|v| v.to_str().ok());
            json::decode(model, target, request.body)?
        }
        Protocol::RestJson => rest_json::decode_request(model, request)?,
        Protocol::RestXml => {
            return Err(AwsError::new(
                "UnknownOperationException",
                400,
                "rest-xml requests are not decoded here",
            ));
        }
    };
    validate_input(model, operation.name.as_str(), protocol, &input)?;
    Ok(Decoded {
        operation: operation.name.as_str(),
        protocol,
        input,
    })
}

/// Decodes query parameters (already split and percent-decoded) without validating them.
///
/// # Errors
/// `MissingAction` without `Action`, `InvalidAction` for an unknown action or version, and
/// `ValidationError` for values that do not parse as their type.
pub fn decode_query(
    model: &'static ServiceModel,
    params: &[(String, String)],
) -> Result<(&'static str, Value), AwsError> {
    query::decode(model, params).map(|(operation, input)| (operation.name.as_str(), input))
}

/// Decodes a json-protocol body routed by `X-Amz-Target`, without validating it.
///
/// # Errors
/// `UnknownOperationException` for a missing or unknown target, `SerializationException` for a body
/// that is not a JSON object or has members of the wrong type.
pub fn decode_json(
    model: &'static ServiceModel,
    target: Option<&str>,
    body: &[u8],
) -> Result<(&'static str, Value), AwsError> {
    json::decode(model, target, body).map(|(operation, input)| (operation.name.as_str(), input))
}

/// Routes and decodes a rest-json request, without validating it.
///
/// # Errors
/// `UnknownOperationException` (404) when no route matches, `SerializationException` for bad bodies or values.
pub fn decode_rest_json(
    model: &'static ServiceModel,
    request: &RequestParts<'_>,
) -> Result<(&'static str, Value), AwsError> {
    rest_json::decode_request(model, request).map(|(operation, input)| (operation.name.as_str(), input))
}

/// Checks an operation's input against the model constraints.
///
/// # Errors
/// `ValidationError` (query) or `ValidationException` (other protocols), 400, listing every violation.
pub fn validate_input(
    model: &ServiceModel,
    operation: &str,
    protocol: Protocol,
    input: &Value,
) -> Result<(), AwsError> {
    let Some(shape) = model.operation(operation).and_then(|op| op.input.as_ref()) else {
        return Ok(());
    };
    let found = validate::violations(model, &shape.shape, input);
    match validate::summary(&found) {
        None => Ok(()),
        Some(message) => {
            let code = if protocol == Protocol::Query {
                "ValidationError"
            } else {
                "ValidationException"
            };
            Err(AwsError::new(code, 400, message))
        }
    }
}

/// Encodes a success response for `operation` from a `Value` shaped like its output shape.
///
/// # Errors
/// `InternalFailure` when the operation is not in the model (a caller bug) or the protocol is rest-xml.
pub fn encode_response(
    model: &'static ServiceModel,
    operation: &str,
    protocol: Protocol,
    output: &Value,
    request_id: &str,
) -> Result<Encoded, AwsError> {
    let op = model.operation(operation).ok_or_else(AwsError::internal)?;
    let request_header = ("x-amzn-RequestId", request_id.to_owned());
    match protocol {
        Protocol::Query => Ok(Encoded {
            status: 200,
            headers: vec![("Content-Type", "text/xml".to_owned()), request_header],
            body: query::encode(model, op, output, request_id),
        }),
        Protocol::Json => {
            let body = match op.output.as_ref() {
                Some(target) => json::write_body(model, target, output),
                None => b"{}".to_vec(),
            };
            let content_type = format!("application/x-amz-json-{}", model.json_version());
            Ok(Encoded {
                status: 200,
                headers: vec![("Content-Type", content_type), request_header],
                body,
            })
        }
        Protocol::RestJson => {
            let (status, mut headers, body) = rest_json::encode(model, op, output);
            headers.push(("Content-Type", "application/json".to_owned()));
            headers.push(request_header);
            Ok(Encoded { status, headers, body })
        }
        Protocol::RestXml => Err(AwsError::internal()),
    }
}

/// The form parameters of a query request: the query string plus, for form bodies, the body.
fn query_params(request: &RequestParts<'_>) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = form_urlencoded::parse(request.query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if !request.body.is_empty() {
        params.extend(form_urlencoded::parse(request.body).map(|(k, v)| (k.into_owned(), v.into_owned())));
    }
    params
}
