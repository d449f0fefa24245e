//! KMS's errors, with AWS's codes and message wording.
//!
//! Every client error of KMS is HTTP 400 (even `AccessDeniedException`), except
//! `DryRunOperationException` (412); only the faults (`KMSInternalException`) are 500. Handlers build errors through these functions so the codes
//! and wording live in one place.

use citadel_wire::AwsError;

fn client(code: &'static str, message: impl Into<String>) -> AwsError {
    AwsError::new(code, 400, message)
}

/// `NotFoundException` for a key that does not exist.
pub fn key_not_found(arn: &str) -> AwsError {
    client("NotFoundException", format!("Key '{arn}' does not exist"))
}

/// `NotFoundException` for a `KeyId` that is no key id, key ARN, alias name or alias ARN.
pub fn invalid_key_id(text: &str) -> AwsError {
    client("NotFoundException", format!("Invalid keyId '{text}'"))
}

/// `NotFoundException` for an alias that does not exist.
pub fn alias_not_found(alias_arn: &str) -> AwsError {
    client("NotFoundException", format!("Alias {alias_arn} is not found."))
}

/// `NotFoundException` with a free message.
pub fn not_found(message: impl Into<String>) -> AwsError {
    client("NotFoundException", message)
}

/// `DisabledException`.
pub fn disabled(arn: &str) -> AwsError {
    client("DisabledException", format!("{arn} is disabled."))
}

/// `KMSInvalidStateException`.
pub fn invalid_state(message: impl Into<String>) -> AwsError {
    client("KMSInvalidStateException", message)
}

/// `InvalidCiphertextException`.
pub fn invalid_ciphertext() -> AwsError {
    client(
        "InvalidCiphertextException",
        "The ciphertext is invalid, or it was not encrypted under this key or with this encryption context.",
    )
}

/// `InvalidKeyUsageException`.
pub fn invalid_key_usage(message: impl Into<String>) -> AwsError {
    client("InvalidKeyUsageException", message)
}

/// `IncorrectKeyException`.
pub fn incorrect_key() -> AwsError {
    client(
        "IncorrectKeyException",
        "The key ID in the request does not identify a CMK that can perform this operation.",
    )
}

/// `ValidationException`.
pub fn validation(message: impl Into<String>) -> AwsError {
    client("ValidationException", message)
}

/// `UnsupportedOperationException`.
pub fn unsupported(message: impl Into<String>) -> AwsError {
    client("UnsupportedOperationException", message)
}

/// `AlreadyExistsException`.
pub fn already_exists(message: impl Into<String>) -> AwsError {
    client("AlreadyExistsException", message)
}

/// `MalformedPolicyDocumentException`.
pub fn malformed_policy(message: impl Into<String>) -> AwsError {
    client("MalformedPolicyDocumentException", message)
}

/// `LimitExceededException`.
pub fn limit_exceeded(message: impl Into<String>) -> AwsError {
    client("LimitExceededException", message)
}

/// `TagException`.
pub fn tag(message: impl Into<String>) -> AwsError {
    client("TagException", message)
}

/// `InvalidAliasNameException`.
pub fn invalid_alias_name(message: impl Into<String>) -> AwsError {
    client("InvalidAliasNameException", message)
}

/// `NotAuthorizedException` (reserved `alias/aws/` names).
pub fn not_authorized(message: impl Into<String>) -> AwsError {
    client("NotAuthorizedException", message)
}

/// `InvalidGrantTokenException`.
pub fn invalid_grant_token() -> AwsError {
    client("InvalidGrantTokenException", "The grant token is not valid.")
}

/// `InvalidGrantIdException`.
pub fn invalid_grant_id(message: impl Into<String>) -> AwsError {
    client("InvalidGrantIdException", message)
}

/// `DryRunOperationException` (HTTP 412): the call was authorized and would have succeeded.
pub fn dry_run() -> AwsError {
    AwsError::new(
        "DryRunOperationException",
        412,
        "The request would have succeeded, but the DryRun option is set.",
    )
}

/// `InvalidMarkerException`.
pub fn invalid_marker() -> AwsError {
    client("InvalidMarkerException", "The marker is not valid.")
}

/// `AccessDeniedException` raised by a handler (grant retirement rules), worded like the pipeline's.
pub fn access_denied(message: impl Into<String>) -> AwsError {
    client("AccessDeniedException", message)
}

/// `KMSInvalidSignatureException`.
pub fn invalid_signature() -> AwsError {
    client("KMSInvalidSignatureException", "The signature verification failed.")
}

/// `KMSInvalidMacException`.
pub fn invalid_mac() -> AwsError {
    client("KMSInvalidMacException", "The MAC verification failed.")
}

/// `CustomKeyStoreNotFoundException`: Citadel has no custom key stores.
pub fn custom_key_store_not_found() -> AwsError {
    client(
        "CustomKeyStoreNotFoundException",
        "Custom key stores are not supported.",
    )
}

/// `KMSInternalException` (HTTP 500); the detail goes to the log only.
pub fn internal(detail: impl std::fmt::Display) -> AwsError {
    tracing::error!(detail = %detail, "kms internal failure");
    AwsError::new(
        "KMSInternalException",
        500,
        "The request was rejected because an internal exception occurred.",
    )
}
