//! Server access logging: one line per request to a logged bucket, in AWS's space-delimited format,
//! delivered in batches as objects in the target bucket.
//!
//! Every request that names a bucket with logging enabled (PutBucketLogging), whether it succeeded
//! or failed, yields one record ([`format_record`]) once its response is known.
//! Records wait in an [`AccessLogBuffer`], grouped by source bucket and destination, and the
//! delivery task (`S3Frontend::spawn_access_log_delivery`) writes each group as one object named
//! `TargetPrefix` + `YYYY-mm-DD-HH-MM-SS-UNIQUEID`.
//! The object is written through the S3 frontend itself as the service principal
//! `logging.s3.amazonaws.com`, so the target bucket's policy decides, encryption at rest applies,
//! and the write is audited like any PutObject.
//!
//! A key design decision: AWS's delivery is best effort and so is ours.
//! A group whose delivery is refused (the target bucket was deleted, or its policy no longer admits
//! the logging service) is dropped with a warning rather than kept forever; any other failure
//! keeps the records for the next round.
//! The server flushes the buffer on graceful shutdown, so a clean stop loses nothing.
//! Requests made by the logging service itself are not logged, so that a bucket logging into
//! itself does not feed on its own deliveries.

use crate::engine::Inner;
use crate::frontend::RequestState;
use crate::names::object_arn;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

/// The service principal that writes log objects.
pub const LOGGING_SERVICE: &str = "logging.s3.amazonaws.com";

/// How often records are delivered unless configured otherwise (AWS: "within a few hours", best effort;
/// most logs arrive within minutes).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// Where a group of records goes: the source bucket and its owner, and the target bucket and prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Destination {
    /// The logged bucket.
    pub source_bucket: String,
    /// The logged bucket's owner account.
    pub source_owner: String,
    /// The bucket the log objects go to.
    pub target_bucket: String,
    /// The prefix of the log objects' keys.
    pub target_prefix: String,
}

/// Records waiting for delivery, and the delivery interval.
pub(crate) struct AccessLogBuffer {
    pending: Mutex<BTreeMap<Destination, Vec<String>>>,
    interval_ms: AtomicU64,
    /// Wakes the delivery task when the interval changes.
    pub changed: tokio::sync::Notify,
}

impl Default for AccessLogBuffer {
    fn default() -> Self {
        Self {
            pending: Mutex::new(BTreeMap::new()),
            interval_ms: AtomicU64::new(u64::try_from(DEFAULT_INTERVAL.as_millis()).unwrap_or(u64::MAX)),
            changed: tokio::sync::Notify::new(),
        }
    }
}

impl AccessLogBuffer {
    /// Queues one record.
    pub fn push(&self, destination: Destination, line: String) {
        self.pending.lock().entry(destination).or_default().push(line);
    }

    /// Takes every queued record.
    pub fn take(&self) -> BTreeMap<Destination, Vec<String>> {
        std::mem::take(&mut *self.pending.lock())
    }

    /// Puts records back in front of newer ones (after a delivery that may succeed later).
    pub fn restore(&self, destination: Destination, mut lines: Vec<String>) {
        let mut pending = self.pending.lock();
        let entry = pending.entry(destination).or_default();
        lines.append(entry);
        *entry = lines;
    }

    /// The delivery interval.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.load(Ordering::Relaxed).max(1))
    }

    /// Changes the delivery interval and wakes the delivery task.
    pub fn set_interval(&self, interval: Duration) {
        let millis = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        self.interval_ms.store(millis.max(1), Ordering::Relaxed);
        self.changed.notify_waiters();
    }
}

/// Everything one access log record says about a request.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordFacts<'a> {
    /// The bucket owner's canonical user id.
    pub owner_canonical_id: &'a str,
    /// The bucket.
    pub bucket: &'a str,
    /// When the request arrived.
    pub time: Option<OffsetDateTime>,
    /// The peer address.
    pub remote_ip: String,
    /// The requester's ARN, or `-`.
    pub requester: String,
    /// `x-amz-request-id`.
    pub request_id: &'a str,
    /// `REST.PUT.OBJECT` and the like.
    pub operation: String,
    /// The object key, if any.
    pub key: Option<&'a str>,
    /// `METHOD /path?query HTTP/1.1`.
    pub request_uri: String,
    /// The HTTP status.
    pub status: u16,
    /// The error code, if any.
    pub error_code: Option<&'a str>,
    /// Response body bytes.
    pub bytes_sent: u64,
    /// The object's size, when the request concerns one.
    pub object_size: Option<u64>,
    /// Milliseconds from arrival to response.
    pub total_ms: i64,
    /// The `Referer` header.
    pub referer: Option<&'a str>,
    /// The `User-Agent` header.
    pub user_agent: &'a str,
    /// The version id of the object, if any.
    pub version_id: Option<&'a str>,
    /// `x-amz-id-2`.
    pub host_id: &'a str,
    /// `SigV2`, `SigV4`, or nothing for unauthenticated requests.
    pub signature_version: Option<&'a str>,
    /// `AuthHeader`, `QueryString`, or nothing.
    pub auth_type: Option<&'a str>,
    /// The `Host` header.
    pub host_header: &'a str,
}

/// A field, or `-` when it is empty.
fn dash(value: Option<&str>) -> &str {
    match value {
        Some(v) if !v.is_empty() => v,
        _ => "-",
    }
}

/// A quoted field; quotes inside are percent-encoded so the record stays parseable.
fn quoted(value: Option<&str>) -> String {
    format!("\"{}\"", dash(value).replace('"', "%22"))
}

/// A number, or `-` for zero or unknown.
fn number(value: Option<u64>) -> String {
    match value {
        Some(n) if n > 0 => n.to_string(),
        _ => "-".to_string(),
    }
}

/// Characters of a key that the record percent-encodes: everything but unreserved characters and `/`.
const KEY_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// `[06/Feb/2019:00:00:38 +0000]`.
pub(crate) fn format_time(time: OffsetDateTime) -> String {
    let t = time.to_offset(time::UtcOffset::UTC);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS
        .get(usize::from(u8::from(t.month())) - 1)
        .copied()
        .unwrap_or("Jan");
    format!(
        "[{:02}/{}/{}:{:02}:{:02}:{:02} +0000]",
        t.day(),
        month,
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// One record in AWS's server access log format (26 space-delimited fields, without a newline).
pub(crate) fn format_record(facts: &RecordFacts<'_>) -> String {
    let key = facts
        .key
        .filter(|k| !k.is_empty())
        .map(|k| percent_encoding::utf8_percent_encode(k, KEY_ENCODE).to_string());
    let fields: [String; 26] = [
        dash(Some(facts.owner_canonical_id)).to_string(),
        dash(Some(facts.bucket)).to_string(),
        format_time(facts.time.unwrap_or(OffsetDateTime::UNIX_EPOCH)),
        dash(Some(&facts.remote_ip)).to_string(),
        dash(Some(&facts.requester)).to_string(),
        dash(Some(facts.request_id)).to_string(),
        dash(Some(&facts.operation)).to_string(),
        dash(key.as_deref()).to_string(),
        quoted(Some(&facts.request_uri)),
        facts.status.to_string(),
        dash(facts.error_code).to_string(),
        number(Some(facts.bytes_sent)),
        number(facts.object_size),
        facts.total_ms.max(0).to_string(),
        // Turn-around time: Citadel answers as soon as the handler returns, so it is the same span.
        facts.total_ms.max(0).to_string(),
        quoted(facts.referer),
        quoted(Some(facts.user_agent)),
        dash(facts.version_id).to_string(),
        dash(Some(facts.host_id)).to_string(),
        dash(facts.signature_version).to_string(),
        // The listener does not report the negotiated cipher suite or TLS version.
        "-".to_string(),
        dash(facts.auth_type).to_string(),
        dash(Some(facts.host_header)).to_string(),
        "-".to_string(),
        // Access point ARN: Citadel has no access points.
        "-".to_string(),
        // aclRequired: buckets are BucketOwnerEnforced, so no request needs an ACL.
        "-".to_string(),
    ];
    fields.join(" ")
}

/// The operation field: `REST.<METHOD>.<RESOURCE>`, as AWS names S3 API calls in access logs.
pub(crate) fn operation_name(method: &http::Method, op: Option<&str>, has_key: bool) -> String {
    let method = method.as_str().to_ascii_uppercase();
    let resource = match op {
        Some("CopyObject") => return "REST.COPY.OBJECT".to_string(),
        Some("UploadPartCopy") => return "REST.COPY.PART".to_string(),
        Some("GetObject" | "PutObject" | "HeadObject" | "DeleteObject" | "PostObject") => "OBJECT",
        Some("ListObjects" | "ListObjectsV2" | "HeadBucket" | "CreateBucket" | "DeleteBucket") => "BUCKET",
        Some("ListObjectVersions") => "BUCKETVERSIONS",
        Some("ListBuckets") => "SERVICE",
        Some("GetBucketLocation") => "LOCATION",
        Some("GetBucketPolicy" | "PutBucketPolicy" | "DeleteBucketPolicy") => "BUCKETPOLICY",
        Some("GetBucketPolicyStatus") => "POLICY_STATUS",
        Some("GetPublicAccessBlock" | "PutPublicAccessBlock" | "DeletePublicAccessBlock") => "PUBLIC_ACCESS_BLOCK",
        Some("GetBucketEncryption" | "PutBucketEncryption" | "DeleteBucketEncryption") => "ENCRYPTION",
        Some("GetBucketVersioning" | "PutBucketVersioning") => "VERSIONING",
        Some("GetBucketTagging" | "PutBucketTagging" | "DeleteBucketTagging") => "TAGGING",
        Some("GetBucketAcl" | "GetObjectAcl") => "ACL",
        Some("GetObjectTagging" | "PutObjectTagging" | "DeleteObjectTagging") => "OBJECT_TAGGING",
        Some("DeleteObjects") => "MULTI_OBJECT_DELETE",
        Some("CreateMultipartUpload" | "ListMultipartUploads") => "UPLOADS",
        Some("UploadPart") => "PART",
        Some("CompleteMultipartUpload" | "AbortMultipartUpload" | "ListParts") => "UPLOAD",
        Some("GetBucketLogging" | "PutBucketLogging") => "LOGGING_STATUS",
        _ if has_key => "OBJECT",
        _ => "BUCKET",
    };
    format!("REST.{method}.{resource}")
}

/// The key of a log object: `TargetPrefix` + `YYYY-mm-DD-HH-MM-SS-UNIQUEID`.
pub(crate) fn object_key(prefix: &str, now: OffsetDateTime, unique_id: &str) -> String {
    let t = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{prefix}{:04}-{:02}-{:02}-{:02}-{:02}-{:02}-{unique_id}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A sample log object ARN under `prefix`, to ask the target bucket's policy about.
pub(crate) fn sample_object_arn(target_bucket: &str, prefix: &str) -> String {
    object_arn(
        target_bucket,
        &object_key(prefix, OffsetDateTime::UNIX_EPOCH, "0000000000000000"),
    )
}

/// Queues the access log record of a finished request, if its bucket is logged.
pub(crate) async fn record(inner: &Inner, state: &RequestState, response: &http::Response<s3s::Body>) {
    let (op, mut bucket, key, mut owner, mut logging, loaded) = {
        let facts = state.audit.lock();
        (
            facts.op.map(|op| op.name),
            facts.bucket.clone(),
            facts.key.clone(),
            facts.owner.clone(),
            facts.logging.clone(),
            facts.bucket_loaded,
        )
    };
    if !loaded {
        // The request failed before the access hook read the bucket (a bad signature, an unknown
        // operation): find the bucket from a path-style URI, as S3 still logs such requests.
        if bucket.is_none() {
            bucket = state
                .request_line
                .1
                .split(['?', '/'])
                .nth(1)
                .filter(|b| !b.is_empty())
                .map(str::to_string);
        }
        let Some(name) = bucket.as_deref() else { return };
        let Ok(Some((record, _))) = inner.bucket(name).await else {
            return;
        };
        owner = Some(record.owner);
        logging = record.logging;
    }
    let (Some(logging), Some(bucket), Some(owner)) = (logging, bucket, owner) else {
        return;
    };
    let status = response.status().as_u16();
    let headers = response.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let error_code = (status >= 300)
        .then(|| response.body().bytes())
        .flatten()
        .and_then(|b| xml_code(&String::from_utf8_lossy(&b)));
    let bytes_sent = header("content-length")
        .and_then(|v| v.parse().ok())
        .or_else(|| response.body().bytes().map(|b| b.len() as u64))
        .unwrap_or(0);
    let object_size = match op {
        Some("GetObject" | "HeadObject") if status < 300 => header("content-range")
            .and_then(|r| r.rsplit('/').next())
            .and_then(|total| total.parse().ok())
            .or_else(|| header("content-length").and_then(|v| v.parse().ok())),
        Some("PutObject" | "UploadPart" | "PostObject") => state.request_length,
        _ => None,
    };
    let principal = state.principal();
    let requester = match &principal.kind {
        citadel_core::PrincipalKind::Anonymous => "-".to_string(),
        citadel_core::PrincipalKind::Service { name } => format!("svc:{name}"),
        _ if principal.arn.is_empty() => "-".to_string(),
        _ => principal.arn.clone(),
    };
    let authenticated = state.resolved.lock().is_some();
    let (signature_version, auth_type) = match (state.signature_version, state.auth_type) {
        (Some("AWS"), Some("REST-QUERY-STRING")) => (Some("SigV2"), Some("QueryString")),
        (Some("AWS"), _) => (Some("SigV2"), Some("AuthHeader")),
        (Some(_), Some("REST-QUERY-STRING")) => (Some("SigV4"), Some("QueryString")),
        (Some(_), _) => (Some("SigV4"), Some("AuthHeader")),
        (None, Some("POST")) if authenticated => (Some("SigV4"), Some("AuthHeader")),
        _ => (None, None),
    };
    let (method, uri, version) = &state.request_line;
    let total_ms = i64::try_from((inner.clock.now() - state.time).whole_milliseconds()).unwrap_or(0);
    let canonical = crate::handlers::util::canonical_id(&owner);
    let line = format_record(&RecordFacts {
        owner_canonical_id: &canonical,
        bucket: &bucket,
        time: Some(state.time),
        remote_ip: state.remote.ip().to_string(),
        requester,
        request_id: &state.request_id,
        operation: operation_name(method, op, key.is_some()),
        key: key.as_deref(),
        request_uri: format!("{method} {uri} {version:?}"),
        status,
        error_code: error_code.as_deref(),
        bytes_sent,
        object_size,
        total_ms,
        referer: state.referer.as_deref(),
        user_agent: &state.user_agent,
        version_id: header("x-amz-version-id"),
        host_id: &state.host_id,
        signature_version,
        auth_type,
        host_header: &state.host,
    });
    inner.access_logs.push(
        Destination {
            source_bucket: bucket,
            source_owner: owner,
            target_bucket: logging.target_bucket,
            target_prefix: logging.target_prefix,
        },
        line,
    );
}

/// The `<Code>` of an error document.
fn xml_code(xml: &str) -> Option<String> {
    let start = xml.find("<Code>")? + "<Code>".len();
    let end = xml.get(start..)?.find("</Code>")? + start;
    xml.get(start..end).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_26_fields_in_aws_order() {
        let time = OffsetDateTime::from_unix_timestamp(1_549_411_238).unwrap();
        let facts = RecordFacts {
            owner_canonical_id: "79a5",
            bucket: "awsexamplebucket1",
            time: Some(time),
            remote_ip: "192.0.2.3".into(),
            requester: "arn:aws:iam::000000000000:root".into(),
            request_id: "3E57427F3EXAMPLE",
            operation: "REST.GET.OBJECT".into(),
            key: Some("photos/my photo.jpg"),
            request_uri: "GET /awsexamplebucket1/photos/my%20photo.jpg HTTP/1.1".into(),
            status: 200,
            error_code: None,
            bytes_sent: 113,
            object_size: Some(113),
            total_ms: 7,
            referer: None,
            user_agent: "S3Console/0.4 \"quoted\"",
            version_id: None,
            host_id: "s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234=",
            signature_version: Some("SigV4"),
            auth_type: Some("AuthHeader"),
            host_header: "awsexamplebucket1.s3.us-west-1.amazonaws.com",
        };
        let line = format_record(&facts);
        assert!(line.starts_with(
            "79a5 awsexamplebucket1 [06/Feb/2019:00:00:38 +0000] 192.0.2.3 arn:aws:iam::000000000000:root 3E57427F3EXAMPLE REST.GET.OBJECT photos/my%20photo.jpg \"GET /awsexamplebucket1/photos/my%20photo.jpg HTTP/1.1\" 200 - 113 113 7 7 \"-\" \"S3Console/0.4 %22quoted%22\" - "
        ), "{line}");
        assert!(
            line.ends_with(" SigV4 - AuthHeader awsexamplebucket1.s3.us-west-1.amazonaws.com - - -"),
            "{line}"
        );
    }

    #[test]
    fn operations_and_object_keys_follow_aws() {
        assert_eq!(
            operation_name(&http::Method::PUT, Some("PutObject"), true),
            "REST.PUT.OBJECT"
        );
        assert_eq!(
            operation_name(&http::Method::GET, Some("ListObjectsV2"), false),
            "REST.GET.BUCKET"
        );
        assert_eq!(
            operation_name(&http::Method::PUT, Some("CopyObject"), true),
            "REST.COPY.OBJECT"
        );
        let now = OffsetDateTime::from_unix_timestamp(1_549_411_238).unwrap();
        assert_eq!(
            object_key("logs/", now, "ABCDEF0123456789"),
            "logs/2019-02-06-00-00-38-ABCDEF0123456789"
        );
    }

    #[test]
    fn the_buffer_keeps_order_across_restores() {
        let buffer = AccessLogBuffer::default();
        let dest = Destination {
            source_bucket: "a".into(),
            source_owner: "1".into(),
            target_bucket: "b".into(),
            target_prefix: String::new(),
        };
        buffer.push(dest.clone(), "one".into());
        let taken = buffer.take();
        buffer.push(dest.clone(), "two".into());
        for (d, lines) in taken {
            buffer.restore(d, lines);
        }
        assert_eq!(
            buffer.take().remove(&dest).unwrap(),
            vec!["one".to_string(), "two".to_string()]
        );
        buffer.set_interval(Duration::from_secs(2));
        assert_eq!(buffer.interval(), Duration::from_secs(2));
    }
}
