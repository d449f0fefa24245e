//! Server-side AWS request authentication: SigV4 (header and presigned), S3 SigV2, aws-chunked bodies.
//!
//! Why this is written by hand: the Rust AWS crates sign requests but do not verify them, and the
//! server-side crates that do verify either hide the canonical request, do not return AWS's typed
//! errors (`SignatureDoesNotMatch` with `<StringToSign>`/`<CanonicalRequest>`, "Signature expired: ..."),
//! or do not implement the details unmodified clients depend on: S3's raw-path canonical URI versus the
//! normalise-then-encode-again rule of every other service, SigV2 presigned URLs (boto3's default in
//! us-east-1), and a bounded-memory aws-chunked decoder that checks every chunk signature.
//! The crate is pure: no I/O, no async, the clock is a parameter, and nothing panics on input.
//!
//! Flow, in the order AWS applies the checks:
//! 1. [`parse_auth`] recognises the form and extracts the access key id and credential scope;
//! 2. [`ParsedAuth::check_time`] checks clock skew or presigned expiry;
//! 3. the caller looks the secret up (unknown key: [`AuthError::InvalidAccessKey`]);
//! 4. [`Verifier::verify`] checks the signature (signing keys are cached per day);
//! 5. for aws-chunked bodies, [`ChunkedDecoder`] verifies the chunk signatures and exposes trailer checksums.
#![deny(missing_docs)]
// Library code must not panic on input; tests may unwrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::todo
    )
)]

mod canonical;
mod checksum;
mod chunked;
mod error;
mod key;
mod parse;
mod sign;
mod sigv2;
mod util;
mod verify;

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]
mod tests;

pub use canonical::UriMode;
pub use checksum::{ChecksumAlgorithm, ChecksumHasher, checksum_base64};
pub use chunked::{ChunkedDecoder, ChunkedMode, ChunkedSummary, MAX_LINE_LEN, MAX_TRAILERS};
pub use error::{AuthError, ChunkError, ProtocolFamily};
pub use key::{SigningKey, SigningKeyCache, derive_signing_key_bytes};
pub use parse::{AuthKind, MAX_PRESIGNED_EXPIRES_SECS, ParsedAuth, parse_auth};
pub use sign::{
    SignError, SignedRequest, SigningParams, chunk_signature, encode_chunked_signed, encode_chunked_unsigned,
    presign_url, sign_request,
};
pub use sigv2::{SUB_RESOURCES, SigV2Input, sign_v2, string_to_sign_v2};
pub use util::{EMPTY_SHA256_HEX, MAX_SKEW_SECS, sha256_hex};
pub use verify::{ChunkSigningContext, Payload, PayloadCheck, RequestParts, Verified, Verifier, verify};
