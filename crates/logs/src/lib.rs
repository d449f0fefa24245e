//! citadel-logs: CloudWatch Logs and the CloudWatch metrics and alarms that metric filters feed.
//!
//! Two services live here because metric filters tie them together: an event ingested by
//! `PutLogEvents` that matches a metric filter publishes a datapoint, and the alarms watching that
//! metric are evaluated in the same atomic batch as the event.
//!
//! # Map
//!
//! - [`pattern`]: the filter pattern language (terms, JSON selectors, space-delimited fields,
//!   regex), compiled once and matched without allocation; pure, no I/O.
//! - [`spec`]: [`LOGS_SPEC`] and [`CLOUDWATCH_SPEC`], the operation registries.
//! - [`model`]: stored records and key layouts of Logs.
//! - [`events`]: `PutLogEvents` batch rules ([`events::check_batch`], pure), `GetLogEvents`, `FilterLogEvents`.
//! - [`filters`]: metric filters and their publication.
//! - [`metrics`]: datapoints, statistics and alarm evaluation ([`metrics::evaluate`], pure).
//! - [`agent`]: [`run_agent`], the log shipper behind `citadel agent`.
//! - [`invoke`]: [`Logs::invoke_as`], the in-process, policy-checked path for other services
//!   (CloudTrail delivering to a log group as a session of the trail's role).
//!
//! # Invariants
//!
//! - Handlers never write: they return an [`Effect`] whose batch carries preconditions on what
//!   they read and change (the stream record for every put, the alarm record for every state
//!   change), so concurrent puts to one stream serialise through the pipeline's retry.
//! - Time comes only from the request context (the injected clock): retention, too-old/too-new
//!   events and alarm evaluation all use it; nothing runs in the background.

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod agent;
pub mod error;
pub mod events;
pub mod filters;
pub mod invoke;
pub mod metrics;
pub mod model;
pub mod pattern;
pub mod spec;

mod cloudwatch;
mod groups;
mod input;

pub use agent::{AgentCredentials, AgentError, run_agent};
pub use spec::{CLOUDWATCH_SPEC, LOGS_SPEC};

use citadel_core::{Authorized, Call, Effect, Service, ServiceSpec};
use citadel_store::Store;
use citadel_wire::AwsError;
use std::sync::Arc;

/// CloudWatch Logs: what the pipeline dispatches `logs` requests to.
pub struct Logs {
    pub(crate) store: Arc<dyn Store>,
}

impl Logs {
    /// Logs over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

fn unsupported(service: &str, op: &str) -> AwsError {
    AwsError::new(
        "UnsupportedOperationException",
        400,
        format!("Citadel does not implement the {service} operation {op}."),
    )
}

#[async_trait::async_trait]
impl Service for Logs {
    fn spec(&self) -> &'static ServiceSpec {
        &LOGS_SPEC
    }

    async fn execute(&self, call: &Call, _proof: &Authorized) -> Result<Effect, AwsError> {
        self.dispatch(call).await
    }
}

impl Logs {
    /// Runs a Logs handler. Only [`Service::execute`] (after the pipeline's policy decision) and
    /// [`Logs::invoke_as`] (after its own) call this.
    async fn dispatch(&self, call: &Call) -> Result<Effect, AwsError> {
        match call.op.name {
            "CreateLogGroup" => groups::create_log_group(self, call).await,
            "DeleteLogGroup" => groups::delete_log_group(self, call).await,
            "DescribeLogGroups" => groups::describe_log_groups(self, call).await,
            "PutRetentionPolicy" => groups::put_retention_policy(self, call).await,
            "DeleteRetentionPolicy" => groups::delete_retention_policy(self, call).await,
            "AssociateKmsKey" => groups::associate_kms_key(self, call).await,
            "DisassociateKmsKey" => groups::disassociate_kms_key(self, call).await,
            "TagLogGroup" => groups::tag_log_group(self, call).await,
            "UntagLogGroup" => groups::untag_log_group(self, call).await,
            "ListTagsLogGroup" => groups::list_tags_log_group(self, call).await,
            "TagResource" => groups::tag_resource(self, call).await,
            "UntagResource" => groups::untag_resource(self, call).await,
            "ListTagsForResource" => groups::list_tags_for_resource(self, call).await,
            "CreateLogStream" => groups::create_log_stream(self, call).await,
            "DeleteLogStream" => groups::delete_log_stream(self, call).await,
            "DescribeLogStreams" => groups::describe_log_streams(self, call).await,
            "PutLogEvents" => events::put_log_events(self, call).await,
            "GetLogEvents" => events::get_log_events(self, call).await,
            "FilterLogEvents" => events::filter_log_events(self, call).await,
            "PutMetricFilter" => filters::put_metric_filter(self, call).await,
            "DeleteMetricFilter" => filters::delete_metric_filter(self, call).await,
            "DescribeMetricFilters" => filters::describe_metric_filters(self, call).await,
            "TestMetricFilter" => filters::test_metric_filter(call),
            other => Err(unsupported("Logs", other)),
        }
    }
}

/// CloudWatch metrics and alarms: what the pipeline dispatches `monitoring` requests to.
pub struct CloudWatch {
    pub(crate) store: Arc<dyn Store>,
}

impl CloudWatch {
    /// CloudWatch over `store` (the same store as [`Logs`], so metric filters reach its alarms).
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

#[async_trait::async_trait]
impl Service for CloudWatch {
    fn spec(&self) -> &'static ServiceSpec {
        &CLOUDWATCH_SPEC
    }

    async fn execute(&self, call: &Call, _proof: &Authorized) -> Result<Effect, AwsError> {
        match call.op.name {
            "PutMetricData" => cloudwatch::put_metric_data(self, call).await,
            "GetMetricStatistics" => cloudwatch::get_metric_statistics(self, call).await,
            "ListMetrics" => cloudwatch::list_metrics(self, call).await,
            "PutMetricAlarm" => cloudwatch::put_metric_alarm(self, call).await,
            "DescribeAlarms" => cloudwatch::describe_alarms(self, call).await,
            "DeleteAlarms" => cloudwatch::delete_alarms(self, call).await,
            "SetAlarmState" => cloudwatch::set_alarm_state(self, call).await,
            "DescribeAlarmHistory" => cloudwatch::describe_alarm_history(self, call).await,
            other => Err(unsupported("CloudWatch", other)),
        }
    }
}

#[cfg(test)]
mod tests;
