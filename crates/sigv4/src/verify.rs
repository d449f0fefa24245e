//! Signature verification for all forms, in the order AWS applies the checks.
//!
//! `parse_auth` and `ParsedAuth::check_time` run before the caller looks the secret up;
//! [`Verifier::verify`] repeats the cheap time check and then compares the signature in constant time.

use std::sync::LazyLock;

use aws_lc_rs::digest;
use http::HeaderMap;
use time::OffsetDateTime;

use crate::canonical::{CanonicalInput, UriMode, canonical_request};
use crate::chunked::ChunkedMode;
use crate::error::AuthError;
use crate::key::{SigningKey, SigningKeyCache};
use crate::parse::{AuthKind, ParsedAuth};
use crate::sigv2::{SigV2Input, string_to_sign_v2, verify_v2};
use crate::util::{EMPTY_SHA256_HEX, decode_hex32, push_hex};

/// The parts of an HTTP request that enter a signature.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The HTTP method (`GET`, `POST`, ...).
    pub method: &'a str,
    /// The raw path as received, still percent-encoded, without the query.
    pub raw_path: &'a str,
    /// The raw query string as received, without the `?`.
    pub raw_query: &'a str,
    /// The request headers (including `host`).
    pub headers: &'a HeaderMap,
    /// For S3 SigV2 only: the bucket taken from a virtual-hosted-style Host header.
    pub virtual_host_bucket: Option<&'a str>,
}

/// What the caller knows about the request body.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// The whole body.
    Bytes(&'a [u8]),
    /// The hex SHA-256 of the body, computed by the caller.
    Sha256Hex(&'a str),
    /// The body has not been read yet (S3 streaming); only usable when `x-amz-content-sha256` is sent.
    Deferred,
}

/// What remains for the caller to check about the body after the signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadCheck {
    /// Nothing: the body hash is covered by the signature and was checked (or the form does not sign bodies).
    Done,
    /// The client declared `UNSIGNED-PAYLOAD`.
    Unsigned,
    /// The body is aws-chunked; decode it with [`crate::ChunkedDecoder`].
    Chunked(ChunkedMode),
    /// The body was deferred: the caller must hash it and compare with this hex SHA-256
    /// (mismatch is [`AuthError::ContentSha256Mismatch`]).
    Sha256Pending(String),
    /// An `x-amz-content-sha256` value this crate does not interpret (for example SigV4a streaming).
    Other(String),
}

/// The scope and seed a signed aws-chunked body chains from.
#[derive(Debug, Clone)]
pub struct ChunkSigningContext {
    /// The signing key of the request.
    pub key: SigningKey,
    /// The request time as `YYYYMMDDTHHMMSSZ`.
    pub amz_date: String,
    /// The credential scope `yyyymmdd/region/service/aws4_request`.
    pub scope: String,
    /// The seed signature (the request's own signature).
    pub seed_signature: [u8; 32],
}

/// A successfully verified request.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The authentication form that verified.
    pub kind: AuthKind,
    /// What the caller still has to do about the body.
    pub payload: PayloadCheck,
    /// For SigV4 header requests: the context an aws-chunked body's signatures chain from.
    pub chunk_context: Option<ChunkSigningContext>,
}

/// Verifies request signatures, caching derived signing keys.
#[derive(Debug, Default)]
pub struct Verifier {
    cache: SigningKeyCache,
}

static GLOBAL_VERIFIER: LazyLock<Verifier> = LazyLock::new(Verifier::default);

/// Verifies with a process-wide [`Verifier`] (see [`Verifier::verify`]).
pub fn verify(
    parsed: &ParsedAuth,
    secret: &[u8],
    request: &RequestParts<'_>,
    payload: Payload<'_>,
    now: OffsetDateTime,
) -> Result<Verified, AuthError> {
    GLOBAL_VERIFIER.verify(parsed, secret, request, payload, now)
}

impl Verifier {
    /// Creates a verifier whose signing-key cache holds at most `cache_capacity` keys.
    pub fn new(cache_capacity: usize) -> Self {
        Self {
            cache: SigningKeyCache::new(cache_capacity),
        }
    }

    /// The signing-key cache.
    pub fn cache(&self) -> &SigningKeyCache {
        &self.cache
    }

    /// Verifies the time and signature of a parsed request against the secret of its access key.
    ///
    /// # Errors
    /// `MissingAuthentication` for anonymous requests, the time errors of [`ParsedAuth::check_time`],
    /// `MissingContentSha256` for S3 header auth without `x-amz-content-sha256`, `SignatureDoesNotMatch`
    /// (also for a signature that is not 64 hex digits), then `ContentSha256Mismatch` for a body that does
    /// not hash to the declared value.
    pub fn verify(
        &self,
        parsed: &ParsedAuth,
        secret: &[u8],
        request: &RequestParts<'_>,
        payload: Payload<'_>,
        now: OffsetDateTime,
    ) -> Result<Verified, AuthError> {
        parsed.check_time(now)?;
        match parsed.kind {
            AuthKind::Anonymous => Err(AuthError::MissingAuthentication),
            AuthKind::Header | AuthKind::Presigned => self.verify_v4(parsed, secret, request, payload),
            AuthKind::SigV2Header | AuthKind::SigV2Query => verify_v2_request(parsed, secret, request),
        }
    }

    fn verify_v4(
        &self,
        parsed: &ParsedAuth,
        secret: &[u8],
        request: &RequestParts<'_>,
        payload: Payload<'_>,
    ) -> Result<Verified, AuthError> {
        let presigned = parsed.kind == AuthKind::Presigned;
        let is_s3 = parsed.service == "s3";
        let declared = request
            .headers
            .get("x-amz-content-sha256")
            .map(|value| String::from_utf8_lossy(value.as_bytes()).trim().to_owned());

        // The payload hash that enters the canonical request, and what is left to check afterwards.
        let computed_storage;
        let (payload_hash, mut check): (&str, PayloadCheck) = match &declared {
            Some(value) => (value.as_str(), PayloadCheck::Done),
            None if presigned && is_s3 => ("UNSIGNED-PAYLOAD", PayloadCheck::Unsigned),
            None if is_s3 => return Err(AuthError::MissingContentSha256),
            None => match payload {
                Payload::Bytes([]) => (EMPTY_SHA256_HEX, PayloadCheck::Done),
                Payload::Bytes(body) => {
                    computed_storage = crate::util::sha256_hex(body);
                    (computed_storage.as_str(), PayloadCheck::Done)
                }
                Payload::Sha256Hex(hash) => (hash, PayloadCheck::Done),
                Payload::Deferred => return Err(AuthError::PayloadHashRequired),
            },
        };

        let (creq, _all_signed_present) = canonical_request(&CanonicalInput {
            method: request.method,
            raw_path: request.raw_path,
            raw_query: request.raw_query,
            headers: request.headers,
            signed_headers: &parsed.signed_headers,
            payload_hash,
            uri_mode: UriMode::for_service(&parsed.service),
            exclude_signature: presigned,
        });
        let creq_hash = digest::digest(&digest::SHA256, &creq);
        let mut creq_hash_hex = Vec::with_capacity(64);
        push_hex(&mut creq_hash_hex, creq_hash.as_ref());

        let key = self.cache.get_or_derive(
            &parsed.access_key_id,
            secret,
            &parsed.scope_date,
            &parsed.region,
            &parsed.service,
        );
        let scope = parsed.scope();
        let sts_parts: [&[u8]; 6] = [
            b"AWS4-HMAC-SHA256\n",
            parsed.amz_date.as_bytes(),
            b"\n",
            scope.as_bytes(),
            b"\n",
            &creq_hash_hex,
        ];
        let provided = decode_hex32(parsed.signature.as_bytes());
        let matches = match &provided {
            Some(provided) => key.verify_parts(&sts_parts, provided),
            None => false,
        };
        let Some(seed_signature) = provided.filter(|_| matches) else {
            return Err(AuthError::SignatureDoesNotMatch {
                access_key_id: parsed.access_key_id.clone(),
                string_to_sign: String::from_utf8_lossy(&sts_parts.concat()).into_owned(),
                canonical_request: String::from_utf8_lossy(&creq).into_owned(),
                signature_provided: parsed.signature.clone(),
            });
        };

        // The signature covers the declared hash; now interpret it.
        if let Some(value) = &declared {
            check = match value.as_str() {
                "UNSIGNED-PAYLOAD" => PayloadCheck::Unsigned,
                other => match ChunkedMode::from_content_sha256(other) {
                    Some(mode) => PayloadCheck::Chunked(mode),
                    None if decode_hex32(other.as_bytes()).is_some() => check_declared_hash(other, payload)?,
                    None => PayloadCheck::Other(other.to_owned()),
                },
            };
        }
        let chunk_context = (parsed.kind == AuthKind::Header).then(|| ChunkSigningContext {
            key,
            amz_date: parsed.amz_date.clone(),
            scope,
            seed_signature,
        });
        Ok(Verified {
            kind: parsed.kind,
            payload: check,
            chunk_context,
        })
    }
}

/// Compares a declared 64-hex body hash with the body, or defers the comparison to the caller.
fn check_declared_hash(declared: &str, payload: Payload<'_>) -> Result<PayloadCheck, AuthError> {
    let computed = match payload {
        Payload::Bytes(body) => crate::util::sha256_hex(body),
        Payload::Sha256Hex(hash) => hash.to_ascii_lowercase(),
        Payload::Deferred => return Ok(PayloadCheck::Sha256Pending(declared.to_ascii_lowercase())),
    };
    if computed.eq_ignore_ascii_case(declared) {
        Ok(PayloadCheck::Done)
    } else {
        Err(AuthError::ContentSha256Mismatch {
            client: declared.to_owned(),
            computed,
        })
    }
}

fn verify_v2_request(parsed: &ParsedAuth, secret: &[u8], request: &RequestParts<'_>) -> Result<Verified, AuthError> {
    let string_to_sign = string_to_sign_v2(&SigV2Input {
        method: request.method,
        raw_path: request.raw_path,
        raw_query: request.raw_query,
        headers: request.headers,
        virtual_host_bucket: request.virtual_host_bucket,
        date_or_expires: &parsed.amz_date,
        query_form: parsed.kind == AuthKind::SigV2Query,
    });
    if !verify_v2(secret, &string_to_sign, &parsed.signature) {
        return Err(AuthError::SignatureDoesNotMatch {
            access_key_id: parsed.access_key_id.clone(),
            string_to_sign,
            canonical_request: String::new(),
            signature_provided: parsed.signature.clone(),
        });
    }
    let payload = if parsed.kind == AuthKind::SigV2Query {
        PayloadCheck::Unsigned
    } else {
        PayloadCheck::Done
    };
    Ok(Verified {
        kind: parsed.kind,
        payload,
        chunk_context: None,
    })
}
