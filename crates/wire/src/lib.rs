//! Everything Citadel knows about the bytes on the wire.
//!
//! This crate is the only place that understands the AWS encodings: SigV4 and SigV2
//! signatures ([`sigv4`]), the query / JSON 1.0-1.1 / rest-json codecs driven by
//! botocore's service models ([`codec`]), AWS error documents ([`error`]) and ARNs ([`arn`]).
//! It does no I/O: callers hand it bytes and headers and get typed values back.
//!
//! A key design decision: request and response shapes are not Rust structs per operation.
//! The codec reads botocore's own model at run time and turns any request into a
//! `serde_json::Value` that follows the model's input shape (and any output value back
//! into the protocol's bytes), so that wire compatibility follows the contract by construction
//! and a new operation needs no new codec code.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod arn;
pub mod codec;
pub mod error;
pub mod protocol;

pub use error::AwsError;
pub use protocol::Protocol;
