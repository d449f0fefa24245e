//! Model constraints (`required`, `min`/`max`, `pattern`, `enum`) checked generically, worded as AWS words them.
//!
//! AWS reports every violation of a request at once:
//! `2 validation errors detected: Value 'x' at 'userName' failed to satisfy constraint: ...; Value ...`.
//! The member path is the member name with its first letter lower-cased (`userName`), joined with
//! dots, and list items appear as `tags.1.member.key`. Lengths of strings count characters, lengths
//! of lists and maps count entries, and `min`/`max` on numbers are ranges.

use serde_json::Value;

use super::model::{ServiceModel, ShapeRef, ShapeType};

/// Checks `value` against the constraints of the shape named `shape_name` and returns one message per violation.
pub fn violations(model: &ServiceModel, shape_name: &str, value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let target = ShapeRef {
        shape: shape_name.to_owned(),
        ..ShapeRef::default()
    };
    check(model, &target, value, "", &mut found);
    found
}

/// Joins violation messages the way AWS does; `None` when there are none.
pub fn summary(violations: &[String]) -> Option<String> {
    match violations.len() {
        0 => None,
        1 => Some(format!("1 validation error detected: {}", violations.join("; "))),
        n => Some(format!("{n} validation errors detected: {}", violations.join("; "))),
    }
}

/// Lower-cases the first character of a member name, as AWS does in validation paths (`UserName` -> `userName`).
pub fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn check(model: &ServiceModel, target: &ShapeRef, value: &Value, path: &str, found: &mut Vec<String>) {
    let Some(shape) = model.shape(&target.shape) else {
        return;
    };
    let fail = |found: &mut Vec<String>, constraint: String| {
        found.push(format!(
            "Value {} at '{path}' failed to satisfy constraint: Member must {constraint}",
            display_value(value)
        ));
    };
    match shape.kind {
        ShapeType::Structure => {
            let Value::Object(object) = value else {
                return;
            };
            for member in &shape.members {
                let child_path = join(path, &lower_camel(&member.name));
                match object.get(&member.name) {
                    None | Some(Value::Null) => {
                        if shape.required.contains(&member.name) {
                            found.push(format!(
                                "Value null at '{child_path}' failed to satisfy constraint: Member must not be null"
                            ));
                        }
                    }
                    Some(child) => check(model, &member.target, child, &child_path, found),
                }
            }
        }
        ShapeType::List => {
            let Value::Array(items) = value else {
                return;
            };
            length(shape.min, shape.max, items.len(), &mut |c| fail(found, c));
            if let Some(member) = shape.member.as_ref() {
                for (index, item) in items.iter().enumerate() {
                    if !item.is_null() {
                        check(model, member, item, &format!("{path}.{}.member", index + 1), found);
                    }
                }
            }
        }
        ShapeType::Map => {
            let Value::Object(entries) = value else {
                return;
            };
            length(shape.min, shape.max, entries.len(), &mut |c| fail(found, c));
            for (key, item) in entries {
                if let Some(key_ref) = shape.key.as_ref() {
                    check(
                        model,
                        key_ref,
                        &Value::String(key.clone()),
                        &format!("{path}.{key}.key"),
                        found,
                    );
                }
                if let Some(value_ref) = shape.value.as_ref() {
                    check(model, value_ref, item, &format!("{path}.{key}.value"), found);
                }
            }
        }
        ShapeType::String => {
            let Value::String(text) = value else {
                return;
            };
            length(shape.min, shape.max, text.chars().count(), &mut |c| fail(found, c));
            if let Some(regex) = shape.regex()
                && !regex.is_match(text)
            {
                let pattern = shape.pattern.as_deref().unwrap_or_default();
                fail(found, format!("satisfy regular expression pattern: {pattern}"));
            }
            if !shape.enum_values.is_empty() && !shape.enum_values.iter().any(|allowed| allowed == text) {
                fail(
                    found,
                    format!("satisfy enum value set: [{}]", shape.enum_values.join(", ")),
                );
            }
        }
        ShapeType::Blob => {
            // The length of a blob is its decoded length; base64 text is 4 characters per 3 bytes.
            let Value::String(text) = value else {
                return;
            };
            let trimmed = text.trim_end_matches('=');
            let decoded_len = trimmed.len() * 3 / 4;
            length(shape.min, shape.max, decoded_len, &mut |c| fail(found, c));
        }
        kind if kind.is_integer() || matches!(kind, ShapeType::Double | ShapeType::Float) => {
            let Some(number) = value.as_f64() else {
                return;
            };
            if let Some(min) = shape.min
                && number < min
            {
                fail(
                    found,
                    format!("have value greater than or equal to {}", number_text(min)),
                );
            }
            if let Some(max) = shape.max
                && number > max
            {
                fail(found, format!("have value less than or equal to {}", number_text(max)));
            }
        }
        _ => {}
    }
}

fn length(min: Option<f64>, max: Option<f64>, actual: usize, fail: &mut dyn FnMut(String)) {
    let actual = actual as f64;
    if let Some(min) = min
        && actual < min
    {
        fail(format!("have length greater than or equal to {}", number_text(min)));
    }
    if let Some(max) = max
        && actual > max
    {
        fail(format!("have length less than or equal to {}", number_text(max)));
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn number_text(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e18 {
        format!("{}", number as i64)
    } else {
        number.to_string()
    }
}

/// Renders a value as AWS does in the message: scalars quoted (`'bob'`), lists in Java's `[a, b]` form.
fn display_value(value: &Value) -> String {
    format!("'{}'", java_text(value))
}

fn java_text(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::String(text) => text.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(java_text).collect::<Vec<_>>().join(", ")),
        Value::Object(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{k}={}", java_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}
