//! Authentication errors and their AWS wire codes.
//!
//! The same failure has a different code, HTTP status and message in each protocol family
//! (protocols.md section 7), so errors are typed here and rendered per family by the caller.
//! Keeping the table in one function means a new variant cannot be added without deciding its codes.

/// The protocol family of the service that received the request; it decides error codes and statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolFamily {
    /// The query protocol (IAM, STS, SNS): XML `<ErrorResponse>` bodies.
    Query,
    /// JSON 1.0/1.1 (KMS, CloudTrail, Logs, Config, ...): `__type` bodies, most errors are HTTP 400.
    Json,
    /// REST-JSON (GuardDuty, Macie, Inspector v2): like JSON but authentication failures are HTTP 403.
    RestJson,
    /// REST-XML as S3 speaks it: `<Error>` bodies with S3's own codes.
    S3,
}

/// Why a request could not be authenticated.
///
/// The variants follow the failures AWS distinguishes; `code_and_status` and `message` render them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The request carries no credentials at all (and the service requires them).
    #[error("request is missing authentication token")]
    MissingAuthentication,
    /// The Authorization header (or SigV2 header) is malformed or lacks a required part.
    #[error("incomplete signature: {message}")]
    IncompleteSignature {
        /// AWS-style explanation of what is missing or malformed.
        message: String,
    },
    /// The presigned-URL query parameters are malformed (S3 `AuthorizationQueryParametersError`).
    #[error("invalid query authentication parameters: {message}")]
    InvalidQueryParameters {
        /// AWS-style explanation.
        message: String,
    },
    /// The credential scope names a region this endpoint does not serve.
    #[error("wrong region {provided}, expecting {expected}")]
    WrongRegion {
        /// The region in the credential scope.
        provided: String,
        /// The region the server expected.
        expected: String,
    },
    /// The access key id is unknown; the caller returns this after its key lookup fails.
    #[error("unknown access key id")]
    InvalidAccessKey,
    /// The signature does not match; carries what the server computed, to help debug clients.
    #[error("signature does not match")]
    SignatureDoesNotMatch {
        /// The access key id the client used.
        access_key_id: String,
        /// The string to sign the server computed.
        string_to_sign: String,
        /// The canonical request the server computed (empty for SigV2).
        canonical_request: String,
        /// The signature the client sent.
        signature_provided: String,
    },
    /// The request time is more than 15 minutes away from the server time.
    #[error("{message}")]
    SignatureExpired {
        /// AWS wording: "Signature expired: ..." or "Signature not yet current: ...".
        message: String,
        /// The request time as `YYYYMMDDTHHMMSSZ`.
        request_time: String,
        /// The server time as `YYYYMMDDTHHMMSSZ`.
        server_time: String,
    },
    /// A presigned URL is past its expiry time.
    #[error("request has expired")]
    RequestExpired {
        /// The expiry time as `YYYY-MM-DDTHH:MM:SSZ`.
        expires: String,
        /// The server time as `YYYY-MM-DDTHH:MM:SSZ`.
        server_time: String,
        /// The `X-Amz-Expires` value of a SigV4 presigned URL.
        x_amz_expires: Option<u64>,
    },
    /// The session token has expired; the caller returns this after looking the token up.
    #[error("the security token included in the request is expired")]
    ExpiredToken,
    /// The session token is unknown or garbled; the caller returns this after looking the token up.
    #[error("the security token included in the request is invalid")]
    InvalidToken,
    /// S3 header authentication without `x-amz-content-sha256`.
    #[error("missing required header for this request: x-amz-content-sha256")]
    MissingContentSha256,
    /// The `x-amz-content-sha256` header is not what the body hashes to.
    #[error("x-amz-content-sha256 mismatch")]
    ContentSha256Mismatch {
        /// The value the client sent.
        client: String,
        /// The hash of the received body.
        computed: String,
    },
    /// The caller supplied neither the body nor its hash when the signature needs it (a caller bug).
    #[error("payload hash required to verify this request")]
    PayloadHashRequired,
}

impl AuthError {
    /// The AWS error code and HTTP status for this error in the given protocol family (protocols.md section 7).
    pub fn code_and_status(&self, protocol: ProtocolFamily) -> (&'static str, u16) {
        use ProtocolFamily::{Json, Query, RestJson, S3};
        match (self, protocol) {
            (Self::MissingAuthentication, Query) => ("MissingAuthenticationToken", 403),
            (Self::MissingAuthentication, Json) => ("MissingAuthenticationTokenException", 400),
            (Self::MissingAuthentication, RestJson) => ("MissingAuthenticationTokenException", 403),
            (Self::MissingAuthentication, S3) => ("AccessDenied", 403),

            (Self::IncompleteSignature { .. } | Self::WrongRegion { .. }, Query) => ("IncompleteSignature", 400),
            (Self::IncompleteSignature { .. } | Self::WrongRegion { .. }, Json) => {
                ("IncompleteSignatureException", 400)
            }
            (Self::IncompleteSignature { .. } | Self::WrongRegion { .. }, RestJson) => {
                ("IncompleteSignatureException", 403)
            }
            (Self::IncompleteSignature { .. } | Self::WrongRegion { .. }, S3) => ("AuthorizationHeaderMalformed", 400),

            (Self::InvalidQueryParameters { .. }, Query) => ("IncompleteSignature", 400),
            (Self::InvalidQueryParameters { .. }, Json) => ("IncompleteSignatureException", 400),
            (Self::InvalidQueryParameters { .. }, RestJson) => ("IncompleteSignatureException", 403),
            (Self::InvalidQueryParameters { .. }, S3) => ("AuthorizationQueryParametersError", 400),

            (Self::InvalidAccessKey, Query) => ("InvalidClientTokenId", 403),
            (Self::InvalidAccessKey, Json) => ("UnrecognizedClientException", 400),
            (Self::InvalidAccessKey, RestJson) => ("UnrecognizedClientException", 403),
            (Self::InvalidAccessKey, S3) => ("InvalidAccessKeyId", 403),

            // A presigned URL past its expiry reads as an expired signature outside S3.
            (
                Self::SignatureDoesNotMatch { .. } | Self::SignatureExpired { .. } | Self::RequestExpired { .. },
                Query,
            ) => ("SignatureDoesNotMatch", 403),
            (
                Self::SignatureDoesNotMatch { .. } | Self::SignatureExpired { .. } | Self::RequestExpired { .. },
                Json,
            ) => ("InvalidSignatureException", 400),
            (
                Self::SignatureDoesNotMatch { .. } | Self::SignatureExpired { .. } | Self::RequestExpired { .. },
                RestJson,
            ) => ("InvalidSignatureException", 403),
            (Self::SignatureDoesNotMatch { .. }, S3) => ("SignatureDoesNotMatch", 403),
            (Self::SignatureExpired { .. }, S3) => ("RequestTimeTooSkewed", 403),
            (Self::RequestExpired { .. }, S3) => ("AccessDenied", 403),

            (Self::ExpiredToken, Query) => ("ExpiredToken", 403),
            (Self::ExpiredToken, Json) => ("ExpiredTokenException", 400),
            (Self::ExpiredToken, RestJson) => ("ExpiredTokenException", 403),
            (Self::ExpiredToken, S3) => ("ExpiredToken", 400),

            (Self::InvalidToken, Query) => ("InvalidClientTokenId", 403),
            (Self::InvalidToken, Json) => ("UnrecognizedClientException", 400),
            (Self::InvalidToken, RestJson) => ("UnrecognizedClientException", 403),
            (Self::InvalidToken, S3) => ("InvalidToken", 400),

            (Self::MissingContentSha256, S3) => ("InvalidRequest", 400),
            (Self::MissingContentSha256, Query) => ("IncompleteSignature", 400),
            (Self::MissingContentSha256, Json) => ("IncompleteSignatureException", 400),
            (Self::MissingContentSha256, RestJson) => ("IncompleteSignatureException", 403),

            (Self::ContentSha256Mismatch { .. }, S3) => ("XAmzContentSHA256Mismatch", 400),
            (Self::ContentSha256Mismatch { .. }, Query) => ("SignatureDoesNotMatch", 403),
            (Self::ContentSha256Mismatch { .. }, Json) => ("InvalidSignatureException", 400),
            (Self::ContentSha256Mismatch { .. }, RestJson) => ("InvalidSignatureException", 403),

            (Self::PayloadHashRequired, S3) => ("InternalError", 500),
            (Self::PayloadHashRequired, RestJson) => ("InternalServerException", 500),
            (Self::PayloadHashRequired, Query | Json) => ("InternalFailure", 500),
        }
    }

    /// The message AWS puts next to the code in the given protocol family.
    pub fn message(&self, protocol: ProtocolFamily) -> String {
        let s3 = protocol == ProtocolFamily::S3;
        match self {
            Self::MissingAuthentication if s3 => "Access Denied".to_owned(),
            Self::MissingAuthentication => "Request is missing Authentication Token".to_owned(),
            Self::IncompleteSignature { message } | Self::InvalidQueryParameters { message } => message.clone(),
            Self::WrongRegion { provided, expected } if s3 => {
                format!(
                    "The authorization header is malformed; the region '{provided}' is wrong; expecting '{expected}'"
                )
            }
            Self::WrongRegion { provided, .. } => {
                format!("Credential should be scoped to a valid region, not '{provided}'. ")
            }
            Self::InvalidAccessKey if s3 => {
                "The AWS Access Key Id you provided does not exist in our records.".to_owned()
            }
            Self::InvalidAccessKey | Self::InvalidToken if !s3 => {
                "The security token included in the request is invalid.".to_owned()
            }
            Self::SignatureDoesNotMatch { .. } if s3 => {
                "The request signature we calculated does not match the signature you provided. \
                 Check your key and signing method."
                    .to_owned()
            }
            Self::SignatureDoesNotMatch { .. } => "The request signature we calculated does not match the signature \
                 you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation \
                 for details."
                .to_owned(),
            Self::SignatureExpired { .. } if s3 => {
                "The difference between the request time and the current time is too large.".to_owned()
            }
            Self::SignatureExpired { message, .. } => message.clone(),
            Self::RequestExpired { .. } if s3 => "Request has expired".to_owned(),
            Self::RequestExpired {
                expires, server_time, ..
            } => {
                format!("Signature expired: the request expired at {expires}; the server time is {server_time}.")
            }
            Self::ExpiredToken if s3 => "The provided token has expired.".to_owned(),
            Self::ExpiredToken => "The security token included in the request is expired".to_owned(),
            Self::InvalidToken | Self::InvalidAccessKey => {
                "The provided token is malformed or otherwise invalid.".to_owned()
            }
            Self::MissingContentSha256 => "Missing required header for this request: x-amz-content-sha256".to_owned(),
            Self::ContentSha256Mismatch { .. } => {
                "The provided 'x-amz-content-sha256' header does not match what was computed.".to_owned()
            }
            Self::PayloadHashRequired => "We encountered an internal error. Please try again.".to_owned(),
        }
    }
}

/// Why an aws-chunked body could not be decoded or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The framing is malformed (bad size line, missing CRLF, oversized line, bytes after the end).
    #[error("malformed aws-chunked body: {0}")]
    Malformed(&'static str),
    /// A chunk signature (or the trailer signature) does not match.
    #[error("chunk signature does not match")]
    SignatureMismatch {
        /// Zero-based index of the chunk whose signature failed (the trailer counts as one past the final chunk).
        chunk_index: u64,
    },
    /// The body ended before the final chunk and its trailer were complete.
    #[error("aws-chunked body ended early")]
    Truncated,
    /// The decoded length differs from `X-Amz-Decoded-Content-Length`.
    #[error("decoded length {actual} differs from x-amz-decoded-content-length {expected}")]
    DecodedLengthMismatch {
        /// The declared decoded length.
        expected: u64,
        /// The number of data bytes received (so far, when detected early).
        actual: u64,
    },
    /// A trailer declared in `X-Amz-Trailer` is missing.
    #[error("declared trailer {0} is missing")]
    MissingTrailer(String),
}

impl ChunkError {
    /// The S3 error code and HTTP status for this error (aws-chunked is only used by S3).
    pub fn code_and_status(&self) -> (&'static str, u16) {
        match self {
            Self::SignatureMismatch { .. } => ("SignatureDoesNotMatch", 403),
            Self::Malformed(_) => ("InvalidRequest", 400),
            Self::Truncated | Self::DecodedLengthMismatch { .. } => ("IncompleteBody", 400),
            Self::MissingTrailer(_) => ("MalformedTrailerError", 400),
        }
    }

    /// The S3 message for this error.
    pub fn message(&self) -> String {
        match self {
            Self::SignatureMismatch { .. } => "The request signature we calculated does not match the signature you \
                 provided. Check your key and signing method."
                .to_owned(),
            Self::Malformed(what) => format!("Malformed aws-chunked encoding: {what}."),
            Self::Truncated | Self::DecodedLengthMismatch { .. } => {
                "You did not provide the number of bytes specified by the Content-Length HTTP header".to_owned()
            }
            Self::MissingTrailer(_) => "The request contained trailing data that was not well-formed or did not \
                 conform to our published schema."
                .to_owned(),
        }
    }
}
