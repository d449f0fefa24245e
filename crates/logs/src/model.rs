//! The stored records of CloudWatch Logs, their tables and key layouts.
//!
//! Every key starts with (account, region) so that accounts and regions never see each other.
//! Events are keyed by (group, stream, timestamp, sequence number): a stream's events are one
//! ordered range scan in timestamp order, which is what `GetLogEvents` pages over and what
//! `FilterLogEvents` merges across streams. An event's value is 8 bytes of ingestion time
//! (big-endian milliseconds) followed by the message bytes, so scanning needs no decoding step.

use citadel_store::keys::Key;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Log groups: (account, region, group) -> [`GroupRecord`] JSON.
pub const GROUPS: &str = "logs.groups";
/// Log streams: (account, region, group, stream) -> [`StreamRecord`] JSON.
pub const STREAMS: &str = "logs.streams";
/// Events: (account, region, group, stream, timestamp i64, seq u64) -> ingestion time ++ message.
pub const EVENTS: &str = "logs.events";
/// Metric filters: (account, region, group, filter name) -> [`MetricFilterRecord`] JSON.
pub const METRIC_FILTERS: &str = "logs.metric_filters";

/// A log group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupRecord {
    /// The group name.
    pub name: String,
    /// Creation time, epoch milliseconds.
    pub creation_time: i64,
    /// Days events are kept; `None` keeps them forever.
    pub retention_days: Option<i64>,
    /// The KMS key ARN associated with the group.
    pub kms_key_id: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// `STANDARD` or `INFREQUENT_ACCESS`.
    pub class: String,
}

/// A log stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct StreamRecord {
    /// Creation time, epoch milliseconds.
    pub creation_time: i64,
    /// The earliest event timestamp.
    pub first_event: Option<i64>,
    /// The latest event timestamp.
    pub last_event: Option<i64>,
    /// When events were last ingested.
    pub last_ingestion: Option<i64>,
    /// The sequence number the next event gets; it also makes the upload sequence token.
    pub next_seq: u64,
    /// Bytes of messages stored.
    pub stored_bytes: u64,
}

impl StreamRecord {
    /// The upload sequence token AWS would show (a decimal string that grows with every put).
    pub fn sequence_token(&self) -> String {
        format!("{:056}", self.next_seq)
    }
}

/// A metric filter, stored in the shape `DescribeMetricFilters` returns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricFilterRecord {
    /// The filter name.
    pub filter_name: String,
    /// The pattern text.
    pub filter_pattern: String,
    /// `metricTransformations` as given (one element).
    pub transformations: serde_json::Value,
    /// Creation time, epoch milliseconds.
    pub creation_time: i64,
}

/// The key of a log group.
pub fn group_key(account: &str, region: &str, group: &str) -> Vec<u8> {
    Key::new().str(account).str(region).str(group).finish()
}

/// The prefix of every group of an account and region (optionally of names starting with `prefix`).
pub fn groups_prefix(account: &str, region: &str, prefix: &str) -> Vec<u8> {
    Key::new().str(account).str(region).str_prefix(prefix).finish()
}

/// The key of a log stream.
pub fn stream_key(account: &str, region: &str, group: &str, stream: &str) -> Vec<u8> {
    Key::new().str(account).str(region).str(group).str(stream).finish()
}

/// The prefix of the streams of a group whose names start with `prefix`.
pub fn streams_prefix(account: &str, region: &str, group: &str, prefix: &str) -> Vec<u8> {
    Key::new()
        .str(account)
        .str(region)
        .str(group)
        .str_prefix(prefix)
        .finish()
}

/// The prefix of a stream's events.
pub fn events_prefix(account: &str, region: &str, group: &str, stream: &str) -> Vec<u8> {
    Key::new().str(account).str(region).str(group).str(stream).finish()
}

/// The prefix of every event of a group.
pub fn group_events_prefix(account: &str, region: &str, group: &str) -> Vec<u8> {
    Key::new().str(account).str(region).str(group).finish()
}

/// The key of one event: the stream prefix, then timestamp and sequence number.
pub fn event_key(stream_prefix: &[u8], timestamp: i64, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream_prefix.len() + 16);
    key.extend_from_slice(stream_prefix);
    key.extend_from_slice(&((timestamp as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The (timestamp, seq) at the end of an event key.
pub fn event_position(key: &[u8]) -> Option<(i64, u64)> {
    let tail = key.len().checked_sub(16).and_then(|at| key.get(at..))?;
    let ts: [u8; 8] = tail.get(..8)?.try_into().ok()?;
    let seq: [u8; 8] = tail.get(8..)?.try_into().ok()?;
    Some(((u64::from_be_bytes(ts) ^ (1 << 63)) as i64, u64::from_be_bytes(seq)))
}

/// An event value: ingestion time then message.
pub fn event_value(ingestion: i64, message: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + message.len());
    value.extend_from_slice(&ingestion.to_be_bytes());
    value.extend_from_slice(message.as_bytes());
    value
}

/// Splits an event value into ingestion time and message.
pub fn split_event(value: &[u8]) -> Option<(i64, &str)> {
    let ingestion: [u8; 8] = value.get(..8)?.try_into().ok()?;
    let message = std::str::from_utf8(value.get(8..)?).ok()?;
    Some((i64::from_be_bytes(ingestion), message))
}

/// The key of a metric filter.
pub fn filter_key(account: &str, region: &str, group: &str, filter: &str) -> Vec<u8> {
    Key::new().str(account).str(region).str(group).str(filter).finish()
}

/// The prefix of a group's metric filters whose names start with `prefix`.
pub fn filters_prefix(account: &str, region: &str, group: &str, prefix: &str) -> Vec<u8> {
    Key::new()
        .str(account)
        .str(region)
        .str(group)
        .str_prefix(prefix)
        .finish()
}

/// The ARN of a log group (without the `:*` suffix).
pub fn group_arn(region: &str, account: &str, group: &str) -> String {
    format!("arn:aws:logs:{region}:{account}:log-group:{group}")
}

/// The group name in a log group ARN (`...:log-group:NAME` or `...:log-group:NAME:*`), if the ARN
/// belongs to `account` and `region`.
pub fn group_from_arn<'a>(arn: &'a str, region: &str, account: &str) -> Option<&'a str> {
    let rest = arn.strip_prefix("arn:aws:logs:")?;
    let (arn_region, rest) = rest.split_once(':')?;
    let (arn_account, rest) = rest.split_once(':')?;
    if arn_region != region || arn_account != account {
        return None;
    }
    let name = rest.strip_prefix("log-group:")?;
    Some(name.strip_suffix(":*").unwrap_or(name))
}

/// The retention periods AWS accepts, in days.
pub const RETENTION_DAYS: &[i64] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_sort_by_time_then_sequence_and_round_trip() {
        let prefix = events_prefix("1", "r", "g", "s");
        let cases = [(-5i64, 9u64), (0, 0), (0, 1), (1_700_000_000_000, 3)];
        let keys: Vec<Vec<u8>> = cases.iter().map(|(t, s)| event_key(&prefix, *t, *s)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for ((t, s), key) in cases.iter().zip(&keys) {
            assert_eq!(event_position(key), Some((*t, *s)));
        }
        let value = event_value(42, "hello");
        assert_eq!(split_event(&value), Some((42, "hello")));
    }

    #[test]
    fn group_arns() {
        let cases = [
            ("arn:aws:logs:us-east-1:1:log-group:g", Some("g")),
            ("arn:aws:logs:us-east-1:1:log-group:/a/b:*", Some("/a/b")),
            ("arn:aws:logs:us-east-2:1:log-group:g", None),
            ("arn:aws:logs:us-east-1:2:log-group:g", None),
            ("arn:aws:kms:us-east-1:1:key/x", None),
        ];
        for (arn, want) in cases {
            assert_eq!(group_from_arn(arn, "us-east-1", "1"), want, "{arn}");
        }
    }
}
