//! The SigV4 canonical request (sigv4.md section 3), shared by the verifier and the client signer.
//!
//! The canonical request is built into one pre-sized byte buffer: header values may be arbitrary
//! bytes, and avoiding per-part strings keeps header verification in the low microseconds.

use http::HeaderMap;

use crate::util::{percent_decode, push_collapsed, push_uri_encoded, query_items};

/// How the path becomes the CanonicalURI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriMode {
    /// S3: the raw path exactly as received, no normalisation, no re-encoding.
    S3Raw,
    /// Every other service: remove dot and empty segments, then percent-encode the still-encoded path again.
    Normalized,
}

impl UriMode {
    /// The mode for a signing service name (`s3` is the signing name of S3 and S3 Control).
    pub fn for_service(service: &str) -> Self {
        if service == "s3" { Self::S3Raw } else { Self::Normalized }
    }
}

/// Appends the CanonicalURI of `raw_path`.
pub(crate) fn push_canonical_uri(out: &mut Vec<u8>, raw_path: &str, mode: UriMode) {
    if raw_path.is_empty() {
        out.push(b'/');
        return;
    }
    match mode {
        UriMode::S3Raw => out.extend_from_slice(raw_path.as_bytes()),
        UriMode::Normalized => {
            // botocore `remove_dot_segments`: drop empty and `.` segments, `..` pops one.
            let mut segments: Vec<&str> = Vec::new();
            for segment in raw_path.split('/') {
                match segment {
                    "" | "." => {}
                    ".." => {
                        segments.pop();
                    }
                    other => segments.push(other),
                }
            }
            let mut normalized = String::with_capacity(raw_path.len());
            if raw_path.starts_with('/') {
                normalized.push('/');
            }
            normalized.push_str(&segments.join("/"));
            if raw_path.ends_with('/') && !segments.is_empty() {
                normalized.push('/');
            }
            if normalized.is_empty() {
                out.push(b'/');
            } else {
                push_uri_encoded(out, normalized.as_bytes(), true);
            }
        }
    }
}

/// Appends the CanonicalQueryString of `raw_query`; `exclude_signature` drops `X-Amz-Signature` (presigned).
pub(crate) fn push_canonical_query(out: &mut Vec<u8>, raw_query: &str, exclude_signature: bool) {
    if raw_query.is_empty() {
        return;
    }
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (raw_name, raw_value) in query_items(raw_query) {
        let name = percent_decode(raw_name.as_bytes());
        if exclude_signature && name.as_ref() == b"X-Amz-Signature" {
            continue;
        }
        let mut encoded_name = Vec::with_capacity(name.len());
        push_uri_encoded(&mut encoded_name, &name, false);
        let value = percent_decode(raw_value.as_bytes());
        let mut encoded_value = Vec::with_capacity(value.len());
        push_uri_encoded(&mut encoded_value, &value, false);
        pairs.push((encoded_name, encoded_value));
    }
    pairs.sort_unstable();
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(name);
        out.push(b'=');
        out.extend_from_slice(value);
    }
}

/// Appends one `name:value\n` line per signed header; returns false when a signed header is absent.
///
/// A missing signed header cannot match the client's signature, but the line is still written
/// (with an empty value) so the canonical request in the error shows what the server saw.
pub(crate) fn push_canonical_headers(out: &mut Vec<u8>, headers: &HeaderMap, signed_headers: &str) -> bool {
    let mut all_present = true;
    for name in signed_headers.split(';') {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let mut found = false;
        for value in headers.get_all(name) {
            if found {
                out.push(b',');
            }
            push_collapsed(out, value.as_bytes());
            found = true;
        }
        all_present &= found;
        out.push(b'\n');
    }
    all_present
}

/// The inputs of a canonical request.
pub(crate) struct CanonicalInput<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub signed_headers: &'a str,
    pub payload_hash: &'a str,
    pub uri_mode: UriMode,
    pub exclude_signature: bool,
}

/// Builds the canonical request; the flag is false when a signed header is missing from the request.
pub(crate) fn canonical_request(input: &CanonicalInput<'_>) -> (Vec<u8>, bool) {
    // Every header's name and value, an upper bound on the signed ones, so that a long signed value
    // (a session token is several hundred bytes) does not make the buffer grow and copy itself.
    // Walking the map is a linear scan, cheaper than one more allocation.
    let header_bytes: usize = input
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 2)
        .sum();
    let mut out = Vec::with_capacity(
        input.method.len()
            + input.raw_path.len() * 2
            + input.raw_query.len() * 2
            + header_bytes
            + input.payload_hash.len()
            + 8
            + input.signed_headers.len() * 2,
    );
    out.extend_from_slice(input.method.as_bytes());
    out.push(b'\n');
    push_canonical_uri(&mut out, input.raw_path, input.uri_mode);
    out.push(b'\n');
    push_canonical_query(&mut out, input.raw_query, input.exclude_signature);
    out.push(b'\n');
    let all_present = push_canonical_headers(&mut out, input.headers, input.signed_headers);
    out.push(b'\n');
    out.extend_from_slice(input.signed_headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(input.payload_hash.as_bytes());
    (out, all_present)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(raw: &str, mode: UriMode) -> String {
        let mut out = Vec::new();
        push_canonical_uri(&mut out, raw, mode);
        String::from_utf8(out).unwrap()
    }

    fn query(raw: &str, exclude: bool) -> String {
        let mut out = Vec::new();
        push_canonical_query(&mut out, raw, exclude);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn canonical_uris() {
        let cases = [
            ("/mybucket/a%20b/c.txt", UriMode::S3Raw, "/mybucket/a%20b/c.txt"),
            ("/b/./k//../x", UriMode::S3Raw, "/b/./k//../x"),
            ("", UriMode::S3Raw, "/"),
            ("/a/./b/../c//d", UriMode::Normalized, "/a/c/d"),
            (
                "/detector/det%3A1%2Fx/findings",
                UriMode::Normalized,
                "/detector/det%253A1%252Fx/findings",
            ),
            ("/", UriMode::Normalized, "/"),
            ("/a/b/", UriMode::Normalized, "/a/b/"),
            ("/..", UriMode::Normalized, "/"),
            ("", UriMode::Normalized, "/"),
        ];
        for (raw, mode, expected) in cases {
            assert_eq!(uri(raw, mode), expected, "{raw}");
        }
    }

    #[test]
    fn canonical_queries() {
        let cases = [
            ("", false, ""),
            (
                "Version=2010-05-08&Action=ListUsers",
                false,
                "Action=ListUsers&Version=2010-05-08",
            ),
            ("uploads", false, "uploads="),
            ("policy&acl=", false, "acl=&policy="),
            ("a=x%2fy&a=b c", false, "a=b%20c&a=x%2Fy"),
            ("p=a+b", false, "p=a%2Bb"),
            ("k=%7e~&&z=1", false, "k=~~&z=1"),
            ("X-Amz-Signature=abc&X-Amz-Date=1", true, "X-Amz-Date=1"),
            (
                "X-Amz-Signature=abc&X-Amz-Date=1",
                false,
                "X-Amz-Date=1&X-Amz-Signature=abc",
            ),
        ];
        for (raw, exclude, expected) in cases {
            assert_eq!(query(raw, exclude), expected, "{raw}");
        }
    }
}
