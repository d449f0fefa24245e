//! Object operations: put, get, head, copy, delete (one and many), tagging, listings.

use super::util::{self, customer_key, etag, key_context, now_ms, owner, sse_echo, timestamp};
use crate::checksum::Algorithm;
use crate::engine::{Inner, KmsOptions, MAX_PUT_SIZE, blob_body, internal, is_inline, no_such_key};
use crate::frontend::{RequestState, current, error};
use crate::listing::{self, Listed, Step, Walker};
use crate::meta::{self, BucketRecord, ObjectRecord, StoredChecksum};
use citadel_store::keys::prefix_end;
use citadel_store::{CommitError, WriteBatch};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// What a conditional request resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Serve the object.
    Proceed,
    /// 304.
    NotModified,
    /// 412.
    PreconditionFailed,
}

fn etag_matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition.as_etag() {
        Some(wanted) => wanted.value() == etag,
        None => condition.is_any(),
    }
}

/// AWS's evaluation of If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since.
///
/// If-Match that holds overrides a failing If-Unmodified-Since; If-None-Match that fails
/// overrides a holding If-Modified-Since. Times compare at whole seconds, as Last-Modified has.
pub fn evaluate_conditions(
    etag: &str,
    last_modified_ms: i64,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<OffsetDateTime>,
    if_unmodified_since: Option<OffsetDateTime>,
) -> Condition {
    let modified = last_modified_ms.div_euclid(1000);
    match if_match {
        Some(condition) if !etag_matches(condition, etag) => return Condition::PreconditionFailed,
        Some(_) => {}
        None => {
            if if_unmodified_since.is_some_and(|t| modified > t.unix_timestamp()) {
                return Condition::PreconditionFailed;
            }
        }
    }
    match if_none_match {
        Some(condition) if etag_matches(condition, etag) => Condition::NotModified,
        Some(_) => Condition::Proceed,
        None if if_modified_since.is_some_and(|t| modified <= t.unix_timestamp()) => Condition::NotModified,
        None => Condition::Proceed,
    }
}

fn precondition_failed() -> S3Error {
    error(
        S3ErrorCode::PreconditionFailed,
        412,
        "At least one of the pre-conditions you specified did not hold",
    )
}

fn check_conditions(condition: Condition) -> S3Result<()> {
    match condition {
        Condition::Proceed => Ok(()),
        Condition::NotModified => Err(error(S3ErrorCode::NotModified, 304, "Not Modified")),
        Condition::PreconditionFailed => Err(precondition_failed()),
    }
}

/// Tags from a `Tagging` document, validated like AWS.
pub fn tags_of(tag_set: &[Tag]) -> S3Result<Vec<(String, String)>> {
    let tags: Vec<(String, String)> = tag_set
        .iter()
        .map(|t| (t.key.clone().unwrap_or_default(), t.value.clone().unwrap_or_default()))
        .collect();
    validate_tags(&tags)?;
    Ok(tags)
}

fn validate_tags(tags: &[(String, String)]) -> S3Result<()> {
    if tags.len() > 10 {
        return Err(error(
            S3ErrorCode::InvalidTag,
            400,
            "Object tags cannot be greater than 10",
        ));
    }
    for (i, (key, value)) in tags.iter().enumerate() {
        if key.is_empty() || key.chars().count() > 128 {
            return Err(error(
                S3ErrorCode::InvalidTag,
                400,
                "The TagKey you have provided is invalid",
            ));
        }
        if value.chars().count() > 256 {
            return Err(error(
                S3ErrorCode::InvalidTag,
                400,
                "The TagValue you have provided is invalid",
            ));
        }
        if tags[..i].iter().any(|(k, _)| k == key) {
            return Err(error(
                S3ErrorCode::InvalidTag,
                400,
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(())
}

/// Tags from an `x-amz-tagging` header.
pub fn tags_from_header(header: Option<&str>) -> S3Result<Vec<(String, String)>> {
    let tags: Vec<(String, String)> = header
        .map(|h| form_urlencoded::parse(h.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    validate_tags(&tags)?;
    Ok(tags)
}

/// A tag set for responses.
pub fn tag_set(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

/// The checksum a request asks for: the algorithm, and the value if it came as a header
/// (`None` when it comes in the aws-chunked trailer or must be computed).
pub fn requested_checksum(
    headers: &http::HeaderMap,
    algorithm: Option<&str>,
) -> S3Result<Option<(Algorithm, Option<String>)>> {
    for candidate in Algorithm::ALL {
        if let Some(value) = headers.get(candidate.header()).and_then(|v| v.to_str().ok()) {
            return Ok(Some((candidate, Some(value.to_string()))));
        }
    }
    if let Some(trailer) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok())
        && let Some(found) = Algorithm::ALL
            .into_iter()
            .find(|a| trailer.trim().eq_ignore_ascii_case(a.header()))
    {
        return Ok(Some((found, None)));
    }
    let named = algorithm.or_else(|| {
        headers
            .get("x-amz-sdk-checksum-algorithm")
            .and_then(|v| v.to_str().ok())
    });
    match named {
        Some(name) => match Algorithm::parse(name) {
            Some(found) => Ok(Some((found, None))),
            None => Err(error(
                S3ErrorCode::InvalidRequest,
                400,
                format!("Checksum algorithm {name} is not supported."),
            )),
        },
        None => Ok(None),
    }
}

/// The expected checksum: the header value, or the trailer's once the body has been read.
fn expected_checksum(
    requested: &Option<(Algorithm, Option<String>)>,
    trailers: Option<&s3s::TrailingHeaders>,
) -> Option<String> {
    let (algorithm, value) = requested.as_ref()?;
    value.clone().or_else(|| {
        trailers
            .and_then(|t| {
                t.read(|h| {
                    h.get(algorithm.header())
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                })
            })
            .flatten()
    })
}

/// Decodes `Content-MD5`; a malformed one is `InvalidDigest`.
pub fn content_md5(value: Option<&str>) -> S3Result<Option<String>> {
    use base64::Engine;
    let Some(value) = value else { return Ok(None) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()
        .filter(|b| b.len() == 16)
        .ok_or_else(|| {
            error(
                S3ErrorCode::InvalidDigest,
                400,
                "The Content-MD5 you specified was invalid.",
            )
        })?;
    Ok(Some(hex::encode(bytes)))
}

/// Checks a written body against the digests the client sent; the caller drops the blob on error.
pub fn verify_digests(
    md5_hex: &str,
    checksum: Option<&str>,
    content_md5: Option<&str>,
    requested: &Option<(Algorithm, Option<String>)>,
    expected: Option<&str>,
) -> S3Result<()> {
    if content_md5.is_some_and(|want| want != md5_hex) {
        return Err(error(
            S3ErrorCode::BadDigest,
            400,
            "The Content-MD5 you specified did not match what we received.",
        ));
    }
    if let (Some((algorithm, _)), Some(want)) = (requested, expected)
        && checksum != Some(want)
    {
        return Err(error(
            S3ErrorCode::BadDigest,
            400,
            format!(
                "The {} you specified did not match the calculated checksum.",
                algorithm.name()
            ),
        ));
    }
    Ok(())
}

fn strip_aws_chunked(encoding: Option<String>) -> Option<String> {
    let encoding = encoding?;
    let kept: Vec<&str> = encoding
        .split(',')
        .map(str::trim)
        .filter(|e| !e.eq_ignore_ascii_case("aws-chunked") && !e.is_empty())
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

fn lower_metadata(metadata: Option<Metadata>) -> BTreeMap<String, String> {
    metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

fn expires_ms(expires: Option<Timestamp>) -> Option<String> {
    expires.map(|t| {
        let t: OffsetDateTime = t.into();
        (t.unix_timestamp_nanos() / 1_000_000).to_string()
    })
}

fn expires_of(record: &ObjectRecord) -> Option<Timestamp> {
    record
        .expires
        .as_deref()
        .and_then(|ms| ms.parse::<i64>().ok())
        .map(timestamp)
}

fn new_version_id(inner: &Inner) -> String {
    inner.ids.alphanumeric(32)
}

/// Makes `record` the current version of its key (PutObject, CopyObject, CompleteMultipartUpload),
/// following the bucket's versioning state; commits with the audit record and returns the stored
/// record. Blobs of a replaced unversioned object are dropped after the commit.
pub async fn put_current(
    inner: &Inner,
    state: &RequestState,
    bucket_name: &str,
    template: ObjectRecord,
    if_none_match: bool,
    mut extra: impl FnMut(&mut WriteBatch),
) -> S3Result<ObjectRecord> {
    for _ in 0..8 {
        let (mut bucket, bucket_raw) = inner.require_bucket_fresh(bucket_name).await?;
        let current = inner.object(bucket_name, &template.key).await?;
        if if_none_match && current.as_ref().is_some_and(|(c, _)| !c.delete_marker) {
            return Err(precondition_failed());
        }
        let mut record = template.clone();
        let mut batch = WriteBatch::new();
        let mut garbage = Vec::new();
        let okey = meta::object_key(bucket_name, &record.key);
        match bucket.versioning.as_deref() {
            Some(status) => {
                bucket.version_seq += 1;
                record.seq = bucket.version_seq;
                record.version_id = if status == "Enabled" {
                    new_version_id(inner)
                } else {
                    "null".into()
                };
                if let Some((old, _)) = &current {
                    if old.version_id == "null" && record.version_id == "null" {
                        garbage.extend(old.segments.iter().map(|s| s.blob.clone()));
                    } else {
                        batch.put(
                            meta::VERSIONS,
                            &meta::version_key(bucket_name, &old.key, old.seq),
                            &meta::encode(old),
                        );
                    }
                }
                let bkey = meta::bucket_key(bucket_name);
                batch.expect(meta::BUCKETS, &bkey, Some(&bucket_raw));
                batch.put(meta::BUCKETS, &bkey, &meta::encode(&bucket));
            }
            None => {
                record.version_id = "null".into();
                if let Some((old, _)) = &current {
                    garbage.extend(old.segments.iter().map(|s| s.blob.clone()));
                }
                batch.expect_present(meta::BUCKETS, &meta::bucket_key(bucket_name));
            }
        }
        batch.expect(meta::OBJECTS, &okey, current.as_ref().map(|(_, raw)| raw.as_slice()));
        batch.put(meta::OBJECTS, &okey, &meta::encode(&record));
        extra(&mut batch);
        match inner.commit(state, batch, None).await {
            Ok(()) => {
                inner.drop_blobs(garbage).await;
                return Ok(record);
            }
            Err(CommitError::Conflict { .. }) => continue,
            Err(err) => return Err(internal(err)),
        }
    }
    Err(util::conflict())
}

/// PutObject.
pub async fn put_object(inner: &Inner, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
    let state = current()?;
    let S3Request {
        input,
        headers,
        trailing_headers,
        ..
    } = req;
    let (bucket, _) = inner.require_bucket(&input.bucket).await?;
    let customer = customer_key(
        &state,
        input.sse_customer_algorithm.as_deref(),
        input.sse_customer_key.as_deref(),
        input.sse_customer_key_md5.as_deref(),
    )?;
    let md5_wanted = content_md5(input.content_md5.as_deref())?;
    let requested = requested_checksum(&headers, input.checksum_algorithm.as_ref().map(|a| a.as_str()))?;
    let tags = tags_from_header(input.tagging.as_deref())?;
    let if_none_match = input.if_none_match.as_ref().is_some_and(|c| c.is_any());
    if let Some(condition) = &input.if_match {
        let current = inner.object(&input.bucket, &input.key).await?;
        match current {
            Some((c, _)) if !c.delete_marker && etag_matches(condition, &c.etag) => {}
            Some(_) => return Err(precondition_failed()),
            None => return Err(no_such_key()),
        }
    }
    let context = key_context(&input.bucket, &input.key);
    let (encryption, data_key) = inner
        .new_encryption(
            &state,
            &bucket,
            input.server_side_encryption.as_ref().map(|s| s.as_str()),
            KmsOptions {
                key_id: input.ssekms_key_id.as_deref(),
                context_b64: input.ssekms_encryption_context.as_deref(),
                bucket_key: input.bucket_key_enabled,
            },
            customer.as_ref(),
            &context,
        )
        .await?;
    let declared = input.content_length.and_then(|n| u64::try_from(n).ok());
    let written = inner
        .write_small_or_segment(
            input.body,
            &data_key,
            MAX_PUT_SIZE,
            requested.as_ref().map(|r| r.0),
            declared,
        )
        .await?;
    let expected = expected_checksum(&requested, trailing_headers.as_ref());
    let length_ok = declared.is_none_or(|n| n == written.segment.size);
    let verdict = if length_ok {
        verify_digests(
            &written.md5_hex,
            written.checksum.as_deref(),
            md5_wanted.as_deref(),
            &requested,
            expected.as_deref(),
        )
    } else {
        Err(error(
            S3ErrorCode::IncompleteBody,
            400,
            "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        ))
    };
    if let Err(err) = verdict {
        inner.drop_blobs([written.segment.blob.clone()]).await;
        return Err(err);
    }
    let template = ObjectRecord {
        key: input.key.clone(),
        version_id: "null".into(),
        seq: 0,
        delete_marker: false,
        size: written.segment.size,
        etag: written.md5_hex.clone(),
        last_modified_ms: now_ms(&state),
        owner: bucket.owner.clone(),
        content_type: Some(
            input
                .content_type
                .clone()
                .unwrap_or_else(|| "binary/octet-stream".into()),
        ),
        content_encoding: strip_aws_chunked(input.content_encoding.clone()),
        content_disposition: input.content_disposition.clone(),
        content_language: input.content_language.clone(),
        cache_control: input.cache_control.clone(),
        expires: expires_ms(input.expires.clone()),
        metadata: lower_metadata(input.metadata.clone()),
        tags,
        checksum: requested
            .as_ref()
            .zip(written.checksum.clone())
            .map(|((algorithm, _), value)| StoredChecksum {
                algorithm: algorithm.name().into(),
                value,
                kind: "FULL_OBJECT".into(),
            }),
        parts_count: None,
        encryption: Some(encryption),
        segments: vec![written.segment.clone()],
        storage_class: "STANDARD".into(),
    };
    let stored = match put_current(inner, &state, &input.bucket, template, if_none_match, |batch| {
        written.stage(batch);
    })
    .await
    {
        Ok(stored) => stored,
        Err(err) => {
            inner.drop_blobs([written.segment.blob.clone()]).await;
            return Err(err);
        }
    };
    let echo = sse_echo(&stored);
    let mut output = PutObjectOutput {
        e_tag: Some(etag(&stored.etag)),
        server_side_encryption: echo.server_side_encryption,
        ssekms_key_id: echo.kms_key_id,
        sse_customer_algorithm: echo.customer_algorithm,
        sse_customer_key_md5: echo.customer_key_md5,
        bucket_key_enabled: echo.bucket_key_enabled,
        ssekms_encryption_context: util::context_echo(&stored, input.ssekms_encryption_context.is_some()),
        version_id: (stored.version_id != "null").then(|| stored.version_id.clone()),
        ..Default::default()
    };
    set_checksum_fields(&stored.checksum, |alg, value| match alg {
        Algorithm::Crc32 => output.checksum_crc32 = Some(value),
        Algorithm::Crc32c => output.checksum_crc32c = Some(value),
        Algorithm::Crc64Nvme => output.checksum_crc64nvme = Some(value),
        Algorithm::Sha1 => output.checksum_sha1 = Some(value),
        Algorithm::Sha256 => output.checksum_sha256 = Some(value),
    });
    if stored.checksum.is_some() {
        output.checksum_type = Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT));
    }
    Ok(S3Response::new(output))
}

/// Calls `set` with the stored checksum's algorithm and value.
pub fn set_checksum_fields(checksum: &Option<StoredChecksum>, mut set: impl FnMut(Algorithm, String)) {
    if let Some(c) = checksum
        && let Some(algorithm) = Algorithm::parse(&c.algorithm)
    {
        set(algorithm, c.value.clone());
    }
}

/// A version of an object: the current row or a noncurrent one, with where it lives.
pub struct Found {
    /// The version.
    pub record: ObjectRecord,
    /// Its row key in `s3_versions`, or `None` when it is the current version.
    pub version_row: Option<Vec<u8>>,
    /// The raw row (for preconditions).
    pub raw: Vec<u8>,
}

/// Finds the current version, or the version with `version_id`.
pub async fn find_version(inner: &Inner, bucket: &str, key: &str, version_id: Option<&str>) -> S3Result<Option<Found>> {
    let current = inner.object(bucket, key).await?;
    find_version_in(inner, bucket, key, version_id, current).await
}

/// [`find_version`] with the current row already read.
async fn find_version_in(
    inner: &Inner,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    current: Option<(ObjectRecord, Vec<u8>)>,
) -> S3Result<Option<Found>> {
    let Some(version_id) = version_id else {
        return Ok(current.map(|(record, raw)| Found {
            record,
            version_row: None,
            raw,
        }));
    };
    if let Some((record, raw)) = current
        && record.version_id == version_id
    {
        return Ok(Some(Found {
            record,
            version_row: None,
            raw,
        }));
    }
    let prefix = meta::version_prefix_of(bucket, key);
    let end = prefix_end(&prefix);
    let rows = inner
        .store
        .scan(meta::VERSIONS, &prefix, end.as_deref(), usize::MAX, false)
        .await
        .map_err(internal)?;
    for (row_key, raw) in rows {
        if let Some(record) = meta::decode::<ObjectRecord>(&raw)
            && record.version_id == version_id
            && record.key == key
        {
            return Ok(Some(Found {
                record,
                version_row: Some(row_key),
                raw,
            }));
        }
    }
    Ok(None)
}

/// The object a GET/HEAD addresses, with AWS's errors for missing keys, versions and delete markers.
async fn readable(inner: &Inner, bucket: &str, key: &str, version_id: Option<&str>) -> S3Result<ObjectRecord> {
    inner.require_bucket(bucket).await?;
    // When the access hook already read the current row to decide (existing-object tags), serve
    // that row: it is what a single read at that moment would have served.
    let memo = current().ok().and_then(|state| state.take_object_read(bucket, key));
    let current = match memo {
        Some(row) => row,
        None => inner.object(bucket, key).await?,
    };
    let found = find_version_in(inner, bucket, key, version_id, current).await?;
    match found {
        None if version_id.is_some() => Err(error(
            S3ErrorCode::NoSuchVersion,
            404,
            "The specified version does not exist.",
        )),
        None => Err(no_such_key()),
        Some(found) if found.record.delete_marker => {
            let mut err = if version_id.is_some() {
                error(
                    S3ErrorCode::MethodNotAllowed,
                    405,
                    "The specified method is not allowed against this resource.",
                )
            } else {
                no_such_key()
            };
            let mut headers = http::HeaderMap::new();
            headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
            if let Ok(v) = http::HeaderValue::from_str(&found.record.version_id) {
                headers.insert("x-amz-version-id", v);
            }
            err.set_headers(headers);
            Err(err)
        }
        Some(found) => Ok(found.record),
    }
}

/// The plaintext range a GET/HEAD serves: `(from, to, is_partial, parts_count)`.
fn serve_range(record: &ObjectRecord, range: Option<&Range>, part_number: Option<i32>) -> S3Result<(u64, u64, bool)> {
    if let Some(part) = part_number {
        let index = usize::try_from(part).ok().filter(|p| *p >= 1).map(|p| p - 1);
        let invalid = || {
            error(
                S3ErrorCode::from_bytes(b"InvalidPartNumber").unwrap_or(S3ErrorCode::InvalidArgument),
                416,
                "The requested partnumber is not satisfiable",
            )
        };
        let index = index.ok_or_else(invalid)?;
        if record.parts_count.is_none() {
            return if index == 0 {
                Ok((0, record.size, false))
            } else {
                Err(invalid())
            };
        }
        let segment = record.segments.get(index).ok_or_else(invalid)?;
        let from: u64 = record.segments[..index].iter().map(|s| s.size).sum();
        return Ok((from, from + segment.size, true));
    }
    match range {
        None => Ok((0, record.size, false)),
        Some(range) => {
            let r = range
                .check(record.size)
                .map_err(|_| error(S3ErrorCode::InvalidRange, 416, "The requested range is not satisfiable"))?;
            Ok((r.start, r.end, true))
        }
    }
}

/// GetObject.
pub async fn get_object(inner: &Inner, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
    let state = current()?;
    let input = req.input;
    let record = readable(inner, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    check_conditions(evaluate_conditions(
        &record.etag,
        record.last_modified_ms,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.clone().map(Into::into),
        input.if_unmodified_since.clone().map(Into::into),
    ))?;
    let customer = customer_key(
        &state,
        input.sse_customer_algorithm.as_deref(),
        input.sse_customer_key.as_deref(),
        input.sse_customer_key_md5.as_deref(),
    )?;
    let (from, to, partial) = serve_range(&record, input.range.as_ref(), input.part_number)?;
    let data_key = inner
        .open_key(
            &state,
            &input.bucket,
            record.encryption.as_ref(),
            customer.as_ref(),
            &key_context(&input.bucket, &input.key),
        )
        .await?;
    let body = match record.segments.as_slice() {
        [segment] if is_inline(&segment.blob) => {
            let plain = inner
                .read_inline_plain(segment, &data_key, from, to)
                .await
                .map_err(internal)?;
            StreamingBlob::from(s3s::Body::from(plain))
        }
        segments => blob_body(inner.read_plain(segments, data_key, from, to)),
    };
    let echo = sse_echo(&record);
    let mut output = GetObjectOutput {
        accept_ranges: Some("bytes".into()),
        body: Some(body),
        content_length: i64::try_from(to - from).ok(),
        content_range: partial.then(|| format!("bytes {}-{}/{}", from, to.saturating_sub(1), record.size)),
        content_type: record.content_type.clone(),
        content_encoding: record.content_encoding.clone(),
        content_disposition: record.content_disposition.clone(),
        content_language: record.content_language.clone(),
        cache_control: record.cache_control.clone(),
        expires: expires_of(&record),
        e_tag: Some(etag(&record.etag)),
        last_modified: Some(timestamp(record.last_modified_ms)),
        metadata: (!record.metadata.is_empty()).then(|| record.metadata.clone().into_iter().collect()),
        tag_count: (!record.tags.is_empty()).then(|| i32::try_from(record.tags.len()).unwrap_or(0)),
        parts_count: record
            .parts_count
            .and_then(|n| i32::try_from(n).ok())
            .filter(|_| input.part_number.is_some()),
        server_side_encryption: echo.server_side_encryption,
        ssekms_key_id: echo.kms_key_id,
        sse_customer_algorithm: echo.customer_algorithm,
        sse_customer_key_md5: echo.customer_key_md5,
        bucket_key_enabled: echo.bucket_key_enabled,
        version_id: (record.version_id != "null").then(|| record.version_id.clone()),
        ..Default::default()
    };
    if let Some(v) = input.response_content_type {
        output.content_type = Some(v);
    }
    if let Some(v) = input.response_content_disposition {
        output.content_disposition = Some(v);
    }
    if let Some(v) = input.response_content_encoding {
        output.content_encoding = Some(v);
    }
    if let Some(v) = input.response_content_language {
        output.content_language = Some(v);
    }
    if let Some(v) = input.response_cache_control {
        output.cache_control = Some(v);
    }
    if let Some(v) = input.response_expires {
        output.expires = Some(v);
    }
    let wants_checksum = input.checksum_mode.as_ref().is_some_and(|m| m.as_str() == "ENABLED");
    if wants_checksum && !partial {
        set_checksum_fields(&record.checksum, |alg, value| match alg {
            Algorithm::Crc32 => output.checksum_crc32 = Some(value),
            Algorithm::Crc32c => output.checksum_crc32c = Some(value),
            Algorithm::Crc64Nvme => output.checksum_crc64nvme = Some(value),
            Algorithm::Sha1 => output.checksum_sha1 = Some(value),
            Algorithm::Sha256 => output.checksum_sha256 = Some(value),
        });
        output.checksum_type = record.checksum.as_ref().map(|c| ChecksumType::from(c.kind.clone()));
    }
    Ok(S3Response::new(output))
}

/// HeadObject.
pub async fn head_object(inner: &Inner, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
    let state = current()?;
    let input = req.input;
    let record = readable(inner, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    check_conditions(evaluate_conditions(
        &record.etag,
        record.last_modified_ms,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.clone().map(Into::into),
        input.if_unmodified_since.clone().map(Into::into),
    ))?;
    let customer = customer_key(
        &state,
        input.sse_customer_algorithm.as_deref(),
        input.sse_customer_key.as_deref(),
        input.sse_customer_key_md5.as_deref(),
    )?;
    // HEAD checks SSE-C keys exactly like GET, without reading the body. It does not use KMS:
    // as on AWS, HEAD of an SSE-KMS object needs no kms:Decrypt.
    let sse_c = record.encryption.as_ref().is_some_and(|e| e.mode == "SSE-C");
    if sse_c || customer.is_some() {
        inner
            .open_key(
                &state,
                &input.bucket,
                record.encryption.as_ref(),
                customer.as_ref(),
                &key_context(&input.bucket, &input.key),
            )
            .await?;
    }
    let (from, to, partial) = serve_range(&record, input.range.as_ref(), input.part_number)?;
    let echo = sse_echo(&record);
    let mut output = HeadObjectOutput {
        accept_ranges: Some("bytes".into()),
        content_length: i64::try_from(to - from).ok(),
        content_range: partial.then(|| format!("bytes {}-{}/{}", from, to.saturating_sub(1), record.size)),
        content_type: record.content_type.clone(),
        content_encoding: record.content_encoding.clone(),
        content_disposition: record.content_disposition.clone(),
        content_language: record.content_language.clone(),
        cache_control: record.cache_control.clone(),
        expires: expires_of(&record),
        e_tag: Some(etag(&record.etag)),
        last_modified: Some(timestamp(record.last_modified_ms)),
        metadata: (!record.metadata.is_empty()).then(|| record.metadata.clone().into_iter().collect()),
        parts_count: record
            .parts_count
            .and_then(|n| i32::try_from(n).ok())
            .filter(|_| input.part_number.is_some()),
        server_side_encryption: echo.server_side_encryption,
        ssekms_key_id: echo.kms_key_id,
        sse_customer_algorithm: echo.customer_algorithm,
        sse_customer_key_md5: echo.customer_key_md5,
        bucket_key_enabled: echo.bucket_key_enabled,
        storage_class: None,
        version_id: (record.version_id != "null").then(|| record.version_id.clone()),
        ..Default::default()
    };
    if input.checksum_mode.as_ref().is_some_and(|m| m.as_str() == "ENABLED") && !partial {
        set_checksum_fields(&record.checksum, |alg, value| match alg {
            Algorithm::Crc32 => output.checksum_crc32 = Some(value),
            Algorithm::Crc32c => output.checksum_crc32c = Some(value),
            Algorithm::Crc64Nvme => output.checksum_crc64nvme = Some(value),
            Algorithm::Sha1 => output.checksum_sha1 = Some(value),
            Algorithm::Sha256 => output.checksum_sha256 = Some(value),
        });
        output.checksum_type = record.checksum.as_ref().map(|c| ChecksumType::from(c.kind.clone()));
    }
    Ok(S3Response::new(output))
}

/// Reads the source of a copy: `(bucket, key, version, record)` after its conditions and SSE-C key.
pub struct CopySourceObject {
    /// Source bucket.
    pub bucket: String,
    /// Source key.
    pub key: String,
    /// The version that was read.
    pub record: ObjectRecord,
    /// The source's data key.
    pub data_key: crate::crypto::Key256,
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn copy_source(
    inner: &Inner,
    state: &RequestState,
    source: &CopySource,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<Timestamp>,
    if_unmodified_since: Option<Timestamp>,
    sse: (Option<&str>, Option<&str>, Option<&str>),
) -> S3Result<CopySourceObject> {
    let CopySource::Bucket {
        bucket,
        key,
        version_id,
    } = source
    else {
        return Err(error(
            S3ErrorCode::NotImplemented,
            501,
            "Copying from access points is not supported.",
        ));
    };
    let record = readable(inner, bucket, key, version_id.as_deref()).await?;
    let condition = evaluate_conditions(
        &record.etag,
        record.last_modified_ms,
        if_match,
        if_none_match,
        if_modified_since.map(Into::into),
        if_unmodified_since.map(Into::into),
    );
    if condition != Condition::Proceed {
        return Err(precondition_failed());
    }
    let customer = customer_key(state, sse.0, sse.1, sse.2)?;
    let data_key = inner
        .open_key(
            state,
            bucket,
            record.encryption.as_ref(),
            customer.as_ref(),
            &key_context(bucket, key),
        )
        .await?;
    Ok(CopySourceObject {
        bucket: bucket.to_string(),
        key: key.to_string(),
        record,
        data_key,
    })
}

/// CopyObject.
pub async fn copy_object(inner: &Inner, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
    let state = current()?;
    let S3Request { input, headers, .. } = req;
    let (bucket, _) = inner.require_bucket(&input.bucket).await?;
    let source = copy_source(
        inner,
        &state,
        &input.copy_source,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.clone(),
        input.copy_source_if_unmodified_since.clone(),
        (
            input.copy_source_sse_customer_algorithm.as_deref(),
            input.copy_source_sse_customer_key.as_deref(),
            input.copy_source_sse_customer_key_md5.as_deref(),
        ),
    )
    .await?;
    if source.record.size > MAX_PUT_SIZE {
        return Err(error(
            S3ErrorCode::InvalidRequest,
            400,
            "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120",
        ));
    }
    let replace_metadata = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == "REPLACE");
    let replace_tags = input
        .tagging_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == "REPLACE");
    let customer = customer_key(
        &state,
        input.sse_customer_algorithm.as_deref(),
        input.sse_customer_key.as_deref(),
        input.sse_customer_key_md5.as_deref(),
    )?;
    let changes_encryption = input.server_side_encryption.is_some()
        || customer.is_some()
        || source.record.encryption.as_ref().is_some_and(|e| e.mode == "SSE-C");
    if source.bucket == input.bucket
        && source.key == input.key
        && !replace_metadata
        && !changes_encryption
        && input.storage_class.is_none()
    {
        return Err(error(
            S3ErrorCode::InvalidRequest,
            400,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    let requested = requested_checksum(&headers, input.checksum_algorithm.as_ref().map(|a| a.as_str()))?
        .map(|(a, _)| (a, None::<String>))
        .or_else(|| {
            source
                .record
                .checksum
                .as_ref()
                .filter(|c| c.kind == "FULL_OBJECT")
                .and_then(|c| Algorithm::parse(&c.algorithm))
                .map(|a| (a, None))
        });
    let context = key_context(&input.bucket, &input.key);
    let (encryption, data_key) = inner
        .new_encryption(
            &state,
            &bucket,
            input.server_side_encryption.as_ref().map(|s| s.as_str()),
            KmsOptions {
                key_id: input.ssekms_key_id.as_deref(),
                context_b64: input.ssekms_encryption_context.as_deref(),
                bucket_key: input.bucket_key_enabled,
            },
            customer.as_ref(),
            &context,
        )
        .await?;
    let plain = inner.read_plain(&source.record.segments, source.data_key.clone(), 0, source.record.size);
    let written = inner
        .write_segment(
            Some(blob_body(plain)),
            &data_key,
            MAX_PUT_SIZE,
            requested.as_ref().map(|r| r.0),
            "obj",
        )
        .await?;
    let src = &source.record;
    let mut template = ObjectRecord {
        key: input.key.clone(),
        version_id: "null".into(),
        seq: 0,
        delete_marker: false,
        size: written.segment.size,
        etag: written.md5_hex.clone(),
        last_modified_ms: now_ms(&state),
        owner: bucket.owner.clone(),
        content_type: src.content_type.clone(),
        content_encoding: src.content_encoding.clone(),
        content_disposition: src.content_disposition.clone(),
        content_language: src.content_language.clone(),
        cache_control: src.cache_control.clone(),
        expires: src.expires.clone(),
        metadata: src.metadata.clone(),
        tags: src.tags.clone(),
        checksum: requested
            .as_ref()
            .zip(written.checksum.clone())
            .map(|((algorithm, _), value)| StoredChecksum {
                algorithm: algorithm.name().into(),
                value,
                kind: "FULL_OBJECT".into(),
            }),
        parts_count: None,
        encryption: Some(encryption),
        segments: vec![written.segment.clone()],
        storage_class: "STANDARD".into(),
    };
    if replace_metadata {
        template.content_type = Some(
            input
                .content_type
                .clone()
                .unwrap_or_else(|| "binary/octet-stream".into()),
        );
        template.content_encoding = input.content_encoding.clone();
        template.content_disposition = input.content_disposition.clone();
        template.content_language = input.content_language.clone();
        template.cache_control = input.cache_control.clone();
        template.expires = expires_ms(input.expires.clone());
        template.metadata = lower_metadata(input.metadata.clone());
    }
    if replace_tags {
        template.tags = tags_from_header(input.tagging.as_deref())?;
    }
    let stored = match put_current(inner, &state, &input.bucket, template, false, |_| {}).await {
        Ok(stored) => stored,
        Err(err) => {
            inner.drop_blobs([written.segment.blob.clone()]).await;
            return Err(err);
        }
    };
    let echo = sse_echo(&stored);
    let mut result = CopyObjectResult {
        e_tag: Some(etag(&stored.etag)),
        last_modified: Some(timestamp(stored.last_modified_ms)),
        ..Default::default()
    };
    set_checksum_fields(&stored.checksum, |alg, value| match alg {
        Algorithm::Crc32 => result.checksum_crc32 = Some(value),
        Algorithm::Crc32c => result.checksum_crc32c = Some(value),
        Algorithm::Crc64Nvme => result.checksum_crc64nvme = Some(value),
        Algorithm::Sha1 => result.checksum_sha1 = Some(value),
        Algorithm::Sha256 => result.checksum_sha256 = Some(value),
    });
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(result),
        copy_source_version_id: (source.record.version_id != "null").then(|| source.record.version_id.clone()),
        server_side_encryption: echo.server_side_encryption,
        ssekms_key_id: echo.kms_key_id,
        sse_customer_algorithm: echo.customer_algorithm,
        sse_customer_key_md5: echo.customer_key_md5,
        bucket_key_enabled: echo.bucket_key_enabled,
        ssekms_encryption_context: util::context_echo(&stored, input.ssekms_encryption_context.is_some()),
        version_id: (stored.version_id != "null").then(|| stored.version_id.clone()),
        ..Default::default()
    }))
}

/// The effect of deleting one key (or version).
pub struct DeletePlan {
    /// Rows to write.
    pub batch: WriteBatch,
    /// Blobs to drop after the commit.
    pub garbage: Vec<String>,
    /// The version deleted or created.
    pub version_id: Option<String>,
    /// Whether a delete marker was created or deleted.
    pub delete_marker: bool,
}

/// Plans a delete against the bucket's versioning state; bumps `bucket.version_seq` when it
/// creates a delete marker.
pub async fn plan_delete(
    inner: &Inner,
    state: &RequestState,
    bucket: &mut BucketRecord,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<DeletePlan> {
    let name = bucket.name.clone();
    let okey = meta::object_key(&name, key);
    let mut plan = DeletePlan {
        batch: WriteBatch::new(),
        garbage: Vec::new(),
        version_id: None,
        delete_marker: false,
    };
    if let Some(version_id) = version_id {
        let Some(found) = find_version(inner, &name, key, Some(version_id)).await? else {
            // Deleting a version that does not exist succeeds, as on AWS.
            plan.version_id = Some(version_id.to_string());
            return Ok(plan);
        };
        plan.version_id = Some(version_id.to_string());
        plan.delete_marker = found.record.delete_marker;
        plan.garbage
            .extend(found.record.segments.iter().map(|s| s.blob.clone()));
        match found.version_row {
            Some(row) => {
                plan.batch.expect(meta::VERSIONS, &row, Some(&found.raw));
                plan.batch.delete(meta::VERSIONS, &row);
            }
            None => {
                plan.batch.expect(meta::OBJECTS, &okey, Some(&found.raw));
                // Promote the newest noncurrent version, if any.
                let prefix = meta::version_prefix_of(&name, key);
                let end = prefix_end(&prefix);
                let newest = inner
                    .store
                    .scan(meta::VERSIONS, &prefix, end.as_deref(), 1, false)
                    .await
                    .map_err(internal)?;
                match newest.into_iter().next() {
                    Some((row, raw)) => {
                        plan.batch.expect(meta::VERSIONS, &row, Some(&raw));
                        plan.batch.delete(meta::VERSIONS, &row);
                        plan.batch.put(meta::OBJECTS, &okey, &raw);
                    }
                    None => {
                        plan.batch.delete(meta::OBJECTS, &okey);
                    }
                }
            }
        }
        return Ok(plan);
    }
    let current = inner.object(&name, key).await?;
    match bucket.versioning.clone() {
        None => {
            if let Some((old, raw)) = current {
                plan.garbage.extend(old.segments.iter().map(|s| s.blob.clone()));
                plan.batch.expect(meta::OBJECTS, &okey, Some(&raw));
                plan.batch.delete(meta::OBJECTS, &okey);
            }
        }
        Some(status) => {
            bucket.version_seq += 1;
            let marker_id = if status == "Enabled" {
                new_version_id(inner)
            } else {
                "null".to_string()
            };
            if let Some((old, raw)) = &current {
                plan.batch.expect(meta::OBJECTS, &okey, Some(raw));
                if old.version_id == "null" && marker_id == "null" {
                    plan.garbage.extend(old.segments.iter().map(|s| s.blob.clone()));
                } else {
                    plan.batch.put(
                        meta::VERSIONS,
                        &meta::version_key(&name, key, old.seq),
                        &meta::encode(old),
                    );
                }
            } else {
                plan.batch.expect(meta::OBJECTS, &okey, None);
            }
            let marker = ObjectRecord {
                key: key.to_string(),
                version_id: marker_id.clone(),
                seq: bucket.version_seq,
                delete_marker: true,
                size: 0,
                etag: String::new(),
                last_modified_ms: now_ms(state),
                owner: bucket.owner.clone(),
                content_type: None,
                content_encoding: None,
                content_disposition: None,
                content_language: None,
                cache_control: None,
                expires: None,
                metadata: BTreeMap::new(),
                tags: Vec::new(),
                checksum: None,
                parts_count: None,
                encryption: None,
                segments: Vec::new(),
                storage_class: "STANDARD".into(),
            };
            plan.batch.put(meta::OBJECTS, &okey, &meta::encode(&marker));
            plan.version_id = Some(marker_id);
            plan.delete_marker = true;
        }
    }
    Ok(plan)
}

/// Commits delete plans together, with the bucket row when a version counter moved.
async fn commit_deletes(
    inner: &Inner,
    state: &RequestState,
    bucket: &BucketRecord,
    bucket_raw: &[u8],
    plans: Vec<DeletePlan>,
) -> Result<Vec<String>, CommitError> {
    let mut batch = WriteBatch::new();
    let bkey = meta::bucket_key(&bucket.name);
    if bucket.versioning.is_some() {
        batch.expect(meta::BUCKETS, &bkey, Some(bucket_raw));
        batch.put(meta::BUCKETS, &bkey, &meta::encode(bucket));
    } else {
        batch.expect_present(meta::BUCKETS, &bkey);
    }
    let mut garbage = Vec::new();
    for plan in plans {
        batch.append(plan.batch);
        garbage.extend(plan.garbage);
    }
    inner.commit(state, batch, None).await?;
    Ok(garbage)
}

/// DeleteObject.
pub async fn delete_object(
    inner: &Inner,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let state = current()?;
    let input = req.input;
    for _ in 0..8 {
        let (mut bucket, raw) = inner.require_bucket_fresh(&input.bucket).await?;
        if let Some(condition) = &input.if_match {
            match inner.object(&input.bucket, &input.key).await? {
                Some((c, _)) if etag_matches(condition, &c.etag) => {}
                Some(_) => return Err(precondition_failed()),
                None => return Err(no_such_key()),
            }
        }
        let plan = plan_delete(inner, &state, &mut bucket, &input.key, input.version_id.as_deref()).await?;
        let version_id = plan.version_id.clone();
        let delete_marker = plan.delete_marker;
        match commit_deletes(inner, &state, &bucket, &raw, vec![plan]).await {
            Ok(garbage) => {
                inner.drop_blobs(garbage).await;
                return Ok(S3Response::new(DeleteObjectOutput {
                    delete_marker: delete_marker.then_some(true),
                    request_charged: None,
                    version_id: version_id.filter(|v| v != "null" || input.version_id.is_some()),
                }));
            }
            Err(CommitError::Conflict { .. }) => continue,
            Err(err) => return Err(internal(err)),
        }
    }
    Err(util::conflict())
}

/// DeleteObjects: each key authorized on its own; all deletions committed in one batch.
pub async fn delete_objects(
    inner: &Inner,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let state = current()?;
    let input = req.input;
    if input.delete.objects.len() > 1000 {
        return Err(error(
            S3ErrorCode::MalformedXML,
            400,
            "The XML you provided was not well-formed or did not validate against our published schema",
        ));
    }
    let spec = crate::registry::lookup("DeleteObjects").ok_or_else(|| internal("registry lacks DeleteObjects"))?;
    let quiet = input.delete.quiet.unwrap_or(false);
    for _ in 0..8 {
        let (mut bucket, raw) = inner.require_bucket_fresh(&input.bucket).await?;
        let mut plans = Vec::new();
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for object in &input.delete.objects {
            let version = object.version_id.as_deref();
            if let Err(err) = inner
                .authorize_object(&state, spec, &bucket, &object.key, version.is_some())
                .await
            {
                errors.push(Error {
                    code: Some("AccessDenied".into()),
                    key: Some(object.key.clone()),
                    message: err.message().map(str::to_string),
                    version_id: object.version_id.clone(),
                });
                continue;
            }
            let plan = plan_delete(inner, &state, &mut bucket, &object.key, version).await?;
            deleted.push(DeletedObject {
                delete_marker: plan.delete_marker.then_some(true),
                delete_marker_version_id: (plan.delete_marker && version.is_none())
                    .then(|| plan.version_id.clone())
                    .flatten(),
                key: Some(object.key.clone()),
                version_id: version.map(str::to_string),
            });
            plans.push(plan);
        }
        match commit_deletes(inner, &state, &bucket, &raw, plans).await {
            Ok(garbage) => {
                inner.drop_blobs(garbage).await;
                return Ok(S3Response::new(DeleteObjectsOutput {
                    deleted: (!quiet).then_some(deleted),
                    errors: (!errors.is_empty()).then_some(errors),
                    request_charged: None,
                }));
            }
            Err(CommitError::Conflict { .. }) => continue,
            Err(err) => return Err(internal(err)),
        }
    }
    Err(util::conflict())
}

/// One page of a bucket's current objects.
pub struct ObjectPage {
    /// Listed objects and common prefixes.
    pub entries: Vec<Listed<ObjectRecord>>,
    /// More entries exist.
    pub truncated: bool,
    /// The marker of the next page.
    pub next_marker: Option<String>,
}

/// Lists current objects (delete markers excluded) in byte order.
pub async fn list_page(
    inner: &Inner,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> S3Result<ObjectPage> {
    const BATCH: usize = 1000;
    let scan_prefix = meta::object_prefix(bucket, prefix);
    let end = prefix_end(&scan_prefix);
    let mut cursor = scan_prefix.clone();
    if let Some(after) = after.filter(|a| a.as_bytes() > prefix.as_bytes()) {
        cursor = meta::object_key(bucket, after);
    }
    let mut walker: Walker<ObjectRecord> = Walker::new(prefix, delimiter, after, max);
    'scan: loop {
        let rows = inner
            .store
            .scan(meta::OBJECTS, &cursor, end.as_deref(), BATCH, false)
            .await
            .map_err(internal)?;
        let full_batch = rows.len() == BATCH;
        let mut next_cursor = None;
        for (row_key, raw) in &rows {
            let Some(key) = meta::decode_object_key(row_key) else {
                continue;
            };
            let Some(record) = meta::decode::<ObjectRecord>(raw) else {
                continue;
            };
            if record.delete_marker {
                continue;
            }
            match walker.offer(&key, record) {
                Step::Next => {}
                Step::Full => break 'scan,
                Step::SkipPrefix(common) => match prefix_end(&meta::object_prefix(bucket, &common)) {
                    Some(next) => {
                        next_cursor = Some(next);
                        break;
                    }
                    None => break 'scan,
                },
            }
        }
        match next_cursor {
            Some(next) => cursor = next,
            None if full_batch => {
                let Some((last, _)) = rows.last() else { break };
                let mut next = last.clone();
                next.push(0);
                cursor = next;
            }
            None => break,
        }
        if end.as_ref().is_some_and(|e| cursor >= *e) {
            break;
        }
    }
    let next_marker = walker.next_marker();
    Ok(ObjectPage {
        truncated: walker.truncated,
        next_marker,
        entries: walker.entries,
    })
}

fn encode_if(url: bool, value: &str) -> String {
    if url {
        listing::url_encode(value)
    } else {
        value.to_string()
    }
}

fn max_keys(value: Option<i32>) -> S3Result<usize> {
    match value {
        None => Ok(1000),
        Some(n) if n < 0 => Err(error(
            S3ErrorCode::InvalidArgument,
            400,
            "Argument maxKeys must be an integer between 0 and 2147483647",
        )),
        Some(n) => Ok(usize::try_from(n).unwrap_or(1000).min(1000)),
    }
}

fn wants_url(encoding: Option<&EncodingType>) -> S3Result<bool> {
    match encoding.map(|e| e.as_str()) {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(_) => Err(error(
            S3ErrorCode::InvalidArgument,
            400,
            "Invalid Encoding Method specified in Request",
        )),
    }
}

fn object_entry(record: &ObjectRecord, url: bool, with_owner: bool) -> Object {
    Object {
        checksum_algorithm: record
            .checksum
            .as_ref()
            .map(|c| vec![ChecksumAlgorithm::from(c.algorithm.clone())]),
        checksum_type: record.checksum.as_ref().map(|c| ChecksumType::from(c.kind.clone())),
        e_tag: Some(etag(&record.etag)),
        key: Some(encode_if(url, &record.key)),
        last_modified: Some(timestamp(record.last_modified_ms)),
        owner: with_owner.then(|| owner(&record.owner)),
        restore_status: None,
        size: i64::try_from(record.size).ok(),
        storage_class: Some(ObjectStorageClass::from(record.storage_class.clone())),
    }
}

fn split_entries(entries: Vec<Listed<ObjectRecord>>, url: bool, with_owner: bool) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut objects = Vec::new();
    let mut prefixes = Vec::new();
    for entry in entries {
        match entry {
            Listed::Item(_, record) => objects.push(object_entry(&record, url, with_owner)),
            Listed::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(encode_if(url, &p)),
            }),
        }
    }
    (objects, prefixes)
}

/// ListObjectsV2.
pub async fn list_objects_v2(
    inner: &Inner,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    inner.require_bucket(&input.bucket).await?;
    let url = wants_url(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys)?;
    let after = match &input.continuation_token {
        Some(token) => Some(listing::parse_continuation_token(token).ok_or_else(|| {
            error(
                S3ErrorCode::InvalidArgument,
                400,
                "The continuation token provided is incorrect",
            )
        })?),
        None => input.start_after.clone(),
    };
    let prefix = input.prefix.clone().unwrap_or_default();
    let page = list_page(
        inner,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref(),
        after.as_deref(),
        max,
    )
    .await?;
    let count = page.entries.len();
    let (contents, prefixes) = split_entries(page.entries, url, input.fetch_owner.unwrap_or(false));
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(encode_if(url, &prefix)),
        max_keys: input.max_keys.or(Some(1000)),
        key_count: i32::try_from(count).ok(),
        continuation_token: input.continuation_token,
        is_truncated: Some(page.truncated),
        next_continuation_token: page.next_marker.as_deref().map(listing::continuation_token),
        contents: Some(contents),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        delimiter: input.delimiter.map(|d| encode_if(url, &d)),
        encoding_type: input.encoding_type,
        start_after: input.start_after.map(|s| encode_if(url, &s)),
        request_charged: None,
    }))
}

/// ListObjects (V1, marker paging).
pub async fn list_objects(inner: &Inner, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    inner.require_bucket(&input.bucket).await?;
    let url = wants_url(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let page = list_page(
        inner,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref(),
        input.marker.as_deref(),
        max,
    )
    .await?;
    let (contents, prefixes) = split_entries(page.entries, url, true);
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(encode_if(url, &prefix)),
        marker: Some(encode_if(url, input.marker.as_deref().unwrap_or(""))),
        max_keys: input.max_keys.or(Some(1000)),
        is_truncated: Some(page.truncated),
        contents: Some(contents),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        delimiter: input.delimiter.map(|d| encode_if(url, &d)),
        next_marker: page.next_marker.map(|m| encode_if(url, &m)),
        encoding_type: input.encoding_type,
        request_charged: None,
    }))
}

/// ListObjectVersions: every version of the keys of one page, newest first per key.
pub async fn list_object_versions(
    inner: &Inner,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = req.input;
    inner.require_bucket(&input.bucket).await?;
    let url = wants_url(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    // Keys come from current rows; keys whose every version is noncurrent are listed through
    // their delete marker, which is always current.
    let scan_prefix = meta::object_prefix(&input.bucket, &prefix);
    let end = prefix_end(&scan_prefix);
    let rows = inner
        .store
        .scan(meta::OBJECTS, &scan_prefix, end.as_deref(), usize::MAX, false)
        .await
        .map_err(internal)?;
    let mut walker: Walker<ObjectRecord> =
        Walker::new(&prefix, input.delimiter.as_deref(), input.key_marker.as_deref(), max);
    let mut skip: Option<String> = None;
    for (row_key, raw) in rows {
        let Some(key) = meta::decode_object_key(&row_key) else {
            continue;
        };
        if skip.as_deref().is_some_and(|p| key.starts_with(p)) {
            continue;
        }
        let Some(record) = meta::decode::<ObjectRecord>(&raw) else {
            continue;
        };
        match walker.offer(&key, record) {
            Step::Next => skip = None,
            Step::SkipPrefix(p) => skip = Some(p),
            Step::Full => break,
        }
    }
    let truncated = walker.truncated;
    let next_marker = walker.next_marker();
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    let mut prefixes = Vec::new();
    for entry in walker.entries {
        match entry {
            Listed::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(encode_if(url, &p)),
            }),
            Listed::Item(key, current) => {
                let vprefix = meta::version_prefix_of(&input.bucket, &key);
                let vend = prefix_end(&vprefix);
                let older = inner
                    .store
                    .scan(meta::VERSIONS, &vprefix, vend.as_deref(), usize::MAX, false)
                    .await
                    .map_err(internal)?;
                let all = std::iter::once(current).chain(
                    older
                        .into_iter()
                        .filter_map(|(_, raw)| meta::decode::<ObjectRecord>(&raw)),
                );
                for (i, record) in all.enumerate() {
                    if record.key != key {
                        continue;
                    }
                    if record.delete_marker {
                        markers.push(DeleteMarkerEntry {
                            is_latest: Some(i == 0),
                            key: Some(encode_if(url, &record.key)),
                            last_modified: Some(timestamp(record.last_modified_ms)),
                            owner: Some(owner(&record.owner)),
                            version_id: Some(record.version_id.clone()),
                        });
                    } else {
                        versions.push(ObjectVersion {
                            checksum_algorithm: None,
                            checksum_type: None,
                            e_tag: Some(etag(&record.etag)),
                            is_latest: Some(i == 0),
                            key: Some(encode_if(url, &record.key)),
                            last_modified: Some(timestamp(record.last_modified_ms)),
                            owner: Some(owner(&record.owner)),
                            restore_status: None,
                            size: i64::try_from(record.size).ok(),
                            storage_class: Some(ObjectVersionStorageClass::from_static(
                                ObjectVersionStorageClass::STANDARD,
                            )),
                            version_id: Some(record.version_id.clone()),
                        });
                    }
                }
            }
        }
    }
    Ok(S3Response::new(ListObjectVersionsOutput {
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        delete_markers: (!markers.is_empty()).then_some(markers),
        delimiter: input.delimiter,
        encoding_type: input.encoding_type,
        is_truncated: Some(truncated),
        key_marker: input.key_marker,
        max_keys: input.max_keys.or(Some(1000)),
        name: Some(input.bucket),
        next_key_marker: next_marker,
        next_version_id_marker: None,
        prefix: Some(encode_if(url, &prefix)),
        request_charged: None,
        version_id_marker: input.version_id_marker,
        versions: Some(versions),
    }))
}

/// Updates the tags of an object version, committing with the audit record.
async fn set_tags(
    inner: &Inner,
    state: &RequestState,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    tags: Vec<(String, String)>,
) -> S3Result<String> {
    inner.require_bucket(bucket).await?;
    for _ in 0..8 {
        let found = find_version(inner, bucket, key, version_id).await?;
        let Some(found) = found.filter(|f| !f.record.delete_marker) else {
            return Err(if version_id.is_some() {
                error(S3ErrorCode::NoSuchVersion, 404, "The specified version does not exist.")
            } else {
                no_such_key()
            });
        };
        let mut record = found.record.clone();
        record.tags = tags.clone();
        let (table, row) = match &found.version_row {
            Some(row) => (meta::VERSIONS, row.clone()),
            None => (meta::OBJECTS, meta::object_key(bucket, key)),
        };
        let mut batch = WriteBatch::new();
        batch.expect(table, &row, Some(&found.raw));
        batch.put(table, &row, &meta::encode(&record));
        match inner.commit(state, batch, None).await {
            Ok(()) => return Ok(record.version_id),
            Err(CommitError::Conflict { .. }) => continue,
            Err(err) => return Err(internal(err)),
        }
    }
    Err(util::conflict())
}

/// PutObjectTagging.
pub async fn put_object_tagging(
    inner: &Inner,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let state = current()?;
    let input = req.input;
    let tags = tags_of(&input.tagging.tag_set)?;
    let version = set_tags(
        inner,
        &state,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        tags,
    )
    .await?;
    Ok(S3Response::new(PutObjectTaggingOutput {
        version_id: (version != "null").then_some(version),
    }))
}

/// GetObjectTagging.
pub async fn get_object_tagging(
    inner: &Inner,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let input = req.input;
    let record = readable(inner, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: tag_set(&record.tags),
        version_id: (record.version_id != "null").then(|| record.version_id.clone()),
    }))
}

/// DeleteObjectTagging.
pub async fn delete_object_tagging(
    inner: &Inner,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let state = current()?;
    let input = req.input;
    let version = set_tags(
        inner,
        &state,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        Vec::new(),
    )
    .await?;
    Ok(S3Response::new(DeleteObjectTaggingOutput {
        version_id: (version != "null").then_some(version),
    }))
}

/// GetObjectAcl: the owner has FULL_CONTROL.
pub async fn get_object_acl(
    inner: &Inner,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let input = req.input;
    let record = readable(inner, &input.bucket, &input.key, input.version_id.as_deref()).await?;
    let acl = super::bucket::acl_of(&record.owner);
    Ok(S3Response::new(GetObjectAclOutput {
        grants: acl.grants,
        owner: acl.owner,
        request_charged: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(s: &str) -> ETagCondition {
        s.parse().unwrap()
    }

    #[test]
    fn conditional_requests_follow_aws_precedence() {
        let t = |secs: i64| OffsetDateTime::from_unix_timestamp(secs).unwrap();
        let modified_ms = 1_000_500; // 1000.5 s
        let etag = "abc";
        type Case = (
            Option<&'static str>,
            Option<&'static str>,
            Option<i64>,
            Option<i64>,
            Condition,
        );
        let cases: &[Case] = &[
            (None, None, None, None, Condition::Proceed),
            (Some("\"abc\""), None, None, None, Condition::Proceed),
            (Some("\"xyz\""), None, None, None, Condition::PreconditionFailed),
            (Some("*"), None, None, None, Condition::Proceed),
            (None, Some("\"abc\""), None, None, Condition::NotModified),
            (None, Some("\"xyz\""), None, None, Condition::Proceed),
            (None, None, Some(1000), None, Condition::NotModified),
            (None, None, Some(999), None, Condition::Proceed),
            (None, None, None, Some(999), Condition::PreconditionFailed),
            (None, None, None, Some(1000), Condition::Proceed),
            // If-Match holding overrides a failing If-Unmodified-Since.
            (Some("\"abc\""), None, None, Some(999), Condition::Proceed),
            // If-None-Match failing overrides a holding If-Modified-Since.
            (None, Some("\"xyz\""), Some(1000), None, Condition::Proceed),
        ];
        for (if_match, if_none_match, ims, ius, want) in cases {
            let got = evaluate_conditions(
                etag,
                modified_ms,
                if_match.map(cond).as_ref(),
                if_none_match.map(cond).as_ref(),
                ims.map(t),
                ius.map(t),
            );
            assert_eq!(
                got, *want,
                "if-match {if_match:?} if-none-match {if_none_match:?} ims {ims:?} ius {ius:?}"
            );
        }
    }

    #[test]
    fn tags_are_validated() {
        assert_eq!(
            tags_from_header(Some("a=1&b=two%20words")).unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "two words".into())]
        );
        assert!(tags_from_header(Some("a=1&a=2")).is_err());
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert!(tags_from_header(Some(&eleven.join("&"))).is_err());
        assert!(tags_from_header(None).unwrap().is_empty());
    }

    #[test]
    fn content_md5_must_be_sixteen_bytes_of_base64() {
        assert_eq!(
            content_md5(Some("XrY7u+Ae7tCTyyK7j1rNww==")).unwrap().as_deref(),
            Some("5eb63bbbe01eeed093cb22bb8f5acdc3")
        );
        assert!(content_md5(Some("not base64")).is_err());
        assert!(content_md5(Some("AAAA")).is_err());
        assert_eq!(content_md5(None).unwrap(), None);
    }

    #[test]
    fn digests_are_verified() {
        let requested = Some((Algorithm::Crc32, Some("DUoRhQ==".to_string())));
        assert!(verify_digests("m", Some("DUoRhQ=="), None, &requested, Some("DUoRhQ==")).is_ok());
        let err = verify_digests("m", Some("AAAAAA=="), None, &requested, Some("DUoRhQ==")).unwrap_err();
        assert_eq!(*err.code(), S3ErrorCode::BadDigest);
        assert_eq!(
            err.message(),
            Some("The CRC32 you specified did not match the calculated checksum.")
        );
        assert!(verify_digests("m", None, Some("other"), &None, None).is_err());
    }

    #[test]
    fn aws_chunked_is_removed_from_content_encoding() {
        assert_eq!(strip_aws_chunked(Some("aws-chunked".into())), None);
        assert_eq!(
            strip_aws_chunked(Some("gzip, aws-chunked".into())).as_deref(),
            Some("gzip")
        );
        assert_eq!(strip_aws_chunked(Some("gzip".into())).as_deref(), Some("gzip"));
    }
}
