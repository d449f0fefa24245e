//! CloudWatch handlers: metric data, statistics, metric listing and metric alarms.

use crate::CloudWatch;
use crate::error::{self, internal};
use crate::input::{decode_token, encode_token, now_millis, opt_f64, opt_i64, opt_str, str_list};
use crate::metrics::{
    self, ALARMS, AlarmRule, Comparison, HISTORY, METRICS, MetricId, Point, STATISTICS, Stats, alarm_key, alarm_metric,
    alarms_prefix, dimensions_of, evaluate, seconds,
};
use citadel_core::{Call, Effect};
use citadel_store::WriteBatch;
use citadel_store::keys::prefix_end;
use citadel_wire::AwsError;
use serde_json::{Value, json};

fn req<'a>(input: &'a Value, name: &str) -> Result<&'a str, AwsError> {
    opt_str(input, name).ok_or_else(|| error::cw_missing(name))
}

/// Epoch milliseconds of a timestamp member (the codec gives epoch seconds).
fn millis(input: &Value, name: &str) -> Option<i64> {
    opt_f64(input, name).map(|s| (s * 1000.0).round() as i64)
}

pub(crate) async fn put_metric_data(cw: &CloudWatch, call: &Call) -> Result<Effect, AwsError> {
    let namespace = req(&call.input, "Namespace")?;
    metrics::check_namespace(namespace)?;
    let now = now_millis(call.ctx.time);
    let data = call
        .input
        .get("MetricData")
        .and_then(Value::as_array)
        .ok_or_else(|| error::cw_missing("MetricData"))?;
    let mut points = Vec::new();
    for datum in data {
        let name = req(datum, "MetricName")?;
        let metric = MetricId::new(namespace, name, dimensions_of(datum.get("Dimensions")));
        let timestamp = millis(datum, "Timestamp").unwrap_or(now);
        let unit = opt_str(datum, "Unit").map(str::to_owned);
        let mut stats: Option<Stats> = None;
        let mut add = |s: Stats| match &mut stats {
            Some(existing) => existing.merge(&s),
            None => stats = Some(s),
        };
        if let Some(v) = opt_f64(datum, "Value") {
            add(Stats::one(v));
        }
        if let Some(sv) = datum.get("StatisticValues") {
            let (Some(count), Some(sum), Some(min), Some(max)) = (
                opt_f64(sv, "SampleCount"),
                opt_f64(sv, "Sum"),
                opt_f64(sv, "Minimum"),
                opt_f64(sv, "Maximum"),
            ) else {
                return Err(error::cw_missing("StatisticValues"));
            };
            add(Stats { count, sum, min, max });
        }
        if let Some(values) = datum.get("Values").and_then(Value::as_array) {
            let counts = datum.get("Counts").and_then(Value::as_array);
            if counts.is_some_and(|c| c.len() != values.len()) {
                return Err(error::cw_invalid(
                    "The parameters Values and Counts must be of the same size.",
                ));
            }
            for (i, v) in values.iter().enumerate() {
                let Some(v) = v.as_f64() else { continue };
                let n = counts.and_then(|c| c.get(i)).and_then(Value::as_f64).unwrap_or(1.0);
                add(Stats {
                    count: n,
                    sum: v * n,
                    min: v,
                    max: v,
                });
            }
        }
        let Some(stats) = stats else {
            return Err(error::cw_missing("Value"));
        };
        points.push(Point {
            metric,
            timestamp,
            stats,
            unit,
        });
    }
    let mut batch = WriteBatch::new();
    metrics::publish(
        cw.store.as_ref(),
        call.ctx.account_id(),
        &call.ctx.region,
        &points,
        now,
        &call.ctx.request_id,
        &mut batch,
    )
    .await?;
    Ok(Effect::write(json!({}), batch))
}

pub(crate) async fn get_metric_statistics(cw: &CloudWatch, call: &Call) -> Result<Effect, AwsError> {
    let input = &call.input;
    let namespace = req(input, "Namespace")?;
    let name = req(input, "MetricName")?;
    let start = millis(input, "StartTime").ok_or_else(|| error::cw_missing("StartTime"))?;
    let end = millis(input, "EndTime").ok_or_else(|| error::cw_missing("EndTime"))?;
    let period = opt_i64(input, "Period").ok_or_else(|| error::cw_missing("Period"))?;
    if period < 1 || (period >= 60 && period % 60 != 0) {
        return Err(error::cw_invalid("The parameter Period must be a multiple of 60."));
    }
    if end <= start {
        return Err(error::cw_invalid(
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    let statistics = str_list(input, "Statistics");
    if statistics.is_empty() {
        return Err(error::cw_missing("Statistics"));
    }
    if let Some(bad) = statistics.iter().find(|s| !STATISTICS.contains(s)) {
        return Err(error::cw_invalid(format!(
            "The parameter Statistics has an invalid value {bad}."
        )));
    }
    let unit_filter = opt_str(input, "Unit");
    let metric = MetricId::new(namespace, name, dimensions_of(input.get("Dimensions")));
    let points = metrics::read_points(
        cw.store.as_ref(),
        call.ctx.account_id(),
        &call.ctx.region,
        &metric,
        start,
        Some(end),
    )
    .await?;
    let period_ms = period * 1000;
    let mut buckets: std::collections::BTreeMap<i64, (Stats, Option<String>)> = std::collections::BTreeMap::new();
    for (ts, stats, unit) in points {
        if unit_filter.is_some_and(|u| unit.as_deref() != Some(u)) {
            continue;
        }
        let bucket = start + (ts - start).div_euclid(period_ms) * period_ms;
        buckets
            .entry(bucket)
            .and_modify(|(s, _)| s.merge(&stats))
            .or_insert((stats, unit));
    }
    let datapoints: Vec<Value> = buckets
        .iter()
        .map(|(bucket, (stats, unit))| {
            let mut dp =
                json!({ "Timestamp": seconds(*bucket), "Unit": unit.clone().unwrap_or_else(|| "None".into()) });
            for s in &statistics {
                if let Some(v) = stats.statistic(s) {
                    dp[*s] = json!(v);
                }
            }
            dp
        })
        .collect();
    Ok(Effect::read(json!({ "Label": name, "Datapoints": datapoints })))
}

pub(crate) async fn list_metrics(cw: &CloudWatch, call: &Call) -> Result<Effect, AwsError> {
    let input = &call.input;
    let namespace = opt_str(input, "Namespace");
    let name = opt_str(input, "MetricName");
    let filters: Vec<(String, Option<String>)> = input
        .get("Dimensions")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|d| {
                    Some((
                        d.get("Name")?.as_str()?.to_owned(),
                        d.get("Value").and_then(Value::as_str).map(str::to_owned),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let offset = match opt_str(input, "NextToken") {
        Some(t) => decode_token(t)
            .and_then(|v| v.as_u64())
            .ok_or_else(error::cw_bad_token)? as usize,
        None => 0,
    };
    let prefix = alarms_prefix(call.ctx.account_id(), &call.ctx.region, "");
    let end = prefix_end(&prefix);
    let rows = cw
        .store
        .scan(METRICS, &prefix, end.as_deref(), usize::MAX, false)
        .await
        .map_err(internal)?;
    let all: Vec<Value> = rows
        .iter()
        .filter_map(|(_, raw)| serde_json::from_slice::<Value>(raw).ok())
        .filter(|m| namespace.is_none_or(|ns| m.get("Namespace").and_then(Value::as_str) == Some(ns)))
        .filter(|m| name.is_none_or(|n| m.get("MetricName").and_then(Value::as_str) == Some(n)))
        .filter(|m| {
            let dims = dimensions_of(m.get("Dimensions"));
            filters.iter().all(|(fname, fvalue)| {
                dims.iter()
                    .any(|(n, v)| n == fname && fvalue.as_ref().is_none_or(|fv| fv == v))
            })
        })
        .collect();
    const PAGE: usize = 500;
    let page: Vec<Value> = all.iter().skip(offset).take(PAGE).cloned().collect();
    let mut output = json!({ "Metrics": page });
    if offset + PAGE < all.len() {
        output["NextToken"] = json!(encode_token(&json!(offset + PAGE)));
    }
    Ok(Effect::read(output))
}

pub(crate) async fn put_metric_alarm(cw: &CloudWatch, call: &Call) -> Result<Effect, AwsError> {
    let input = &call.input;
    let name = req(input, "AlarmName")?;
    if input.get("Metrics").is_some() {
        return Err(error::cw_invalid(
            "Citadel supports single-metric alarms only; Metrics is not supported.",
        ));
    }
    let namespace = req(input, "Namespace")?;
    let metric_name = req(input, "MetricName")?;
    let statistic = opt_str(input, "Statistic").ok_or_else(|| error::cw_missing("Statistic"))?;
    if !STATISTICS.contains(&statistic) {
        return Err(error::cw_invalid(format!("Invalid statistic {statistic}.")));
    }
    let period = opt_i64(input, "Period").ok_or_else(|| error::cw_missing("Period"))?;
    if !(period == 10 || period == 30 || (period >= 60 && period % 60 == 0)) {
        return Err(error::cw_invalid("Period must be 10, 30 or a multiple of 60."));
    }
    let evaluation_periods =
        opt_i64(input, "EvaluationPeriods").ok_or_else(|| error::cw_missing("EvaluationPeriods"))?;
    if evaluation_periods < 1 {
        return Err(error::cw_invalid("EvaluationPeriods must be at least 1."));
    }
    let datapoints = opt_i64(input, "DatapointsToAlarm").unwrap_or(evaluation_periods);
    if datapoints < 1 || datapoints > evaluation_periods {
        return Err(error::cw_invalid(
            "DatapointsToAlarm must be between 1 and EvaluationPeriods.",
        ));
    }
    let threshold = opt_f64(input, "Threshold").ok_or_else(|| error::cw_missing("Threshold"))?;
    let comparison = req(input, "ComparisonOperator")?;
    if Comparison::parse(comparison).is_none() {
        return Err(error::cw_invalid(format!(
            "Unsupported ComparisonOperator {comparison}."
        )));
    }
    let treat_missing = opt_str(input, "TreatMissingData").unwrap_or("missing");
    if !["missing", "notBreaching", "breaching", "ignore"].contains(&treat_missing) {
        return Err(error::cw_invalid(format!("Invalid TreatMissingData {treat_missing}.")));
    }
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let now = now_millis(call.ctx.time);
    let key = alarm_key(account, region, name);
    let previous = cw.store.get(ALARMS, &key).await.map_err(internal)?;
    let old: Option<Value> = previous.as_deref().and_then(|raw| serde_json::from_slice(raw).ok());
    let mut alarm = json!({
        "AlarmName": name,
        "AlarmArn": format!("arn:aws:cloudwatch:{region}:{account}:alarm:{name}"),
        "AlarmConfigurationUpdatedTimestamp": seconds(now),
        "ActionsEnabled": input.get("ActionsEnabled").and_then(Value::as_bool).unwrap_or(true),
        "OKActions": str_list(input, "OKActions"),
        "AlarmActions": str_list(input, "AlarmActions"),
        "InsufficientDataActions": str_list(input, "InsufficientDataActions"),
        "StateValue": "INSUFFICIENT_DATA",
        "StateReason": "Unchecked: Initial alarm creation",
        "StateUpdatedTimestamp": seconds(now),
        "StateTransitionedTimestamp": seconds(now),
        "MetricName": metric_name,
        "Namespace": namespace,
        "Statistic": statistic,
        "Dimensions": input.get("Dimensions").cloned().unwrap_or_else(|| json!([])),
        "Period": period,
        "EvaluationPeriods": evaluation_periods,
        "DatapointsToAlarm": datapoints,
        "Threshold": threshold,
        "ComparisonOperator": comparison,
        "TreatMissingData": treat_missing,
    });
    for member in ["AlarmDescription", "Unit"] {
        if let Some(v) = input.get(member) {
            alarm[member] = v.clone();
        }
    }
    // An update keeps the current state until the next evaluation changes it.
    if let Some(old) = &old {
        for member in [
            "StateValue",
            "StateReason",
            "StateUpdatedTimestamp",
            "StateTransitionedTimestamp",
        ] {
            if let Some(v) = old.get(member) {
                alarm[member] = v.clone();
            }
        }
    }
    let mut batch = WriteBatch::new();
    let unique = &call.ctx.request_id;
    let summary = if old.is_some() {
        format!("Alarm \"{name}\" updated")
    } else {
        format!("Alarm \"{name}\" created")
    };
    let item = metrics::history_item(
        name,
        now,
        "ConfigurationUpdate",
        &summary,
        json!({"type": "Update", "version": "1.0"}),
    );
    metrics::put_history(
        &mut batch,
        account,
        region,
        name,
        now,
        &format!("{unique}-config"),
        &item,
    );
    evaluate_into(cw, &mut alarm, now, account, region, unique, &mut batch).await?;
    batch
        .expect(ALARMS, &key, previous.as_deref())
        .put(ALARMS, &key, alarm.to_string().as_bytes());
    Ok(Effect::write(json!({}), batch))
}

/// Evaluates an alarm at `now` from stored data and applies the outcome; returns whether it changed.
async fn evaluate_into(
    cw: &CloudWatch,
    alarm: &mut Value,
    now: i64,
    account: &str,
    region: &str,
    unique: &str,
    batch: &mut WriteBatch,
) -> Result<bool, AwsError> {
    let (Some(rule), Some(metric)) = (AlarmRule::from_alarm(alarm), alarm_metric(alarm)) else {
        return Ok(false);
    };
    // A state set by SetAlarmState holds until the next period boundary, as in AWS.
    if alarm.get("HoldUntil").and_then(Value::as_i64).is_some_and(|t| now < t) {
        return Ok(false);
    }
    let points: Vec<(i64, Stats)> = metrics::read_points(
        cw.store.as_ref(),
        account,
        region,
        &metric,
        rule.window_start(now),
        None,
    )
    .await?
    .into_iter()
    .map(|(t, s, _)| (t, s))
    .collect();
    let current = alarm.get("StateValue").and_then(Value::as_str).unwrap_or("").to_owned();
    let evaluation = evaluate(&rule, &points, now, &current);
    Ok(metrics::apply_evaluation(
        alarm,
        &evaluation,
        now,
        account,
        region,
        unique,
        batch,
    ))
}

pub(crate) async fn describe_alarms(cw: &CloudWatch, call: &Call) -> Result<Effect, AwsError> {
    let input = &call.input;
    let names = str_list(input, "AlarmNames");
    let prefix = opt_str(input, "AlarmNamePrefix").unwrap_or("");
    if !names.is_empty() && !prefix.is_empty() {
        return Err(error::cw_invalid(
            "AlarmNames and AlarmNamePrefix cannot be used together.",
        ));
    }
    let state = opt_str(input, "StateValue");
    let action_prefix = opt_str(input, "ActionPrefix");
    let max = opt_i64(input, "MaxRecords").unwrap_or(50).clamp(1, 100) as usize;
    let offset = match opt_str(input, "NextToken") {
        Some(t) => decode_token(t)
            .and_then(|v| v.as_u64())
            .ok_or_else(error::cw_bad_token)? as usize,
        None => 0,
    };
    let types = str_list(input, "AlarmTypes");
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let now = now_millis(call.ctx.time);
    let scan_prefix = alarms_prefix(account, region, prefix);
    let end = prefix_end(&scan_prefix);
    let rows = cw
        .store
        .scan(ALARMS, &scan_prefix, end.as_deref(), usize::MAX, false)
        .await
        .map_err(internal)?;
    let mut batch = WriteBatch::new();
    let mut all = Vec::new();
    for (index, (key, raw)) in rows.iter().enumerate() {
        let Ok(mut alarm) = serde_json::from_slice::<Value>(raw) else {
            continue;
        };
        let name = alarm.get("AlarmName").and_then(Value::as_str).unwrap_or("").to_owned();
        if !names.is_empty() && !names.contains(&name.as_str()) {
            continue;
        }
        let unique = format!("{}-{index}", call.ctx.request_id);
        if evaluate_into(cw, &mut alarm, now, account, region, &unique, &mut batch).await? {
            batch
                .expect(ALARMS, key, Some(raw))
                .put(ALARMS, key, alarm.to_string().as_bytes());
        }
        if state.is_some_and(|s| alarm.get("StateValue").and_then(Value::as_str) != Some(s)) {
            continue;
        }
        if let Some(p) = action_prefix {
            let hit = ["AlarmActions", "OKActions", "InsufficientDataActions"]
                .iter()
                .any(|m| {
                    alarm
                        .get(*m)
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.iter().any(|v| v.as_str().is_some_and(|s| s.starts_with(p))))
                });
            if !hit {
                continue;
            }
        }
        all.push(alarm);
    }
    let metric_alarms = types.is_empty() || types.contains(&"MetricAlarm");
    let page: Vec<Value> = if metric_alarms {
        all.iter().skip(offset).take(max).cloned().collect()
    } else {
        Vec::new()
    };
    let mut output = json!({ "MetricAlarms": page, "CompositeAlarms": [] });
    if metric_alarms && offset + max < all.len() {
        output["NextToken"] = json!(encode_token(&json!(offset + max)));
    }
    Ok(Effect {
        output,
        batch,
        resources: Vec::new(),
    })
}

pub(crate) async fn delete_alarms(cw: &CloudWatch, call: &Call) -> Result<Effect, AwsError> {
    let names = str_list(&call.input, "AlarmNames");
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let mut batch = WriteBatch::new();
    let mut missing = Vec::new();
    for name in &names {
        let key = alarm_key(account, region, name);
        match cw.store.get(ALARMS, &key).await.map_err(internal)? {
            Some(raw) => {
                batch.expect(ALARMS, &key, Some(&raw)).delete(ALARMS, &key);
            }
            None => missing.push(*name),
        }
    }
    if !missing.is_empty() {
        return Err(error::cw_not_found(format!(
            "{} alarm(s) not found: {}",
            missing.len(),
            missing.join(", ")
        )));
    }
    Ok(Effect::write(json!({}), batch))
}

pub(crate) async fn set_alarm_state(cw: &CloudWatch, call: &Call) -> Result<Effect, AwsError> {
    let input = &call.input;
    let name = req(input, "AlarmName")?;
    let state = req(input, "StateValue")?;
    let state: &'static str = match state {
        "OK" => "OK",
        "ALARM" => "ALARM",
        "INSUFFICIENT_DATA" => "INSUFFICIENT_DATA",
        other => return Err(error::cw_invalid(format!("Invalid state value {other}."))),
    };
    let reason = req(input, "StateReason")?;
    if let Some(data) = opt_str(input, "StateReasonData")
        && serde_json::from_str::<Value>(data).is_err()
    {
        return Err(AwsError::new(
            "InvalidFormat",
            400,
            "StateReasonData is not valid JSON.",
        ));
    }
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let key = alarm_key(account, region, name);
    let raw = cw
        .store
        .get(ALARMS, &key)
        .await
        .map_err(internal)?
        .ok_or_else(|| error::cw_not_found(format!("Alarm {name} not found")))?;
    let mut alarm: Value = serde_json::from_slice(&raw).map_err(internal)?;
    let now = now_millis(call.ctx.time);
    let period = alarm.get("Period").and_then(Value::as_i64).unwrap_or(60).max(1) * 1000;
    alarm["HoldUntil"] = json!((now.div_euclid(period) + 1) * period);
    let mut batch = WriteBatch::new();
    let evaluation = metrics::Evaluation {
        state,
        reason: reason.to_owned(),
    };
    metrics::apply_evaluation(
        &mut alarm,
        &evaluation,
        now,
        account,
        region,
        &call.ctx.request_id,
        &mut batch,
    );
    batch
        .expect(ALARMS, &key, Some(&raw))
        .put(ALARMS, &key, alarm.to_string().as_bytes());
    Ok(Effect::write(json!({}), batch))
}

pub(crate) async fn describe_alarm_history(cw: &CloudWatch, call: &Call) -> Result<Effect, AwsError> {
    let input = &call.input;
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let prefix = match opt_str(input, "AlarmName") {
        Some(name) => citadel_store::keys::Key::new()
            .str(account)
            .str(region)
            .str(name)
            .finish(),
        None => alarms_prefix(account, region, ""),
    };
    let kind = opt_str(input, "HistoryItemType");
    let start = millis(input, "StartDate");
    let end_date = millis(input, "EndDate");
    let max = opt_i64(input, "MaxRecords").unwrap_or(100).clamp(1, 100) as usize;
    let ascending = opt_str(input, "ScanBy") == Some("TimestampAscending");
    let offset = match opt_str(input, "NextToken") {
        Some(t) => decode_token(t)
            .and_then(|v| v.as_u64())
            .ok_or_else(error::cw_bad_token)? as usize,
        None => 0,
    };
    let end = prefix_end(&prefix);
    let rows = cw
        .store
        .scan(HISTORY, &prefix, end.as_deref(), usize::MAX, false)
        .await
        .map_err(internal)?;
    let mut items: Vec<Value> = rows
        .iter()
        .filter_map(|(_, raw)| serde_json::from_slice::<Value>(raw).ok())
        .filter(|item| kind.is_none_or(|k| item.get("HistoryItemType").and_then(Value::as_str) == Some(k)))
        .filter(|item| {
            let ts = item
                .get("Timestamp")
                .and_then(Value::as_f64)
                .map_or(0, |s| (s * 1000.0) as i64);
            start.is_none_or(|s| ts >= s) && end_date.is_none_or(|e| ts <= e)
        })
        .collect();
    items.sort_by(|a, b| {
        let ta = a.get("Timestamp").and_then(Value::as_f64).unwrap_or(0.0);
        let tb = b.get("Timestamp").and_then(Value::as_f64).unwrap_or(0.0);
        ta.total_cmp(&tb)
    });
    if !ascending {
        items.reverse();
    }
    let page: Vec<Value> = items.iter().skip(offset).take(max).cloned().collect();
    let mut output = json!({ "AlarmHistoryItems": page });
    if offset + max < items.len() {
        output["NextToken"] = json!(encode_token(&json!(offset + max)));
    }
    Ok(Effect::read(output))
}
