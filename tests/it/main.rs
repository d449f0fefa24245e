//! Citadel's integration tests: the real binary, driven by aws-sdk-rust and raw HTTP.
//!
//! One test binary (so the 2-core CI links once); each module is one area.

mod blobs_s3;
mod cloudtrail;
mod foundation;
mod harness;
mod iam;
mod kms;
mod logs;
mod registry;
mod s3;
mod sts;
