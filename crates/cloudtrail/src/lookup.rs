//! LookupEvents: the last 90 days of an account's management events, newest first.
//!
//! Events are read straight from the pipeline's `events` table, whose keys are
//! (account, time in milliseconds, event id), by a reverse range scan.
//! The `NextToken` is the base64url of the last returned row key, so a token always moves strictly
//! backwards and is never repeated; a token that does not decode to a key of the caller's account
//! is rejected.

use crate::error;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use citadel_core::audit::EVENTS;
use citadel_store::Store;
use citadel_store::keys::Key;
use citadel_wire::AwsError;
use serde_json::{Value, json};

/// How far back LookupEvents sees, in milliseconds (90 days).
pub const RETENTION_MS: i64 = 90 * 24 * 3600 * 1000;
/// Rows read per scan step while filtering.
const SCAN_CHUNK: usize = 256;

/// The lookup attributes CloudTrail accepts.
pub const ATTRIBUTE_KEYS: &[&str] = &[
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
];

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut current = value;
    for name in path {
        current = current.get(*name)?;
    }
    current.as_str()
}

/// The `Username` CloudTrail shows for a record's caller.
pub fn username(record: &Value) -> Option<String> {
    let identity = record.get("userIdentity")?;
    match identity.get("type").and_then(Value::as_str)? {
        "IAMUser" => identity.get("userName").and_then(Value::as_str).map(str::to_string),
        "Root" => Some(
            identity
                .get("userName")
                .and_then(Value::as_str)
                .unwrap_or("root")
                .to_string(),
        ),
        "AssumedRole" | "FederatedUser" | "WebIdentityUser" | "SAMLUser" => identity
            .get("arn")
            .and_then(Value::as_str)
            .and_then(|arn| arn.rsplit('/').next())
            .map(str::to_string),
        _ => None,
    }
}

/// The `Resources` list of a LookupEvents event: type and ARN of each touched resource.
fn resources(record: &Value) -> Vec<Value> {
    record
        .get("resources")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|r| {
                    json!({
                        "ResourceType": r.get("type").and_then(Value::as_str),
                        "ResourceName": r.get("ARN").and_then(Value::as_str),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a record matches one lookup attribute.
pub fn matches(record: &Value, key: &str, value: &str) -> bool {
    match key {
        "EventId" => str_at(record, &["eventID"]) == Some(value),
        "EventName" => str_at(record, &["eventName"]) == Some(value),
        "EventSource" => str_at(record, &["eventSource"]) == Some(value),
        "ReadOnly" => record
            .get("readOnly")
            .and_then(Value::as_bool)
            .is_some_and(|ro| ro.to_string() == value),
        "Username" => username(record).as_deref() == Some(value),
        "AccessKeyId" => str_at(record, &["userIdentity", "accessKeyId"]) == Some(value),
        "ResourceType" => record
            .get("resources")
            .and_then(Value::as_array)
            .is_some_and(|list| list.iter().any(|r| str_at(r, &["type"]) == Some(value))),
        "ResourceName" => record.get("resources").and_then(Value::as_array).is_some_and(|list| {
            list.iter()
                .filter_map(|r| str_at(r, &["ARN"]))
                .any(|arn| arn == value || arn.rsplit(['/', ':']).next() == Some(value))
        }),
        _ => false,
    }
}

/// The `Event` shape for a stored record, or `None` for data events (LookupEvents shows management events only).
pub fn event_json(record: &Value, time_ms: u64) -> Option<Value> {
    if record.get("managementEvent").and_then(Value::as_bool) == Some(false) {
        return None;
    }
    let text = serde_json::to_string(record).ok()?;
    let mut event = serde_json::Map::new();
    event.insert("EventId".into(), json!(str_at(record, &["eventID"])));
    event.insert("EventName".into(), json!(str_at(record, &["eventName"])));
    if let Some(ro) = record.get("readOnly").and_then(Value::as_bool) {
        event.insert("ReadOnly".into(), json!(ro.to_string()));
    }
    if let Some(akid) = str_at(record, &["userIdentity", "accessKeyId"]) {
        event.insert("AccessKeyId".into(), json!(akid));
    }
    event.insert("EventTime".into(), json!(time_ms / 1000));
    event.insert("EventSource".into(), json!(str_at(record, &["eventSource"])));
    if let Some(name) = username(record) {
        event.insert("Username".into(), json!(name));
    }
    event.insert("Resources".into(), Value::Array(resources(record)));
    event.insert("CloudTrailEvent".into(), Value::String(text));
    Some(Value::Object(event))
}

/// A parsed LookupEvents request.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The one lookup attribute, if any.
    pub attribute: Option<(String, String)>,
    /// Inclusive lower bound in milliseconds.
    pub start_ms: i64,
    /// Inclusive upper bound in milliseconds.
    pub end_ms: i64,
    /// Page size, 1..=50.
    pub max_results: usize,
    /// The row key to continue below (exclusive).
    pub before: Option<Vec<u8>>,
    /// Only management events exist; `insight` asks for none.
    pub insight: bool,
}

fn epoch_ms(value: Option<&Value>) -> Option<Option<i64>> {
    match value {
        None | Some(Value::Null) => Some(None),
        Some(v) => citadel_wire::codec::timestamp::from_value(v).map(|s| Some((s * 1000.0).floor() as i64)),
    }
}

/// Parses and checks a LookupEvents input for `account` at `now_ms`.
///
/// # Errors
/// CloudTrail's `InvalidLookupAttributesException`, `InvalidTimeRangeException`,
/// `InvalidMaxResultsException`, `InvalidNextTokenException`.
pub fn parse(input: &Value, account: &str, now_ms: i64) -> Result<Query, AwsError> {
    let attributes = input.get("LookupAttributes").and_then(Value::as_array);
    let attributes = attributes.map(Vec::as_slice).unwrap_or_default();
    if attributes.len() > 1 {
        return Err(error::invalid_lookup_attributes(
            "You cannot specify more than one lookup attribute.",
        ));
    }
    let attribute = match attributes.first() {
        None => None,
        Some(attr) => {
            let key = attr.get("AttributeKey").and_then(Value::as_str).unwrap_or("");
            let value = attr.get("AttributeValue").and_then(Value::as_str).unwrap_or("");
            if !ATTRIBUTE_KEYS.contains(&key) {
                return Err(error::invalid_lookup_attributes(format!(
                    "Invalid attribute key: {key}"
                )));
            }
            if value.is_empty() || value.len() > 2000 {
                return Err(error::invalid_lookup_attributes(
                    "AttributeValue must be between 1 and 2000 characters.",
                ));
            }
            Some((key.to_string(), value.to_string()))
        }
    };
    let start = epoch_ms(input.get("StartTime")).ok_or_else(error::invalid_time_range)?;
    let end = epoch_ms(input.get("EndTime")).ok_or_else(error::invalid_time_range)?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(error::invalid_time_range());
    }
    let oldest = now_ms.saturating_sub(RETENTION_MS);
    let start_ms = start.unwrap_or(oldest).max(oldest);
    let end_ms = end.unwrap_or(now_ms);
    let max_results = match input.get("MaxResults").and_then(Value::as_i64) {
        None => 50,
        Some(n) if (1..=50).contains(&n) => n as usize,
        Some(_) => return Err(error::invalid_max_results()),
    };
    let before = match input.get("NextToken").and_then(Value::as_str) {
        None => None,
        Some(token) => {
            let key = URL_SAFE_NO_PAD.decode(token).map_err(|_| error::invalid_next_token())?;
            if !key.starts_with(&Key::new().str(account).finish()) {
                return Err(error::invalid_next_token());
            }
            Some(key)
        }
    };
    let insight = input.get("EventCategory").and_then(Value::as_str) == Some("insight");
    Ok(Query {
        attribute,
        start_ms,
        end_ms,
        max_results,
        before,
        insight,
    })
}

/// Runs a parsed query against the `events` table; returns the LookupEvents output.
///
/// # Errors
/// An internal error when the store fails.
pub async fn run(store: &dyn Store, account: &str, query: &Query) -> Result<Value, AwsError> {
    if query.insight || query.end_ms < query.start_ms {
        return Ok(json!({"Events": []}));
    }
    let lower = Key::new()
        .str(account)
        .u64(u64::try_from(query.start_ms).unwrap_or(0))
        .finish();
    let upper_time = u64::try_from(query.end_ms.saturating_add(1)).unwrap_or(0);
    let mut upper = Key::new().str(account).u64(upper_time).finish();
    if let Some(before) = &query.before
        && before < &upper
    {
        upper.clone_from(before);
    }
    let mut events = Vec::new();
    let mut last_key: Option<Vec<u8>> = None;
    let mut more = false;
    'scan: loop {
        if upper <= lower {
            break;
        }
        let rows = store
            .scan(EVENTS, &lower, Some(&upper), SCAN_CHUNK, true)
            .await
            .map_err(error::internal)?;
        let exhausted = rows.len() < SCAN_CHUNK;
        for (key, value) in &rows {
            upper.clone_from(key);
            let Ok(record) = serde_json::from_slice::<Value>(value) else {
                continue;
            };
            if let Some((attr, wanted)) = &query.attribute
                && !matches(&record, attr, wanted)
            {
                continue;
            }
            let time_ms = time_of_key(key, account).unwrap_or(0);
            let Some(event) = event_json(&record, time_ms) else {
                continue;
            };
            if events.len() == query.max_results {
                more = true;
                break 'scan;
            }
            events.push(event);
            last_key = Some(key.clone());
        }
        if exhausted {
            break;
        }
    }
    let mut out = json!({ "Events": events });
    if more && let Some(key) = last_key {
        out["NextToken"] = Value::String(URL_SAFE_NO_PAD.encode(key));
    }
    Ok(out)
}

/// The time component of an event row key.
pub fn time_of_key(key: &[u8], account: &str) -> Option<u64> {
    let mut reader = citadel_store::keys::KeyReader::new(key);
    if reader.str().ok()? != account {
        return None;
    }
    reader.u64().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, user: &str, ro: bool) -> Value {
        json!({
            "eventID": format!("id-{name}"), "eventName": name, "eventSource": "iam.amazonaws.com",
            "readOnly": ro, "managementEvent": true,
            "userIdentity": {"type": "IAMUser", "userName": user, "accessKeyId": "AKIAUSER", "arn": format!("arn:aws:iam::1:user/{user}")},
            "resources": [{"type": "AWS::IAM::User", "ARN": "arn:aws:iam::1:user/bob"}]
        })
    }

    #[test]
    fn attributes_match_the_documented_fields() {
        let r = record("CreateUser", "alice", false);
        let cases = [
            ("EventId", "id-CreateUser", true),
            ("EventName", "CreateUser", true),
            ("EventName", "DeleteUser", false),
            ("ReadOnly", "false", true),
            ("ReadOnly", "true", false),
            ("Username", "alice", true),
            ("Username", "bob", false),
            ("ResourceType", "AWS::IAM::User", true),
            ("ResourceName", "bob", true),
            ("ResourceName", "arn:aws:iam::1:user/bob", true),
            ("ResourceName", "alice", false),
            ("EventSource", "iam.amazonaws.com", true),
            ("AccessKeyId", "AKIAUSER", true),
            ("AccessKeyId", "AKIAOTHER", false),
        ];
        for (key, value, want) in cases {
            assert_eq!(matches(&r, key, value), want, "{key}={value}");
        }
    }

    #[test]
    fn usernames_by_identity_type() {
        let cases = [
            (json!({"type": "Root", "arn": "arn:aws:iam::1:root"}), Some("root")),
            (json!({"type": "IAMUser", "userName": "u"}), Some("u")),
            (
                json!({"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/R/sess"}),
                Some("sess"),
            ),
            (json!({"type": "AWSService", "invokedBy": "x"}), None),
        ];
        for (identity, want) in cases {
            assert_eq!(username(&json!({"userIdentity": identity})).as_deref(), want);
        }
    }

    #[test]
    fn event_shape_and_data_events() {
        let r = record("GetUser", "alice", true);
        let e = event_json(&r, 1_700_000_000_123).unwrap();
        assert_eq!(e["ReadOnly"], "true");
        assert_eq!(e["EventTime"], 1_700_000_000);
        assert_eq!(e["Username"], "alice");
        assert_eq!(e["Resources"][0]["ResourceName"], "arn:aws:iam::1:user/bob");
        let back: Value = serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap();
        assert_eq!(back, r);
        let mut data = r.clone();
        data["managementEvent"] = json!(false);
        assert!(event_json(&data, 0).is_none());
    }

    #[test]
    fn parse_checks_inputs() {
        let now = 100 * 24 * 3600 * 1000;
        let cases: Vec<(Value, Option<&str>)> = vec![
            (json!({}), None),
            (json!({"MaxResults": 0}), Some("InvalidMaxResultsException")),
            (json!({"MaxResults": 51}), Some("InvalidMaxResultsException")),
            (
                json!({"StartTime": 20, "EndTime": 10}),
                Some("InvalidTimeRangeException"),
            ),
            (
                json!({"LookupAttributes": [{"AttributeKey": "Bogus", "AttributeValue": "x"}]}),
                Some("InvalidLookupAttributesException"),
            ),
            (
                json!({"LookupAttributes": [
                {"AttributeKey": "EventName", "AttributeValue": "x"},
                {"AttributeKey": "Username", "AttributeValue": "y"}]}),
                Some("InvalidLookupAttributesException"),
            ),
            (json!({"NextToken": "!!"}), Some("InvalidNextTokenException")),
            (
                json!({"NextToken": URL_SAFE_NO_PAD.encode(Key::new().str("999").finish())}),
                Some("InvalidNextTokenException"),
            ),
        ];
        for (input, want) in cases {
            let got = parse(&input, "1", now).err().map(|e| e.code.to_string());
            assert_eq!(got.as_deref(), want, "{input}");
        }
        let q = parse(&json!({}), "1", now).unwrap();
        assert_eq!(q.start_ms, now - RETENTION_MS);
        assert_eq!(q.max_results, 50);
    }
}
