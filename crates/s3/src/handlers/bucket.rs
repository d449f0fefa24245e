//! Bucket operations: lifecycle, listing, location, policy, Block Public Access, default
//! encryption, versioning and tags.

use super::util::{self, now_ms, owner, timestamp, update_bucket};
use crate::access::{is_public_policy, validate_bucket_policy};
use crate::engine::{Inner, internal};
use crate::frontend::{current, error};
use crate::meta::{self, BucketEncryption, BucketLogging, BucketRecord, PublicAccessBlock};
use crate::names::bucket_name_problem;
use citadel_store::{CommitError, WriteBatch};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

/// CreateBucket.
pub async fn create_bucket(
    inner: &Inner,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let state = current()?;
    let bucket = req.input.bucket.clone();
    if let Some(problem) = bucket_name_problem(&bucket) {
        return Err(error(S3ErrorCode::InvalidBucketName, 400, problem));
    }
    let request_region = req
        .region
        .as_ref()
        .map(|r| r.as_str().to_string())
        .unwrap_or_else(|| inner.region.clone());
    let constraint = req
        .input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        .map(|l| l.as_str().to_string())
        .filter(|c| !c.is_empty());
    let region = match constraint {
        Some(c) if c == "us-east-1" => {
            return Err(error(
                S3ErrorCode::InvalidLocationConstraint,
                400,
                "The specified location-constraint is not valid",
            ));
        }
        Some(c) if request_region != "us-east-1" && c != request_region => {
            return Err(error(
                S3ErrorCode::IllegalLocationConstraintException,
                400,
                format!(
                    "The {c} location constraint is incompatible for the region specific endpoint this request was sent to."
                ),
            ));
        }
        Some(c) => c,
        None if request_region != "us-east-1" => {
            return Err(error(
                S3ErrorCode::IllegalLocationConstraintException,
                400,
                "The unspecified location constraint is incompatible for the region specific endpoint this request was sent to.",
            ));
        }
        None => "us-east-1".to_string(),
    };
    let principal = state.principal();
    let account = principal.account_id.clone();
    if account.is_empty() {
        return Err(error(S3ErrorCode::AccessDenied, 403, "Access Denied"));
    }
    let exists = |existing: &BucketRecord| {
        if existing.owner == account {
            error(
                S3ErrorCode::BucketAlreadyOwnedByYou,
                409,
                "Your previous request to create the named bucket succeeded and you already own it.",
            )
        } else {
            error(
                S3ErrorCode::BucketAlreadyExists,
                409,
                "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
            )
        }
    };
    let location = if region == "us-east-1" {
        format!("/{bucket}")
    } else {
        format!("http://{bucket}.s3.amazonaws.com/")
    };
    if let Some((existing, _)) = inner.bucket_fresh(&bucket).await? {
        // AWS keeps answering 200 in us-east-1 for a bucket the caller already owns (legacy behaviour).
        if existing.owner == account && existing.region == "us-east-1" && region == "us-east-1" {
            return Ok(S3Response::new(CreateBucketOutput {
                location: Some(location),
            }));
        }
        return Err(exists(&existing));
    }
    let record = BucketRecord {
        name: bucket.clone(),
        owner: account.clone(),
        region,
        created_ms: now_ms(&state),
        policy: None,
        public_access_block: Some(PublicAccessBlock::all()),
        encryption: None,
        versioning: None,
        version_seq: 0,
        tags: Vec::new(),
        logging: None,
    };
    state.audit.lock().owner = Some(account.clone());
    let key = meta::bucket_key(&bucket);
    let mut batch = WriteBatch::new();
    batch.expect(meta::BUCKETS, &key, None);
    batch.put(meta::BUCKETS, &key, &meta::encode(&record));
    match inner.commit(&state, batch, None).await {
        Ok(()) => Ok(S3Response::new(CreateBucketOutput {
            location: Some(location),
        })),
        Err(CommitError::Conflict { .. }) => match inner.bucket_fresh(&bucket).await? {
            Some((existing, _)) => Err(exists(&existing)),
            None => Err(util::conflict()),
        },
        Err(err) => Err(internal(err)),
    }
}

/// HeadBucket.
pub async fn head_bucket(inner: &Inner, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
    let (record, _) = inner.require_bucket(&req.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(record.region),
        ..Default::default()
    }))
}

/// DeleteBucket.
pub async fn delete_bucket(
    inner: &Inner,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let state = current()?;
    let bucket = req.input.bucket;
    let (_, raw) = inner.require_bucket_fresh(&bucket).await?;
    let prefix = meta::object_prefix(&bucket, "");
    let (start, end) = citadel_store::keys::prefix_range(&prefix);
    for table in [meta::OBJECTS, meta::VERSIONS, meta::UPLOADS] {
        let rows = inner
            .store
            .scan(table, &start, end.as_deref(), 1, false)
            .await
            .map_err(internal)?;
        if !rows.is_empty() {
            return Err(error(
                S3ErrorCode::BucketNotEmpty,
                409,
                "The bucket you tried to delete is not empty",
            ));
        }
    }
    let key = meta::bucket_key(&bucket);
    let mut batch = WriteBatch::new();
    batch.expect(meta::BUCKETS, &key, Some(&raw));
    batch.delete(meta::BUCKETS, &key);
    match inner.commit(&state, batch, None).await {
        Ok(()) => Ok(S3Response::new(DeleteBucketOutput {})),
        Err(CommitError::Conflict { .. }) => Err(util::conflict()),
        Err(err) => Err(internal(err)),
    }
}

/// ListBuckets: the caller's account's buckets, by name.
pub async fn list_buckets(inner: &Inner, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
    let state = current()?;
    let account = state.principal().account_id.clone();
    let rows = inner
        .store
        .scan(meta::BUCKETS, b"", None, usize::MAX, false)
        .await
        .map_err(internal)?;
    let prefix = req.input.prefix.clone().unwrap_or_default();
    let buckets: Vec<Bucket> = rows
        .iter()
        .filter_map(|(_, v)| meta::decode::<BucketRecord>(v))
        .filter(|b| b.owner == account && b.name.starts_with(&prefix))
        .filter(|b| req.input.bucket_region.as_ref().is_none_or(|r| *r == b.region))
        .map(|b| Bucket {
            bucket_region: Some(b.region.clone()),
            creation_date: Some(timestamp(b.created_ms)),
            name: Some(b.name),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        continuation_token: None,
        owner: Some(owner(&account)),
        prefix: req.input.prefix,
    }))
}

/// GetBucketLocation: empty for us-east-1.
pub async fn get_bucket_location(
    inner: &Inner,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let (record, _) = inner.require_bucket(&req.input.bucket).await?;
    let constraint = (record.region != "us-east-1").then(|| BucketLocationConstraint::from(record.region));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: constraint,
    }))
}

/// PutBucketPolicy: validated, and refused when public under BlockPublicPolicy.
pub async fn put_bucket_policy(
    inner: &Inner,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let state = current()?;
    let bucket = req.input.bucket;
    let text = req.input.policy;
    validate_bucket_policy(&text, &bucket).map_err(|message| error(S3ErrorCode::MalformedPolicy, 400, message))?;
    let public = is_public_policy(&text);
    update_bucket(inner, &state, &bucket, |record| {
        if public && record.public_access_block.is_some_and(|b| b.block_public_policy) {
            let principal = state.principal();
            return Err(error(
                S3ErrorCode::AccessDenied,
                403,
                format!(
                    "User: {} is not authorized to perform: s3:PutBucketPolicy on resource: \"arn:aws:s3:::{}\" because public policies are blocked by the BlockPublicPolicy block public access setting.",
                    principal.arn, bucket
                ),
            ));
        }
        record.policy = Some(text.clone());
        Ok(())
    })
    .await?;
    Ok(S3Response::new(PutBucketPolicyOutput {}))
}

/// GetBucketPolicy.
pub async fn get_bucket_policy(
    inner: &Inner,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let (record, _) = inner.require_bucket(&req.input.bucket).await?;
    let policy = record.policy.ok_or_else(no_policy)?;
    Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(policy) }))
}

fn no_policy() -> s3s::S3Error {
    error(S3ErrorCode::NoSuchBucketPolicy, 404, "The bucket policy does not exist")
}

/// DeleteBucketPolicy.
pub async fn delete_bucket_policy(
    inner: &Inner,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let state = current()?;
    update_bucket(inner, &state, &req.input.bucket, |record| {
        record.policy = None;
        Ok(())
    })
    .await?;
    Ok(S3Response::new(DeleteBucketPolicyOutput {}))
}

/// GetBucketPolicyStatus.
pub async fn get_bucket_policy_status(
    inner: &Inner,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let (record, _) = inner.require_bucket(&req.input.bucket).await?;
    let policy = record.policy.ok_or_else(no_policy)?;
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus {
            is_public: Some(is_public_policy(&policy)),
        }),
    }))
}

/// PutPublicAccessBlock.
pub async fn put_public_access_block(
    inner: &Inner,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let state = current()?;
    let c = req.input.public_access_block_configuration;
    let block = PublicAccessBlock {
        block_public_acls: c.block_public_acls.unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
        block_public_policy: c.block_public_policy.unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
    };
    update_bucket(inner, &state, &req.input.bucket, |record| {
        record.public_access_block = Some(block);
        Ok(())
    })
    .await?;
    Ok(S3Response::new(PutPublicAccessBlockOutput {}))
}

/// GetPublicAccessBlock.
pub async fn get_public_access_block(
    inner: &Inner,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let (record, _) = inner.require_bucket(&req.input.bucket).await?;
    let block = record.public_access_block.ok_or_else(|| {
        error(
            S3ErrorCode::from_bytes(b"NoSuchPublicAccessBlockConfiguration").unwrap_or(S3ErrorCode::NoSuchKey),
            404,
            "The public access block configuration was not found",
        )
    })?;
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(block.block_public_acls),
            block_public_policy: Some(block.block_public_policy),
            ignore_public_acls: Some(block.ignore_public_acls),
            restrict_public_buckets: Some(block.restrict_public_buckets),
        }),
    }))
}

/// DeletePublicAccessBlock.
pub async fn delete_public_access_block(
    inner: &Inner,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    let state = current()?;
    update_bucket(inner, &state, &req.input.bucket, |record| {
        record.public_access_block = None;
        Ok(())
    })
    .await?;
    Ok(S3Response::new(DeletePublicAccessBlockOutput {}))
}

/// PutBucketEncryption.
pub async fn put_bucket_encryption(
    inner: &Inner,
    req: S3Request<PutBucketEncryptionInput>,
) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
    let state = current()?;
    let rule = req.input.server_side_encryption_configuration.rules.first().cloned();
    let Some(rule) = rule else {
        return Err(error(
            S3ErrorCode::MalformedXML,
            400,
            "The XML you provided was not well-formed or did not validate against our published schema",
        ));
    };
    let default = rule.apply_server_side_encryption_by_default.ok_or_else(|| {
        error(
            S3ErrorCode::MalformedXML,
            400,
            "The XML you provided was not well-formed or did not validate against our published schema",
        )
    })?;
    let algorithm = default.sse_algorithm.as_str().to_string();
    if !matches!(algorithm.as_str(), "AES256" | "aws:kms" | "aws:kms:dsse") {
        return Err(error(
            S3ErrorCode::MalformedXML,
            400,
            "The XML you provided was not well-formed or did not validate against our published schema",
        ));
    }
    if algorithm == "AES256" && default.kms_master_key_id.is_some() {
        return Err(error(
            S3ErrorCode::InvalidArgument,
            400,
            "a KMS key ID can only be specified with the aws:kms algorithm",
        ));
    }
    let encryption = BucketEncryption {
        algorithm,
        kms_key_id: default.kms_master_key_id,
        bucket_key_enabled: rule.bucket_key_enabled.unwrap_or(false),
    };
    update_bucket(inner, &state, &req.input.bucket, |record| {
        record.encryption = Some(encryption.clone());
        Ok(())
    })
    .await?;
    Ok(S3Response::new(PutBucketEncryptionOutput {}))
}

/// GetBucketEncryption: every bucket has default encryption (SSE-S3 unless configured).
pub async fn get_bucket_encryption(
    inner: &Inner,
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    let (record, _) = inner.require_bucket(&req.input.bucket).await?;
    let encryption = record.encryption.unwrap_or(BucketEncryption {
        algorithm: "AES256".into(),
        kms_key_id: None,
        bucket_key_enabled: false,
    });
    let rule = ServerSideEncryptionRule {
        apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
            kms_master_key_id: encryption.kms_key_id,
            sse_algorithm: ServerSideEncryption::from(encryption.algorithm),
        }),
        bucket_key_enabled: Some(encryption.bucket_key_enabled),
    };
    Ok(S3Response::new(GetBucketEncryptionOutput {
        server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration { rules: vec![rule] }),
    }))
}

/// DeleteBucketEncryption: back to the SSE-S3 default.
pub async fn delete_bucket_encryption(
    inner: &Inner,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    let state = current()?;
    update_bucket(inner, &state, &req.input.bucket, |record| {
        record.encryption = None;
        Ok(())
    })
    .await?;
    Ok(S3Response::new(DeleteBucketEncryptionOutput {}))
}

/// PutBucketVersioning.
pub async fn put_bucket_versioning(
    inner: &Inner,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let state = current()?;
    let status = req
        .input
        .versioning_configuration
        .status
        .map(|s| s.as_str().to_string());
    let status = match status.as_deref() {
        Some("Enabled") | Some("Suspended") => status,
        _ => {
            return Err(error(
                S3ErrorCode::MalformedXML,
                400,
                "The XML you provided was not well-formed or did not validate against our published schema",
            ));
        }
    };
    update_bucket(inner, &state, &req.input.bucket, |record| {
        if record.versioning.is_none() && status.as_deref() == Some("Suspended") {
            // Suspending a never-versioned bucket keeps it unversioned in effect; AWS records it anyway.
        }
        record.versioning = status.clone();
        Ok(())
    })
    .await?;
    Ok(S3Response::new(PutBucketVersioningOutput {}))
}

/// GetBucketVersioning.
pub async fn get_bucket_versioning(
    inner: &Inner,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let (record, _) = inner.require_bucket(&req.input.bucket).await?;
    Ok(S3Response::new(GetBucketVersioningOutput {
        mfa_delete: None,
        status: record.versioning.map(BucketVersioningStatus::from),
    }))
}

/// PutBucketTagging.
pub async fn put_bucket_tagging(
    inner: &Inner,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let state = current()?;
    let tags = super::object::tags_of(&req.input.tagging.tag_set)?;
    update_bucket(inner, &state, &req.input.bucket, |record| {
        record.tags = tags.clone();
        Ok(())
    })
    .await?;
    Ok(S3Response::new(PutBucketTaggingOutput {}))
}

/// GetBucketTagging.
pub async fn get_bucket_tagging(
    inner: &Inner,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let (record, _) = inner.require_bucket(&req.input.bucket).await?;
    if record.tags.is_empty() {
        return Err(error(S3ErrorCode::NoSuchTagSet, 404, "The TagSet does not exist"));
    }
    Ok(S3Response::new(GetBucketTaggingOutput {
        tag_set: super::object::tag_set(&record.tags),
    }))
}

/// DeleteBucketTagging.
pub async fn delete_bucket_tagging(
    inner: &Inner,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    let state = current()?;
    update_bucket(inner, &state, &req.input.bucket, |record| {
        record.tags.clear();
        Ok(())
    })
    .await?;
    Ok(S3Response::new(DeleteBucketTaggingOutput {}))
}

/// GetBucketAcl: the owner has FULL_CONTROL (ACLs are disabled, BucketOwnerEnforced).
pub async fn get_bucket_acl(
    inner: &Inner,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let (record, _) = inner.require_bucket(&req.input.bucket).await?;
    Ok(S3Response::new(acl_of(&record.owner)))
}

/// The ACL every object and bucket has under BucketOwnerEnforced.
pub fn acl_of(account: &str) -> GetBucketAclOutput {
    let grant = Grant {
        grantee: Some(Grantee {
            display_name: None,
            email_address: None,
            id: Some(util::canonical_id(account)),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    };
    GetBucketAclOutput {
        grants: Some(vec![grant]),
        owner: Some(owner(account)),
    }
}
/// PutBucketLogging: enables server access logging into a target bucket of the same owner and
/// region whose policy admits the logging service, or disables it (an empty `BucketLoggingStatus`).
pub async fn put_bucket_logging(
    inner: &Inner,
    req: S3Request<PutBucketLoggingInput>,
) -> S3Result<S3Response<PutBucketLoggingOutput>> {
    let state = current()?;
    let bucket = req.input.bucket;
    let (source, _) = inner.require_bucket(&bucket).await?;
    let logging = match req.input.bucket_logging_status.logging_enabled {
        None => None,
        Some(enabled) => {
            let target_bucket = enabled.target_bucket;
            let target_prefix = enabled.target_prefix;
            let invalid = |message: &str| error(S3ErrorCode::InvalidTargetBucketForLogging, 400, message);
            let Some((target, _)) = inner.bucket(&target_bucket).await? else {
                return Err(invalid("The target bucket for logging does not exist"));
            };
            if target.owner != source.owner {
                return Err(invalid(
                    "The owner for the bucket to be logged and the target bucket must be the same.",
                ));
            }
            if target.region != source.region {
                return Err(error(
                    S3ErrorCode::CrossLocationLoggingProhibited,
                    403,
                    "Cross S3 location logging not allowed. ",
                ));
            }
            if enabled.target_grants.as_ref().is_some_and(|g| !g.is_empty()) {
                return Err(invalid(
                    "Target grants are not supported for a target bucket that uses the bucket owner enforced setting for Object Ownership.",
                ));
            }
            if !inner
                .logging_service_may_write(&state, &source, &target, &target_prefix)
                .await
            {
                return Err(invalid(
                    "The target bucket's policy must allow s3:PutObject to the logging service principal logging.s3.amazonaws.com",
                ));
            }
            Some(BucketLogging {
                target_bucket,
                target_prefix,
            })
        }
    };
    update_bucket(inner, &state, &bucket, |record| {
        record.logging = logging.clone();
        Ok(())
    })
    .await?;
    Ok(S3Response::new(PutBucketLoggingOutput {}))
}

/// GetBucketLogging: an empty `BucketLoggingStatus` when logging is off.
pub async fn get_bucket_logging(
    inner: &Inner,
    req: S3Request<GetBucketLoggingInput>,
) -> S3Result<S3Response<GetBucketLoggingOutput>> {
    let (record, _) = inner.require_bucket(&req.input.bucket).await?;
    Ok(S3Response::new(GetBucketLoggingOutput {
        logging_enabled: record.logging.map(|l| LoggingEnabled {
            target_bucket: l.target_bucket,
            target_prefix: l.target_prefix,
            target_grants: None,
            target_object_key_format: None,
        }),
    }))
}
