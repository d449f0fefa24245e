//! The AWS wire protocols Citadel speaks.

/// A wire protocol as named in botocore's service models (`metadata.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `query`: IAM, STS, SNS. Form-encoded requests, XML responses.
    Query,
    /// `json` 1.0 or 1.1: KMS, CloudTrail, Logs, CloudWatch. `X-Amz-Target` routing.
    Json,
    /// `rest-json`: GuardDuty, Macie, Inspector v2. Method and path routing, JSON bodies.
    RestJson,
    /// `rest-xml`: S3 (served through s3s), Route 53.
    RestXml,
}

impl Protocol {
    /// Parses botocore's `metadata.protocol` string.
    pub fn from_model_name(name: &str) -> Option<Self> {
        match name {
            "query" | "ec2" => Some(Self::Query),
            "json" => Some(Self::Json),
            "rest-json" => Some(Self::RestJson),
            "rest-xml" => Some(Self::RestXml),
            _ => None,
        }
    }
}
