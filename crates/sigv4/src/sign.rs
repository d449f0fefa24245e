//! A client-side SigV4 signer for tests and benchmarks, built on the same canonicalisation as the verifier.
//!
//! It signs like botocore: every header present is signed except the ones botocore leaves out,
//! S3 requests carry `x-amz-content-sha256`, and presigned URLs sign only `host`.

use http::{HeaderMap, HeaderValue};
use time::OffsetDateTime;

use crate::canonical::{CanonicalInput, UriMode, canonical_request};
use crate::key::SigningKey;
use crate::util::{EMPTY_SHA256_HEX, format_amz_date, push_hex, sha256_hex, uri_encode};

/// Headers botocore never signs.
const UNSIGNED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
    "content-length",
    "amz-sdk-invocation-id",
    "amz-sdk-request",
];

/// The credentials and scope to sign with.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    /// The access key id.
    pub access_key_id: &'a str,
    /// The secret access key.
    pub secret_access_key: &'a str,
    /// The session token of temporary credentials.
    pub security_token: Option<&'a str>,
    /// The region of the credential scope.
    pub region: &'a str,
    /// The signing service name.
    pub service: &'a str,
    /// The signing time.
    pub time: OffsetDateTime,
}

impl SigningParams<'_> {
    fn amz_date(&self) -> String {
        format_amz_date(self.time.unix_timestamp())
    }

    fn scope(&self, amz_date: &str) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            amz_date.get(..8).unwrap_or_default(),
            self.region,
            self.service
        )
    }

    /// The signing key of this scope.
    pub fn signing_key(&self) -> SigningKey {
        let amz_date = self.amz_date();
        SigningKey::derive(
            self.secret_access_key.as_bytes(),
            amz_date.get(..8).unwrap_or_default(),
            self.region,
            self.service,
        )
    }
}

/// The result of signing a request.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    /// The `Authorization` header value (also inserted into the headers).
    pub authorization: String,
    /// The hex signature.
    pub signature: String,
    /// The canonical request that was signed.
    pub canonical_request: String,
    /// The string that was signed.
    pub string_to_sign: String,
}

/// Failure to sign: a value cannot be a header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value cannot be used as an HTTP header: {0}")]
pub struct SignError(String);

fn header_value(text: &str) -> Result<HeaderValue, SignError> {
    HeaderValue::from_str(text).map_err(|_| SignError(text.to_owned()))
}

fn string_to_sign(amz_date: &str, scope: &str, canonical: &[u8]) -> String {
    format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical))
}

/// Signs a request with an `Authorization` header, inserting `x-amz-date`, `x-amz-security-token`,
/// (for S3) `x-amz-content-sha256`, and `authorization` into `headers`, which must already hold `host`.
///
/// `payload_hash` is the hex SHA-256 of the body, or a literal such as `UNSIGNED-PAYLOAD`.
pub fn sign_request(
    params: &SigningParams<'_>,
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &mut HeaderMap,
    payload_hash: &str,
) -> Result<SignedRequest, SignError> {
    let amz_date = params.amz_date();
    headers.remove(http::header::AUTHORIZATION);
    headers.insert("x-amz-date", header_value(&amz_date)?);
    if let Some(token) = params.security_token {
        headers.insert("x-amz-security-token", header_value(token)?);
    }
    if params.service == "s3" && !headers.contains_key("x-amz-content-sha256") {
        headers.insert("x-amz-content-sha256", header_value(payload_hash)?);
    }
    let mut names: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|name| !UNSIGNED_HEADERS.contains(name))
        .collect();
    names.sort_unstable();
    names.dedup();
    let signed_headers = names.join(";");
    let (canonical, _) = canonical_request(&CanonicalInput {
        method,
        raw_path,
        raw_query,
        headers,
        signed_headers: &signed_headers,
        payload_hash,
        uri_mode: UriMode::for_service(params.service),
        exclude_signature: false,
    });
    let scope = params.scope(&amz_date);
    let string_to_sign = string_to_sign(&amz_date, &scope, &canonical);
    let signature = hex::encode(params.signing_key().sign_parts(&[string_to_sign.as_bytes()]));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        params.access_key_id
    );
    headers.insert(http::header::AUTHORIZATION, header_value(&authorization)?);
    Ok(SignedRequest {
        authorization,
        signature,
        canonical_request: String::from_utf8_lossy(&canonical).into_owned(),
        string_to_sign,
    })
}

/// Produces a presigned URL's `path?query` (SigV4 query form, signing only `host`).
///
/// The auth parameters are appended after `raw_query`, as botocore does; the payload is
/// `UNSIGNED-PAYLOAD` for S3 and the empty-body hash otherwise.
pub fn presign_url(
    params: &SigningParams<'_>,
    method: &str,
    raw_path: &str,
    raw_query: &str,
    host: &str,
    expires_in_secs: u64,
) -> Result<String, SignError> {
    let amz_date = params.amz_date();
    let scope = params.scope(&amz_date);
    let mut query = String::from(raw_query);
    let mut add = |name: &str, value: &str| {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(name);
        query.push('=');
        query.push_str(&uri_encode(value, false));
    };
    add("X-Amz-Algorithm", "AWS4-HMAC-SHA256");
    add("X-Amz-Credential", &format!("{}/{scope}", params.access_key_id));
    add("X-Amz-Date", &amz_date);
    add("X-Amz-Expires", &expires_in_secs.to_string());
    add("X-Amz-SignedHeaders", "host");
    if let Some(token) = params.security_token {
        add("X-Amz-Security-Token", token);
    }
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, header_value(host)?);
    let payload_hash = if params.service == "s3" {
        "UNSIGNED-PAYLOAD"
    } else {
        EMPTY_SHA256_HEX
    };
    let (canonical, _) = canonical_request(&CanonicalInput {
        method,
        raw_path,
        raw_query: &query,
        headers: &headers,
        signed_headers: "host",
        payload_hash,
        uri_mode: UriMode::for_service(params.service),
        exclude_signature: true,
    });
    let string_to_sign = string_to_sign(&amz_date, &scope, &canonical);
    let signature = hex::encode(params.signing_key().sign_parts(&[string_to_sign.as_bytes()]));
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    Ok(format!("{path}?{query}&X-Amz-Signature={signature}"))
}

/// The signature of one aws-chunked chunk, chained from `previous_signature` (hex).
pub fn chunk_signature(key: &SigningKey, amz_date: &str, scope: &str, previous_signature: &str, data: &[u8]) -> String {
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous_signature}\n{EMPTY_SHA256_HEX}\n{}",
        sha256_hex(data)
    );
    hex::encode(key.sign_parts(&[string_to_sign.as_bytes()]))
}

/// Encodes `data` as a signed aws-chunked body (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, or `...-TRAILER` when
/// `trailers` is not empty), chaining chunk signatures from `seed_signature` (hex).
pub fn encode_chunked_signed(
    key: &SigningKey,
    amz_date: &str,
    scope: &str,
    seed_signature: &str,
    data: &[u8],
    chunk_size: usize,
    trailers: &[(&str, &str)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 256);
    let mut previous = seed_signature.to_owned();
    let chunks: Vec<&[u8]> = data.chunks(chunk_size.max(1)).chain(std::iter::once(&[][..])).collect();
    for chunk in chunks {
        let signature = chunk_signature(key, amz_date, scope, &previous, chunk);
        out.extend_from_slice(format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        if !chunk.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
        previous = signature;
    }
    if !trailers.is_empty() {
        let mut canonical = String::new();
        for (name, value) in trailers {
            out.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
            canonical.push_str(&format!("{name}:{value}\n"));
        }
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{previous}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let mut signature = Vec::with_capacity(64);
        push_hex(&mut signature, &key.sign_parts(&[string_to_sign.as_bytes()]));
        out.extend_from_slice(b"x-amz-trailer-signature:");
        out.extend_from_slice(&signature);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Encodes `data` as an unsigned aws-chunked body with trailers (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`).
pub fn encode_chunked_unsigned(data: &[u8], chunk_size: usize, trailers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 128);
    for chunk in data.chunks(chunk_size.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers {
        out.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}
