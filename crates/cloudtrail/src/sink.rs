//! The seam between CloudTrail and S3: where log and digest files go, and what buckets allow.
//!
//! CloudTrail writes objects as the service principal `cloudtrail.amazonaws.com`, the way S3 would
//! store any PutObject (encrypted at rest, listed, with user metadata), and it must read bucket
//! policies to check a new trail's destination. The S3 crate owns all of that, so this crate asks
//! for it through [`ObjectSink`], which the server implements over the S3 engine.
//! [`MemorySink`] is an in-memory implementation for tests.

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
}

/// An in-memory [`ObjectSink`] for tests: buckets with optional policies, and the objects put.
#[derive(Debug, Default)]
pub struct MemorySink {
    buckets: Mutex<BTreeMap<String, Option<String>>>,
    objects: Mutex<BTreeMap<(String, String), Delivery>>,
    failing: Mutex<bool>,
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
}
