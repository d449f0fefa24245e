//! AWS errors as every protocol renders them.
//!
//! One type, [`AwsError`], carries the error code (the model's `error.code` when it has one,
//! else the shape name), the message, the HTTP status and any modeled extra fields.
//! Rendering per protocol lives in `codec::render_error` so that the rules about
//! `__type`, `x-amzn-ErrorType`, `<ErrorResponse>` and `<Error>` are written once.

use std::borrow::Cow;

/// An error to send to an AWS client.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsError {
    /// The code botocore reports as `Error.Code` (for example `NoSuchEntity`, `AccessDeniedException`).
    pub code: Cow<'static, str>,
    /// The human-readable message.
    pub message: String,
    /// The HTTP status.
    pub status: u16,
    /// Modeled extra members rendered next to the code and message (JSON object members or XML elements).
    pub extra: Vec<(String, serde_json::Value)>,
}

impl AwsError {
    /// Builds an error with a code, status and message.
    pub fn new(code: impl Into<Cow<'static, str>>, status: u16, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            status,
            extra: Vec::new(),
        }
    }

    /// Adds a modeled extra field.
    pub fn with_extra(mut self, name: impl Into<String>, value: serde_json::Value) -> Self {
        self.extra.push((name.into(), value));
        self
    }

    /// True for a client fault (4xx): the XML `Type` element is `Sender`, else `Receiver`.
    pub fn is_sender_fault(&self) -> bool {
        self.status < 500
    }

    /// An internal error with AWS's generic wording; the detail goes to the log, not the client.
    pub fn internal() -> Self {
        Self::new(
            "InternalFailure",
            500,
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for AwsError {}
