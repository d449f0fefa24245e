//! Log group and log stream handlers: create, delete, describe, retention, KMS keys, tags.

use crate::Logs;
use crate::error::{self, internal};
use crate::input::{
    decode_token, encode_token, logs_missing, now_millis, opt_bool, opt_i64, opt_str, req_str, str_list,
};
use crate::model::{self, GroupRecord, MetricFilterRecord, StreamRecord};
use citadel_core::{AuditResource, Call, Effect};
use citadel_store::WriteBatch;
use citadel_store::keys::prefix_end;
use citadel_wire::AwsError;
use serde_json::{Value, json};

/// Scans whole tables in pages of this many rows.
pub(crate) const PAGE: usize = 1000;

impl Logs {
    /// Reads a group; `Ok(None)` when absent.
    pub(crate) async fn group(&self, call: &Call, name: &str) -> Result<Option<(Vec<u8>, GroupRecord)>, AwsError> {
        let key = model::group_key(call.ctx.account_id(), &call.ctx.region, name);
        let Some(raw) = self.store.get(model::GROUPS, &key).await.map_err(internal)? else {
            return Ok(None);
        };
        let record = serde_json::from_slice(&raw).map_err(internal)?;
        Ok(Some((raw, record)))
    }

    /// Reads a group or fails with `ResourceNotFoundException`.
    pub(crate) async fn existing_group(&self, call: &Call, name: &str) -> Result<(Vec<u8>, GroupRecord), AwsError> {
        self.group(call, name).await?.ok_or_else(error::group_not_found)
    }

    /// Reads a stream; `Ok(None)` when absent.
    pub(crate) async fn stream(
        &self,
        call: &Call,
        group: &str,
        stream: &str,
    ) -> Result<Option<(Vec<u8>, StreamRecord)>, AwsError> {
        let key = model::stream_key(call.ctx.account_id(), &call.ctx.region, group, stream);
        let Some(raw) = self.store.get(model::STREAMS, &key).await.map_err(internal)? else {
            return Ok(None);
        };
        let record = serde_json::from_slice(&raw).map_err(internal)?;
        Ok(Some((raw, record)))
    }

    /// Every row of `table` under `prefix`, in key order.
    pub(crate) async fn scan_all(&self, table: &str, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, AwsError> {
        let end = prefix_end(prefix);
        let mut start = prefix.to_vec();
        let mut out = Vec::new();
        loop {
            let rows = self
                .store
                .scan(table, &start, end.as_deref(), PAGE, false)
                .await
                .map_err(internal)?;
            let full = rows.len() == PAGE;
            if let Some((last, _)) = rows.last() {
                start = last.clone();
                start.push(0);
            }
            out.extend(rows);
            if !full {
                return Ok(out);
            }
        }
    }

    /// The group name of a request: `logGroupName`, or the name inside `logGroupIdentifier`.
    pub(crate) fn group_name<'a>(&self, call: &'a Call) -> Result<&'a str, AwsError> {
        if let Some(name) = opt_str(&call.input, "logGroupName") {
            return Ok(name);
        }
        let identifier = opt_str(&call.input, "logGroupIdentifier").ok_or_else(|| logs_missing("logGroupName"))?;
        if identifier.starts_with("arn:") {
            return model::group_from_arn(identifier, &call.ctx.region, call.ctx.account_id())
                .ok_or_else(error::group_not_found);
        }
        Ok(identifier)
    }
}

fn audit_group(call: &Call, name: &str) -> Vec<AuditResource> {
    vec![AuditResource {
        arn: model::group_arn(&call.ctx.region, call.ctx.account_id(), name),
        account_id: call.ctx.account_id().to_owned(),
        resource_type: "AWS::Logs::LogGroup",
    }]
}

fn tags_of(input: &Value, name: &str) -> Result<Vec<(String, String)>, AwsError> {
    let Some(map) = input.get(name).and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let v = v
            .as_str()
            .ok_or_else(|| error::invalid("Tag values must be strings."))?;
        out.push((k.clone(), v.to_owned()));
    }
    Ok(out)
}

/// The most tags a log group may carry.
const MAX_TAGS: usize = 50;

pub(crate) async fn create_log_group(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let name = req_str(&call.input, "logGroupName", logs_missing)?;
    if logs.group(call, name).await?.is_some() {
        return Err(error::already_exists("The specified log group already exists"));
    }
    let tags = tags_of(&call.input, "tags")?;
    if tags.len() > MAX_TAGS {
        return Err(error::invalid("A log group can have at most 50 tags."));
    }
    let record = GroupRecord {
        name: name.to_owned(),
        creation_time: now_millis(call.ctx.time),
        retention_days: None,
        kms_key_id: opt_str(&call.input, "kmsKeyId").map(str::to_owned),
        tags: tags.into_iter().collect(),
        class: opt_str(&call.input, "logGroupClass").unwrap_or("STANDARD").to_owned(),
    };
    let key = model::group_key(call.ctx.account_id(), &call.ctx.region, name);
    let mut batch = WriteBatch::new();
    batch
        .expect(model::GROUPS, &key, None)
        .put(model::GROUPS, &key, &serde_json::to_vec(&record).map_err(internal)?);
    let mut effect = Effect::write(json!({}), batch);
    effect.resources = audit_group(call, name);
    Ok(effect)
}

pub(crate) async fn delete_log_group(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let name = req_str(&call.input, "logGroupName", logs_missing)?;
    let (raw, _) = logs.existing_group(call, name).await?;
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let mut batch = WriteBatch::new();
    let key = model::group_key(account, region, name);
    batch
        .expect(model::GROUPS, &key, Some(&raw))
        .delete(model::GROUPS, &key);
    // Streams, events and filters of the group go with it, in the same atomic batch.
    for table in [model::STREAMS, model::EVENTS, model::METRIC_FILTERS] {
        for (key, _) in logs
            .scan_all(table, &model::group_events_prefix(account, region, name))
            .await?
        {
            batch.delete(table, &key);
        }
    }
    let mut effect = Effect::write(json!({}), batch);
    effect.resources = audit_group(call, name);
    Ok(effect)
}

fn group_output(call: &Call, group: &GroupRecord, metric_filters: usize, stored: u64) -> Value {
    let arn = model::group_arn(&call.ctx.region, call.ctx.account_id(), &group.name);
    let mut out = json!({
        "logGroupName": group.name,
        "creationTime": group.creation_time,
        "metricFilterCount": metric_filters,
        "arn": format!("{arn}:*"),
        "logGroupArn": arn,
        "storedBytes": stored,
        "logGroupClass": group.class,
    });
    if let Some(days) = group.retention_days {
        out["retentionInDays"] = json!(days);
    }
    if let Some(key) = &group.kms_key_id {
        out["kmsKeyId"] = json!(key);
    }
    out
}

/// The default and largest page of `DescribeLogGroups` and `DescribeLogStreams`.
const DESCRIBE_LIMIT: usize = 50;

fn page_limit(input: &Value, max: usize) -> Result<usize, AwsError> {
    match opt_i64(input, "limit") {
        None => Ok(max),
        Some(n) if n >= 1 && (n as usize) <= max => Ok(n as usize),
        Some(_) => Err(error::invalid(format!("limit must be between 1 and {max}"))),
    }
}

pub(crate) async fn describe_log_groups(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let prefix = opt_str(&call.input, "logGroupNamePrefix").unwrap_or("");
    let pattern = opt_str(&call.input, "logGroupNamePattern");
    if !prefix.is_empty() && pattern.is_some() {
        return Err(error::invalid(
            "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
        ));
    }
    let limit = page_limit(&call.input, DESCRIBE_LIMIT)?;
    let after = match opt_str(&call.input, "nextToken") {
        Some(token) => Some(
            decode_token(token)
                .and_then(|v| v.as_str().map(str::to_owned))
                .ok_or_else(|| error::invalid("The specified nextToken is invalid."))?,
        ),
        None => None,
    };
    let scan_prefix = model::groups_prefix(account, region, prefix);
    let mut start = scan_prefix.clone();
    if let Some(after) = &after {
        start = model::group_key(account, region, after);
        start.push(0);
    }
    let end = prefix_end(&scan_prefix);
    let mut groups = Vec::new();
    let mut next = None;
    loop {
        let rows = logs
            .store
            .scan(model::GROUPS, &start, end.as_deref(), PAGE, false)
            .await
            .map_err(internal)?;
        let full = rows.len() == PAGE;
        for (key, raw) in &rows {
            start = key.clone();
            start.push(0);
            let group: GroupRecord = serde_json::from_slice(raw).map_err(internal)?;
            if pattern.is_some_and(|p| !group.name.contains(p)) {
                continue;
            }
            if groups.len() == limit {
                next = groups.last().map(|g: &GroupRecord| encode_token(&json!(g.name)));
                break;
            }
            groups.push(group);
        }
        if next.is_some() || !full {
            break;
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for group in &groups {
        let filters = logs
            .scan_all(
                model::METRIC_FILTERS,
                &model::group_events_prefix(account, region, &group.name),
            )
            .await?
            .len();
        let stored: u64 = logs
            .scan_all(
                model::STREAMS,
                &model::group_events_prefix(account, region, &group.name),
            )
            .await?
            .iter()
            .filter_map(|(_, raw)| serde_json::from_slice::<StreamRecord>(raw).ok())
            .map(|s| s.stored_bytes)
            .sum();
        out.push(group_output(call, group, filters, stored));
    }
    let mut output = json!({ "logGroups": out });
    if let Some(token) = next {
        output["nextToken"] = json!(token);
    }
    Ok(Effect::read(output))
}

/// Applies `change` to a group record and returns the write effect.
async fn update_group(
    logs: &Logs,
    call: &Call,
    name: &str,
    change: impl FnOnce(&mut GroupRecord) -> Result<(), AwsError>,
) -> Result<Effect, AwsError> {
    let (raw, mut group) = logs.existing_group(call, name).await?;
    change(&mut group)?;
    let key = model::group_key(call.ctx.account_id(), &call.ctx.region, name);
    let mut batch = WriteBatch::new();
    batch.expect(model::GROUPS, &key, Some(&raw)).put(
        model::GROUPS,
        &key,
        &serde_json::to_vec(&group).map_err(internal)?,
    );
    let mut effect = Effect::write(json!({}), batch);
    effect.resources = audit_group(call, name);
    Ok(effect)
}

pub(crate) async fn put_retention_policy(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let name = req_str(&call.input, "logGroupName", logs_missing)?;
    let days = opt_i64(&call.input, "retentionInDays").ok_or_else(|| logs_missing("retentionInDays"))?;
    if !model::RETENTION_DAYS.contains(&days) {
        return Err(error::invalid(format!(
            "1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: {:?}",
            model::RETENTION_DAYS
        )));
    }
    let mut effect = update_group(logs, call, name, |g| {
        g.retention_days = Some(days);
        Ok(())
    })
    .await?;
    // Purge what the new retention already excludes, stream by stream.
    let cutoff = now_millis(call.ctx.time) - days * 86_400_000;
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    for (key, _) in logs
        .scan_all(model::STREAMS, &model::group_events_prefix(account, region, name))
        .await?
    {
        let Some(stream) = stream_name_of(&key) else {
            continue;
        };
        let prefix = model::events_prefix(account, region, name, &stream);
        let end = model::event_key(&prefix, cutoff, 0);
        for (event, _) in logs
            .store
            .scan(model::EVENTS, &prefix, Some(&end), 10_000, false)
            .await
            .map_err(internal)?
        {
            effect.batch.delete(model::EVENTS, &event);
        }
    }
    Ok(effect)
}

pub(crate) async fn delete_retention_policy(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let name = req_str(&call.input, "logGroupName", logs_missing)?;
    update_group(logs, call, name, |g| {
        g.retention_days = None;
        Ok(())
    })
    .await
}

fn kms_target<'a>(logs: &Logs, call: &'a Call) -> Result<&'a str, AwsError> {
    if let Some(id) = opt_str(&call.input, "resourceIdentifier")
        && id.starts_with("arn:")
    {
        return model::group_from_arn(id, &call.ctx.region, call.ctx.account_id())
            .ok_or_else(|| error::invalid("Only log group ARNs are supported as resourceIdentifier."));
    }
    logs.group_name(call)
}

pub(crate) async fn associate_kms_key(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let name = kms_target(logs, call)?;
    let key = req_str(&call.input, "kmsKeyId", logs_missing)?;
    if !key.starts_with("arn:") || !key.contains(":kms:") {
        return Err(error::invalid(format!("Specified KMS key ARN {key} is not valid.")));
    }
    let key = key.to_owned();
    update_group(logs, call, name, move |g| {
        g.kms_key_id = Some(key);
        Ok(())
    })
    .await
}

pub(crate) async fn disassociate_kms_key(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let name = kms_target(logs, call)?;
    update_group(logs, call, name, |g| {
        g.kms_key_id = None;
        Ok(())
    })
    .await
}

fn add_tags(group: &mut GroupRecord, tags: Vec<(String, String)>) -> Result<(), AwsError> {
    group.tags.extend(tags);
    if group.tags.len() > MAX_TAGS {
        return Err(AwsError::new(
            "TooManyTagsException",
            400,
            "A resource can have no more than 50 tags.",
        ));
    }
    Ok(())
}

pub(crate) async fn tag_log_group(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let name = req_str(&call.input, "logGroupName", logs_missing)?;
    let tags = tags_of(&call.input, "tags")?;
    update_group(logs, call, name, move |g| add_tags(g, tags)).await
}

pub(crate) async fn untag_log_group(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let name = req_str(&call.input, "logGroupName", logs_missing)?;
    let keys: Vec<String> = str_list(&call.input, "tags").into_iter().map(str::to_owned).collect();
    update_group(logs, call, name, move |g| {
        for key in &keys {
            g.tags.remove(key);
        }
        Ok(())
    })
    .await
}

pub(crate) async fn list_tags_log_group(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let name = req_str(&call.input, "logGroupName", logs_missing)?;
    let (_, group) = logs.existing_group(call, name).await?;
    Ok(Effect::read(json!({ "tags": group.tags })))
}

fn arn_group(call: &Call) -> Result<&str, AwsError> {
    let arn = req_str(&call.input, "resourceArn", logs_missing)?;
    model::group_from_arn(arn, &call.ctx.region, call.ctx.account_id())
        .ok_or_else(|| error::not_found(format!("The specified resource {arn} does not exist.")))
}

pub(crate) async fn tag_resource(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let name = arn_group(call)?;
    let tags = tags_of(&call.input, "tags")?;
    update_group(logs, call, name, move |g| add_tags(g, tags)).await
}

pub(crate) async fn untag_resource(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let name = arn_group(call)?;
    let keys: Vec<String> = str_list(&call.input, "tagKeys")
        .into_iter()
        .map(str::to_owned)
        .collect();
    update_group(logs, call, name, move |g| {
        for key in &keys {
            g.tags.remove(key);
        }
        Ok(())
    })
    .await
}

pub(crate) async fn list_tags_for_resource(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let name = arn_group(call)?;
    let (_, group) = logs.existing_group(call, name).await?;
    Ok(Effect::read(json!({ "tags": group.tags })))
}

pub(crate) async fn create_log_stream(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let group = req_str(&call.input, "logGroupName", logs_missing)?;
    let stream = req_str(&call.input, "logStreamName", logs_missing)?;
    if stream.contains(':') || stream.contains('*') {
        return Err(error::invalid("Log stream names cannot contain ':' or '*'."));
    }
    let (group_raw, _) = logs.existing_group(call, group).await?;
    if logs.stream(call, group, stream).await?.is_some() {
        return Err(error::already_exists("The specified log stream already exists"));
    }
    let record = StreamRecord {
        creation_time: now_millis(call.ctx.time),
        ..Default::default()
    };
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let key = model::stream_key(account, region, group, stream);
    let mut batch = WriteBatch::new();
    batch
        .expect(
            model::GROUPS,
            &model::group_key(account, region, group),
            Some(&group_raw),
        )
        .expect(model::STREAMS, &key, None)
        .put(model::STREAMS, &key, &serde_json::to_vec(&record).map_err(internal)?);
    Ok(Effect::write(json!({}), batch))
}

pub(crate) async fn delete_log_stream(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let group = req_str(&call.input, "logGroupName", logs_missing)?;
    let stream = req_str(&call.input, "logStreamName", logs_missing)?;
    logs.existing_group(call, group).await?;
    let (raw, _) = logs
        .stream(call, group, stream)
        .await?
        .ok_or_else(error::stream_not_found)?;
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let key = model::stream_key(account, region, group, stream);
    let mut batch = WriteBatch::new();
    batch
        .expect(model::STREAMS, &key, Some(&raw))
        .delete(model::STREAMS, &key);
    for (event, _) in logs
        .scan_all(model::EVENTS, &model::events_prefix(account, region, group, stream))
        .await?
    {
        batch.delete(model::EVENTS, &event);
    }
    Ok(Effect::write(json!({}), batch))
}

pub(crate) fn stream_output(call: &Call, group: &str, name: &str, stream: &StreamRecord) -> Value {
    let arn = model::group_arn(&call.ctx.region, call.ctx.account_id(), group);
    let mut out = json!({
        "logStreamName": name,
        "creationTime": stream.creation_time,
        "arn": format!("{arn}:log-stream:{name}"),
        "storedBytes": stream.stored_bytes,
        "uploadSequenceToken": stream.sequence_token(),
    });
    if let Some(t) = stream.first_event {
        out["firstEventTimestamp"] = json!(t);
    }
    if let Some(t) = stream.last_event {
        out["lastEventTimestamp"] = json!(t);
    }
    if let Some(t) = stream.last_ingestion {
        out["lastIngestionTime"] = json!(t);
    }
    out
}

/// Reads the stream name back out of a stream key.
pub(crate) fn stream_name_of(key: &[u8]) -> Option<String> {
    let mut reader = citadel_store::keys::KeyReader::new(key);
    reader.str().ok()?;
    reader.str().ok()?;
    reader.str().ok()?;
    reader.str().ok()
}

pub(crate) async fn describe_log_streams(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let group = logs.group_name(call)?.to_owned();
    logs.existing_group(call, &group).await?;
    let prefix = opt_str(&call.input, "logStreamNamePrefix").unwrap_or("");
    let order_by_time = opt_str(&call.input, "orderBy") == Some("LastEventTime");
    if order_by_time && !prefix.is_empty() {
        return Err(error::invalid(
            "Cannot order by LastEventTime with a logStreamNamePrefix.",
        ));
    }
    let descending = opt_bool(&call.input, "descending").unwrap_or(false);
    let limit = page_limit(&call.input, DESCRIBE_LIMIT)?;
    let offset = match opt_str(&call.input, "nextToken") {
        Some(token) => decode_token(token)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| error::invalid("The specified nextToken is invalid."))? as usize,
        None => 0,
    };
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let rows = logs
        .scan_all(model::STREAMS, &model::streams_prefix(account, region, &group, prefix))
        .await?;
    let mut streams: Vec<(String, StreamRecord)> = rows
        .iter()
        .filter_map(|(key, raw)| Some((stream_name_of(key)?, serde_json::from_slice(raw).ok()?)))
        .collect();
    if order_by_time {
        streams.sort_by_key(|(name, s)| (s.last_event.unwrap_or(i64::MIN), name.clone()));
    }
    if descending {
        streams.reverse();
    }
    let page: Vec<Value> = streams
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(name, s)| stream_output(call, &group, name, s))
        .collect();
    let mut output = json!({ "logStreams": page });
    if offset + limit < streams.len() {
        output["nextToken"] = json!(encode_token(&json!(offset + limit)));
    }
    Ok(Effect::read(output))
}

/// The metric filters of a group.
pub(crate) async fn group_filters(
    logs: &Logs,
    account: &str,
    region: &str,
    group: &str,
) -> Result<Vec<MetricFilterRecord>, AwsError> {
    Ok(logs
        .scan_all(
            model::METRIC_FILTERS,
            &model::group_events_prefix(account, region, group),
        )
        .await?
        .iter()
        .filter_map(|(_, raw)| serde_json::from_slice(raw).ok())
        .collect())
}
