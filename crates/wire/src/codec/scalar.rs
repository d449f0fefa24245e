//! Scalars read from text (query parameters, rest-json labels, query strings and headers).

use base64::Engine;
use serde_json::Value;

use super::model::ShapeType;
use super::timestamp;

/// Converts the text of a scalar member to its JSON form, or says what was expected.
///
/// Integers become JSON integers, doubles JSON floats, booleans JSON booleans, timestamps epoch seconds,
/// blobs stay base64 text (after checking that they are base64) and strings stay as they are.
pub fn from_text(kind: ShapeType, text: &str) -> Result<Value, &'static str> {
    match kind {
        ShapeType::Boolean => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("a boolean (true or false)"),
        },
        ShapeType::Integer | ShapeType::Long | ShapeType::Short | ShapeType::Byte => {
            text.trim().parse::<i64>().map(Value::from).map_err(|_| "an integer")
        }
        ShapeType::Double | ShapeType::Float => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or("a number"),
        ShapeType::Timestamp => timestamp::parse_text(text)
            .map(timestamp::epoch_number)
            .ok_or("a timestamp"),
        ShapeType::Blob => {
            if is_base64(text) {
                Ok(Value::String(text.to_owned()))
            } else {
                Err("base64-encoded binary data")
            }
        }
        _ => Ok(Value::String(text.to_owned())),
    }
}

/// True when `text` is standard base64 (padding optional, as AWS tolerates).
pub fn is_base64(text: &str) -> bool {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    engine.decode(text.trim()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_text_by_shape_type() {
        let cases: &[(ShapeType, &str, Result<Value, ()>)] = &[
            (ShapeType::Boolean, "true", Ok(json!(true))),
            (ShapeType::Boolean, "yes", Err(())),
            (ShapeType::Integer, "42", Ok(json!(42))),
            (ShapeType::Integer, "4.2", Err(())),
            (ShapeType::Double, "4.5", Ok(json!(4.5))),
            (ShapeType::Double, "inf", Err(())),
            (ShapeType::Timestamp, "2024-01-01T00:00:00Z", Ok(json!(1_704_067_200))),
            (ShapeType::Blob, "aGVsbG8=", Ok(json!("aGVsbG8="))),
            (ShapeType::Blob, "not base64!", Err(())),
            (ShapeType::String, "a b", Ok(json!("a b"))),
        ];
        for (kind, text, expected) in cases {
            assert_eq!(from_text(*kind, text).map_err(|_| ()), *expected, "{kind:?} {text}");
        }
    }
}
