//! Every S3 operation Citadel serves, with the IAM action it needs and the resource it touches.
//!
//! The access hook refuses any operation that is not in [`OPERATIONS`] (NotImplemented), so no
//! handler can run without a policy decision. Actions follow AWS's documented mapping
//! ("Actions, resources, and condition keys for Amazon S3" and the S3 API reference's
//! "Permissions" sections); ListObjects, ListObjectsV2 and HeadBucket need `s3:ListBucket`.

/// What an operation's resource ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// No resource (`*`): ListBuckets.
    None,
    /// `arn:aws:s3:::bucket`.
    Bucket,
    /// `arn:aws:s3:::bucket/key`.
    Object,
}

/// One operation.
#[derive(Debug, Clone, Copy)]
pub struct S3OperationSpec {
    /// The API name, as s3s and CloudTrail call it.
    pub name: &'static str,
    /// The IAM action.
    pub action: &'static str,
    /// The resource kind.
    pub resource: ResourceKind,
    /// Changes nothing (CloudTrail `readOnly`).
    pub read_only: bool,
    /// A CloudTrail management event (bucket configuration) rather than a data event.
    pub management: bool,
}

const fn op(
    name: &'static str,
    action: &'static str,
    resource: ResourceKind,
    read_only: bool,
    management: bool,
) -> S3OperationSpec {
    S3OperationSpec {
        name,
        action,
        resource,
        read_only,
        management,
    }
}

use ResourceKind::{Bucket, None as NoResource, Object};

/// The registry.
pub static OPERATIONS: &[S3OperationSpec] = &[
    op("ListBuckets", "s3:ListAllMyBuckets", NoResource, true, true),
    op("CreateBucket", "s3:CreateBucket", Bucket, false, true),
    op("DeleteBucket", "s3:DeleteBucket", Bucket, false, true),
    op("HeadBucket", "s3:ListBucket", Bucket, true, true),
    op("GetBucketLocation", "s3:GetBucketLocation", Bucket, true, true),
    op("ListObjects", "s3:ListBucket", Bucket, true, false),
    op("ListObjectsV2", "s3:ListBucket", Bucket, true, false),
    op("ListObjectVersions", "s3:ListBucketVersions", Bucket, true, false),
    op(
        "ListMultipartUploads",
        "s3:ListBucketMultipartUploads",
        Bucket,
        true,
        false,
    ),
    op("GetBucketPolicy", "s3:GetBucketPolicy", Bucket, true, true),
    op("PutBucketPolicy", "s3:PutBucketPolicy", Bucket, false, true),
    op("DeleteBucketPolicy", "s3:DeleteBucketPolicy", Bucket, false, true),
    op("GetBucketPolicyStatus", "s3:GetBucketPolicyStatus", Bucket, true, true),
    op(
        "GetPublicAccessBlock",
        "s3:GetBucketPublicAccessBlock",
        Bucket,
        true,
        true,
    ),
    op(
        "PutPublicAccessBlock",
        "s3:PutBucketPublicAccessBlock",
        Bucket,
        false,
        true,
    ),
    op(
        "DeletePublicAccessBlock",
        "s3:PutBucketPublicAccessBlock",
        Bucket,
        false,
        true,
    ),
    op(
        "GetBucketEncryption",
        "s3:GetEncryptionConfiguration",
        Bucket,
        true,
        true,
    ),
    op(
        "PutBucketEncryption",
        "s3:PutEncryptionConfiguration",
        Bucket,
        false,
        true,
    ),
    op(
        "DeleteBucketEncryption",
        "s3:PutEncryptionConfiguration",
        Bucket,
        false,
        true,
    ),
    op("GetBucketVersioning", "s3:GetBucketVersioning", Bucket, true, true),
    op("PutBucketVersioning", "s3:PutBucketVersioning", Bucket, false, true),
    op("GetBucketTagging", "s3:GetBucketTagging", Bucket, true, true),
    op("PutBucketTagging", "s3:PutBucketTagging", Bucket, false, true),
    op("DeleteBucketTagging", "s3:PutBucketTagging", Bucket, false, true),
    op("GetBucketAcl", "s3:GetBucketAcl", Bucket, true, true),
    op("GetBucketLogging", "s3:GetBucketLogging", Bucket, true, true),
    op("PutBucketLogging", "s3:PutBucketLogging", Bucket, false, true),
    op("GetObject", "s3:GetObject", Object, true, false),
    op("HeadObject", "s3:GetObject", Object, true, false),
    op("PutObject", "s3:PutObject", Object, false, false),
    op("PostObject", "s3:PutObject", Object, false, false),
    op("CopyObject", "s3:PutObject", Object, false, false),
    op("DeleteObject", "s3:DeleteObject", Object, false, false),
    op("DeleteObjects", "s3:DeleteObject", Bucket, false, false),
    op("GetObjectTagging", "s3:GetObjectTagging", Object, true, false),
    op("PutObjectTagging", "s3:PutObjectTagging", Object, false, false),
    op("DeleteObjectTagging", "s3:DeleteObjectTagging", Object, false, false),
    op("GetObjectAcl", "s3:GetObjectAcl", Object, true, false),
    op("CreateMultipartUpload", "s3:PutObject", Object, false, false),
    op("UploadPart", "s3:PutObject", Object, false, false),
    op("UploadPartCopy", "s3:PutObject", Object, false, false),
    op("CompleteMultipartUpload", "s3:PutObject", Object, false, false),
    op("AbortMultipartUpload", "s3:AbortMultipartUpload", Object, false, false),
    op("ListParts", "s3:ListMultipartUploadParts", Object, true, false),
];

/// The spec of an operation, if Citadel serves it.
pub fn lookup(name: &str) -> Option<&'static S3OperationSpec> {
    OPERATIONS.iter().find(|op| op.name == name)
}

/// The action when a request names a version: AWS checks the `...Version` action then.
pub fn versioned_action(spec: &S3OperationSpec) -> &'static str {
    match spec.action {
        "s3:GetObject" => "s3:GetObjectVersion",
        "s3:DeleteObject" => "s3:DeleteObjectVersion",
        "s3:GetObjectTagging" => "s3:GetObjectVersionTagging",
        "s3:PutObjectTagging" => "s3:PutObjectVersionTagging",
        "s3:DeleteObjectTagging" => "s3:DeleteObjectVersionTagging",
        "s3:GetObjectAcl" => "s3:GetObjectVersionAcl",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_actions_are_s3() {
        for (i, a) in OPERATIONS.iter().enumerate() {
            assert!(a.action.starts_with("s3:"), "{}", a.name);
            for b in &OPERATIONS[i + 1..] {
                assert_ne!(a.name, b.name);
            }
        }
    }

    #[test]
    fn documented_mappings() {
        let cases = [
            ("ListObjectsV2", "s3:ListBucket", Bucket),
            ("ListObjects", "s3:ListBucket", Bucket),
            ("HeadBucket", "s3:ListBucket", Bucket),
            ("ListBuckets", "s3:ListAllMyBuckets", NoResource),
            ("HeadObject", "s3:GetObject", Object),
            ("UploadPart", "s3:PutObject", Object),
            ("DeletePublicAccessBlock", "s3:PutBucketPublicAccessBlock", Bucket),
            ("PutBucketEncryption", "s3:PutEncryptionConfiguration", Bucket),
        ];
        for (name, action, resource) in cases {
            let spec = lookup(name).unwrap();
            assert_eq!((spec.action, spec.resource), (action, resource), "{name}");
        }
        assert!(lookup("SelectObjectContent").is_none());
        assert_eq!(versioned_action(lookup("GetObject").unwrap()), "s3:GetObjectVersion");
    }
}
