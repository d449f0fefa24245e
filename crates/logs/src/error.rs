//! Errors of CloudWatch Logs and CloudWatch, with AWS's codes and wording in one place.
//!
//! Logs is json 1.1: every client error is HTTP 400. CloudWatch is query-compatible json 1.0:
//! its codes are the legacy query codes (`ResourceNotFound`, `InvalidParameterValue`), which the
//! codec sends in `x-amzn-query-error` so botocore reports them as AWS does.

use citadel_wire::AwsError;

/// `ResourceNotFoundException` (Logs).
pub fn not_found(message: impl Into<String>) -> AwsError {
    AwsError::new("ResourceNotFoundException", 400, message)
}

/// The log group named in the request does not exist.
pub fn group_not_found() -> AwsError {
    not_found("The specified log group does not exist.")
}

/// The log stream named in the request does not exist.
pub fn stream_not_found() -> AwsError {
    not_found("The specified log stream does not exist.")
}

/// `ResourceAlreadyExistsException` (Logs).
pub fn already_exists(message: impl Into<String>) -> AwsError {
    AwsError::new("ResourceAlreadyExistsException", 400, message)
}

/// `InvalidParameterException` (Logs).
pub fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new("InvalidParameterException", 400, message)
}

/// `LimitExceededException` (Logs).
pub fn limit(message: impl Into<String>) -> AwsError {
    AwsError::new("LimitExceededException", 400, message)
}

/// `ResourceNotFound` (CloudWatch, HTTP 404).
pub fn cw_not_found(message: impl Into<String>) -> AwsError {
    AwsError::new("ResourceNotFound", 404, message)
}

/// `InvalidParameterValue` (CloudWatch).
pub fn cw_invalid(message: impl Into<String>) -> AwsError {
    AwsError::new("InvalidParameterValue", 400, message)
}

/// `MissingParameter` (CloudWatch).
pub fn cw_missing(name: &str) -> AwsError {
    AwsError::new("MissingParameter", 400, format!("The parameter {name} is required."))
}

/// `InvalidNextToken` (CloudWatch).
pub fn cw_bad_token() -> AwsError {
    AwsError::new("InvalidNextToken", 400, "The service cannot process the NextToken.")
}

/// A storage failure: logged, reported with AWS's generic wording.
pub fn internal(err: impl std::fmt::Display) -> AwsError {
    tracing::error!(error = %err, "logs storage failure");
    AwsError::internal()
}
