//! Small helpers shared by the verifier and the signer: time stamps, hashing, percent-encoding.
//!
//! Time stamps are converted by hand (days-from-civil) because the hot path only needs
//! `YYYYMMDDTHHMMSSZ` <-> Unix seconds, and a fixed-format parser is cheaper than a general one.

use aws_lc_rs::digest;

/// Hex SHA-256 of the empty string, the payload hash of a request without a body.
pub const EMPTY_SHA256_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Maximum clock skew AWS tolerates, in seconds (15 minutes).
pub const MAX_SKEW_SECS: i64 = 900;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day number since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn digits(bytes: &[u8]) -> Option<i64> {
    let mut value = 0i64;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(b - b'0');
    }
    Some(value)
}

/// Parses `YYYYMMDDTHHMMSSZ` into Unix seconds; `None` for anything else, including impossible dates.
pub(crate) fn parse_amz_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 16 || b.get(8) != Some(&b'T') || b.get(15) != Some(&b'Z') {
        return None;
    }
    let year = digits(b.get(0..4)?)?;
    let month = digits(b.get(4..6)?)?;
    let day = digits(b.get(6..8)?)?;
    let hour = digits(b.get(9..11)?)?;
    let minute = digits(b.get(11..13)?)?;
    let second = digits(b.get(13..15)?)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // Reject dates such as 20150231 that days_from_civil would silently roll over.
    if civil_from_days(days) != (year, month, day) {
        return None;
    }
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

fn split_time(unix: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Formats Unix seconds as `YYYYMMDDTHHMMSSZ`.
pub(crate) fn format_amz_date(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = split_time(unix);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// Formats Unix seconds as ISO 8601 `YYYY-MM-DDTHH:MM:SSZ` (S3 `<Expires>`/`<ServerTime>`).
pub(crate) fn format_iso8601(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = split_time(unix);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Parses an HTTP date (RFC 7231 and its obsolete forms) into Unix seconds.
pub(crate) fn parse_http_date(text: &str) -> Option<i64> {
    let text = text.trim();
    // Some SigV2 clients (and AWS's own examples) write the zone as `+0000` instead of `GMT`.
    let time = match text.strip_suffix("+0000") {
        Some(stem) => httpdate::parse_http_date(&format!("{stem}GMT")).ok()?,
        None => httpdate::parse_http_date(text).ok()?,
    };
    let secs = time.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data).as_ref())
}

/// The hex digit of a nibble (`0..16`), with `letter_a` choosing upper or lower case.
const fn hex_digit(nibble: u8, letter_a: u8) -> u8 {
    if nibble < 10 {
        b'0' + nibble
    } else {
        letter_a + nibble - 10
    }
}

/// Writes the lower-case hex form of `bytes` into `out`.
pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(hex_digit(b >> 4, b'a'));
        out.push(hex_digit(b & 0x0f, b'a'));
    }
}

/// Decodes exactly 64 hex digits (either case) into 32 bytes.
pub(crate) fn decode_hex32(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// RFC 3986 unreserved characters, which SigV4 never percent-encodes.
pub(crate) const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Percent-encodes `bytes` into `out` as SigV4 does (upper-case hex); `/` stays literal when `keep_slash`.
pub(crate) fn push_uri_encoded(out: &mut Vec<u8>, bytes: &[u8], keep_slash: bool) {
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(hex_digit(b >> 4, b'A'));
            out.push(hex_digit(b & 0x0f, b'A'));
        }
    }
}

/// Percent-encodes `text` into a new string (see [`push_uri_encoded`]).
pub(crate) fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = Vec::with_capacity(text.len());
    push_uri_encoded(&mut out, text.as_bytes(), keep_slash);
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-decodes `raw`; a raw `+` stays a literal plus (botocore never emits one for a space).
pub(crate) fn percent_decode(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    percent_encoding::percent_decode(raw).into()
}

/// Percent-decodes `raw` into a string, replacing invalid UTF-8.
pub(crate) fn percent_decode_str(raw: &str) -> String {
    String::from_utf8_lossy(&percent_decode(raw.as_bytes())).into_owned()
}

/// Iterates the `name=value` items of a raw query string, skipping empty items.
pub(crate) fn query_items(raw_query: &str) -> impl Iterator<Item = (&str, &str)> {
    raw_query
        .split('&')
        .filter(|item| !item.is_empty())
        .map(|item| item.split_once('=').unwrap_or((item, "")))
}

/// Trims a header value and collapses every run of whitespace to one space (botocore `' '.join(v.split())`).
///
/// Most signed values (host, dates, session tokens of several hundred bytes) contain no byte at or
/// below the space character, so nothing needs trimming or collapsing: they are copied in one piece.
/// The test that finds them reads every byte without an early exit, so the compiler vectorizes it.
pub(crate) fn push_collapsed(out: &mut Vec<u8>, value: &[u8]) {
    // Every byte the slow path treats as whitespace (`\t`, `\n`, `\v`, `\f`, `\r`, space) is <= 0x20.
    let may_need_collapsing = value.iter().fold(false, |seen, &b| seen | (b <= b' '));
    if !may_need_collapsing {
        out.extend_from_slice(value);
        return;
    }
    let mut pending_space = false;
    let mut wrote_any = false;
    for &b in value {
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            pending_space = wrote_any;
        } else {
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(b);
            wrote_any = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_round_trip_against_the_time_crate() {
        for unix in [
            0i64,
            951_782_400,
            1_440_938_160,
            1_369_353_600,
            4_102_444_799,
            1_709_164_800,
        ] {
            let formatted = format_amz_date(unix);
            let reference = time::OffsetDateTime::from_unix_timestamp(unix).unwrap();
            let expected = format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                reference.year(),
                u8::from(reference.month()),
                reference.day(),
                reference.hour(),
                reference.minute(),
                reference.second()
            );
            assert_eq!(formatted, expected);
            assert_eq!(parse_amz_date(&formatted), Some(unix));
        }
    }

    #[test]
    fn impossible_amz_dates_are_rejected() {
        for bad in [
            "20150231T000000Z",
            "20151301T000000Z",
            "20150830T246000Z",
            "20150830T123600",
            "2015083T123600Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn whitespace_is_trimmed_and_collapsed() {
        let cases: &[(&str, &str)] = &[
            ("  a   b\t c ", "a b c"),
            ("", ""),
            ("x", "x"),
            (" \t ", ""),
            ("AbD9qhw+4A3Q/fRL==", "AbD9qhw+4A3Q/fRL=="),
            ("a\u{1}b", "a\u{1}b"),
            ("tok\n", "tok"),
        ];
        for (input, expected) in cases {
            let mut out = Vec::new();
            push_collapsed(&mut out, input.as_bytes());
            assert_eq!(out, expected.as_bytes());
        }
    }
}
