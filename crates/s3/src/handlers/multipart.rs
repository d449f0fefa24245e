//! Multipart uploads: parts are encrypted segments under the upload's data key, and completing
//! an upload stitches their segments into one object without copying data.

use super::object::{
    content_md5, copy_source, put_current, requested_checksum, set_checksum_fields, tags_from_header, verify_digests,
};
use super::util::{self, customer_key, etag, key_context, now_ms, owner, sse_echo, timestamp};
use crate::checksum::{Algorithm, composite_checksum, multipart_etag};
use crate::engine::{Inner, KmsOptions, MAX_PUT_SIZE, blob_body, internal};
use crate::frontend::{RequestState, current, error};
use crate::meta::{self, ObjectRecord, PartRecord, StoredChecksum, UploadRecord};
use citadel_store::keys::prefix_end;
use citadel_store::{CommitError, WriteBatch};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

/// The smallest part other than the last: 5 MiB.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

fn no_such_upload() -> s3s::S3Error {
    error(
        S3ErrorCode::NoSuchUpload,
        404,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    )
}

async fn load_upload(inner: &Inner, bucket: &str, key: &str, upload_id: &str) -> S3Result<(UploadRecord, Vec<u8>)> {
    inner.require_bucket(bucket).await?;
    let raw = inner
        .store
        .get(meta::UPLOADS, &meta::upload_key(bucket, key, upload_id))
        .await
        .map_err(internal)?;
    raw.and_then(|raw| meta::decode::<UploadRecord>(&raw).map(|r| (r, raw)))
        .ok_or_else(no_such_upload)
}

async fn load_parts(inner: &Inner, upload_id: &str) -> S3Result<Vec<(Vec<u8>, PartRecord)>> {
    let prefix = meta::part_prefix(upload_id);
    let end = prefix_end(&prefix);
    let rows = inner
        .store
        .scan(meta::PARTS, &prefix, end.as_deref(), usize::MAX, false)
        .await
        .map_err(internal)?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, v)| meta::decode::<PartRecord>(&v).map(|p| (k, p)))
        .collect())
}

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            error(
                S3ErrorCode::InvalidArgument,
                400,
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        })
}

/// CreateMultipartUpload.
pub async fn create_multipart_upload(
    inner: &Inner,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let state = current()?;
    let S3Request { input, headers, .. } = req;
    let (bucket, _) = inner.require_bucket(&input.bucket).await?;
    let customer = customer_key(
        &state,
        input.sse_customer_algorithm.as_deref(),
        input.sse_customer_key.as_deref(),
        input.sse_customer_key_md5.as_deref(),
    )?;
    let checksum_algorithm =
        requested_checksum(&headers, input.checksum_algorithm.as_ref().map(|a| a.as_str()))?.map(|(a, _)| a);
    let tags = tags_from_header(input.tagging.as_deref())?;
    let context = key_context(&input.bucket, &input.key);
    let (encryption, _data_key) = inner
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
    let principal = state.principal();
    let upload_id = inner.ids.alphanumeric(64);
    let template = ObjectRecord {
        key: input.key.clone(),
        version_id: "null".into(),
        seq: 0,
        delete_marker: false,
        size: 0,
        etag: String::new(),
        last_modified_ms: 0,
        owner: bucket.owner.clone(),
        content_type: Some(
            input
                .content_type
                .clone()
                .unwrap_or_else(|| "binary/octet-stream".into()),
        ),
        content_encoding: input.content_encoding.clone(),
        content_disposition: input.content_disposition.clone(),
        content_language: input.content_language.clone(),
        cache_control: input.cache_control.clone(),
        expires: None,
        metadata: input
            .metadata
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        tags,
        checksum: None,
        parts_count: None,
        encryption: Some(encryption),
        segments: Vec::new(),
        storage_class: "STANDARD".into(),
    };
    let upload = UploadRecord {
        upload_id: upload_id.clone(),
        key: input.key.clone(),
        initiated_ms: now_ms(&state),
        initiator_arn: principal.arn.clone(),
        initiator_id: principal.principal_id.clone(),
        template,
        checksum_algorithm: checksum_algorithm.map(|a| a.name().to_string()),
    };
    let ukey = meta::upload_key(&input.bucket, &input.key, &upload_id);
    let mut batch = WriteBatch::new();
    batch.expect_present(meta::BUCKETS, &meta::bucket_key(&input.bucket));
    batch.expect(meta::UPLOADS, &ukey, None);
    batch.put(meta::UPLOADS, &ukey, &meta::encode(&upload));
    inner.commit(&state, batch, None).await.map_err(internal)?;
    let echo = sse_echo(&upload.template);
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload_id),
        checksum_algorithm: checksum_algorithm.map(|a| ChecksumAlgorithm::from(a.name().to_string())),
        checksum_type: checksum_algorithm.map(|_| ChecksumType::from_static(ChecksumType::COMPOSITE)),
        server_side_encryption: echo.server_side_encryption,
        ssekms_key_id: echo.kms_key_id,
        sse_customer_algorithm: echo.customer_algorithm,
        sse_customer_key_md5: echo.customer_key_md5,
        bucket_key_enabled: echo.bucket_key_enabled,
        ssekms_encryption_context: util::context_echo(&upload.template, input.ssekms_encryption_context.is_some()),
        ..Default::default()
    }))
}

/// Stores a part row (replacing any previous part with the same number) with the audit record.
async fn save_part(
    inner: &Inner,
    state: &RequestState,
    bucket: &str,
    upload: &UploadRecord,
    part: PartRecord,
) -> S3Result<()> {
    let ukey = meta::upload_key(bucket, &upload.key, &upload.upload_id);
    let pkey = meta::part_key(&upload.upload_id, part.part_number);
    for _ in 0..8 {
        let old = inner.store.get(meta::PARTS, &pkey).await.map_err(internal)?;
        let mut batch = WriteBatch::new();
        batch.expect_present(meta::UPLOADS, &ukey);
        batch.expect(meta::PARTS, &pkey, old.as_deref());
        batch.put(meta::PARTS, &pkey, &meta::encode(&part));
        match inner.commit(state, batch, None).await {
            Ok(()) => {
                if let Some(old) = old.and_then(|raw| meta::decode::<PartRecord>(&raw)) {
                    inner.drop_blobs([old.segment.blob]).await;
                }
                return Ok(());
            }
            Err(CommitError::Conflict { table, .. }) if table == meta::UPLOADS => {
                inner.drop_blobs([part.segment.blob.clone()]).await;
                return Err(no_such_upload());
            }
            Err(CommitError::Conflict { .. }) => continue,
            Err(err) => return Err(internal(err)),
        }
    }
    Err(util::conflict())
}

/// UploadPart.
pub async fn upload_part(inner: &Inner, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
    let state = current()?;
    let S3Request {
        input,
        headers,
        trailing_headers,
        ..
    } = req;
    let number = part_number(input.part_number)?;
    let (upload, _) = load_upload(inner, &input.bucket, &input.key, &input.upload_id).await?;
    let customer = customer_key(
        &state,
        input.sse_customer_algorithm.as_deref(),
        input.sse_customer_key.as_deref(),
        input.sse_customer_key_md5.as_deref(),
    )?;
    let context = key_context(&input.bucket, &input.key);
    let data_key = inner
        .open_key(
            &state,
            &input.bucket,
            upload.template.encryption.as_ref(),
            customer.as_ref(),
            &context,
        )
        .await?;
    let md5_wanted = content_md5(input.content_md5.as_deref())?;
    let upload_algorithm = upload.checksum_algorithm.as_deref().and_then(Algorithm::parse);
    let requested = requested_checksum(&headers, input.checksum_algorithm.as_ref().map(|a| a.as_str()))?
        .or_else(|| upload_algorithm.map(|a| (a, None)));
    let written = inner
        .write_segment(
            input.body,
            &data_key,
            MAX_PUT_SIZE,
            requested.as_ref().map(|r| r.0),
            "part",
        )
        .await?;
    let expected = requested.as_ref().and_then(|(algorithm, value)| {
        value.clone().or_else(|| {
            trailing_headers
                .as_ref()
                .and_then(|t| {
                    t.read(|h| {
                        h.get(algorithm.header())
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    })
                })
                .flatten()
        })
    });
    if let Err(err) = verify_digests(
        &written.md5_hex,
        written.checksum.as_deref(),
        md5_wanted.as_deref(),
        &requested,
        expected.as_deref(),
    ) {
        inner.drop_blobs([written.segment.blob.clone()]).await;
        return Err(err);
    }
    let part = PartRecord {
        part_number: number,
        etag: written.md5_hex.clone(),
        last_modified_ms: now_ms(&state),
        segment: written.segment.clone(),
        checksum: written.checksum.clone(),
    };
    save_part(inner, &state, &input.bucket, &upload, part).await?;
    let echo = sse_echo(&upload.template);
    let mut output = UploadPartOutput {
        e_tag: Some(etag(&written.md5_hex)),
        server_side_encryption: echo.server_side_encryption,
        ssekms_key_id: echo.kms_key_id,
        sse_customer_algorithm: echo.customer_algorithm,
        sse_customer_key_md5: echo.customer_key_md5,
        bucket_key_enabled: echo.bucket_key_enabled,
        ..Default::default()
    };
    let stored = requested
        .as_ref()
        .zip(written.checksum.clone())
        .map(|((a, _), value)| StoredChecksum {
            algorithm: a.name().into(),
            value,
            kind: "FULL_OBJECT".into(),
        });
    set_checksum_fields(&stored, |alg, value| match alg {
        Algorithm::Crc32 => output.checksum_crc32 = Some(value),
        Algorithm::Crc32c => output.checksum_crc32c = Some(value),
        Algorithm::Crc64Nvme => output.checksum_crc64nvme = Some(value),
        Algorithm::Sha1 => output.checksum_sha1 = Some(value),
        Algorithm::Sha256 => output.checksum_sha256 = Some(value),
    });
    Ok(S3Response::new(output))
}

/// Parses `x-amz-copy-source-range: bytes=a-b` against a source of `size` bytes.
pub fn copy_range(range: Option<&str>, size: u64) -> S3Result<(u64, u64)> {
    let Some(range) = range else { return Ok((0, size)) };
    let invalid = || {
        error(
            S3ErrorCode::InvalidArgument,
            400,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
        )
    };
    let spec = range.strip_prefix("bytes=").ok_or_else(invalid)?;
    let (first, last) = spec.split_once('-').ok_or_else(invalid)?;
    let first: u64 = first.trim().parse().map_err(|_| invalid())?;
    let last: u64 = last.trim().parse().map_err(|_| invalid())?;
    if first > last || last >= size {
        return Err(error(
            S3ErrorCode::InvalidRange,
            416,
            "The requested range is not satisfiable",
        ));
    }
    Ok((first, last + 1))
}

/// UploadPartCopy.
pub async fn upload_part_copy(
    inner: &Inner,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let state = current()?;
    let input = req.input;
    let number = part_number(input.part_number)?;
    let (upload, _) = load_upload(inner, &input.bucket, &input.key, &input.upload_id).await?;
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
    let (from, to) = copy_range(input.copy_source_range.as_deref(), source.record.size)?;
    if to - from > MAX_PUT_SIZE {
        return Err(error(
            S3ErrorCode::InvalidRequest,
            400,
            "The specified copy range is larger than the maximum part size.",
        ));
    }
    let customer = customer_key(
        &state,
        input.sse_customer_algorithm.as_deref(),
        input.sse_customer_key.as_deref(),
        input.sse_customer_key_md5.as_deref(),
    )?;
    let data_key = inner
        .open_key(
            &state,
            &input.bucket,
            upload.template.encryption.as_ref(),
            customer.as_ref(),
            &key_context(&input.bucket, &input.key),
        )
        .await?;
    let algorithm = upload.checksum_algorithm.as_deref().and_then(Algorithm::parse);
    let plain = inner.read_plain(&source.record.segments, source.data_key.clone(), from, to);
    let written = inner
        .write_segment(Some(blob_body(plain)), &data_key, MAX_PUT_SIZE, algorithm, "part")
        .await?;
    let part = PartRecord {
        part_number: number,
        etag: written.md5_hex.clone(),
        last_modified_ms: now_ms(&state),
        segment: written.segment.clone(),
        checksum: written.checksum.clone(),
    };
    let modified = part.last_modified_ms;
    save_part(inner, &state, &input.bucket, &upload, part).await?;
    let echo = sse_echo(&upload.template);
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&written.md5_hex)),
            last_modified: Some(timestamp(modified)),
            ..Default::default()
        }),
        copy_source_version_id: (source.record.version_id != "null").then(|| source.record.version_id.clone()),
        server_side_encryption: echo.server_side_encryption,
        sse_customer_algorithm: echo.customer_algorithm,
        sse_customer_key_md5: echo.customer_key_md5,
        ..Default::default()
    }))
}

/// Checks the client's part list against the stored parts: ascending numbers (InvalidPartOrder),
/// known parts with matching ETags (InvalidPart), and 5 MiB for every part but the last
/// (EntityTooSmall). Returns the chosen parts in order.
pub fn choose_parts(requested: &[(u32, String)], stored: &[PartRecord]) -> S3Result<Vec<PartRecord>> {
    if requested.is_empty() {
        return Err(error(
            S3ErrorCode::MalformedXML,
            400,
            "The XML you provided was not well-formed or did not validate against our published schema",
        ));
    }
    let mut chosen: Vec<PartRecord> = Vec::with_capacity(requested.len());
    for (i, (number, wanted_etag)) in requested.iter().enumerate() {
        if i > 0 && requested.get(i - 1).is_some_and(|(prev, _)| prev >= number) {
            return Err(error(
                S3ErrorCode::InvalidPartOrder,
                400,
                "The list of parts was not in ascending order. Parts must be ordered by part number.",
            ));
        }
        let wanted = wanted_etag.trim_matches('"');
        let part = stored.iter().find(|p| p.part_number == *number && p.etag == wanted).ok_or_else(|| {
            error(
                S3ErrorCode::InvalidPart,
                400,
                "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
            )
        })?;
        chosen.push(part.clone());
    }
    let count = chosen.len();
    if chosen
        .iter()
        .take(count.saturating_sub(1))
        .any(|p| p.segment.size < MIN_PART_SIZE)
    {
        return Err(error(
            S3ErrorCode::EntityTooSmall,
            400,
            "Your proposed upload is smaller than the minimum allowed object size.",
        ));
    }
    Ok(chosen)
}

/// CompleteMultipartUpload.
pub async fn complete_multipart_upload(
    inner: &Inner,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let state = current()?;
    let input = req.input;
    let (upload, upload_raw) = load_upload(inner, &input.bucket, &input.key, &input.upload_id).await?;
    let requested: Vec<(u32, String)> = input
        .multipart_upload
        .as_ref()
        .and_then(|m| m.parts.as_ref())
        .map(|parts| {
            parts
                .iter()
                .map(|p| {
                    let number = p.part_number.and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
                    (
                        number,
                        p.e_tag.as_ref().map(|e| e.value().to_string()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let stored = load_parts(inner, &upload.upload_id).await?;
    let parts: Vec<PartRecord> = stored.iter().map(|(_, p)| p.clone()).collect();
    let chosen = choose_parts(&requested, &parts)?;
    let md5s: Vec<String> = chosen.iter().map(|p| p.etag.clone()).collect();
    let final_etag = multipart_etag(&md5s).ok_or_else(|| internal("bad part md5"))?;
    let algorithm = upload.checksum_algorithm.as_deref().and_then(Algorithm::parse);
    let checksum = algorithm.and_then(|a| {
        let values: Option<Vec<String>> = chosen.iter().map(|p| p.checksum.clone()).collect();
        values
            .and_then(|v| composite_checksum(a, &v))
            .map(|value| StoredChecksum {
                algorithm: a.name().into(),
                value,
                kind: "COMPOSITE".into(),
            })
    });
    let mut template = upload.template.clone();
    template.size = chosen.iter().map(|p| p.segment.size).sum();
    template.etag = final_etag;
    template.last_modified_ms = now_ms(&state);
    template.segments = chosen.iter().map(|p| p.segment.clone()).collect();
    template.parts_count = u32::try_from(chosen.len()).ok();
    template.checksum = checksum;
    let ukey = meta::upload_key(&input.bucket, &input.key, &input.upload_id);
    let part_keys: Vec<Vec<u8>> = stored.iter().map(|(k, _)| k.clone()).collect();
    let result = put_current(inner, &state, &input.bucket, template, false, |batch| {
        batch.expect(meta::UPLOADS, &ukey, Some(&upload_raw));
        batch.delete(meta::UPLOADS, &ukey);
        for key in &part_keys {
            batch.delete(meta::PARTS, key);
        }
    })
    .await;
    let stored_object = match result {
        Ok(object) => object,
        Err(err) => {
            // The upload may have been completed or aborted concurrently.
            let still = inner.store.get(meta::UPLOADS, &ukey).await.map_err(internal)?;
            return Err(if still.is_none() { no_such_upload() } else { err });
        }
    };
    let used: std::collections::HashSet<&str> = chosen.iter().map(|p| p.segment.blob.as_str()).collect();
    let unused: Vec<String> = parts
        .iter()
        .map(|p| p.segment.blob.clone())
        .filter(|b| !used.contains(b.as_str()))
        .collect();
    inner.drop_blobs(unused).await;
    let echo = sse_echo(&stored_object);
    let mut output = CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        e_tag: Some(etag(&stored_object.etag)),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        server_side_encryption: echo.server_side_encryption,
        ssekms_key_id: echo.kms_key_id,
        bucket_key_enabled: echo.bucket_key_enabled,
        version_id: (stored_object.version_id != "null").then(|| stored_object.version_id.clone()),
        ..Default::default()
    };
    set_checksum_fields(&stored_object.checksum, |alg, value| match alg {
        Algorithm::Crc32 => output.checksum_crc32 = Some(value),
        Algorithm::Crc32c => output.checksum_crc32c = Some(value),
        Algorithm::Crc64Nvme => output.checksum_crc64nvme = Some(value),
        Algorithm::Sha1 => output.checksum_sha1 = Some(value),
        Algorithm::Sha256 => output.checksum_sha256 = Some(value),
    });
    if stored_object.checksum.is_some() {
        output.checksum_type = Some(ChecksumType::from_static(ChecksumType::COMPOSITE));
    }
    Ok(S3Response::new(output))
}

/// AbortMultipartUpload.
pub async fn abort_multipart_upload(
    inner: &Inner,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let state = current()?;
    let input = req.input;
    let (upload, raw) = load_upload(inner, &input.bucket, &input.key, &input.upload_id).await?;
    let parts = load_parts(inner, &upload.upload_id).await?;
    let ukey = meta::upload_key(&input.bucket, &input.key, &input.upload_id);
    let mut batch = WriteBatch::new();
    batch.expect(meta::UPLOADS, &ukey, Some(&raw));
    batch.delete(meta::UPLOADS, &ukey);
    for (key, _) in &parts {
        batch.delete(meta::PARTS, key);
    }
    match inner.commit(&state, batch, None).await {
        Ok(()) => {}
        Err(CommitError::Conflict { .. }) => return Err(no_such_upload()),
        Err(err) => return Err(internal(err)),
    }
    inner.drop_blobs(parts.into_iter().map(|(_, p)| p.segment.blob)).await;
    Ok(S3Response::new(AbortMultipartUploadOutput { request_charged: None }))
}

/// ListParts.
pub async fn list_parts(inner: &Inner, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
    let input = req.input;
    let (upload, _) = load_upload(inner, &input.bucket, &input.key, &input.upload_id).await?;
    let parts = load_parts(inner, &upload.upload_id).await?;
    let marker = input
        .part_number_marker
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(0);
    let max = input
        .max_parts
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(1000)
        .min(1000);
    let after: Vec<PartRecord> = parts
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| p.part_number > marker)
        .collect();
    let truncated = after.len() > max;
    let page: Vec<PartRecord> = after.into_iter().take(max).collect();
    let next = if truncated {
        page.last().map(|p| p.part_number)
    } else {
        None
    };
    let algorithm = upload.checksum_algorithm.as_deref().and_then(Algorithm::parse);
    let listed: Vec<Part> = page
        .iter()
        .map(|p| {
            let mut part = Part {
                e_tag: Some(etag(&p.etag)),
                last_modified: Some(timestamp(p.last_modified_ms)),
                part_number: i32::try_from(p.part_number).ok(),
                size: i64::try_from(p.segment.size).ok(),
                ..Default::default()
            };
            if let (Some(a), Some(value)) = (algorithm, p.checksum.clone()) {
                match a {
                    Algorithm::Crc32 => part.checksum_crc32 = Some(value),
                    Algorithm::Crc32c => part.checksum_crc32c = Some(value),
                    Algorithm::Crc64Nvme => part.checksum_crc64nvme = Some(value),
                    Algorithm::Sha1 => part.checksum_sha1 = Some(value),
                    Algorithm::Sha256 => part.checksum_sha256 = Some(value),
                }
            }
            part
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        initiator: Some(Initiator {
            display_name: None,
            id: Some(upload.initiator_arn.clone()),
        }),
        owner: Some(owner(&upload.template.owner)),
        is_truncated: Some(truncated),
        max_parts: Some(i32::try_from(max).unwrap_or(1000)),
        next_part_number_marker: next.and_then(|n| i32::try_from(n).ok()),
        part_number_marker: input.part_number_marker,
        parts: Some(listed),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        checksum_algorithm: algorithm.map(|a| ChecksumAlgorithm::from(a.name().to_string())),
        ..Default::default()
    }))
}

/// ListMultipartUploads.
pub async fn list_multipart_uploads(
    inner: &Inner,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    inner.require_bucket(&input.bucket).await?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let scan_prefix = meta::object_prefix(&input.bucket, &prefix);
    let end = prefix_end(&scan_prefix);
    let rows = inner
        .store
        .scan(meta::UPLOADS, &scan_prefix, end.as_deref(), usize::MAX, false)
        .await
        .map_err(internal)?;
    let max = input
        .max_uploads
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(1000)
        .min(1000);
    let mut uploads = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
    for (_, raw) in rows {
        let Some(upload) = meta::decode::<UploadRecord>(&raw) else {
            continue;
        };
        if input.key_marker.as_deref().is_some_and(|m| upload.key.as_str() <= m) {
            continue;
        }
        if let Some(d) = &delimiter
            && let Some(at) = upload.key[prefix.len()..].find(d.as_str())
        {
            let common = upload.key[..prefix.len() + at + d.len()].to_string();
            if !prefixes.contains(&common) {
                if uploads.len() + prefixes.len() >= max {
                    truncated = true;
                    break;
                }
                prefixes.push(common);
            }
            continue;
        }
        if uploads.len() + prefixes.len() >= max {
            truncated = true;
            break;
        }
        uploads.push(upload);
    }
    let next_key = if truncated {
        uploads.last().map(|u: &UploadRecord| u.key.clone())
    } else {
        None
    };
    let next_upload = if truncated {
        uploads.last().map(|u| u.upload_id.clone())
    } else {
        None
    };
    let listed: Vec<MultipartUpload> = uploads
        .iter()
        .map(|u| MultipartUpload {
            checksum_algorithm: u.checksum_algorithm.clone().map(ChecksumAlgorithm::from),
            checksum_type: None,
            initiated: Some(timestamp(u.initiated_ms)),
            initiator: Some(Initiator {
                display_name: None,
                id: Some(u.initiator_arn.clone()),
            }),
            key: Some(u.key.clone()),
            owner: Some(owner(&u.template.owner)),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            upload_id: Some(u.upload_id.clone()),
        })
        .collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        common_prefixes: (!prefixes.is_empty())
            .then(|| prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(p) }).collect()),
        delimiter: input.delimiter,
        encoding_type: input.encoding_type,
        is_truncated: Some(truncated),
        key_marker: input.key_marker,
        max_uploads: Some(i32::try_from(max).unwrap_or(1000)),
        next_key_marker: next_key,
        next_upload_id_marker: next_upload,
        prefix: input.prefix,
        request_charged: None,
        upload_id_marker: input.upload_id_marker,
        uploads: Some(listed),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Segment;

    fn part(n: u32, etag: &str, size: u64) -> PartRecord {
        PartRecord {
            part_number: n,
            etag: etag.into(),
            last_modified_ms: 0,
            segment: Segment {
                blob: format!("b{n}"),
                size,
                nonce: "00".repeat(8),
                chunk_size: 65536,
            },
            checksum: None,
        }
    }

    #[test]
    fn part_lists_are_checked_like_aws() {
        let big = MIN_PART_SIZE;
        let stored = vec![part(1, "a", big), part(2, "b", big), part(3, "c", 10), part(4, "d", 10)];
        let ok = choose_parts(&[(1, "\"a\"".into()), (2, "b".into()), (3, "c".into())], &stored).unwrap();
        assert_eq!(ok.iter().map(|p| p.part_number).collect::<Vec<_>>(), vec![1, 2, 3]);
        let cases: &[(&[(u32, &str)], S3ErrorCode)] = &[
            (&[(2, "b"), (1, "a")], S3ErrorCode::InvalidPartOrder),
            (&[(1, "a"), (1, "a")], S3ErrorCode::InvalidPartOrder),
            (&[(1, "zz")], S3ErrorCode::InvalidPart),
            (&[(9, "a")], S3ErrorCode::InvalidPart),
            (&[(3, "c"), (4, "d")], S3ErrorCode::EntityTooSmall),
            (&[], S3ErrorCode::MalformedXML),
        ];
        for (requested, code) in cases {
            let requested: Vec<(u32, String)> = requested.iter().map(|(n, e)| (*n, e.to_string())).collect();
            assert_eq!(
                *choose_parts(&requested, &stored).unwrap_err().code(),
                *code,
                "{requested:?}"
            );
        }
    }

    #[test]
    fn copy_ranges() {
        assert_eq!(copy_range(None, 10).unwrap(), (0, 10));
        assert_eq!(copy_range(Some("bytes=2-5"), 10).unwrap(), (2, 6));
        assert_eq!(
            *copy_range(Some("bytes=5-10"), 10).unwrap_err().code(),
            S3ErrorCode::InvalidRange
        );
        assert_eq!(
            *copy_range(Some("2-5"), 10).unwrap_err().code(),
            S3ErrorCode::InvalidArgument
        );
    }
}
