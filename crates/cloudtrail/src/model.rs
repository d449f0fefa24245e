//! Stored records of trails, their delivery state and their tables, plus trail names and ARNs.
//!
//! A trail is split into two records on purpose.
//! [`TrailConfig`] belongs to the API handlers (create, update, start and stop logging, selectors,
//! tags); [`DeliveryState`] belongs to the delivery task (cursor, digest chains, delivery times).
//! Each writer therefore guards only its own record, and a StopLogging call never conflicts with a
//! delivery in progress: the task derives what to do (final digest, new chain) from the
//! configuration it reads.
//! The delivery state is keyed by the trail's unique id, so a trail deleted and created again under
//! the same name never inherits the old cursor or digest chain.

use citadel_store::keys::Key;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Trail configurations, keyed by (account, home region, name).
pub const TRAILS: &str = "cloudtrail_trails";
/// Delivery states, keyed by the trail's unique id.
pub const STATES: &str = "cloudtrail_state";
/// Deleted trails awaiting their final delivery and digest, keyed by (account, region, name, deleted ms).
pub const RETIRED: &str = "cloudtrail_retired";
/// Digest signing keys, keyed by (region, validity start ms).
pub const KEYS: &str = "cloudtrail_keys";

/// The store key of a trail configuration.
pub fn trail_key(account: &str, region: &str, name: &str) -> Vec<u8> {
    Key::new().str(account).str(region).str(name).finish()
}

/// The store key of a delivery state.
pub fn state_key(trail_uid: &str) -> Vec<u8> {
    Key::new().str(trail_uid).finish()
}

/// The store key of a retired trail.
pub fn retired_key(account: &str, region: &str, name: &str, deleted_ms: i64) -> Vec<u8> {
    Key::new().str(account).str(region).str(name).i64(deleted_ms).finish()
}

/// A trail as the API configures it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrailConfig {
    /// A unique id, fixed at creation (keys the delivery state).
    pub uid: String,
    /// The trail name.
    pub name: String,
    /// The owning account.
    pub account: String,
    /// The region the trail was created in.
    pub home_region: String,
    /// The destination bucket.
    pub bucket: String,
    /// The key prefix inside the bucket, without a trailing slash.
    pub prefix: Option<String>,
    /// The SNS topic name (stored, not used).
    pub sns_topic: Option<String>,
    /// Whether IAM and STS events are included.
    pub include_global: bool,
    /// Whether the trail covers every region.
    pub multi_region: bool,
    /// Whether digest files are written.
    pub log_file_validation: bool,
    /// The CloudWatch Logs group ARN that receives every delivered record as a log event.
    pub cwl_group_arn: Option<String>,
    /// The role CloudTrail assumes to write to the CloudWatch Logs group.
    pub cwl_role_arn: Option<String>,
    /// The KMS key ARN that log files (not digests) are SSE-KMS encrypted with.
    pub kms_key_id: Option<String>,
    /// Classic event selectors as the API gave them; `None` means the default (all management events).
    pub event_selectors: Option<Value>,
    /// Advanced event selectors as the API gave them.
    pub advanced_event_selectors: Option<Value>,
    /// Insight selectors as the API gave them.
    pub insight_selectors: Option<Value>,
    /// Tags.
    pub tags: Vec<(String, String)>,
    /// Whether logging is on.
    pub is_logging: bool,
    /// When logging was last started, in milliseconds.
    pub start_logging_ms: Option<i64>,
    /// When logging was last stopped, in milliseconds.
    pub stop_logging_ms: Option<i64>,
    /// Increased by every StartLogging, so delivery can tell one logging session from the next.
    pub logging_epoch: u64,
    /// Increased whenever validation is switched on, so delivery starts a new digest chain.
    pub validation_epoch: u64,
    /// Creation time in milliseconds.
    pub created_ms: i64,
}

impl TrailConfig {
    /// The trail ARN.
    pub fn arn(&self) -> String {
        trail_arn(&self.home_region, &self.account, &self.name)
    }

    /// The CloudWatch Logs destination, when the trail has a valid group ARN and a role.
    pub fn log_target(&self) -> Option<crate::sink::LogTarget> {
        let group = self.cwl_group_arn.as_ref()?;
        let role = self.cwl_role_arn.as_ref()?;
        parse_log_group_arn(group)?;
        Some(crate::sink::LogTarget {
            group_arn: group.clone(),
            role_arn: role.clone(),
            trail_arn: self.arn(),
            account: self.account.clone(),
            region: self.home_region.clone(),
        })
    }

    /// The `Trail` shape of DescribeTrails and GetTrail.
    pub fn describe(&self) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("Name".into(), Value::from(self.name.clone()));
        out.insert("S3BucketName".into(), Value::from(self.bucket.clone()));
        if let Some(prefix) = &self.prefix {
            out.insert("S3KeyPrefix".into(), Value::from(prefix.clone()));
        }
        if let Some(topic) = &self.sns_topic {
            out.insert("SnsTopicName".into(), Value::from(topic.clone()));
            out.insert(
                "SnsTopicARN".into(),
                Value::from(format!("arn:aws:sns:{}:{}:{topic}", self.home_region, self.account)),
            );
        }
        out.insert("IncludeGlobalServiceEvents".into(), Value::from(self.include_global));
        out.insert("IsMultiRegionTrail".into(), Value::from(self.multi_region));
        out.insert("HomeRegion".into(), Value::from(self.home_region.clone()));
        out.insert("TrailARN".into(), Value::from(self.arn()));
        out.insert("LogFileValidationEnabled".into(), Value::from(self.log_file_validation));
        if let Some(arn) = &self.cwl_group_arn {
            out.insert("CloudWatchLogsLogGroupArn".into(), Value::from(arn.clone()));
        }
        if let Some(arn) = &self.cwl_role_arn {
            out.insert("CloudWatchLogsRoleArn".into(), Value::from(arn.clone()));
        }
        if let Some(key) = &self.kms_key_id {
            out.insert("KmsKeyId".into(), Value::from(key.clone()));
        }
        out.insert(
            "HasCustomEventSelectors".into(),
            Value::from(self.event_selectors.is_some() || self.advanced_event_selectors.is_some()),
        );
        out.insert(
            "HasInsightSelectors".into(),
            Value::from(
                self.insight_selectors
                    .as_ref()
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty()),
            ),
        );
        out.insert("IsOrganizationTrail".into(), Value::from(false));
        Value::Object(out)
    }

    /// The output of CreateTrail and UpdateTrail (the `Trail` shape without the selector flags and home region).
    pub fn create_output(&self) -> Value {
        let mut out = self.describe();
        if let Some(map) = out.as_object_mut() {
            map.remove("HasCustomEventSelectors");
            map.remove("HasInsightSelectors");
            map.remove("HomeRegion");
        }
        out
    }
}

/// A log file delivered in the current digest window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredLog {
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// Hex SHA-256 of the uncompressed bytes.
    pub hash: String,
    /// The newest `eventTime` in the file.
    pub newest: String,
    /// The oldest `eventTime` in the file.
    pub oldest: String,
}

/// Where the previous digest of a chain is, and what it hashed and signed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousDigest {
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// Hex SHA-256 of its uncompressed bytes.
    pub hash: String,
    /// Its hex signature.
    pub signature: String,
}

/// One digest chain: the open window of one delivery region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    /// The start of the open window, in whole epoch seconds.
    pub window_start_s: i64,
    /// Log files delivered in the open window.
    pub logs: Vec<DeliveredLog>,
    /// The previous digest, `None` until the chain's starting digest is written.
    pub previous: Option<PreviousDigest>,
}

/// What the delivery task knows about one trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryState {
    /// The logging session this state follows ([`TrailConfig::logging_epoch`]).
    pub logging_epoch: u64,
    /// The validation session the chains belong to ([`TrailConfig::validation_epoch`]).
    pub validation_epoch: u64,
    /// The key (hex) of the last event delivered; `None` before the first delivery of a session.
    pub cursor: Option<String>,
    /// Open digest chains by delivery region.
    pub chains: BTreeMap<String, Chain>,
    /// The last successful log delivery, in milliseconds.
    pub latest_delivery_ms: Option<i64>,
    /// The last successful digest delivery, in milliseconds.
    pub latest_digest_ms: Option<i64>,
    /// The last delivery attempt, in milliseconds.
    pub latest_attempt_ms: Option<i64>,
    /// The error of the last failed log delivery, cleared by a success.
    pub latest_delivery_error: Option<String>,
    /// The error of the last failed digest delivery, cleared by a success.
    pub latest_digest_error: Option<String>,
    /// The key (hex) of the last event sent to CloudWatch Logs; it moves separately from
    /// [`DeliveryState::cursor`] so that a failing role delays only the CloudWatch Logs copy.
    #[serde(default)]
    pub cwl_cursor: Option<String>,
    /// The log group [`DeliveryState::cwl_cursor`] belongs to; a new group starts at the S3 cursor.
    #[serde(default)]
    pub cwl_group: Option<String>,
    /// The last successful CloudWatch Logs delivery, in milliseconds.
    #[serde(default)]
    pub latest_cwl_delivery_ms: Option<i64>,
    /// The error of the last failed CloudWatch Logs delivery, cleared by a success.
    #[serde(default)]
    pub latest_cwl_error: Option<String>,
}

/// A deleted trail whose last events and final digest are still to be delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetiredTrail {
    /// The configuration at deletion, with logging stopped at the deletion time.
    pub config: TrailConfig,
}

/// A stored digest signing key of one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    /// The region.
    pub region: String,
    /// Start of validity, epoch seconds.
    pub valid_from_s: i64,
    /// End of validity, epoch seconds.
    pub valid_to_s: i64,
    /// Base64 of the DER PKCS#1 `RSAPublicKey`.
    pub public_der_b64: String,
    /// Hex MD5 of the DER public key.
    pub fingerprint: String,
    /// The PKCS#8 private key, sealed with the master key (base64).
    pub sealed_private_b64: String,
}

/// `arn:aws:cloudtrail:REGION:ACCOUNT:trail/NAME`.
pub fn trail_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:cloudtrail:{region}:{account}:trail/{name}")
}

/// `(region, account, group name)` of a log group ARN `arn:aws:logs:R:A:log-group:NAME[:*]`.
pub fn parse_log_group_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let rest = arn.strip_prefix("arn:aws:logs:")?;
    let (region, rest) = rest.split_once(':')?;
    let (account, rest) = rest.split_once(':')?;
    let name = rest.strip_prefix("log-group:")?;
    let name = name.strip_suffix(":*").unwrap_or(name);
    let valid_name = !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'/' | b'.' | b'#'));
    let valid_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    (!region.is_empty() && valid_account && valid_name).then_some((region, account, name))
}

/// The log stream CloudTrail writes the events of `region` to: `<account>_CloudTrail_<region>`.
pub fn log_stream_name(account: &str, region: &str) -> String {
    format!("{account}_CloudTrail_{region}")
}

/// A trail named by a `Name` member: a plain name, or an ARN with its region and account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailRef {
    /// The region from the ARN, if an ARN was given.
    pub region: Option<String>,
    /// The account from the ARN, if an ARN was given.
    pub account: Option<String>,
    /// The trail name.
    pub name: String,
}

/// Parses a trail name or trail ARN.
///
/// # Errors
/// `CloudTrailARNInvalidException` for an `arn:` string that is not a trail ARN.
pub fn parse_trail_ref(text: &str) -> Result<TrailRef, citadel_wire::AwsError> {
    if !text.starts_with("arn:") {
        return Ok(TrailRef {
            region: None,
            account: None,
            name: text.to_string(),
        });
    }
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    match parts.as_slice() {
        [_, _, "cloudtrail", region, account, resource]
            if !region.is_empty() && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) =>
        {
            let name = resource
                .strip_prefix("trail/")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| crate::error::invalid_arn(text))?;
            Ok(TrailRef {
                region: Some((*region).to_string()),
                account: Some((*account).to_string()),
                name: name.to_string(),
            })
        }
        _ => Err(crate::error::invalid_arn(text)),
    }
}

/// Checks a trail name against CloudTrail's rules, returning the broken rule's message.
pub fn validate_trail_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    if bytes.len() < 3 || bytes.len() > 128 {
        return Err(
            "Trail name too short. Minimum allowed length: 3 characters. Specified name length: ".to_string()
                + &bytes.len().to_string()
                + " characters.",
        );
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "Trail name or ARN can only contain uppercase letters, lowercase letters, numbers, periods (.), hyphens (-), and underscores (_). Specified: {name}"
        ));
    }
    let first_ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric);
    let last_ok = bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if !first_ok || !last_ok {
        return Err(format!(
            "Trail name must starts with a letter or number and end with a letter or number. Specified: {name}"
        ));
    }
    if bytes
        .windows(2)
        .any(|w| w.iter().all(|b| matches!(b, b'.' | b'_' | b'-')))
    {
        return Err(format!(
            "Trail name cannot have adjacent periods, underscores or dashes. Specified: {name}"
        ));
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!(
            "Trail name cannot be formatted as an IP address. Specified: {name}"
        ));
    }
    Ok(())
}

/// Reads a JSON record, treating undecodable bytes as absent.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

/// Encodes a record.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trail_names_follow_cloudtrail_rules() {
        let cases = [
            ("trail-1", true),
            ("my.trail_2", true),
            ("ab", false),
            ("-abc", false),
            ("abc-", false),
            ("a--b", false),
            ("a._b", false),
            ("a b c", false),
            ("10.0.0.1", false),
            ("Trail99", true),
        ];
        for (name, ok) in cases {
            assert_eq!(validate_trail_name(name).is_ok(), ok, "{name}");
        }
    }

    #[test]
    fn trail_refs_accept_names_and_arns() {
        let plain = parse_trail_ref("t1").unwrap();
        assert_eq!(plain.name, "t1");
        assert_eq!(plain.region, None);
        let arn = parse_trail_ref("arn:aws:cloudtrail:eu-west-1:123456789012:trail/t2").unwrap();
        assert_eq!(arn.region.as_deref(), Some("eu-west-1"));
        assert_eq!(arn.account.as_deref(), Some("123456789012"));
        assert_eq!(arn.name, "t2");
        for bad in [
            "arn:aws:s3:::b",
            "arn:aws:cloudtrail:us-east-1:12:trail/x",
            "arn:aws:cloudtrail:us-east-1:123456789012:trail/",
        ] {
            assert_eq!(
                parse_trail_ref(bad).unwrap_err().code,
                "CloudTrailARNInvalidException",
                "{bad}"
            );
        }
    }
}
