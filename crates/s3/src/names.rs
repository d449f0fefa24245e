//! Bucket naming rules and ARNs.
//!
//! S3 bucket names are global and end up in DNS names (virtual-host addressing), so AWS restricts
//! them to a DNS-safe subset. We apply AWS's current rules for general purpose buckets to every
//! request, not only to CreateBucket, so that a name that could never have been created is
//! rejected the same way everywhere.

/// Prefixes AWS reserves for its own use.
const RESERVED_PREFIXES: &[&str] = &["xn--", "sthree-", "amzn-s3-demo-"];
/// Suffixes AWS reserves (access point aliases, directory buckets, table buckets, ...).
const RESERVED_SUFFIXES: &[&str] = &["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

/// Why a bucket name is invalid; the message goes into `InvalidBucketName`.
pub fn bucket_name_problem(name: &str) -> Option<&'static str> {
    if name.len() < 3 || name.len() > 63 {
        return Some("Bucket name must be between 3 (min) and 63 (max) characters long.");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Some("Bucket name can consist only of lowercase letters, numbers, periods (.), and hyphens (-).");
    }
    let first_last_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !first_last_ok(name.bytes().next()) || !first_last_ok(name.bytes().last()) {
        return Some("Bucket name must begin and end with a letter or number.");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Some("Bucket name must not contain two adjacent periods, or a period next to a hyphen.");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some("Bucket name must not be formatted as an IP address.");
    }
    if RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) || RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return Some("Bucket name uses a prefix or suffix reserved by AWS.");
    }
    None
}

/// Whether `name` satisfies AWS's naming rules.
pub fn is_valid_bucket_name(name: &str) -> bool {
    bucket_name_problem(name).is_none()
}

/// The ARN of a bucket.
pub fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

/// The ARN of an object.
pub fn object_arn(bucket: &str, key: &str) -> String {
    format!("arn:aws:s3:::{bucket}/{key}")
}

/// The bucket-name validator handed to s3s, so that its path parser applies our rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct BucketNames;

impl s3s::validation::NameValidation for BucketNames {
    fn validate_bucket_name(&self, name: &str) -> bool {
        is_valid_bucket_name(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_aws_rules() {
        let cases: &[(&str, bool)] = &[
            ("my-bucket", true),
            ("a.b.c", true),
            ("abc", true),
            ("123", true),
            (&"a".repeat(63), true),
            (&"a".repeat(64), false),
            ("ab", false),
            ("My-Bucket", false),
            ("my_bucket", false),
            ("-bucket", false),
            ("bucket-", false),
            ("bu..cket", false),
            ("bu.-cket", false),
            ("192.168.1.1", false),
            ("xn--bucket", false),
            ("sthree-bucket", false),
            ("bucket-s3alias", false),
            ("bucket--ol-s3", false),
            ("bucket.mrap", false),
            ("bucket--x-s3", false),
        ];
        for (name, valid) in cases {
            assert_eq!(is_valid_bucket_name(name), *valid, "{name}");
        }
    }

    #[test]
    fn arns() {
        assert_eq!(bucket_arn("b"), "arn:aws:s3:::b");
        assert_eq!(object_arn("b", "a/b c"), "arn:aws:s3:::b/a/b c");
    }
}
