//! citadel-cloudtrail: AWS CloudTrail over the pipeline's event records.
//!
//! The pipeline already writes a CloudTrail record for every request into the `events` table
//! (see `citadel_core::audit`). This crate serves that history (LookupEvents), manages trails, and
//! delivers log files and signed digest files to S3 so that the real `aws cloudtrail validate-logs`
//! accepts them. Log files of a trail with a KMS key are SSE-KMS encrypted with it (digests are not,
//! as on AWS), and a trail with a CloudWatch Logs group also sends each record there as a log event.
//!
//! # Map
//!
//! - [`spec`]: [`SPEC`], the operation registry.
//! - [`model`]: trail configurations, delivery states, signing-key rows and their tables.
//! - [`lookup`]: LookupEvents (filters, paging over the `events` table).
//! - [`selectors`]: which events a trail delivers (regions, classic and advanced selectors).
//! - [`digest`]: the byte formats and object keys of log and digest files (pure).
//! - [`signing`]: per-region RSA signing keys, sealed at rest with the master key.
//! - [`delivery`]: the background task that writes log and digest files ([`spawn_delivery`]).
//! - [`sink`]: [`ObjectSink`], the seam to S3, and [`LogSink`], the seam to CloudWatch Logs, that the
//!   server implements.
//!
//! # Invariants
//!
//! - Handlers never write to S3 and never commit: they return an [`Effect`]; only the delivery
//!   task writes objects, so an API call can never leave a half-written log behind.
//! - Digest windows of a chain are contiguous (each starts where the previous ended), every digest
//!   names its predecessor by location, hash and signature, and a chain always ends with a final
//!   digest when logging stops, validation is switched off or the trail is deleted.
//! - Private signing keys reach the store only sealed with the [`MasterKey`].

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod data_events;
pub mod delivery;
pub mod digest;
pub mod error;
pub mod lookup;
pub mod model;
pub mod selectors;
pub mod signing;
pub mod sink;
pub mod spec;

mod trails;

pub use delivery::{Deliverer, spawn_delivery};
pub use sink::{
    Delivery, KmsKeyCheck, KmsKeyError, LogEvent, LogSink, LogSinkError, LogTarget, MemoryLogSink, MemorySink,
    NoLogSink, ObjectSink, SinkError, kms_encryption_context_b64,
};
pub use spec::SPEC;
pub use trails::policy_allows_delivery;

use citadel_core::service::default_check;
use citadel_core::{Authorization, Authorized, Call, Check, Effect, IdGen, Service, ServiceSpec};
use citadel_store::{MasterKey, Store};
use citadel_wire::AwsError;
use serde_json::Value;
use std::sync::Arc;

/// The CloudTrail service: what the pipeline dispatches `cloudtrail` requests to.
pub struct CloudTrail {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    ids: IdGen,
    sink: Arc<dyn ObjectSink>,
    logs: Arc<dyn LogSink>,
}

impl CloudTrail {
    /// A CloudTrail over `store`, sealing signing keys with `master`, drawing trail ids from `ids`,
    /// and checking destination buckets through `sink`.
    pub fn new(store: Arc<dyn Store>, master: Arc<MasterKey>, ids: IdGen, sink: Arc<dyn ObjectSink>) -> Self {
        Self {
            store,
            master,
            ids,
            sink,
            logs: Arc::new(NoLogSink),
        }
    }

    /// Checks CloudWatch Logs destinations through `logs` (without one, every destination is unavailable).
    #[must_use]
    pub fn with_log_sink(mut self, logs: Arc<dyn LogSink>) -> Self {
        self.logs = logs;
        self
    }
}

/// The member that names the trail of an operation, if it has one.
fn trail_member(op: &str) -> Option<&'static str> {
    match op {
        "CreateTrail" | "UpdateTrail" | "DeleteTrail" | "GetTrail" | "GetTrailStatus" | "StartLogging"
        | "StopLogging" => Some("Name"),
        "PutEventSelectors" | "GetEventSelectors" | "PutInsightSelectors" | "GetInsightSelectors" => Some("TrailName"),
        "AddTags" | "RemoveTags" => Some("ResourceId"),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Service for CloudTrail {
    fn spec(&self) -> &'static ServiceSpec {
        &SPEC
    }

    async fn authorize(&self, call: &Call) -> Result<Authorization, AwsError> {
        let Some(member) = trail_member(call.op.name) else {
            return Ok(Authorization {
                checks: vec![default_check(call)],
                ..Default::default()
            });
        };
        let text = call.input.get(member).and_then(Value::as_str).unwrap_or("");
        // A name or ARN: the check names the trail's ARN, in the ARN's region when one is given.
        let resource = match model::parse_trail_ref(text) {
            Ok(r) => model::trail_arn(
                r.region.as_deref().unwrap_or(&call.ctx.region),
                r.account.as_deref().unwrap_or(call.ctx.account_id()),
                &r.name,
            ),
            Err(_) => "*".to_string(),
        };
        Ok(Authorization {
            checks: vec![Check::new(call.op.action, resource)],
            ..Default::default()
        })
    }

    async fn execute(&self, call: &Call, _proof: &Authorized) -> Result<Effect, AwsError> {
        match call.op.name {
            "CreateTrail" => self.create_trail(call).await,
            "UpdateTrail" => self.update_trail(call).await,
            "DeleteTrail" => self.delete_trail(call).await,
            "GetTrail" => self.get_trail(call).await,
            "DescribeTrails" => self.describe_trails(call).await,
            "ListTrails" => self.list_trails(call).await,
            "GetTrailStatus" => self.get_trail_status(call).await,
            "StartLogging" => self.set_logging(call, true).await,
            "StopLogging" => self.set_logging(call, false).await,
            "PutEventSelectors" => self.put_event_selectors(call).await,
            "GetEventSelectors" => self.get_event_selectors(call).await,
            "PutInsightSelectors" => self.put_insight_selectors(call).await,
            "GetInsightSelectors" => self.get_insight_selectors(call).await,
            "AddTags" => self.change_tags(call, true).await,
            "RemoveTags" => self.change_tags(call, false).await,
            "ListTags" => self.list_tags(call).await,
            "ListPublicKeys" => self.list_public_keys(call).await,
            "LookupEvents" => {
                let now_ms = i64::try_from(call.ctx.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                let query = lookup::parse(&call.input, call.ctx.account_id(), now_ms)?;
                Ok(Effect::read(
                    lookup::run(self.store.as_ref(), call.ctx.account_id(), &query).await?,
                ))
            }
            other => Err(AwsError::new(
                "UnknownOperationException",
                400,
                format!("Citadel does not implement the operation {other} yet."),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
