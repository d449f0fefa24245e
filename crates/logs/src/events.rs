//! Event handlers: `PutLogEvents` (batch rules, rejected events, retention, metric filters),
//! `GetLogEvents` (forward/backward tokens) and `FilterLogEvents` (patterns across streams).

use crate::Logs;
use crate::error::{self, internal};
use crate::filters;
use crate::groups::{PAGE, stream_name_of};
use crate::input::{
    decode_token, encode_token, logs_missing, now_millis, opt_bool, opt_i64, opt_str, req_str, str_list,
};
use crate::model;
use crate::pattern::FilterPattern;
use citadel_core::{Call, Effect};
use citadel_store::WriteBatch;
use citadel_store::keys::prefix_end;
use citadel_wire::AwsError;
use serde_json::{Value, json};

/// The most events one `PutLogEvents` call may carry.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// The largest batch: the sum of message bytes plus [`EVENT_OVERHEAD`] per event.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// What AWS counts per event on top of its message.
pub const EVENT_OVERHEAD: usize = 26;
/// A batch may span at most this long.
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 3_600_000;
/// Events older than this are rejected as too old.
pub const MAX_AGE_MS: i64 = 14 * 86_400_000;
/// Events further in the future than this are rejected as too new.
pub const MAX_FUTURE_MS: i64 = 2 * 3_600_000;
/// The largest page of `GetLogEvents` and `FilterLogEvents`.
pub const MAX_PAGE_EVENTS: usize = 10_000;
/// The largest response body of `GetLogEvents` and `FilterLogEvents`.
pub const MAX_PAGE_BYTES: usize = 1_048_576;

/// One event of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct InputEvent {
    /// Epoch milliseconds.
    pub timestamp: i64,
    /// The message.
    pub message: String,
}

/// How a batch splits into accepted and rejected events (indexes as AWS reports them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchVerdict {
    /// The index of the first event accepted, and one past the last.
    pub accepted: (usize, usize),
    /// `tooOldLogEventEndIndex`: the last index of the events older than 14 days.
    pub too_old_end: Option<usize>,
    /// `expiredLogEventEndIndex`: the last index of the events older than the retention.
    pub expired_end: Option<usize>,
    /// `tooNewLogEventStartIndex`: the first index of the events more than 2 h in the future.
    pub too_new_start: Option<usize>,
}

/// Checks the batch rules and splits the batch; pure, so the limits are unit-tested directly.
///
/// # Errors
/// `InvalidParameterException` for an empty, too large, unordered or over-24-hour batch.
pub fn check_batch(events: &[InputEvent], now: i64, retention_days: Option<i64>) -> Result<BatchVerdict, AwsError> {
    if events.is_empty() {
        return Err(error::invalid("At least one log event is required."));
    }
    if events.len() > MAX_BATCH_EVENTS {
        return Err(error::invalid(format!(
            "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length less than or equal to {MAX_BATCH_EVENTS}"
        )));
    }
    let size: usize = events.iter().map(|e| e.message.len() + EVENT_OVERHEAD).sum();
    if size > MAX_BATCH_BYTES {
        return Err(error::invalid(format!(
            "Upload too large: {size} bytes exceeds limit of {MAX_BATCH_BYTES}"
        )));
    }
    if events
        .windows(2)
        .any(|w| matches!(w, [a, b] if b.timestamp < a.timestamp))
    {
        return Err(error::invalid(
            "Log events in a single PutLogEvents request must be in chronological order.",
        ));
    }
    let (first, last) = match (events.first(), events.last()) {
        (Some(f), Some(l)) => (f.timestamp, l.timestamp),
        _ => return Err(error::invalid("At least one log event is required.")),
    };
    if last - first > MAX_BATCH_SPAN_MS {
        return Err(error::invalid(
            "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
        ));
    }
    let mut verdict = BatchVerdict::default();
    let too_old = now - MAX_AGE_MS;
    let expired = retention_days.map(|d| now - d * 86_400_000);
    let too_new = now + MAX_FUTURE_MS;
    let mut start = 0;
    let mut end = events.len();
    for (i, e) in events.iter().enumerate() {
        if e.timestamp < too_old {
            verdict.too_old_end = Some(i);
            start = i + 1;
        } else if expired.is_some_and(|cutoff| e.timestamp < cutoff) {
            verdict.expired_end = Some(i);
            start = i + 1;
        }
        if e.timestamp > too_new && verdict.too_new_start.is_none() {
            verdict.too_new_start = Some(i);
            end = i;
        }
    }
    verdict.accepted = (start, end.max(start));
    Ok(verdict)
}

fn input_events(input: &Value) -> Result<Vec<InputEvent>, AwsError> {
    let items = input
        .get("logEvents")
        .and_then(Value::as_array)
        .ok_or_else(|| logs_missing("logEvents"))?;
    items
        .iter()
        .map(|item| {
            Ok(InputEvent {
                timestamp: opt_i64(item, "timestamp").ok_or_else(|| logs_missing("timestamp"))?,
                message: opt_str(item, "message")
                    .ok_or_else(|| logs_missing("message"))?
                    .to_owned(),
            })
        })
        .collect()
}

pub(crate) async fn put_log_events(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let group_name = logs.group_name(call)?.to_owned();
    let stream_name = req_str(&call.input, "logStreamName", logs_missing)?;
    let (_, group) = logs.existing_group(call, &group_name).await?;
    let (raw, mut stream) = logs
        .stream(call, &group_name, stream_name)
        .await?
        .ok_or_else(error::stream_not_found)?;
    let events = input_events(&call.input)?;
    let now = now_millis(call.ctx.time);
    let verdict = check_batch(&events, now, group.retention_days)?;
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let prefix = model::events_prefix(account, region, &group_name, stream_name);
    let stream_key = model::stream_key(account, region, &group_name, stream_name);
    let mut batch = WriteBatch::new();
    batch.expect(model::STREAMS, &stream_key, Some(&raw));
    let accepted = events.get(verdict.accepted.0..verdict.accepted.1).unwrap_or_default();
    for event in accepted {
        let key = model::event_key(&prefix, event.timestamp, stream.next_seq);
        batch.put(model::EVENTS, &key, &model::event_value(now, &event.message));
        stream.next_seq += 1;
        stream.stored_bytes += event.message.len() as u64;
        stream.first_event = Some(stream.first_event.map_or(event.timestamp, |t| t.min(event.timestamp)));
        stream.last_event = Some(stream.last_event.map_or(event.timestamp, |t| t.max(event.timestamp)));
    }
    if !accepted.is_empty() {
        stream.last_ingestion = Some(now);
    }
    // Retention is enforced on write too: expired events of this stream are purged here, a bounded
    // number per call, and reads never return what retention excludes.
    if let Some(days) = group.retention_days {
        let cutoff = model::event_key(&prefix, now - days * 86_400_000, 0);
        for (key, value) in logs
            .store
            .scan(model::EVENTS, &prefix, Some(&cutoff), PAGE, false)
            .await
            .map_err(internal)?
        {
            batch.delete(model::EVENTS, &key);
            let bytes = value.len().saturating_sub(8) as u64;
            stream.stored_bytes = stream.stored_bytes.saturating_sub(bytes);
        }
    }
    batch.put(
        model::STREAMS,
        &stream_key,
        &serde_json::to_vec(&stream).map_err(internal)?,
    );
    filters::publish_matches(logs, call, &group_name, accepted, &mut batch).await?;
    let mut output = json!({ "nextSequenceToken": stream.sequence_token() });
    let mut rejected = serde_json::Map::new();
    if let Some(i) = verdict.too_new_start {
        rejected.insert("tooNewLogEventStartIndex".into(), json!(i));
    }
    if let Some(i) = verdict.too_old_end {
        rejected.insert("tooOldLogEventEndIndex".into(), json!(i));
    }
    if let Some(i) = verdict.expired_end {
        rejected.insert("expiredLogEventEndIndex".into(), json!(i));
    }
    if !rejected.is_empty() {
        output["rejectedLogEventsInfo"] = Value::Object(rejected);
    }
    Ok(Effect::write(output, batch))
}

/// The earliest timestamp reads may return, given the group's retention.
fn retention_floor(retention_days: Option<i64>, now: i64) -> i64 {
    retention_days.map_or(i64::MIN, |d| now - d * 86_400_000)
}

fn page_limit(input: &Value) -> Result<usize, AwsError> {
    match opt_i64(input, "limit") {
        None => Ok(MAX_PAGE_EVENTS),
        Some(n) if n >= 1 && n <= MAX_PAGE_EVENTS as i64 => Ok(n as usize),
        Some(_) => Err(error::invalid("limit must be between 1 and 10000")),
    }
}

fn get_token(kind: char, ts: i64, seq: u64) -> String {
    format!("{kind}/{:020}{:020}", (ts as u64) ^ (1 << 63), seq)
}

fn parse_get_token(token: &str) -> Option<(char, i64, u64)> {
    let (kind, digits) = token.split_once('/')?;
    let kind = match kind {
        "f" => 'f',
        "b" => 'b',
        _ => return None,
    };
    if digits.len() != 40 {
        return None;
    }
    let ts: u64 = digits.get(..20)?.parse().ok()?;
    let seq: u64 = digits.get(20..)?.parse().ok()?;
    Some((kind, (ts ^ (1 << 63)) as i64, seq))
}

pub(crate) async fn get_log_events(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let group_name = logs.group_name(call)?.to_owned();
    let stream_name = req_str(&call.input, "logStreamName", logs_missing)?;
    let (_, group) = logs.existing_group(call, &group_name).await?;
    logs.stream(call, &group_name, stream_name)
        .await?
        .ok_or_else(error::stream_not_found)?;
    let limit = page_limit(&call.input)?;
    let now = now_millis(call.ctx.time);
    let floor = retention_floor(group.retention_days, now);
    let start_ts = opt_i64(&call.input, "startTime").unwrap_or(i64::MIN).max(floor);
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let prefix = model::events_prefix(account, region, &group_name, stream_name);
    let mut start = model::event_key(&prefix, start_ts, 0);
    let mut end = match opt_i64(&call.input, "endTime") {
        Some(t) => Some(model::event_key(&prefix, t, 0)),
        None => prefix_end(&prefix),
    };
    let token = opt_str(&call.input, "nextToken");
    let mut forward = opt_bool(&call.input, "startFromHead").unwrap_or(false);
    if let Some(token) = token {
        let (kind, ts, seq) =
            parse_get_token(token).ok_or_else(|| error::invalid("The specified nextToken is invalid."))?;
        let at = model::event_key(&prefix, ts, seq);
        if kind == 'f' {
            forward = true;
            let mut after = at;
            after.push(0);
            if after > start {
                start = after;
            }
        } else {
            forward = false;
            if end.as_ref().is_none_or(|e| &at < e) {
                end = Some(at);
            }
        }
    }
    let mut rows = if end.as_ref().is_some_and(|e| e <= &start) {
        Vec::new()
    } else {
        logs.store
            .scan(model::EVENTS, &start, end.as_deref(), limit, !forward)
            .await
            .map_err(internal)?
    };
    if !forward {
        rows.reverse();
    }
    let mut events = Vec::with_capacity(rows.len());
    let mut bytes = 0;
    let mut positions = Vec::with_capacity(rows.len());
    for (key, value) in &rows {
        let (Some((ts, seq)), Some((ingestion, message))) = (model::event_position(key), model::split_event(value))
        else {
            continue;
        };
        bytes += message.len() + EVENT_OVERHEAD;
        if bytes > MAX_PAGE_BYTES && !events.is_empty() {
            break;
        }
        events.push(json!({ "timestamp": ts, "message": message, "ingestionTime": ingestion }));
        positions.push((ts, seq));
    }
    let (forward_token, backward_token) = match (positions.first(), positions.last()) {
        (Some(first), Some(last)) => (get_token('f', last.0, last.1), get_token('b', first.0, first.1)),
        _ => match token {
            Some(token) => {
                let same = token.to_owned();
                let other = match token.split_once('/') {
                    Some(("f", rest)) => format!("b/{rest}"),
                    Some((_, rest)) => format!("f/{rest}"),
                    None => same.clone(),
                };
                if token.starts_with('f') {
                    (same, other)
                } else {
                    (other, same)
                }
            }
            None => (
                get_token('f', start_ts.saturating_sub(1), u64::MAX),
                get_token('b', opt_i64(&call.input, "endTime").unwrap_or(i64::MAX), 0),
            ),
        },
    };
    Ok(Effect::read(json!({
        "events": events,
        "nextForwardToken": forward_token,
        "nextBackwardToken": backward_token,
    })))
}

/// A small stable hash of a stream name, so event ids are unique across streams.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One matching event found by `FilterLogEvents`, ordered by time, then stream, then sequence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Hit {
    timestamp: i64,
    stream: String,
    seq: u64,
    ingestion: i64,
    message: String,
}

pub(crate) async fn filter_log_events(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let group_name = logs.group_name(call)?.to_owned();
    let (_, group) = logs.existing_group(call, &group_name).await?;
    let names = str_list(&call.input, "logStreamNames");
    let name_prefix = opt_str(&call.input, "logStreamNamePrefix");
    if !names.is_empty() && name_prefix.is_some() {
        return Err(error::invalid(
            "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.",
        ));
    }
    let pattern = FilterPattern::parse(opt_str(&call.input, "filterPattern").unwrap_or(""))
        .map_err(|_| error::invalid("Invalid filter pattern"))?;
    let limit = page_limit(&call.input)?;
    let now = now_millis(call.ctx.time);
    let floor = retention_floor(group.retention_days, now);
    let start_ts = opt_i64(&call.input, "startTime").unwrap_or(i64::MIN).max(floor);
    let end_ts = opt_i64(&call.input, "endTime");
    let after: Option<(i64, String, u64)> = match opt_str(&call.input, "nextToken") {
        Some(token) => Some(
            decode_token(token)
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or_else(|| error::invalid("The specified nextToken is invalid."))?,
        ),
        None => None,
    };
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let stream_rows = logs
        .scan_all(
            model::STREAMS,
            &model::streams_prefix(account, region, &group_name, name_prefix.unwrap_or("")),
        )
        .await?;
    let streams: Vec<String> = stream_rows
        .iter()
        .filter_map(|(key, _)| stream_name_of(key))
        .filter(|name| names.is_empty() || names.contains(&name.as_str()))
        .collect();
    let mut hits: Vec<Hit> = Vec::new();
    for stream in &streams {
        let prefix = model::events_prefix(account, region, &group_name, stream);
        let from = after.as_ref().map_or(start_ts, |a| a.0.max(start_ts));
        let mut start = model::event_key(&prefix, from, 0);
        let end = match end_ts {
            Some(t) => Some(model::event_key(&prefix, t, 0)),
            None => prefix_end(&prefix),
        };
        let mut found = 0;
        'scan: loop {
            if end.as_ref().is_some_and(|e| e <= &start) {
                break;
            }
            let rows = logs
                .store
                .scan(model::EVENTS, &start, end.as_deref(), PAGE, false)
                .await
                .map_err(internal)?;
            let full = rows.len() == PAGE;
            for (key, value) in &rows {
                start = key.clone();
                start.push(0);
                let (Some((ts, seq)), Some((ingestion, message))) =
                    (model::event_position(key), model::split_event(value))
                else {
                    continue;
                };
                if let Some((ats, astream, aseq)) = &after
                    && (ts, stream.as_str(), seq) <= (*ats, astream.as_str(), *aseq)
                {
                    continue;
                }
                if !pattern.matches(message) {
                    continue;
                }
                hits.push(Hit {
                    timestamp: ts,
                    stream: stream.clone(),
                    seq,
                    ingestion,
                    message: message.to_owned(),
                });
                found += 1;
                if found > limit {
                    break 'scan;
                }
            }
            if !full {
                break;
            }
        }
    }
    hits.sort();
    let mut events = Vec::new();
    let mut bytes = 0;
    let mut last = None;
    let mut more = false;
    for hit in &hits {
        bytes += hit.message.len() + EVENT_OVERHEAD + hit.stream.len();
        if events.len() == limit || (bytes > MAX_PAGE_BYTES && !events.is_empty()) {
            more = true;
            break;
        }
        events.push(json!({
            "logStreamName": hit.stream,
            "timestamp": hit.timestamp,
            "message": hit.message,
            "ingestionTime": hit.ingestion,
            "eventId": format!("{:020}{:020}{:016}", (hit.timestamp as u64) ^ (1 << 63), hit.seq, fnv(&hit.stream) % 10_000_000_000_000_000),
        }));
        last = Some((hit.timestamp, hit.stream.clone(), hit.seq));
    }
    let searched: Vec<Value> = streams
        .iter()
        .map(|s| json!({ "logStreamName": s, "searchedCompletely": !more }))
        .collect();
    let mut output = json!({ "events": events, "searchedLogStreams": searched });
    if more && let Some(last) = last {
        output["nextToken"] = json!(encode_token(&json!(last)));
    }
    Ok(Effect::read(output))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(times: &[i64]) -> Vec<InputEvent> {
        times
            .iter()
            .map(|t| InputEvent {
                timestamp: *t,
                message: "m".into(),
            })
            .collect()
    }

    #[test]
    fn batch_rules() {
        let now = 100 * 86_400_000;
        let hour = 3_600_000;
        let day = 86_400_000;
        // (times, retention, Ok((accepted, too_old_end, expired_end, too_new_start)) or Err(code))
        type Want = Result<((usize, usize), Option<usize>, Option<usize>, Option<usize>), &'static str>;
        let cases: Vec<(Vec<i64>, Option<i64>, Want)> = vec![
            (vec![now, now], None, Ok(((0, 2), None, None, None))),
            (
                vec![now - 15 * day, now - 15 * day + hour, now],
                None,
                Err("InvalidParameterException"),
            ),
            (
                vec![now - 20 * hour, now - 10 * hour, now],
                None,
                Ok(((0, 3), None, None, None)),
            ),
            (
                vec![now - 3 * day - 1, now - 2 * day - hour],
                Some(3),
                Ok(((1, 2), None, Some(0), None)),
            ),
            (
                vec![now + hour, now + 3 * hour],
                None,
                Ok(((0, 1), None, None, Some(1))),
            ),
            (
                vec![now - 14 * day - 1, now - 14 * day + hour],
                None,
                Ok(((1, 2), Some(0), None, None)),
            ),
            (vec![now, now - 1], None, Err("InvalidParameterException")),
            (vec![], None, Err("InvalidParameterException")),
        ];
        for (times, retention, want) in cases {
            let got = check_batch(&events(&times), now, retention);
            match (got, want) {
                (Ok(v), Ok((accepted, old, expired, new))) => {
                    assert_eq!(v.accepted, accepted, "{times:?}");
                    assert_eq!(v.too_old_end, old, "{times:?}");
                    assert_eq!(v.expired_end, expired, "{times:?}");
                    assert_eq!(v.too_new_start, new, "{times:?}");
                }
                (Err(e), Err(code)) => assert_eq!(e.code, code, "{times:?}"),
                (got, want) => panic!("{times:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn batch_size_limits() {
        let now = 1_000_000_000;
        let too_many = vec![
            InputEvent {
                timestamp: now,
                message: "x".into()
            };
            MAX_BATCH_EVENTS + 1
        ];
        assert!(check_batch(&too_many, now, None).is_err());
        let exactly = vec![
            InputEvent {
                timestamp: now,
                message: "x".into()
            };
            MAX_BATCH_EVENTS
        ];
        assert!(check_batch(&exactly, now, None).is_ok());
        // 1,048,576 bytes exactly (with 26 per event) is accepted; one more byte is not.
        let message = "a".repeat(MAX_BATCH_BYTES / 2 - EVENT_OVERHEAD);
        let fits = vec![
            InputEvent {
                timestamp: now,
                message: message.clone()
            };
            2
        ];
        assert!(check_batch(&fits, now, None).is_ok());
        let over = vec![
            InputEvent {
                timestamp: now,
                message: message.clone(),
            },
            InputEvent {
                timestamp: now,
                message: format!("{message}b"),
            },
        ];
        let err = check_batch(&over, now, None).unwrap_err();
        assert!(err.message.contains("1048577"), "{}", err.message);
    }

    #[test]
    fn get_tokens_round_trip() {
        for (kind, ts, seq) in [('f', 0i64, 0u64), ('b', 1_700_000_000_000, 42), ('f', -1, u64::MAX)] {
            assert_eq!(parse_get_token(&get_token(kind, ts, seq)), Some((kind, ts, seq)));
        }
        assert_eq!(parse_get_token("x/1"), None);
    }
}
