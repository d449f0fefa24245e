//! S3 Signature Version 2 (sigv4.md section 6): still the boto3 default for presigned URLs in many regions.
//!
//! The string to sign follows botocore's `HmacV1Auth`: method, Content-MD5, Content-Type, the date
//! (or `Expires` for the query form), the `x-amz-*` headers and the canonicalized resource, whose
//! sub-resources keep their decoded values.

use aws_lc_rs::hmac;
use base64::Engine as _;
use http::HeaderMap;

use crate::util::{percent_decode_str, query_items};

/// The sub-resources that enter the canonicalized resource (botocore `HmacV1Auth.QSAOfInterest`).
pub const SUB_RESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "cors",
    "defaultObjectAcl",
    "location",
    "logging",
    "partNumber",
    "policy",
    "requestPayment",
    "torrent",
    "versioning",
    "versionId",
    "versions",
    "website",
    "uploads",
    "uploadId",
    "response-content-type",
    "response-content-language",
    "response-expires",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "delete",
    "lifecycle",
    "tagging",
    "restore",
    "storageClass",
    "notification",
    "replication",
    "analytics",
    "metrics",
    "inventory",
    "select",
    "select-type",
    "object-lock",
];

/// The inputs of a SigV2 string to sign.
#[derive(Debug, Clone, Copy)]
pub struct SigV2Input<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The raw, still percent-encoded path.
    pub raw_path: &'a str,
    /// The raw query string.
    pub raw_query: &'a str,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The bucket of a virtual-hosted-style request, which the canonicalized resource must still name.
    pub virtual_host_bucket: Option<&'a str>,
    /// The Date header value (header form), `Expires` (query form), or empty when `x-amz-date` is sent.
    pub date_or_expires: &'a str,
    /// Whether `x-amz-*` query parameters count as headers (query form).
    pub query_form: bool,
}

fn header_trimmed<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim)
}

/// Builds the SigV2 string to sign.
pub fn string_to_sign_v2(input: &SigV2Input<'_>) -> String {
    let query_value = |name: &str| {
        query_items(input.raw_query)
            .find(|(item, _)| *item == name)
            .map(|(_, value)| percent_decode_str(value))
    };
    let standard = |name: &str| -> String {
        if let Some(value) = header_trimmed(input.headers, name) {
            return value.to_owned();
        }
        if input.query_form {
            query_value(name).unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut out = String::with_capacity(128 + input.raw_path.len());
    out.push_str(&input.method.to_ascii_uppercase());
    out.push('\n');
    out.push_str(&standard("content-md5"));
    out.push('\n');
    out.push_str(&standard("content-type"));
    out.push('\n');
    out.push_str(input.date_or_expires);
    out.push('\n');

    // x-amz-* headers, lower-cased and sorted, repeated values joined with ','.
    let mut amz: Vec<(String, String)> = Vec::new();
    for name in input.headers.keys() {
        let name = name.as_str();
        if name.starts_with("x-amz-") {
            let values: Vec<&str> = input
                .headers
                .get_all(name)
                .iter()
                .map(|value| value.to_str().unwrap_or_default().trim())
                .collect();
            amz.push((name.to_owned(), values.join(",")));
        }
    }
    if input.query_form {
        for (raw_name, raw_value) in query_items(input.raw_query) {
            let name = percent_decode_str(raw_name).to_ascii_lowercase();
            if name.starts_with("x-amz-") && !amz.iter().any(|(existing, _)| *existing == name) {
                amz.push((name, percent_decode_str(raw_value).trim().to_owned()));
            }
        }
    }
    amz.sort();
    for (name, value) in &amz {
        out.push_str(name);
        out.push(':');
        out.push_str(value);
        out.push('\n');
    }

    // The canonicalized resource always names the bucket, even for virtual-hosted requests.
    if let Some(bucket) = input.virtual_host_bucket {
        out.push('/');
        out.push_str(bucket);
    }
    out.push_str(if input.raw_path.is_empty() && input.virtual_host_bucket.is_none() {
        "/"
    } else {
        input.raw_path
    });
    let mut sub_resources: Vec<(&str, Option<String>)> = input
        .raw_query
        .split('&')
        .filter_map(|item| {
            let (name, value) = match item.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (item, None),
            };
            SUB_RESOURCES
                .contains(&name)
                .then(|| (name, value.map(percent_decode_str)))
        })
        .collect();
    sub_resources.sort_by(|a, b| a.0.cmp(b.0));
    for (index, (name, value)) in sub_resources.iter().enumerate() {
        out.push(if index == 0 { '?' } else { '&' });
        out.push_str(name);
        if let Some(value) = value {
            out.push('=');
            out.push_str(value);
        }
    }
    out
}

/// `base64(HMAC-SHA1(secret, string_to_sign))`.
pub fn sign_v2(secret: &[u8], string_to_sign: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, string_to_sign.as_bytes()).as_ref())
}

/// Checks a base64 SigV2 signature in constant time.
pub(crate) fn verify_v2(secret: &[u8], string_to_sign: &str, signature_base64: &str) -> bool {
    let Ok(provided) = base64::engine::general_purpose::STANDARD.decode(signature_base64.trim()) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    hmac::verify(&key, string_to_sign.as_bytes(), &provided).is_ok()
}
