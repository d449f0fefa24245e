//! Timestamps as the protocols write them.
//!
//! Handlers see every timestamp as a JSON number of epoch seconds (an `f64`), whatever the wire used,
//! so that one representation flows through the services. The codecs convert at the edge: ISO 8601
//! for query and XML, epoch seconds for JSON bodies, RFC 7231 dates for rest headers.

use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Parses a textual timestamp: epoch seconds, RFC 3339 / ISO 8601 (with or without zone, with or without
/// fractional seconds), a bare date, or an RFC 7231 HTTP date.
pub fn parse_text(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(number) = text.parse::<f64>() {
        return number.is_finite().then_some(number);
    }
    if let Ok(parsed) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(to_epoch(parsed));
    }
    // ISO 8601 without an offset is read as UTC, as AWS does.
    if !text.ends_with('Z') && !text.contains('+') {
        if let Ok(parsed) = OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339) {
            return Some(to_epoch(parsed));
        }
        if let Some(date) = parse_date(text) {
            return Some(to_epoch(PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc()));
        }
    }
    // A basic-format date with `+0000`-style offsets or `Z` (`20240101T000000Z`) is rare; RFC 7231 is not.
    httpdate::parse_http_date(text).ok().and_then(|t| {
        let seconds = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
        Some(seconds as f64)
    })
}

/// Reads a timestamp from a JSON value: a number of epoch seconds or any text [`parse_text`] accepts.
pub fn from_value(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        serde_json::Value::String(s) => parse_text(s),
        _ => None,
    }
}

/// Formats epoch seconds as ISO 8601 UTC: `2024-01-01T00:00:00Z`, or with milliseconds when the time
/// has a fraction (`2024-01-01T00:00:00.250Z`).
pub fn format_iso8601(seconds: f64) -> Option<String> {
    let (whole, millis) = split_millis(seconds)?;
    let moment = OffsetDateTime::from_unix_timestamp(whole).ok()?;
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        moment.year(),
        u8::from(moment.month()),
        moment.day(),
        moment.hour(),
        moment.minute(),
        moment.second()
    );
    if millis != 0 {
        out.push_str(&format!(".{millis:03}"));
    }
    out.push('Z');
    Some(out)
}

/// Formats epoch seconds as an RFC 7231 HTTP date (rest protocol headers).
pub fn format_http_date(seconds: f64) -> Option<String> {
    let (whole, _) = split_millis(seconds)?;
    let whole = u64::try_from(whole).ok()?;
    Some(httpdate::fmt_http_date(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(whole),
    ))
}

/// A JSON number for epoch seconds: an integer when whole (as botocore and AWS write them), else a float.
pub fn epoch_number(seconds: f64) -> serde_json::Value {
    if seconds.fract() == 0.0 && seconds.abs() < 9.0e15 {
        serde_json::Value::from(seconds as i64)
    } else {
        serde_json::Number::from_f64(seconds).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

fn split_millis(seconds: f64) -> Option<(i64, u32)> {
    if !seconds.is_finite() || seconds.abs() > 253_402_300_799.0 {
        return None;
    }
    let whole = seconds.floor();
    let mut millis = ((seconds - whole) * 1000.0).round() as u32;
    let mut whole = whole as i64;
    if millis >= 1000 {
        whole += 1;
        millis = 0;
    }
    Some((whole, millis))
}

fn to_epoch(moment: OffsetDateTime) -> f64 {
    let moment = moment.to_offset(UtcOffset::UTC);
    moment.unix_timestamp() as f64 + f64::from(moment.nanosecond()) / 1e9
}

fn parse_date(text: &str) -> Option<Date> {
    let mut parts = text.splitn(3, '-');
    let year = parts.next()?.parse::<i32>().ok()?;
    let month = parts.next()?.parse::<u8>().ok()?;
    let day = parts.next()?.parse::<u8>().ok()?;
    Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_clients_send() {
        let cases: &[(&str, Option<f64>)] = &[
            ("2024-01-01T00:00:00Z", Some(1_704_067_200.0)),
            ("2024-01-01T00:00:00.250Z", Some(1_704_067_200.25)),
            ("2024-01-01T01:00:00+01:00", Some(1_704_067_200.0)),
            ("2024-01-01T00:00:00", Some(1_704_067_200.0)),
            ("2024-01-01", Some(1_704_067_200.0)),
            ("1704067200", Some(1_704_067_200.0)),
            ("1704067200.5", Some(1_704_067_200.5)),
            ("Mon, 01 Jan 2024 00:00:00 GMT", Some(1_704_067_200.0)),
            ("yesterday", None),
            ("", None),
            ("NaN", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_text(text), *expected, "{text}");
        }
    }

    #[test]
    fn formats_iso8601_and_http_dates() {
        assert_eq!(format_iso8601(1_704_067_200.0).unwrap(), "2024-01-01T00:00:00Z");
        assert_eq!(format_iso8601(1_704_067_200.25).unwrap(), "2024-01-01T00:00:00.250Z");
        assert_eq!(format_iso8601(1_704_067_200.999_9).unwrap(), "2024-01-01T00:00:01Z");
        assert_eq!(format_iso8601(f64::NAN), None);
        assert_eq!(
            format_http_date(1_704_067_200.0).unwrap(),
            "Mon, 01 Jan 2024 00:00:00 GMT"
        );
        assert_eq!(epoch_number(5.0), serde_json::json!(5));
        assert_eq!(epoch_number(5.5), serde_json::json!(5.5));
    }
}
