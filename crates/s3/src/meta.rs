//! The metadata rows S3 keeps in the store, and their keys.
//!
//! Object bodies live in the blob store; everything else is a JSON row in one of these tables:
//!
//! | table | key | value |
//! |---|---|---|
//! | `s3_buckets` | bucket name (global, like AWS's namespace) | [`BucketRecord`] |
//! | `s3_objects` | (bucket, object key) | [`ObjectRecord`], the current version |
//! | `s3_versions` | (bucket, object key, `u64::MAX - sequence`) | [`ObjectRecord`], noncurrent versions, newest first |
//! | `s3_uploads` | (bucket, object key, upload id) | [`UploadRecord`] |
//! | `s3_parts` | (upload id, part number) | [`PartRecord`] |
//! | `s3_inline` | segment key `s3/inline/<uuid>` | sealed body of an object of at most 16 KiB |
//!
//! Keys are tuple keys ([`citadel_store::keys`]), so "every object of a bucket under a prefix" is
//! one range scan in UTF-8 byte order.
//! Every change is one [`citadel_store::WriteBatch`] guarded by preconditions on the rows it read,
//! committed together with the request's CloudTrail record.
//! Blobs are written before the metadata that points at them and deleted after the metadata that
//! pointed at them is gone, so a crash can leave an orphan blob but never a dangling row.

use citadel_store::keys::{Key, KeyReader};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The bucket table.
pub const BUCKETS: &str = "s3_buckets";
/// The current-version object table.
pub const OBJECTS: &str = "s3_objects";
/// The noncurrent-version table.
pub const VERSIONS: &str = "s3_versions";
/// The multipart upload table.
pub const UPLOADS: &str = "s3_uploads";
/// The multipart part table.
pub const PARTS: &str = "s3_parts";
/// Sealed bodies of small objects, keyed by their segment's `s3/inline/...` key: the same bytes a
/// blob would hold, kept in the store so that they commit with the object row.
pub const INLINE: &str = "s3_inline";

/// Block Public Access settings of a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// Reject public ACLs.
    pub block_public_acls: bool,
    /// Ignore public ACLs.
    pub ignore_public_acls: bool,
    /// Reject bucket policies that grant public access.
    pub block_public_policy: bool,
    /// Only the owner account (and AWS services) may use a public policy's grants.
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    /// All four settings on: what AWS gives every new bucket since April 2023.
    pub fn all() -> Self {
        Self {
            block_public_acls: true,
            ignore_public_acls: true,
            block_public_policy: true,
            restrict_public_buckets: true,
        }
    }
}

/// Default encryption of a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEncryption {
    /// `AES256` or `aws:kms`.
    pub algorithm: String,
    /// The KMS key for `aws:kms`.
    pub kms_key_id: Option<String>,
    /// Whether S3 Bucket Keys are enabled (recorded, echoed).
    pub bucket_key_enabled: bool,
}

/// Server access logging of a bucket (PutBucketLogging).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketLogging {
    /// The bucket the log objects go to.
    pub target_bucket: String,
    /// The prefix of the log objects' keys.
    #[serde(default)]
    pub target_prefix: String,
}

/// A bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    /// The bucket name.
    pub name: String,
    /// The owning account.
    pub owner: String,
    /// The region (LocationConstraint); `us-east-1` when none was given.
    pub region: String,
    /// Creation time, epoch milliseconds.
    pub created_ms: i64,
    /// The bucket policy, JSON text as the client sent it.
    #[serde(default)]
    pub policy: Option<String>,
    /// Block Public Access, `None` when deleted.
    #[serde(default)]
    pub public_access_block: Option<PublicAccessBlock>,
    /// Explicit default encryption, `None` for the implicit SSE-S3 default.
    #[serde(default)]
    pub encryption: Option<BucketEncryption>,
    /// `Enabled` or `Suspended`; `None` for a bucket that was never versioned.
    #[serde(default)]
    pub versioning: Option<String>,
    /// A counter for version ids and noncurrent-version ordering.
    #[serde(default)]
    pub version_seq: u64,
    /// Bucket tags.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Server access logging, `None` when disabled.
    #[serde(default)]
    pub logging: Option<BucketLogging>,
}

/// How an object's data key is protected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEncryption {
    /// `AES256` (SSE-S3), `aws:kms` (SSE-KMS) or `SSE-C`.
    pub mode: String,
    /// The wrapped data key, base64.
    pub wrapped_key: String,
    /// The KMS key id for SSE-KMS.
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// SSE-C: salt of the key proof, base64.
    #[serde(default)]
    pub customer_salt: Option<String>,
    /// SSE-C: salted HMAC of the customer key, base64.
    #[serde(default)]
    pub customer_proof: Option<String>,
    /// SSE-C: MD5 of the customer key, base64 (echoed in responses).
    #[serde(default)]
    pub customer_key_md5: Option<String>,
    /// Whether Bucket Keys were requested (echoed).
    #[serde(default)]
    pub bucket_key_enabled: bool,
    /// SSE-KMS: the encryption context the data key is bound to, as JSON; `None` for objects
    /// written before it was recorded (their context is the object ARN).
    #[serde(default)]
    pub kms_context: Option<String>,
}

/// One encrypted piece of an object's body: the whole body, or one multipart part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The blob key.
    pub blob: String,
    /// Plaintext bytes.
    pub size: u64,
    /// The segment's nonce prefix, hex.
    pub nonce: String,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
}

/// A stored checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChecksum {
    /// `CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`, `SHA256`.
    pub algorithm: String,
    /// The base64 value (with `-N` for composite multipart checksums).
    pub value: String,
    /// `FULL_OBJECT` or `COMPOSITE`.
    pub kind: String,
}

/// An object version (or a delete marker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// The object key.
    pub key: String,
    /// The version id, `null` for unversioned objects.
    pub version_id: String,
    /// The bucket's version sequence number when this version was written (orders versions).
    #[serde(default)]
    pub seq: u64,
    /// True for a delete marker (no body).
    #[serde(default)]
    pub delete_marker: bool,
    /// Plaintext size.
    pub size: u64,
    /// The ETag without quotes.
    pub etag: String,
    /// Last modification, epoch milliseconds.
    pub last_modified_ms: i64,
    /// The uploading account (the bucket owner under BucketOwnerEnforced).
    pub owner: String,
    /// `Content-Type`.
    #[serde(default)]
    pub content_type: Option<String>,
    /// `Content-Encoding` (without `aws-chunked`).
    #[serde(default)]
    pub content_encoding: Option<String>,
    /// `Content-Disposition`.
    #[serde(default)]
    pub content_disposition: Option<String>,
    /// `Content-Language`.
    #[serde(default)]
    pub content_language: Option<String>,
    /// `Cache-Control`.
    #[serde(default)]
    pub cache_control: Option<String>,
    /// `Expires`, as sent.
    #[serde(default)]
    pub expires: Option<String>,
    /// `x-amz-meta-*`, names lower-cased.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Object tags.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// The flexible checksum, if one was sent or requested.
    #[serde(default)]
    pub checksum: Option<StoredChecksum>,
    /// Part sizes for multipart objects (one segment per part).
    #[serde(default)]
    pub parts_count: Option<u32>,
    /// Encryption of the body.
    pub encryption: Option<ObjectEncryption>,
    /// The body's encrypted segments, in order.
    #[serde(default)]
    pub segments: Vec<Segment>,
    /// `STANDARD`.
    #[serde(default = "standard")]
    pub storage_class: String,
}

fn standard() -> String {
    "STANDARD".to_string()
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// The upload id.
    pub upload_id: String,
    /// The object key.
    pub key: String,
    /// Initiation time, epoch milliseconds.
    pub initiated_ms: i64,
    /// The initiating principal's ARN.
    pub initiator_arn: String,
    /// The initiating principal's id.
    pub initiator_id: String,
    /// The object's future metadata (key, content headers, metadata, tags, encryption, checksum algorithm).
    pub template: ObjectRecord,
    /// The checksum algorithm requested at creation.
    #[serde(default)]
    pub checksum_algorithm: Option<String>,
}

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    /// 1..=10000.
    pub part_number: u32,
    /// MD5 hex of the part's plaintext.
    pub etag: String,
    /// Upload time, epoch milliseconds.
    pub last_modified_ms: i64,
    /// The encrypted body.
    pub segment: Segment,
    /// The part's checksum (algorithm of the upload).
    #[serde(default)]
    pub checksum: Option<String>,
}

/// The key of a bucket row.
pub fn bucket_key(bucket: &str) -> Vec<u8> {
    bucket.as_bytes().to_vec()
}

/// The key of a current object row.
pub fn object_key(bucket: &str, key: &str) -> Vec<u8> {
    Key::new().str(bucket).str(key).finish()
}

/// The scan prefix of a bucket's objects whose keys start with `prefix`.
pub fn object_prefix(bucket: &str, prefix: &str) -> Vec<u8> {
    Key::new().str(bucket).str_prefix(prefix).finish()
}

/// The object key of an `s3_objects` (or `s3_uploads`, `s3_versions`) row key.
pub fn decode_object_key(row_key: &[u8]) -> Option<String> {
    let mut reader = KeyReader::new(row_key);
    reader.str().ok()?;
    reader.str().ok()
}

/// The key of a noncurrent version row: newest first within an object.
pub fn version_key(bucket: &str, key: &str, seq: u64) -> Vec<u8> {
    Key::new().str(bucket).str(key).u64(u64::MAX - seq).finish()
}

/// The scan prefix of every noncurrent version of one object.
pub fn version_prefix_of(bucket: &str, key: &str) -> Vec<u8> {
    Key::new().str(bucket).str(key).finish()
}

/// The key of an upload row.
pub fn upload_key(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    Key::new().str(bucket).str(key).str(upload_id).finish()
}

/// The key of a part row.
pub fn part_key(upload_id: &str, part_number: u32) -> Vec<u8> {
    Key::new().str(upload_id).u64(u64::from(part_number)).finish()
}

/// The scan prefix of every part of an upload.
pub fn part_prefix(upload_id: &str) -> Vec<u8> {
    Key::new().str(upload_id).finish()
}

/// Serializes a row.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Deserializes a row; a row that does not parse is treated as absent.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_sort_in_byte_order_and_decode() {
        let keys = ["a", "a b", "a+b", "a/", "a/b", "b", "é"];
        let mut encoded: Vec<Vec<u8>> = keys.iter().map(|k| object_key("bkt", k)).collect();
        encoded.sort();
        let decoded: Vec<String> = encoded.iter().map(|k| decode_object_key(k).unwrap()).collect();
        let mut want: Vec<&str> = keys.to_vec();
        want.sort();
        assert_eq!(decoded, want);
    }

    #[test]
    fn prefixes_cover_exactly_their_keys() {
        let prefix = object_prefix("bkt", "a/");
        assert!(object_key("bkt", "a/b").starts_with(&prefix));
        assert!(!object_key("bkt", "a").starts_with(&prefix));
        assert!(!object_key("bkt2", "a/b").starts_with(&object_prefix("bkt", "")));
    }

    #[test]
    fn versions_sort_newest_first() {
        let older = version_key("b", "k", 1);
        let newer = version_key("b", "k", 2);
        assert!(newer < older);
        assert!(older.starts_with(&version_prefix_of("b", "k")));
    }
}
