//! Small conversions shared by the handlers.

use crate::crypto::{self, CustomerKey};
use crate::engine::Inner;
use crate::frontend::{RequestState, error};
use crate::meta::{BucketRecord, ObjectRecord};
use citadel_store::{CommitError, WriteBatch};
use s3s::dto::{ETag, Owner, Timestamp};
use s3s::{S3ErrorCode, S3Result};
use time::OffsetDateTime;

/// Epoch milliseconds of the request time.
pub fn now_ms(state: &RequestState) -> i64 {
    i64::try_from(state.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// A timestamp from epoch milliseconds.
pub fn timestamp(ms: i64) -> Timestamp {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

/// A strong ETag.
pub fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_string())
}

/// The canonical user id of an account (64 hex characters, as S3 shows owners).
pub fn canonical_id(account: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("citadel-canonical-user:{account}").as_bytes(),
    );
    hex::encode(digest.as_ref())
}

/// The owner element of an account.
pub fn owner(account: &str) -> Owner {
    Owner {
        display_name: None,
        id: Some(canonical_id(account)),
    }
}

/// Parses SSE-C headers, refusing them over plain HTTP as AWS does.
pub fn customer_key(
    state: &RequestState,
    algorithm: Option<&str>,
    key: Option<&str>,
    md5: Option<&str>,
) -> S3Result<Option<CustomerKey>> {
    let parsed =
        crypto::customer_key(algorithm, key, md5).map_err(|e| error(S3ErrorCode::InvalidArgument, 400, e.message()))?;
    if parsed.is_some() && !state.secure {
        return Err(error(
            S3ErrorCode::InvalidRequest,
            400,
            "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.",
        ));
    }
    Ok(parsed)
}

/// The encryption context of an object's data key (used by SSE-KMS).
pub fn key_context(bucket: &str, key: &str) -> Vec<(String, String)> {
    vec![("aws:s3:arn".to_string(), crate::names::object_arn(bucket, key))]
}

/// `x-amz-server-side-encryption-context` of a write response: the object's encryption context
/// as base64 JSON, when the request sent one.
pub fn context_echo(record: &ObjectRecord, requested: bool) -> Option<String> {
    use base64::Engine;
    let json = record.encryption.as_ref()?.kms_context.as_ref()?;
    requested.then(|| base64::engine::general_purpose::STANDARD.encode(json))
}

/// A conflict that outlived its retries.
pub fn conflict() -> s3s::S3Error {
    error(
        S3ErrorCode::OperationAborted,
        409,
        "A conflicting conditional operation is currently in progress against this resource. Please try again.",
    )
}

/// Applies `change` to a bucket row and commits it with the audit record, retrying on conflict.
pub async fn update_bucket(
    inner: &Inner,
    state: &RequestState,
    bucket: &str,
    mut change: impl FnMut(&mut BucketRecord) -> S3Result<()>,
) -> S3Result<BucketRecord> {
    for _ in 0..5 {
        let (mut record, raw) = inner.require_bucket_fresh(bucket).await?;
        change(&mut record)?;
        let mut batch = WriteBatch::new();
        let key = crate::meta::bucket_key(bucket);
        batch.expect(crate::meta::BUCKETS, &key, Some(&raw));
        batch.put(crate::meta::BUCKETS, &key, &crate::meta::encode(&record));
        match inner.commit(state, batch, None).await {
            Ok(()) => return Ok(record),
            Err(CommitError::Conflict { .. }) => continue,
            Err(err) => return Err(crate::engine::internal(err)),
        }
    }
    Err(conflict())
}

/// Fills the SSE response fields from an object's encryption.
pub struct SseEcho {
    /// `x-amz-server-side-encryption`.
    pub server_side_encryption: Option<s3s::dto::ServerSideEncryption>,
    /// `x-amz-server-side-encryption-aws-kms-key-id`.
    pub kms_key_id: Option<String>,
    /// `x-amz-server-side-encryption-customer-algorithm`.
    pub customer_algorithm: Option<String>,
    /// `x-amz-server-side-encryption-customer-key-MD5`.
    pub customer_key_md5: Option<String>,
    /// `x-amz-server-side-encryption-bucket-key-enabled`.
    pub bucket_key_enabled: Option<bool>,
}

/// The SSE headers an object's responses carry.
pub fn sse_echo(record: &ObjectRecord) -> SseEcho {
    match &record.encryption {
        Some(e) if e.mode == "SSE-C" => SseEcho {
            server_side_encryption: None,
            kms_key_id: None,
            customer_algorithm: Some("AES256".into()),
            customer_key_md5: e.customer_key_md5.clone(),
            bucket_key_enabled: None,
        },
        Some(e) => SseEcho {
            server_side_encryption: Some(s3s::dto::ServerSideEncryption::from(e.mode.clone())),
            kms_key_id: e.kms_key_id.clone(),
            customer_algorithm: None,
            customer_key_md5: None,
            bucket_key_enabled: e.bucket_key_enabled.then_some(true),
        },
        None => SseEcho {
            server_side_encryption: None,
            kms_key_id: None,
            customer_algorithm: None,
            customer_key_md5: None,
            bucket_key_enabled: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ids_are_stable_hex() {
        let id = canonical_id("000000000000");
        assert_eq!(id.len(), 64);
        assert_eq!(id, canonical_id("000000000000"));
        assert_ne!(id, canonical_id("111111111111"));
    }

    #[test]
    fn timestamps_keep_milliseconds() {
        let t: OffsetDateTime = timestamp(1_700_000_000_123).into();
        assert_eq!(t.unix_timestamp_nanos(), 1_700_000_000_123_000_000);
    }
}
