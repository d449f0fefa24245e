//! Fuzzes SigV4/SigV2 authentication parsing (`citadel_sigv4::parse_auth`).
//!
//! Input: the first line is the raw query string; every following line is `name: value`, one header each
//! (lines that are not valid header names or values are skipped, as hyper would reject them).

#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let Ok(raw_query) = std::str::from_utf8(lines.next().unwrap_or_default()) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default();
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    let _ = citadel_sigv4::parse_auth(&headers, raw_query);
});
