//! Policy parse and validation errors, carrying IAM's own messages.
//!
//! The `Display` text of each variant is exactly what IAM puts in the error message, so services
//! can return `MalformedPolicyDocument` (IAM), `MalformedPolicy` (S3) or
//! `MalformedPolicyDocumentException` (KMS) with `err.to_string()` as the message.

/// Why a policy document was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The document is empty or contains a character outside `[\t\n\r\x20-\xFF]`.
    #[error(
        "1 validation error detected: Value at 'policyDocument' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+"
    )]
    InvalidCharacters,
    /// Not JSON, not an object where one is required, a wrong value type, or a missing/empty `Statement`.
    #[error("Syntax errors in policy.")]
    Syntax,
    /// An element name IAM does not know (element names are case-sensitive).
    #[error("Syntax errors in policy.")]
    UnknownElement {
        /// The offending element name.
        element: String,
    },
    /// Both elements of a pair (`Action`/`NotAction`, `Resource`/`NotResource`, `Principal`/`NotPrincipal`).
    #[error("Syntax errors in policy.")]
    ConflictingElements {
        /// The first element of the pair.
        element: &'static str,
    },
    /// `Version` is neither `2012-10-17` nor `2008-10-17`.
    #[error("The policy failed legacy parsing")]
    InvalidVersion {
        /// The value given.
        version: String,
    },
    /// A statement without `Effect`.
    #[error("Missing required field Effect")]
    MissingEffect,
    /// `Effect` is not exactly `Allow` or `Deny`.
    #[error("The policy failed legacy parsing")]
    InvalidEffect {
        /// The value given.
        value: String,
    },
    /// A statement without `Action`/`NotAction`.
    #[error("Policy statement must contain actions.")]
    MissingAction,
    /// An action string that is not `*` and not `service:name`.
    #[error("Actions/Condition can contain only one colon.")]
    InvalidAction {
        /// The action given.
        action: String,
    },
    /// An identity-based statement without `Resource`/`NotResource`.
    #[error("Policy statement must contain resources.")]
    MissingResource,
    /// An identity-policy resource that is neither `*` nor an ARN.
    #[error("Resource {resource} must be in ARN format or \"*\".")]
    ResourceNotArn {
        /// The resource given.
        resource: String,
    },
    /// A resource-based statement (bucket or key policy) without `Resource`/`NotResource`.
    #[error("Missing required field Resource")]
    MissingRequiredResource,
    /// A `Principal`/`NotPrincipal` in an identity-based policy.
    #[error("Policy document should not specify a principal.")]
    PrincipalNotAllowed,
    /// A resource-based or trust statement without `Principal`/`NotPrincipal`.
    #[error("Missing required field Principal")]
    MissingPrincipal,
    /// A field this policy kind forbids (`Resource` in a trust policy, `NotPrincipal` in a trust policy).
    #[error("Has prohibited field {field}")]
    ProhibitedField {
        /// The field name.
        field: &'static str,
    },
    /// A malformed `Principal` element (unknown principal type, non-string value).
    #[error("Invalid principal in policy: {detail}")]
    InvalidPrincipal {
        /// What was wrong.
        detail: String,
    },
    /// A condition operator IAM does not know.
    #[error("Invalid Condition type : {operator}")]
    UnknownConditionOperator {
        /// The operator given.
        operator: String,
    },
}

impl PolicyError {
    /// The IAM error code for this error: `ValidationError` for the character constraint, else `MalformedPolicyDocument`.
    pub fn aws_code(&self) -> &'static str {
        match self {
            PolicyError::InvalidCharacters => "ValidationError",
            _ => "MalformedPolicyDocument",
        }
    }
}
