//! CloudTrail's errors, with AWS's codes and message wording.
//!
//! Every client error of CloudTrail is HTTP 400; handlers build errors through these functions so the
//! codes and wording live in one place.

use citadel_wire::AwsError;

fn client(code: &'static str, message: impl Into<String>) -> AwsError {
    AwsError::new(code, 400, message)
}

/// `TrailNotFoundException` for a trail name or ARN that names no trail.
pub fn trail_not_found(account: &str, region: &str, name: &str) -> AwsError {
    client(
        "TrailNotFoundException",
        format!("Unknown trail: {name} for the user: {account} in region {region}"),
    )
}

/// `TrailAlreadyExistsException`.
pub fn trail_exists(arn: &str) -> AwsError {
    client(
        "TrailAlreadyExistsException",
        format!("Trail {arn} already exists for customer"),
    )
}

/// `InvalidTrailNameException` with the rule the name breaks.
pub fn invalid_trail_name(message: impl Into<String>) -> AwsError {
    client("InvalidTrailNameException", message)
}

/// `S3BucketDoesNotExistException`.
pub fn bucket_missing(bucket: &str) -> AwsError {
    client(
        "S3BucketDoesNotExistException",
        format!("S3 bucket {bucket} does not exist."),
    )
}

/// `InsufficientS3BucketPolicyException`.
pub fn insufficient_bucket_policy(bucket: &str) -> AwsError {
    client(
        "InsufficientS3BucketPolicyException",
        format!("Incorrect S3 bucket policy is detected for bucket: {bucket}"),
    )
}

/// `InvalidS3PrefixException`.
pub fn invalid_prefix(message: impl Into<String>) -> AwsError {
    client("InvalidS3PrefixException", message)
}

/// `InvalidLookupAttributesException`.
pub fn invalid_lookup_attributes(message: impl Into<String>) -> AwsError {
    client("InvalidLookupAttributesException", message)
}

/// `InvalidTimeRangeException`.
pub fn invalid_time_range() -> AwsError {
    client(
        "InvalidTimeRangeException",
        "Start time must be before end time and both must be valid timestamps.",
    )
}

/// `InvalidMaxResultsException`.
pub fn invalid_max_results() -> AwsError {
    client("InvalidMaxResultsException", "MaxResults must be between 1 and 50.")
}

/// `InvalidNextTokenException`.
pub fn invalid_next_token() -> AwsError {
    client("InvalidNextTokenException", "The NextToken is not valid.")
}

/// `InvalidEventSelectorsException`.
pub fn invalid_event_selectors(message: impl Into<String>) -> AwsError {
    client("InvalidEventSelectorsException", message)
}

/// `InvalidInsightSelectorsException`.
pub fn invalid_insight_selectors(message: impl Into<String>) -> AwsError {
    client("InvalidInsightSelectorsException", message)
}

/// `InsightNotEnabledException`.
pub fn insight_not_enabled(arn: &str) -> AwsError {
    client(
        "InsightNotEnabledException",
        format!(
            "Trail {arn} does not have Insights enabled. Enable Insights on the trail, and then try the operation again."
        ),
    )
}

/// `InvalidTagParameterException`.
pub fn invalid_tag(message: impl Into<String>) -> AwsError {
    client("InvalidTagParameterException", message)
}

/// `TagsLimitExceededException`.
pub fn tags_limit() -> AwsError {
    client(
        "TagsLimitExceededException",
        "The number of tags on the trail exceeds the limit of 50.",
    )
}

/// `ResourceNotFoundException` for tag operations on an unknown ARN.
pub fn resource_not_found(arn: &str) -> AwsError {
    client("ResourceNotFoundException", format!("Resource {arn} not found."))
}

/// `CloudTrailARNInvalidException`.
pub fn invalid_arn(arn: &str) -> AwsError {
    client(
        "CloudTrailARNInvalidException",
        format!("{arn} is not a valid CloudTrail ARN."),
    )
}

/// `InvalidParameterCombinationException`.
pub fn invalid_combination(message: impl Into<String>) -> AwsError {
    client("InvalidParameterCombinationException", message)
}

/// `InvalidParameterException`.
pub fn invalid_parameter(message: impl Into<String>) -> AwsError {
    client("InvalidParameterException", message)
}

/// `InvalidCloudWatchLogsLogGroupArnException`.
pub fn invalid_log_group_arn(arn: &str) -> AwsError {
    client(
        "InvalidCloudWatchLogsLogGroupArnException",
        format!("Invalid CloudWatchLogs LogGroup ARN: {arn}"),
    )
}

/// `InvalidCloudWatchLogsRoleArnException`.
pub fn invalid_log_role_arn(arn: &str) -> AwsError {
    client(
        "InvalidCloudWatchLogsRoleArnException",
        format!("Invalid CloudWatchLogs Role ARN: {arn}"),
    )
}

/// `InvalidHomeRegionException`: mutating a trail from a region other than its home region.
pub fn wrong_home_region(arn: &str, home: &str) -> AwsError {
    client(
        "InvalidHomeRegionException",
        format!("This operation must be called from the trail's home region ({home}): {arn}"),
    )
}

/// The internal failure, with its cause logged.
pub fn internal(cause: impl std::fmt::Display) -> AwsError {
    tracing::error!(error = %cause, "cloudtrail internal error");
    AwsError::internal()
}

/// `CloudWatchLogsDeliveryUnavailableException`.
pub fn cwl_unavailable(message: impl Into<String>) -> AwsError {
    client("CloudWatchLogsDeliveryUnavailableException", message)
}

/// `InvalidKmsKeyIdException` for a key id that is empty or malformed.
pub fn invalid_kms_key_id(key: &str) -> AwsError {
    client("InvalidKmsKeyIdException", format!("Invalid KMS key ID: {key}"))
}

/// `KmsKeyNotFoundException`.
pub fn kms_key_not_found(key: &str) -> AwsError {
    client(
        "KmsKeyNotFoundException",
        format!("The KMS key {key} does not exist, or is not in the trail's Region."),
    )
}

/// `KmsKeyDisabledException`.
pub fn kms_key_disabled(key: &str) -> AwsError {
    client("KmsKeyDisabledException", format!("The KMS key {key} is disabled."))
}

/// `InsufficientEncryptionPolicyException`: the key policy does not let CloudTrail make data keys.
pub fn insufficient_encryption_policy(key: &str) -> AwsError {
    client(
        "InsufficientEncryptionPolicyException",
        format!(
            "Insufficient permissions to access the KMS key {key}: its policy must allow cloudtrail.amazonaws.com kms:GenerateDataKey*."
        ),
    )
}

/// `KmsException`.
pub fn kms_exception(message: impl Into<String>) -> AwsError {
    client("KmsException", message)
}
