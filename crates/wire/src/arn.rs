//! Amazon Resource Names.

use std::fmt;

/// A parsed ARN: `arn:partition:service:region:account:resource`.
///
/// Invariant: none of the first five fields contains a `:`; the resource may.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arn {
    /// Partition, `aws` for Citadel.
    pub partition: String,
    /// Service prefix, e.g. `iam`, `s3`, `kms`.
    pub service: String,
    /// Region, empty for global services (IAM, S3 buckets).
    pub region: String,
    /// Twelve-digit account id, empty for S3 buckets.
    pub account: String,
    /// Everything after the fifth colon, e.g. `user/path/name` or `key/uuid`.
    pub resource: String,
}

impl Arn {
    /// Builds an ARN in the `aws` partition.
    pub fn new(service: &str, region: &str, account: &str, resource: impl Into<String>) -> Self {
        Self {
            partition: "aws".into(),
            service: service.into(),
            region: region.into(),
            account: account.into(),
            resource: resource.into(),
        }
    }

    /// Parses `arn:partition:service:region:account:resource`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let partition = parts.next()?;
        let service = parts.next()?;
        let region = parts.next()?;
        let account = parts.next()?;
        let resource = parts.next()?;
        if partition.is_empty() || service.is_empty() {
            return None;
        }
        Some(Self::new(service, region, account, resource).with_partition(partition))
    }

    fn with_partition(mut self, partition: &str) -> Self {
        self.partition = partition.into();
        self
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_an_arn_whose_resource_has_colons() {
        let text = "arn:aws:logs:us-east-1:123456789012:log-group:/a/b:*";
        let arn = Arn::parse(text).unwrap();
        assert_eq!(arn.service, "logs");
        assert_eq!(arn.resource, "log-group:/a/b:*");
        assert_eq!(arn.to_string(), text);
        assert!(Arn::parse("arn:aws").is_none());
        assert!(Arn::parse("urn:aws:s3:::b").is_none());
    }
}
