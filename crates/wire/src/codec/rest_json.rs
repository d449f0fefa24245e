//! The `rest-json` protocol (GuardDuty, Macie, Inspector v2): routing on method and URI template,
//! members bound to labels, the query string, headers and the JSON body.
//!
//! Routes are built once per model from `http.requestUri`. A request is matched against every route
//! of its method and the most specific one wins (most literal segments, then most literal query keys),
//! so `/detector/{DetectorId}/findings/get` beats `/detector/{DetectorId}/findings/{Id}`.

use std::collections::HashMap;

use base64::Engine;
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use super::model::{Operation, ServiceModel, ShapeRef, ShapeType};
use super::{RequestParts, json, scalar, timestamp};
use crate::AwsError;

/// One segment of a request URI template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    /// Text that must appear as is.
    Literal(String),
    /// `{Name}`: one path segment.
    Label(String),
    /// `{Name+}`: the rest of the path, slashes included.
    Greedy(String),
}

/// A compiled `http.requestUri` of one operation.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    operation: String,
    method: String,
    segments: Vec<Segment>,
    /// Query keys the template requires (`?list-type=2`), with their value when it has one.
    query: Vec<(String, Option<String>)>,
}

impl Route {
    fn parse(operation: &Operation) -> Self {
        let (path, query) = operation
            .http
            .request_uri
            .split_once('?')
            .unwrap_or((&operation.http.request_uri, ""));
        let segments = split_path(path)
            .map(|segment| {
                if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    match name.strip_suffix('+') {
                        Some(greedy) => Segment::Greedy(greedy.to_owned()),
                        None => Segment::Label(name.to_owned()),
                    }
                } else {
                    Segment::Literal(segment.to_owned())
                }
            })
            .collect();
        let query = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) => (key.to_owned(), Some(value.to_owned())),
                None => (pair.to_owned(), None),
            })
            .collect();
        Self {
            operation: operation.name.clone(),
            method: operation.http.method.clone(),
            segments,
            query,
        }
    }

    /// Matches a raw (percent-encoded) path; returns the decoded labels.
    fn matches(&self, path: &[&str], query: &[(String, String)]) -> Option<HashMap<String, String>> {
        let mut labels = HashMap::new();
        let mut index = 0;
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => {
                    if path.get(index).map(|s| decode(s)) != Some(text.clone()) {
                        return None;
                    }
                    index += 1;
                }
                Segment::Label(name) => {
                    let value = path.get(index).filter(|s| !s.is_empty())?;
                    labels.insert(name.clone(), decode(value));
                    index += 1;
                }
                Segment::Greedy(name) => {
                    let rest = path.get(index..).filter(|rest| !rest.is_empty())?;
                    labels.insert(
                        name.clone(),
                        rest.iter().map(|s| decode(s)).collect::<Vec<_>>().join("/"),
                    );
                    index = path.len();
                }
            }
        }
        if index != path.len() {
            return None;
        }
        for (key, value) in &self.query {
            let present = query
                .iter()
                .any(|(k, v)| k == key && value.as_ref().is_none_or(|value| v == value));
            if !present {
                return None;
            }
        }
        Some(labels)
    }

    fn specificity(&self) -> (usize, usize) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        (literals, self.query.len())
    }
}

fn split_path(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.trim_start_matches('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    trimmed.split('/').filter(move |_| !trimmed.is_empty())
}

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

fn routes(model: &ServiceModel) -> &[Route] {
    model.routes.get_or_init(|| {
        let mut routes: Vec<Route> = model.operations.values().map(Route::parse).collect();
        routes.sort_by(|a, b| {
            b.specificity()
                .cmp(&a.specificity())
                .then_with(|| a.operation.cmp(&b.operation))
        });
        routes
    })
}

/// Routes a rest-json request and decodes its input.
pub(crate) fn decode_request(
    model: &'static ServiceModel,
    request: &RequestParts<'_>,
) -> Result<(&'static Operation, Value), AwsError> {
    let query: Vec<(String, String)> = form_urlencoded::parse(request.query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let path: Vec<&str> = split_path(request.path).collect();
    let (route, labels) = routes(model)
        .iter()
        .filter(|route| route.method.eq_ignore_ascii_case(request.method))
        .find_map(|route| route.matches(&path, &query).map(|labels| (route, labels)))
        .ok_or_else(|| {
            AwsError::new(
                "UnknownOperationException",
                404,
                "The requested operation was not found",
            )
        })?;
    let operation = model.operation(&route.operation).ok_or_else(AwsError::internal)?;
    let Some(input) = operation.input.as_ref() else {
        return Ok((operation, Value::Object(Map::new())));
    };
    let shape = model.shape(&input.shape).ok_or_else(AwsError::internal)?;
    let serialization = |message: String| AwsError::new("SerializationException", 400, message);

    let mut object = Map::new();
    if let Some(payload_name) = shape.payload.as_deref()
        && let Some(member) = shape.member(payload_name)
    {
        let payload_kind = model.shape(&member.target.shape).map(|s| s.kind);
        let value = match payload_kind {
            Some(ShapeType::Blob) => (!request.body.is_empty())
                .then(|| Value::String(base64::engine::general_purpose::STANDARD.encode(request.body))),
            Some(ShapeType::String) => {
                (!request.body.is_empty()).then(|| Value::String(String::from_utf8_lossy(request.body).into_owned()))
            }
            _ => {
                let document = json::parse_body(request.body)?;
                json::read_value(model, &member.target, &document).map_err(serialization)?
            }
        };
        if let Some(value) = value {
            object.insert(member.name.clone(), value);
        }
    } else {
        let document = json::parse_body(request.body)?;
        if let Some(Value::Object(body)) = json::read_value(model, input, &document).map_err(serialization)? {
            object = body;
        }
    }

    for member in &shape.members {
        let Some(location) = member.target.location.as_deref() else {
            continue;
        };
        let wire = member.wire_name();
        let kind = model.shape(&member.target.shape).map_or(ShapeType::String, |s| s.kind);
        let value = match location {
            "uri" => labels.get(wire).map(|text| text_value(kind, text)).transpose()?,
            "querystring" => query_member(model, &member.target, kind, wire, &query, shape.members.iter())?,
            "header" => request
                .headers
                .get(wire)
                .and_then(|v| v.to_str().ok())
                .map(|text| header_value(model, &member.target, kind, text))
                .transpose()?,
            "headers" => {
                let prefix = wire.to_ascii_lowercase();
                let mut map = Map::new();
                for (name, value) in request.headers {
                    if let (Some(rest), Ok(text)) = (name.as_str().strip_prefix(&prefix), value.to_str()) {
                        map.insert(rest.to_owned(), Value::String(text.to_owned()));
                    }
                }
                (!map.is_empty()).then_some(Value::Object(map))
            }
            _ => None,
        };
        if let Some(value) = value {
            object.insert(member.name.clone(), value);
        }
    }
    Ok((operation, Value::Object(object)))
}

fn text_value(kind: ShapeType, text: &str) -> Result<Value, AwsError> {
    scalar::from_text(kind, text).map_err(|expected| {
        AwsError::new(
            "SerializationException",
            400,
            format!("Value '{text}' could not be read as {expected}"),
        )
    })
}

fn header_value(model: &ServiceModel, target: &ShapeRef, kind: ShapeType, text: &str) -> Result<Value, AwsError> {
    if target.jsonvalue {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        return decoded.ok_or_else(|| AwsError::new("SerializationException", 400, "Header value is not base64 JSON"));
    }
    if kind == ShapeType::List {
        let member_kind = model
            .shape(&target.shape)
            .and_then(|s| s.member.as_ref())
            .and_then(|m| model.shape(&m.shape))
            .map_or(ShapeType::String, |s| s.kind);
        let items = text
            .split(',')
            .map(|item| text_value(member_kind, item.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Value::Array(items));
    }
    text_value(kind, text)
}

fn query_member<'a>(
    model: &ServiceModel,
    target: &ShapeRef,
    kind: ShapeType,
    wire: &str,
    query: &[(String, String)],
    all_members: impl Iterator<Item = &'a super::model::Member>,
) -> Result<Option<Value>, AwsError> {
    let shape = model.shape(&target.shape);
    match kind {
        ShapeType::List => {
            let member_kind = shape
                .and_then(|s| s.member.as_ref())
                .and_then(|m| model.shape(&m.shape))
                .map_or(ShapeType::String, |s| s.kind);
            let items = query
                .iter()
                .filter(|(k, _)| k == wire)
                .map(|(_, v)| text_value(member_kind, v))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((!items.is_empty()).then_some(Value::Array(items)))
        }
        ShapeType::Map => {
            // A query-string map takes every parameter no other member claims.
            let claimed: Vec<&str> = all_members
                .filter(|m| m.target.location.as_deref() == Some("querystring"))
                .map(|m| m.wire_name())
                .collect();
            let mut map = Map::new();
            for (key, value) in query.iter().filter(|(k, _)| !claimed.contains(&k.as_str())) {
                map.insert(key.clone(), Value::String(value.clone()));
            }
            Ok((!map.is_empty()).then_some(Value::Object(map)))
        }
        _ => query
            .iter()
            .find(|(k, _)| k == wire)
            .map(|(_, v)| text_value(kind, v))
            .transpose(),
    }
}

/// Encodes a rest-json success: status from `responseCode` (or a `statusCode` member), header members, JSON body.
pub(crate) fn encode(
    model: &'static ServiceModel,
    operation: &Operation,
    output: &Value,
) -> (u16, Vec<(&'static str, String)>, Vec<u8>) {
    let mut status = operation.http.response_code.unwrap_or(200);
    let mut headers = Vec::new();
    let Some(target) = operation.output.as_ref() else {
        return (status, headers, Vec::new());
    };
    let Some(shape) = model.shape(&target.shape) else {
        return (status, headers, Vec::new());
    };
    let object = output.as_object();
    for member in &shape.members {
        let Some(value) = object.and_then(|o| o.get(&member.name)).filter(|v| !v.is_null()) else {
            continue;
        };
        match member.target.location.as_deref() {
            Some("statusCode") => {
                if let Some(code) = value.as_u64().and_then(|c| u16::try_from(c).ok()) {
                    status = code;
                }
            }
            Some("header") => {
                if let Some(text) = header_text(model, &member.target, value) {
                    headers.push((member.wire_name(), text));
                }
            }
            _ => {}
        }
    }
    let body = match shape.payload.as_deref().and_then(|name| shape.member(name)) {
        Some(member) => {
            let value = object.and_then(|o| o.get(&member.name));
            match (model.shape(&member.target.shape).map(|s| s.kind), value) {
                (Some(ShapeType::Blob), Some(Value::String(text))) => base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .unwrap_or_else(|_| text.clone().into_bytes()),
                (Some(ShapeType::String), Some(Value::String(text))) => text.clone().into_bytes(),
                (_, Some(value)) => json::write_value(model, &member.target, value)
                    .map(|v| json::to_bytes(&v))
                    .unwrap_or_default(),
                (_, None) => Vec::new(),
            }
        }
        None => json::write_body(model, target, output),
    };
    (status, headers, body)
}

fn header_text(model: &ServiceModel, target: &ShapeRef, value: &Value) -> Option<String> {
    let shape = model.shape(&target.shape)?;
    if target.jsonvalue {
        return Some(base64::engine::general_purpose::STANDARD.encode(value.to_string()));
    }
    match (shape.kind, value) {
        (ShapeType::Timestamp, _) => timestamp::format_http_date(timestamp::from_value(value)?),
        (ShapeType::List, Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        (_, Value::String(text)) => Some(text.clone()),
        (_, Value::Number(_) | Value::Bool(_)) => Some(value.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str, method: &str, uri: &str) -> Operation {
        serde_json::from_value(serde_json::json!({"name": name, "http": {"method": method, "requestUri": uri}}))
            .unwrap()
    }

    #[test]
    fn routes_match_labels_and_greedy_labels() {
        let findings = Route::parse(&op("ListFindings", "POST", "/detector/{DetectorId}/findings"));
        let path: Vec<&str> = split_path("/detector/det%3A1%2Fx/findings").collect();
        let labels = findings.matches(&path, &[]).unwrap();
        assert_eq!(labels["DetectorId"], "det:1/x");
        assert!(
            findings
                .matches(&split_path("/detector/x").collect::<Vec<_>>(), &[])
                .is_none()
        );

        let object = Route::parse(&op("GetObject", "GET", "/{Bucket}/{Key+}"));
        let labels = object
            .matches(&split_path("/b/a%20b/c%2Bd").collect::<Vec<_>>(), &[])
            .unwrap();
        assert_eq!(labels["Key"], "a b/c+d");

        let listing = Route::parse(&op("ListObjectsV2", "GET", "/{Bucket}?list-type=2"));
        let query = vec![("list-type".to_owned(), "2".to_owned())];
        assert!(listing.matches(&["b"], &query).is_some());
        assert!(listing.matches(&["b"], &[]).is_none());
        assert!(listing.specificity() > Route::parse(&op("ListObjects", "GET", "/{Bucket}")).specificity());
    }
}
