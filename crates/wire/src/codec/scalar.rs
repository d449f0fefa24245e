//! Scalars read from text (query parameters, rest-json labels, query strings and headers).

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
///
/// This runs on every blob of every request (a KMS plaintext, an S3 Content-MD5), and the service
/// decodes the blob again where it uses it, so it only checks the text instead of decoding it: the
/// same verdict as the `base64` crate's standard engine with padding indifferent and trailing bits
/// allowed (the tests compare the two), in a fraction of the time.
pub fn is_base64(text: &str) -> bool {
    let bytes = text.trim().as_bytes();
    let symbols = bytes.iter().rposition(|&b| b != b'=').map_or(0, |last| last + 1);
    let body = bytes.get(..symbols).unwrap_or_default();
    if !body.chunks(64).all(all_symbols) {
        return false;
    }
    // The decoder reads the text in groups of four, the last group being the final 1 to 4
    // characters. A last group of one character carries no whole byte, and padding may only
    // end the last group, after at least two symbols.
    let last_group = match bytes.len() % 4 {
        1 => return false,
        0 => bytes.len().min(4),
        rest => rest,
    };
    bytes.is_empty() || body.len() >= bytes.len() - last_group + 2
}

/// Whether every byte of `chunk` is in the standard base64 alphabet. Written without branches or
/// a table so that the compiler vectorizes it: a KMS plaintext of 4 KiB is 5,464 characters.
fn all_symbols(chunk: &[u8]) -> bool {
    let outside = chunk.iter().fold(0u8, |outside, &b| {
        let symbol = (b.wrapping_sub(b'A') < 26)
            | (b.wrapping_sub(b'a') < 26)
            | (b.wrapping_sub(b'0') < 10)
            | (b == b'+')
            | (b == b'/');
        outside | u8::from(!symbol)
    });
    outside == 0
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

    /// What `is_base64` must agree with: decoding with the `base64` crate.
    fn decodes(text: &str) -> bool {
        use base64::Engine;
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
                .with_decode_allow_trailing_bits(true),
        );
        engine.decode(text.trim()).is_ok()
    }

    #[test]
    fn is_base64_agrees_with_decoding_on_every_short_text() {
        // Every string of up to 7 characters over symbols that matter: alphabet members, padding,
        // trimmed and untrimmed whitespace, and characters outside the alphabet.
        let symbols = ['A', '/', '=', ' ', '-', '\u{e9}'];
        let mut texts = vec![String::new()];
        let mut longest = texts.clone();
        for _ in 0..7 {
            longest = longest
                .iter()
                .flat_map(|t| symbols.iter().map(move |c| format!("{t}{c}")))
                .collect();
            texts.extend(longest.iter().cloned());
        }
        assert!(texts.len() > 300_000);
        for text in &texts {
            assert_eq!(is_base64(text), decodes(text), "{text:?}");
        }
    }

    #[test]
    fn is_base64_agrees_with_decoding_on_encoded_data_and_its_damage() {
        use base64::Engine;
        for len in 0..70usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            let padded = base64::engine::general_purpose::STANDARD.encode(&data);
            let unpadded = padded.trim_end_matches('=').to_owned();
            for text in [
                padded.clone(),
                unpadded.clone(),
                format!(" {padded}\n"),
                format!("{padded}="),
            ] {
                assert_eq!(is_base64(&text), decodes(&text), "{text:?}");
            }
            assert!(is_base64(&padded) && is_base64(&unpadded));
            for at in 0..padded.len() {
                for replacement in ["=", "!", "_", "a"] {
                    let mut damaged = padded.clone();
                    damaged.replace_range(at..at + 1, replacement);
                    assert_eq!(is_base64(&damaged), decodes(&damaged), "{damaged:?}");
                }
            }
        }
    }
}
