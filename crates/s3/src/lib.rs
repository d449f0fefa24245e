//! Amazon S3 for Citadel, served through s3s behind Citadel's own authentication, authorization,
//! audit, storage and encryption.
//!
//! # Map
//!
//! - [`frontend`]: [`S3Frontend`], the entry point the server routes S3 requests to, the request
//!   state shared with s3s's hooks, and the secret-key hook.
//! - [`access`]: authorization of every operation through the policy engine (bucket policies,
//!   Block Public Access).
//! - [`registry`]: every operation with its IAM action and resource kind.
//! - `handlers`: the operations themselves (buckets, objects, multipart uploads).
//! - [`meta`]: metadata rows and their keys; [`listing`]: listing pages and markers.
//! - [`crypto`]: the chunked AES-256-GCM format of object bodies, SSE-S3/SSE-C keys, and the
//!   [`crypto::DataKeyProvider`] seam for SSE-KMS; [`checksum`]: MD5 and flexible checksums.
//! - [`names`]: bucket naming rules and ARNs.
//! - [`cse`]: the Amazon S3 Encryption Client v2 format for client-side encryption (`citadel s3 cp`).
//! - [`access_log`]: server access logging (records, buffering, delivery as `logging.s3.amazonaws.com`);
//!   `post_form`: browser POST uploads' errors in AWS's words.
//!
//! **Architecture invariant:** no handler runs without a policy decision: the access hook refuses
//! operations that are not in the registry, and s3s calls handlers only after the hook allowed.
//! **Architecture invariant:** object bytes at rest are always ciphertext.

#![deny(missing_docs)]

pub mod access;
pub mod access_log;
mod audit;
pub mod checksum;
pub mod crypto;
pub mod cse;
mod engine;
pub mod frontend;
mod handlers;
pub mod listing;
pub mod meta;
pub mod names;
mod post_form;
pub mod registry;

pub use audit::DataEventGate;
/// The SigV4 signer, re-exported for the `citadel s3 cp` client so the binary needs no direct
/// dependency on it.
pub use citadel_sigv4 as sigv4;
pub use crypto::DataKeyProvider;
pub use frontend::{S3Config, S3Frontend, is_s3_request};
pub use handlers::{choose_parts, evaluate_conditions};
/// The body type of S3 requests and responses (`From<hyper::body::Incoming>`, `From<Bytes>`,
/// and an `http_body::Body`), re-exported so the server needs no direct s3s dependency.
pub use s3s::Body;
