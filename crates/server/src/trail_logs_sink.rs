//! CloudTrail's CloudWatch Logs delivery: every delivered record becomes a log event in the trail's
//! log group, written as a session of the role the trail names.
//!
//! On AWS, CloudTrail assumes `CloudWatchLogsRoleArn` and calls `CreateLogStream` and
//! `PutLogEvents` with the session, so the role's trust policy must let `cloudtrail.amazonaws.com`
//! assume it and its permissions policies must allow both actions on the group. This sink does the
//! same without HTTP: it reads the role from IAM's tables, asks the policy engine whether the trust
//! policy lets the CloudTrail service principal assume it, builds the role session principal, and
//! calls Logs through [`citadel_logs::Logs::invoke_as`], which asks the policy engine again for the
//! session's permissions before any handler runs.
//! Nothing is minted or stored: the session exists only for the call, so a role that loses its
//! trust or permissions makes the next delivery fail (`LatestCloudWatchLogsDeliveryError`).

use crate::trail_sink::{cloudtrail_request, cloudtrail_service_principal, governed_resource_check, trail_source_keys};
use async_trait::async_trait;
use citadel_cloudtrail::{LogEvent, LogSink, LogSinkError, LogTarget, model::parse_log_group_arn};
use citadel_core::authz::Authorizer;
use citadel_core::{
    Authorization, Check, Clock, Principal, PrincipalKind, RequestContext, ResourcePolicyKind, SessionInfo,
};
use citadel_logs::Logs;
use citadel_sts::directory::{IdentityDirectory, RoleInfo};
use serde_json::{Value, json};
use std::sync::Arc;

/// The most events one `PutLogEvents` call may carry.
const MAX_BATCH_EVENTS: usize = 10_000;
/// The largest `PutLogEvents` batch: message bytes plus 26 per event.
const MAX_BATCH_BYTES: usize = 1_048_576;
/// What CloudWatch Logs counts per event on top of its message.
const EVENT_OVERHEAD: usize = 26;
/// How long the role sessions CloudTrail uses are valid.
const SESSION_SECONDS: i64 = 3600;
/// The message for a role that cannot be assumed or lacks the permissions.
const ROLE_DENIED: &str = "Access denied. Verify in IAM that the role has adequate permissions.";

/// Delivers CloudTrail records to CloudWatch Logs as sessions of the trails' roles.
pub struct LogsTrailSink {
    /// The Logs service.
    pub logs: Arc<Logs>,
    /// The policy decision point shared with the pipeline.
    pub authorizer: Arc<Authorizer>,
    /// IAM roles (trust policy, id).
    pub roles: Arc<dyn IdentityDirectory>,
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
}

impl LogsTrailSink {
    /// A request context for `principal` in `region` now, as CloudTrail's calls to Logs carry it.
    fn context(&self, principal: Arc<Principal>, region: &str) -> RequestContext {
        cloudtrail_request(principal, region, self.clock.now(), "logs", "PutLogEvents")
    }

    /// The role session CloudTrail would get from `sts:AssumeRole`, if the role exists in the
    /// trail's account and its trust policy lets `cloudtrail.amazonaws.com` assume it.
    async fn session(&self, target: &LogTarget) -> Result<Arc<Principal>, LogSinkError> {
        let role = self
            .roles
            .role_by_arn(&target.role_arn)
            .await
            .map_err(|e| LogSinkError::Other(e.message))?
            .filter(|role| role.account == target.account)
            .ok_or_else(|| LogSinkError::InvalidRole(ROLE_DENIED.into()))?;
        self.check_trust(&role, target).await?;
        let now = self.clock.now();
        let session_name = session_name(&target.trail_arn);
        Ok(Arc::new(Principal {
            account_id: role.account.clone(),
            arn: format!(
                "arn:aws:sts::{}:assumed-role/{}/{session_name}",
                role.account, role.name
            ),
            principal_id: format!("{}:{session_name}", role.id),
            kind: PrincipalKind::AssumedRole {
                role_arn: role.arn.clone(),
                role_name: role.name.clone(),
                role_id: role.id.clone(),
                session_name,
            },
            access_key_id: None,
            tags: role.tags.clone(),
            session: Some(SessionInfo {
                issued_at: now,
                expires_at: now + time::Duration::seconds(SESSION_SECONDS),
                mfa_authenticated_at: None,
                source_identity: None,
                tags: Vec::new(),
                policies: None,
                issuer_operation: "AssumeRole".to_string(),
                federated_provider: None,
            }),
        }))
    }

    /// Asks the policy engine whether the trust policy lets CloudTrail assume the role for this trail.
    async fn check_trust(&self, role: &RoleInfo, target: &LogTarget) -> Result<(), LogSinkError> {
        let ctx = cloudtrail_request(
            cloudtrail_service_principal(),
            &target.region,
            self.clock.now(),
            "sts",
            "AssumeRole",
        );
        let authorization = Authorization {
            checks: vec![governed_resource_check(
                "sts:AssumeRole",
                &role.arn,
                &role.account,
                &role.trust_policy,
                ResourcePolicyKind::TrustPolicy,
                &role.tags,
            )],
            context: trail_source_keys(&target.trail_arn, &target.account).to_vec(),
            always_allowed: false,
        };
        self.authorizer
            .authorize(&ctx, &authorization, false)
            .await
            .map_err(|_| LogSinkError::InvalidRole(ROLE_DENIED.into()))
    }

    /// The group name of the target, which must be in the trail's region and account.
    fn group_name(target: &LogTarget) -> Result<String, LogSinkError> {
        let (region, account, name) = parse_log_group_arn(&target.group_arn).ok_or_else(|| {
            LogSinkError::InvalidGroup(format!("Invalid CloudWatchLogs LogGroup ARN: {}", target.group_arn))
        })?;
        if region != target.region || account != target.account {
            return Err(LogSinkError::Unavailable(format!(
                "Cannot deliver to the log group {} from region {} of account {}.",
                target.group_arn, target.region, target.account
            )));
        }
        Ok(name.to_string())
    }

    /// Runs one Logs operation as `principal`.
    async fn call(
        &self,
        principal: &Arc<Principal>,
        region: &str,
        op: &str,
        input: Value,
    ) -> Result<Value, citadel_wire::AwsError> {
        let ctx = self.context(principal.clone(), region);
        self.logs.invoke_as(&self.authorizer, ctx, op, input).await
    }
}

/// The role session name of a trail's deliveries: the trail name, cut to STS's 64 characters.
fn session_name(trail_arn: &str) -> String {
    let name = trail_arn.rsplit('/').next().unwrap_or("CloudTrail");
    name.chars().take(64).collect()
}

/// How a Logs error shows up in CloudTrail: a denial means the role lost its permissions.
fn delivery_error(err: &citadel_wire::AwsError) -> LogSinkError {
    match err.code.as_ref() {
        "AccessDeniedException" => LogSinkError::InvalidRole(ROLE_DENIED.into()),
        "ResourceNotFoundException" => LogSinkError::InvalidGroup(err.message.clone()),
        code => LogSinkError::Other(format!("{code}: {}", err.message)),
    }
}

#[async_trait]
impl LogSink for LogsTrailSink {
    async fn check(&self, target: &LogTarget) -> Result<(), LogSinkError> {
        let group = Self::group_name(target)?;
        let principal = self.session(target).await?;
        // The group must exist; DescribeLogGroups is a read as the trail's owner would see it.
        let found = self
            .logs
            .invoke_as(
                &self.authorizer,
                self.context(Arc::new(Principal::root(&target.account, None)), &target.region),
                "DescribeLogGroups",
                json!({ "logGroupNamePrefix": group }),
            )
            .await
            .map_err(|e| LogSinkError::Other(e.message))?;
        let exists = found.get("logGroups").and_then(Value::as_array).is_some_and(|groups| {
            groups
                .iter()
                .any(|g| g.get("logGroupName").and_then(Value::as_str) == Some(group.as_str()))
        });
        if !exists {
            return Err(LogSinkError::InvalidGroup(format!(
                "The log group {} does not exist.",
                target.group_arn
            )));
        }
        let stream = citadel_cloudtrail::model::log_stream_name(&target.account, &target.region);
        let resource = format!(
            "arn:aws:logs:{}:{}:log-group:{group}:log-stream:{stream}",
            target.region, target.account
        );
        let checks = ["logs:CreateLogStream", "logs:PutLogEvents"]
            .iter()
            .map(|action| Check::new(*action, resource.as_str()))
            .collect();
        let authorization = Authorization {
            checks,
            ..Default::default()
        };
        self.authorizer
            .authorize(&self.context(principal, &target.region), &authorization, false)
            .await
            .map_err(|_| LogSinkError::InvalidRole(ROLE_DENIED.into()))
    }

    async fn deliver(&self, target: &LogTarget, stream: &str, events: &[LogEvent]) -> Result<(), LogSinkError> {
        if events.is_empty() {
            return Ok(());
        }
        let group = Self::group_name(target)?;
        let principal = self.session(target).await?;
        let region = target.region.as_str();
        let mut created = false;
        for batch in batches(events) {
            let log_events: Vec<Value> = batch
                .iter()
                .map(|e| json!({"timestamp": e.timestamp_ms, "message": e.message}))
                .collect();
            let input = json!({"logGroupName": group, "logStreamName": stream, "logEvents": log_events});
            let result = self.call(&principal, region, "PutLogEvents", input.clone()).await;
            match result {
                Ok(_) => {}
                Err(err) if err.code == "ResourceNotFoundException" && !created => {
                    // The stream is made on first use, as CloudTrail does.
                    match self
                        .call(
                            &principal,
                            region,
                            "CreateLogStream",
                            json!({"logGroupName": group, "logStreamName": stream}),
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(err) if err.code == "ResourceAlreadyExistsException" => {}
                        Err(err) => return Err(delivery_error(&err)),
                    }
                    created = true;
                    self.call(&principal, region, "PutLogEvents", input)
                        .await
                        .map_err(|e| delivery_error(&e))?;
                }
                Err(err) => return Err(delivery_error(&err)),
            }
        }
        Ok(())
    }
}

/// Splits events into `PutLogEvents` batches: at most 10,000 events, 1 MiB and 24 hours each.
fn batches(events: &[LogEvent]) -> Vec<&[LogEvent]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, event) in events.iter().enumerate() {
        let size = event.message.len() + EVENT_OVERHEAD;
        let first_ts = events.get(start).map_or(event.timestamp_ms, |e| e.timestamp_ms);
        let full = i - start >= MAX_BATCH_EVENTS
            || bytes + size > MAX_BATCH_BYTES
            || event.timestamp_ms - first_ts > 24 * 3_600_000;
        if full && i > start {
            out.extend(events.get(start..i));
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    out.extend(events.get(start..).filter(|rest| !rest.is_empty()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ts: i64, len: usize) -> LogEvent {
        LogEvent {
            timestamp_ms: ts,
            message: "x".repeat(len),
        }
    }

    #[test]
    fn batches_respect_put_log_events_limits() {
        let many: Vec<LogEvent> = (0..25_000).map(|i| event(i, 10)).collect();
        let sizes: Vec<usize> = batches(&many).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![10_000, 10_000, 5_000]);
        let big: Vec<LogEvent> = (0..5).map(|i| event(i, 400_000)).collect();
        let sizes: Vec<usize> = batches(&big).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        let spread = vec![event(0, 1), event(1, 1), event(25 * 3_600_000, 1)];
        let sizes: Vec<usize> = batches(&spread).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![2, 1]);
        assert!(batches(&[]).is_empty());
        assert_eq!(session_name("arn:aws:cloudtrail:us-east-1:123456789012:trail/t1"), "t1");
    }
}
