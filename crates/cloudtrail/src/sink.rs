//! The seam between CloudTrail and S3: where log and digest files go, and what buckets allow.
//!
//! CloudTrail writes objects as the service principal `cloudtrail.amazonaws.com`, the way S3 would
//! store any PutObject (encrypted at rest, listed, with user metadata), and it must read bucket
//! policies to check a new trail's destination. The S3 crate owns all of that, so this crate asks
//! for it through [`ObjectSink`], which the server implements over the S3 engine.
//! [`MemorySink`] is an in-memory implementation for tests.
//!
//! CloudWatch Logs delivery has its own seam, [`LogSink`], because it acts as a different principal:
//! not the CloudTrail service itself but a session of the role the trail names, so the role's IAM
//! policies decide, as on AWS. [`MemoryLogSink`] is its in-memory implementation for tests.

use parking_lot::Mutex;
use std::collections::BTreeMap;

/// One object CloudTrail delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The destination bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// The object bytes (gzip).
    pub body: Vec<u8>,
    /// `Content-Type` (`application/json`).
    pub content_type: &'static str,
    /// User metadata (`x-amz-meta-*` without the prefix), e.g. `signature`, `signature-algorithm`.
    pub metadata: Vec<(String, String)>,
    /// The trail ARN, for the bucket policy's `aws:SourceArn` condition.
    pub source_arn: String,
    /// The trail's account, for `aws:SourceAccount`.
    pub source_account: String,
    /// The KMS key ARN to encrypt the object with (SSE-KMS), for log files of trails with a key.
    pub kms_key_id: Option<String>,
}

/// Why a delivery failed; the text is shown as `LatestDeliveryError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The bucket does not exist.
    #[error("NoSuchBucket")]
    NoSuchBucket,
    /// The bucket policy does not allow CloudTrail to write.
    #[error("AccessDenied")]
    AccessDenied,
    /// Anything else, with S3's error code.
    #[error("{0}")]
    Other(String),
}

/// Where CloudTrail's objects go.
#[async_trait::async_trait]
pub trait ObjectSink: Send + Sync + 'static {
    /// Stores one object as `cloudtrail.amazonaws.com`, enforcing the bucket policy.
    ///
    /// # Errors
    /// [`SinkError`] when the bucket is missing, the policy denies, or S3 fails.
    async fn put_object(&self, delivery: Delivery) -> Result<(), SinkError>;

    /// The bucket's policy document, if the bucket has one.
    async fn bucket_policy(&self, bucket: &str) -> Option<String>;

    /// Whether the bucket exists.
    async fn bucket_exists(&self, bucket: &str) -> bool;

    /// Resolves a trail's KMS key to its ARN and checks that the key policy lets
    /// `cloudtrail.amazonaws.com` call `kms:GenerateDataKey*` for the trail.
    /// The default, for sinks without KMS, knows no key.
    ///
    /// # Errors
    /// [`KmsKeyError`] for a missing or disabled key or an insufficient key policy.
    async fn check_kms_key(&self, check: &KmsKeyCheck) -> Result<String, KmsKeyError> {
        let _ = check;
        Err(KmsKeyError::NotFound)
    }
}

/// An in-memory [`ObjectSink`] for tests: buckets with optional policies, and the objects put.
#[derive(Debug, Default)]
pub struct MemorySink {
    buckets: Mutex<BTreeMap<String, Option<String>>>,
    objects: Mutex<BTreeMap<(String, String), Delivery>>,
    failing: Mutex<bool>,
    kms_keys: Mutex<BTreeMap<String, (String, bool)>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a bucket with an optional policy.
    pub fn add_bucket(&self, bucket: &str, policy: Option<&str>) {
        self.buckets
            .lock()
            .insert(bucket.to_string(), policy.map(str::to_string));
    }

    /// Adds a KMS key known by `id` with ARN `arn`, whose policy allows CloudTrail or not.
    pub fn add_kms_key(&self, id: &str, arn: &str, allows_cloudtrail: bool) {
        self.kms_keys
            .lock()
            .insert(id.to_string(), (arn.to_string(), allows_cloudtrail));
    }

    /// Makes every later put fail (or succeed again).
    pub fn set_failing(&self, failing: bool) {
        *self.failing.lock() = failing;
    }

    /// Every object put so far, by (bucket, key), ascending.
    pub fn objects(&self) -> Vec<Delivery> {
        self.objects.lock().values().cloned().collect()
    }

    /// One object.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Delivery> {
        self.objects.lock().get(&(bucket.to_string(), key.to_string())).cloned()
    }
}

#[async_trait::async_trait]
impl ObjectSink for MemorySink {
    async fn put_object(&self, delivery: Delivery) -> Result<(), SinkError> {
        if *self.failing.lock() {
            return Err(SinkError::AccessDenied);
        }
        if !self.buckets.lock().contains_key(&delivery.bucket) {
            return Err(SinkError::NoSuchBucket);
        }
        self.objects
            .lock()
            .insert((delivery.bucket.clone(), delivery.key.clone()), delivery);
        Ok(())
    }

    async fn bucket_policy(&self, bucket: &str) -> Option<String> {
        self.buckets.lock().get(bucket).cloned().flatten()
    }

    async fn bucket_exists(&self, bucket: &str) -> bool {
        self.buckets.lock().contains_key(bucket)
    }

    async fn check_kms_key(&self, check: &KmsKeyCheck) -> Result<String, KmsKeyError> {
        match self.kms_keys.lock().get(&check.key_id) {
            None => Err(KmsKeyError::NotFound),
            Some((_, false)) => Err(KmsKeyError::InsufficientPolicy),
            Some((arn, true)) => Ok(arn.clone()),
        }
    }
}

/// Why a trail's KMS key cannot be used; each maps to CloudTrail's error of the same name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsKeyError {
    /// `KmsKeyNotFoundException`: no such key (or not in the trail's region).
    #[error("KmsKeyNotFoundException")]
    NotFound,
    /// `KmsKeyDisabledException`: the key is disabled or pending deletion.
    #[error("KmsKeyDisabledException")]
    Disabled,
    /// `InsufficientEncryptionPolicyException`: the key policy does not let CloudTrail make data keys.
    #[error("InsufficientEncryptionPolicyException")]
    InsufficientPolicy,
    /// `KmsException`: anything else KMS reported.
    #[error("KmsException: {0}")]
    Other(String),
}

/// The KMS key a trail names, as [`KmsKeyCheck`] asks about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKeyCheck {
    /// The key id, key ARN, alias name or alias ARN the caller gave.
    pub key_id: String,
    /// The trail's account.
    pub account: String,
    /// The trail's home region.
    pub region: String,
    /// The trail ARN, the `aws:cloudtrail:arn` encryption context of its log files.
    pub trail_arn: String,
}

/// A trail's CloudWatch Logs destination: the group, the role CloudTrail assumes, and the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    /// `CloudWatchLogsLogGroupArn` as configured (`arn:aws:logs:R:A:log-group:NAME:*`).
    pub group_arn: String,
    /// `CloudWatchLogsRoleArn`.
    pub role_arn: String,
    /// The trail ARN (the role session is named after the trail).
    pub trail_arn: String,
    /// The trail's account.
    pub account: String,
    /// The trail's home region, where the log group must be.
    pub region: String,
}

/// One log event delivered to CloudWatch Logs: a CloudTrail record as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// The record's `eventTime`, in epoch milliseconds.
    pub timestamp_ms: i64,
    /// The record serialised as JSON.
    pub message: String,
}

/// Why a CloudWatch Logs check or delivery failed; each maps to one CloudTrail error code, and
/// the text is what `LatestCloudWatchLogsDeliveryError` shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogSinkError {
    /// `InvalidCloudWatchLogsRoleArnException`: no such role, CloudTrail may not assume it, or it
    /// lacks `logs:CreateLogStream` / `logs:PutLogEvents` on the group.
    #[error("{0}")]
    InvalidRole(String),
    /// `InvalidCloudWatchLogsLogGroupArnException`: a malformed ARN or a missing group.
    #[error("{0}")]
    InvalidGroup(String),
    /// `CloudWatchLogsDeliveryUnavailableException`: delivery to this group is impossible from
    /// the trail's region (another region or account), or the server has no Logs service.
    #[error("{0}")]
    Unavailable(String),
    /// A delivery failed for another reason (the Logs error code and message).
    #[error("{0}")]
    Other(String),
}

/// Where CloudTrail's CloudWatch Logs events go; the server implements it over the Logs service,
/// authorizing every call as a session of the trail's role.
#[async_trait::async_trait]
pub trait LogSink: Send + Sync + 'static {
    /// Checks at CreateTrail/UpdateTrail that the group exists in the trail's region and account,
    /// that `cloudtrail.amazonaws.com` may assume the role, and that the role allows
    /// `logs:CreateLogStream` and `logs:PutLogEvents` on the trail's stream.
    ///
    /// # Errors
    /// The [`LogSinkError`] naming the broken condition.
    async fn check(&self, target: &LogTarget) -> Result<(), LogSinkError>;

    /// Puts `events` (in time order) into `stream` of the group, creating the stream when missing,
    /// acting as a session of the role.
    ///
    /// # Errors
    /// [`LogSinkError`] when the role can no longer be assumed or used, or Logs refuses the events.
    async fn deliver(&self, target: &LogTarget, stream: &str, events: &[LogEvent]) -> Result<(), LogSinkError>;
}

/// The [`LogSink`] of a server without CloudWatch Logs: every destination is unavailable.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLogSink;

#[async_trait::async_trait]
impl LogSink for NoLogSink {
    async fn check(&self, _target: &LogTarget) -> Result<(), LogSinkError> {
        Err(LogSinkError::Unavailable(
            "CloudWatch Logs delivery is not available on this server.".into(),
        ))
    }

    async fn deliver(&self, _target: &LogTarget, _stream: &str, _events: &[LogEvent]) -> Result<(), LogSinkError> {
        Err(LogSinkError::Unavailable(
            "CloudWatch Logs delivery is not available on this server.".into(),
        ))
    }
}

/// An in-memory [`LogSink`] for tests: groups that exist, roles that work, and the events put.
#[derive(Debug, Default)]
pub struct MemoryLogSink {
    groups: Mutex<Vec<String>>,
    roles: Mutex<BTreeMap<String, bool>>,
    events: Mutex<BTreeMap<(String, String), Vec<LogEvent>>>,
}

impl MemoryLogSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a log group by ARN (with or without the `:*` suffix).
    pub fn add_group(&self, arn: &str) {
        self.groups.lock().push(arn.trim_end_matches(":*").to_string());
    }

    /// Adds a role, or changes whether it may still be used.
    pub fn set_role(&self, arn: &str, allowed: bool) {
        self.roles.lock().insert(arn.to_string(), allowed);
    }

    /// The events put into (group ARN without `:*`, stream), in order.
    pub fn events(&self, group_arn: &str, stream: &str) -> Vec<LogEvent> {
        self.events
            .lock()
            .get(&(group_arn.trim_end_matches(":*").to_string(), stream.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    fn usable(&self, target: &LogTarget) -> Result<String, LogSinkError> {
        let group = target.group_arn.trim_end_matches(":*").to_string();
        if !self.groups.lock().contains(&group) {
            return Err(LogSinkError::InvalidGroup(format!(
                "Log group {} does not exist.",
                target.group_arn
            )));
        }
        match self.roles.lock().get(&target.role_arn) {
            Some(true) => Ok(group),
            _ => Err(LogSinkError::InvalidRole(
                "Access denied. Verify in IAM that the role has adequate permissions.".into(),
            )),
        }
    }
}

#[async_trait::async_trait]
impl LogSink for MemoryLogSink {
    async fn check(&self, target: &LogTarget) -> Result<(), LogSinkError> {
        self.usable(target).map(|_| ())
    }

    async fn deliver(&self, target: &LogTarget, stream: &str, events: &[LogEvent]) -> Result<(), LogSinkError> {
        let group = self.usable(target)?;
        self.events
            .lock()
            .entry((group, stream.to_string()))
            .or_default()
            .extend(events.iter().cloned());
        Ok(())
    }
}

/// The `x-amz-server-side-encryption-context` of a trail's SSE-KMS log files: base64 of
/// `{"aws:cloudtrail:arn": <trail ARN>}`, so key policies can name the trail as on AWS
/// (`kms:EncryptionContext:aws:cloudtrail:arn`); S3 adds `aws:s3:arn` itself.
pub fn kms_encryption_context_b64(trail_arn: &str) -> String {
    use base64::Engine;
    let context = serde_json::json!({ "aws:cloudtrail:arn": trail_arn });
    base64::engine::general_purpose::STANDARD.encode(context.to_string())
}
