//! The `query` protocol (IAM, STS, CloudWatch's legacy mode): form parameters in, XML out.
//!
//! Decoding first arranges the flat `A.member.1.B=x` parameters into a tree keyed by the dotted
//! segments, then walks the operation's input shape over that tree. Walking the shape (rather than
//! the parameters) is what makes unknown parameters harmless, as they are for AWS, and what tells
//! a list from a structure without guessing from the key names.
//!
//! Encoding writes XML by hand into one `String`: the documents are small and flat, and the fast
//! path (`GetCallerIdentity` at tens of thousands per second) should not pay for a general writer.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::model::{Operation, ServiceModel, Shape, ShapeRef, ShapeType};
use super::{scalar, timestamp};
use crate::AwsError;

/// The parameters of one request arranged by their dotted segments.
#[derive(Default, Debug)]
struct Node<'a> {
    /// The value of the parameter that ends at this node, if one does.
    value: Option<&'a str>,
    /// Children by the next segment.
    children: BTreeMap<&'a str, Node<'a>>,
}

impl<'a> Node<'a> {
    fn insert(&mut self, key: &'a str, value: &'a str) {
        let mut node = self;
        for segment in key.split('.') {
            node = node.children.entry(segment).or_default();
        }
        node.value = Some(value);
    }

    /// Children whose segment is a positive index, in index order.
    fn indexed(&self) -> Vec<&Node<'a>> {
        let mut items: Vec<(u64, &Node<'a>)> = self
            .children
            .iter()
            .filter_map(|(segment, node)| segment.parse::<u64>().ok().filter(|i| *i > 0).map(|i| (i, node)))
            .collect();
        items.sort_by_key(|(index, _)| *index);
        items.into_iter().map(|(_, node)| node).collect()
    }
}

/// Finds the operation named by `Action` and decodes the other parameters into its input shape.
pub(crate) fn decode(
    model: &'static ServiceModel,
    params: &[(String, String)],
) -> Result<(&'static Operation, Value), AwsError> {
    let mut action = None;
    let mut version = None;
    for (key, value) in params {
        match key.as_str() {
            "Action" => action = Some(value.as_str()),
            "Version" => version = Some(value.as_str()),
            _ => {}
        }
    }
    let Some(action) = action.filter(|a| !a.is_empty()) else {
        return Err(AwsError::new("MissingAction", 400, "Missing Action"));
    };
    let version = version.unwrap_or("NO_VERSION_SPECIFIED");
    let operation = model
        .operation(action)
        .filter(|_| version == model.metadata.api_version)
        .ok_or_else(|| {
            AwsError::new(
                "InvalidAction",
                400,
                format!("Could not find operation {action} for version {version}"),
            )
        })?;
    let Some(input) = operation.input.as_ref() else {
        return Ok((operation, Value::Object(Map::new())));
    };
    let mut root = Node::default();
    for (key, value) in params {
        if key != "Action" && key != "Version" {
            root.insert(key, value);
        }
    }
    let value = read_structure(model, input, &root, "")?;
    Ok((operation, value))
}

fn read(model: &ServiceModel, target: &ShapeRef, node: &Node<'_>, path: &str) -> Result<Option<Value>, AwsError> {
    let Some(shape) = model.shape(&target.shape) else {
        return Ok(None);
    };
    match shape.kind {
        ShapeType::Structure => read_structure(model, target, node, path).map(Some),
        ShapeType::List => {
            let flattened = target.flattened || shape.flattened;
            let Some(member) = shape.member.as_ref() else {
                return Ok(None);
            };
            // `Name=` with an empty value and nothing below it is an explicitly empty list.
            if node.children.is_empty() {
                return Ok(node.value.map(|_| Value::Array(Vec::new())));
            }
            let items_node = if flattened {
                Some(node)
            } else {
                node.children.get(member.location_name.as_deref().unwrap_or("member"))
            };
            let Some(items_node) = items_node else {
                return Ok(Some(Value::Array(Vec::new())));
            };
            let mut items = Vec::new();
            for (position, item) in items_node.indexed().into_iter().enumerate() {
                let item_path = format!("{path}.{}.member", position + 1);
                if let Some(value) = read(model, member, item, &item_path)? {
                    items.push(value);
                }
            }
            Ok(Some(Value::Array(items)))
        }
        ShapeType::Map => {
            let (Some(key_ref), Some(value_ref)) = (shape.key.as_ref(), shape.value.as_ref()) else {
                return Ok(None);
            };
            let flattened = target.flattened || shape.flattened;
            let entries_node = if flattened {
                Some(node)
            } else {
                node.children.get("entry")
            };
            let mut map = Map::new();
            if let Some(entries_node) = entries_node {
                let key_name = key_ref.location_name.as_deref().unwrap_or("key");
                let value_name = value_ref.location_name.as_deref().unwrap_or("value");
                for entry in entries_node.indexed() {
                    let Some(key) = entry.children.get(key_name).and_then(|k| k.value) else {
                        continue;
                    };
                    let Some(value_node) = entry.children.get(value_name) else {
                        continue;
                    };
                    if let Some(value) = read(model, value_ref, value_node, &format!("{path}.{key}"))? {
                        map.insert(key.to_owned(), value);
                    }
                }
            }
            Ok(Some(Value::Object(map)))
        }
        kind => match node.value {
            None => Ok(None),
            Some(text) => scalar::from_text(kind, text).map(Some).map_err(|expected| {
                AwsError::new(
                    "ValidationError",
                    400,
                    format!(
                        "1 validation error detected: Value '{text}' at '{}' failed to satisfy constraint: \
                         Member must be {expected}",
                        path.trim_start_matches('.')
                    ),
                )
            }),
        },
    }
}

fn read_structure(model: &ServiceModel, target: &ShapeRef, node: &Node<'_>, path: &str) -> Result<Value, AwsError> {
    let mut object = Map::new();
    let Some(shape) = model.shape(&target.shape) else {
        return Ok(Value::Object(object));
    };
    for member in &shape.members {
        let Some(child) = node.children.get(member.wire_name()) else {
            continue;
        };
        let child_path = format!("{path}.{}", super::validate::lower_camel(&member.name));
        if let Some(value) = read(model, &member.target, child, &child_path)? {
            object.insert(member.name.clone(), value);
        }
    }
    Ok(Value::Object(object))
}

/// Writes a query success document: `<OpResponse xmlns=..><OpResult>..</OpResult><ResponseMetadata>..`.
pub(crate) fn encode(model: &ServiceModel, operation: &Operation, output: &Value, request_id: &str) -> Vec<u8> {
    let mut out = String::with_capacity(256);
    let name = operation.name.as_str();
    out.push('<');
    out.push_str(name);
    out.push_str("Response");
    if let Some(namespace) = model.metadata.xml_namespace.as_deref() {
        out.push_str(" xmlns=\"");
        escape_into(&mut out, namespace);
        out.push('"');
    }
    out.push('>');
    if let Some(target) = operation.output.as_ref() {
        let wrapper = target.result_wrapper.clone().unwrap_or_else(|| format!("{name}Result"));
        write_element(&mut out, model, target, &wrapper, output);
    }
    out.push_str("<ResponseMetadata><RequestId>");
    escape_into(&mut out, request_id);
    out.push_str("</RequestId></ResponseMetadata></");
    out.push_str(name);
    out.push_str("Response>");
    out.into_bytes()
}

/// Writes `<element>value</element>` following the shape of `target`. Values that do not fit the
/// shape (a handler bug) are written as well as they can be rather than failing the response.
pub(crate) fn write_element(out: &mut String, model: &ServiceModel, target: &ShapeRef, element: &str, value: &Value) {
    let Some(shape) = model.shape(&target.shape) else {
        return;
    };
    match shape.kind {
        ShapeType::Structure => {
            open(out, element);
            if let Value::Object(object) = value {
                for member in &shape.members {
                    match object.get(&member.name) {
                        None | Some(Value::Null) => {}
                        Some(child) => write_member(out, model, &member.target, member.wire_name(), child),
                    }
                }
            }
            close(out, element);
        }
        ShapeType::List | ShapeType::Map => {
            if target.flattened || shape.flattened {
                write_member(out, model, target, element, value);
            } else {
                open(out, element);
                write_collection_items(out, model, shape, value);
                close(out, element);
            }
        }
        _ => {
            if let Some(text) = scalar_text(model, target, shape, value) {
                open(out, element);
                escape_into(out, &text);
                close(out, element);
            }
        }
    }
}

/// Writes a structure member; flattened collections repeat the member element instead of nesting.
fn write_member(out: &mut String, model: &ServiceModel, target: &ShapeRef, element: &str, value: &Value) {
    let Some(shape) = model.shape(&target.shape) else {
        return;
    };
    let flattened = target.flattened || shape.flattened;
    match (shape.kind, flattened) {
        (ShapeType::List, true) => {
            let (Some(member), Value::Array(items)) = (shape.member.as_ref(), value) else {
                return;
            };
            for item in items {
                write_element(out, model, member, element, item);
            }
        }
        (ShapeType::Map, true) => {
            let (Some(key), Some(item), Value::Object(entries)) = (shape.key.as_ref(), shape.value.as_ref(), value)
            else {
                return;
            };
            for (entry_key, entry_value) in entries {
                open(out, element);
                write_element(
                    out,
                    model,
                    key,
                    key.location_name.as_deref().unwrap_or("key"),
                    &Value::from(entry_key.as_str()),
                );
                write_element(
                    out,
                    model,
                    item,
                    item.location_name.as_deref().unwrap_or("value"),
                    entry_value,
                );
                close(out, element);
            }
        }
        (ShapeType::List | ShapeType::Map, false) => {
            open(out, element);
            write_collection_items(out, model, shape, value);
            close(out, element);
        }
        _ => write_element(out, model, target, element, value),
    }
}

fn write_collection_items(out: &mut String, model: &ServiceModel, shape: &Shape, value: &Value) {
    match (shape.kind, value) {
        (ShapeType::List, Value::Array(items)) => {
            if let Some(member) = shape.member.as_ref() {
                let name = member.location_name.as_deref().unwrap_or("member");
                for item in items {
                    write_element(out, model, member, name, item);
                }
            }
        }
        (ShapeType::Map, Value::Object(entries)) => {
            if let (Some(key), Some(item)) = (shape.key.as_ref(), shape.value.as_ref()) {
                for (entry_key, entry_value) in entries {
                    out.push_str("<entry>");
                    write_element(
                        out,
                        model,
                        key,
                        key.location_name.as_deref().unwrap_or("key"),
                        &Value::from(entry_key.as_str()),
                    );
                    write_element(
                        out,
                        model,
                        item,
                        item.location_name.as_deref().unwrap_or("value"),
                        entry_value,
                    );
                    out.push_str("</entry>");
                }
            }
        }
        _ => {}
    }
}

/// The text of a scalar as query/XML services write it.
pub(crate) fn scalar_text(model: &ServiceModel, target: &ShapeRef, shape: &Shape, value: &Value) -> Option<String> {
    let text = match (shape.kind, value) {
        (_, Value::Null | Value::Array(_) | Value::Object(_)) => return None,
        (ShapeType::Timestamp, _) => {
            let seconds = timestamp::from_value(value)?;
            let format = target.timestamp_format.as_deref().or(shape.timestamp_format.as_deref());
            match format {
                Some("unixTimestamp") => timestamp::epoch_number(seconds).to_string(),
                Some("rfc822") => timestamp::format_http_date(seconds)?,
                _ => timestamp::format_iso8601(seconds)?,
            }
        }
        (ShapeType::String, Value::String(text)) if is_policy_document(model, &target.shape) => {
            percent_encoding::utf8_percent_encode(text, POLICY_ENCODE_SET).to_string()
        }
        (kind, Value::Number(number)) if kind.is_integer() => match number.as_i64() {
            Some(integer) => integer.to_string(),
            None => number
                .as_f64()
                .map_or_else(|| number.to_string(), |f| format!("{}", f.trunc() as i64)),
        },
        (_, Value::String(text)) => text.clone(),
        (_, Value::Bool(flag)) => flag.to_string(),
        (_, Value::Number(number)) => number.to_string(),
    };
    Some(text)
}

/// Every byte but RFC 3986's unreserved characters is percent-encoded in IAM policy documents.
const POLICY_ENCODE_SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// IAM sends the documents of shape `policyDocumentType` percent-encoded; botocore's
/// `json_decode_policies` handler undoes it. Only IAM's query model has that shape.
fn is_policy_document(model: &ServiceModel, shape_name: &str) -> bool {
    shape_name.eq_ignore_ascii_case("policyDocumentType") && model.metadata.endpoint_prefix == "iam"
}

fn open(out: &mut String, element: &str) {
    out.push('<');
    out.push_str(element);
    out.push('>');
}

fn close(out: &mut String, element: &str) {
    out.push_str("</");
    out.push_str(element);
    out.push('>');
}

/// Appends `text` with the XML special characters escaped. `\r` is written as a character reference so
/// that XML parsers' line-end normalisation does not turn it into `\n`.
pub(crate) fn escape_into(out: &mut String, text: &str) {
    let mut start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let replacement = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&apos;",
            b'\r' => "&#xD;",
            _ => continue,
        };
        out.push_str(text.get(start..index).unwrap_or_default());
        out.push_str(replacement);
        start = index + 1;
    }
    out.push_str(text.get(start..).unwrap_or_default());
}
