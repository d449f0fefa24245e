//! Metric filters: `PutMetricFilter`, `DescribeMetricFilters`, `DeleteMetricFilter`,
//! `TestMetricFilter`, and the publication of metric values when `PutLogEvents` ingests events.

use crate::Logs;
use crate::error::{self, internal};
use crate::events::InputEvent;
use crate::groups::group_filters;
use crate::input::{decode_token, encode_token, logs_missing, now_millis, opt_i64, opt_str, req_str, str_list};
use crate::metrics::{self, MetricId, Point, Stats};
use crate::model::{self, MetricFilterRecord};
use crate::pattern::{FilterPattern, PatternFamily, json_path_value};
use citadel_core::{Call, Effect};
use citadel_store::WriteBatch;
use citadel_wire::AwsError;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The most metric filters per log group.
const MAX_FILTERS_PER_GROUP: usize = 100;

fn bad_pattern() -> AwsError {
    error::invalid("Invalid metric filter pattern")
}

/// Resolves a `metricValue` or dimension reference (`$.a.b`, `$field`) or literal for one event.
fn resolve(reference: &str, message: &str, extracted: &BTreeMap<String, String>) -> Option<String> {
    if reference.starts_with("$.") {
        return json_path_value(message, reference);
    }
    if reference.starts_with('$') {
        return extracted
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(reference))
            .map(|(_, v)| v.clone());
    }
    Some(reference.to_owned())
}

/// A compiled metric filter, ready to run over a batch.
pub struct CompiledFilter {
    pattern: FilterPattern,
    namespace: String,
    name: String,
    value: String,
    default_value: Option<f64>,
    dimensions: Vec<(String, String)>,
    unit: Option<String>,
}

impl CompiledFilter {
    /// Compiles a stored filter; `None` if its pattern no longer parses.
    pub fn new(record: &MetricFilterRecord) -> Option<Self> {
        let t = record.transformations.as_array()?.first()?;
        Some(Self {
            pattern: FilterPattern::parse(&record.filter_pattern).ok()?,
            namespace: t.get("metricNamespace")?.as_str()?.to_owned(),
            name: t.get("metricName")?.as_str()?.to_owned(),
            value: t.get("metricValue")?.as_str()?.to_owned(),
            default_value: t.get("defaultValue").and_then(Value::as_f64),
            dimensions: t
                .get("dimensions")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default(),
            unit: t.get("unit").and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// The datapoints a batch of events produces: one per (dimension set, minute), plus
    /// `defaultValue` at the batch's last timestamp when nothing matched.
    pub fn points(&self, events: &[InputEvent]) -> Vec<Point> {
        let mut buckets: BTreeMap<(Vec<(String, String)>, i64), Stats> = BTreeMap::new();
        for event in events {
            let Some(extracted) = self.pattern.match_extract(&event.message) else {
                continue;
            };
            let Some(value) =
                resolve(&self.value, &event.message, &extracted).and_then(|v| v.trim().parse::<f64>().ok())
            else {
                continue;
            };
            let mut dims = Vec::with_capacity(self.dimensions.len());
            for (name, reference) in &self.dimensions {
                if let Some(v) = resolve(reference, &event.message, &extracted) {
                    dims.push((name.clone(), v));
                }
            }
            if dims.len() != self.dimensions.len() {
                continue;
            }
            let minute = event.timestamp.div_euclid(60_000) * 60_000;
            let entry = buckets.entry((dims, minute)).or_insert(Stats {
                count: 0.0,
                sum: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
            });
            entry.merge(&Stats::one(value));
        }
        if buckets.is_empty()
            && let (Some(default), Some(last)) = (self.default_value, events.last())
        {
            buckets.insert((Vec::new(), last.timestamp), Stats::one(default));
        }
        buckets
            .into_iter()
            .map(|((dims, timestamp), stats)| Point {
                metric: MetricId::new(&self.namespace, &self.name, dims),
                timestamp,
                stats,
                unit: self.unit.clone(),
            })
            .collect()
    }
}

/// Runs the group's metric filters over accepted events and publishes what they produce.
pub(crate) async fn publish_matches(
    logs: &Logs,
    call: &Call,
    group: &str,
    events: &[InputEvent],
    batch: &mut WriteBatch,
) -> Result<(), AwsError> {
    if events.is_empty() {
        return Ok(());
    }
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let filters = group_filters(logs, account, region, group).await?;
    let mut points = Vec::new();
    for record in &filters {
        if let Some(filter) = CompiledFilter::new(record) {
            points.extend(filter.points(events));
        }
    }
    metrics::publish(
        logs.store.as_ref(),
        account,
        region,
        &points,
        now_millis(call.ctx.time),
        &call.ctx.request_id,
        batch,
    )
    .await
}

pub(crate) async fn put_metric_filter(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let group = req_str(&call.input, "logGroupName", logs_missing)?;
    let name = req_str(&call.input, "filterName", logs_missing)?;
    let pattern_text = req_str(&call.input, "filterPattern", logs_missing)?;
    let pattern = FilterPattern::parse(pattern_text).map_err(|_| bad_pattern())?;
    let transformations = call
        .input
        .get("metricTransformations")
        .cloned()
        .ok_or_else(|| logs_missing("metricTransformations"))?;
    let Some([t]) = transformations.as_array().map(Vec::as_slice) else {
        return Err(error::invalid("Exactly one metric transformation is required."));
    };
    for member in ["metricName", "metricNamespace", "metricValue"] {
        if t.get(member).and_then(Value::as_str).is_none() {
            return Err(logs_missing(member));
        }
    }
    let value = t.get("metricValue").and_then(Value::as_str).unwrap_or("");
    if !value.starts_with('$') && value.trim().parse::<f64>().is_err() {
        return Err(error::invalid(format!("Invalid metric value: {value}")));
    }
    let dimensions = t.get("dimensions").and_then(Value::as_object);
    if let Some(dims) = dimensions {
        if dims.len() > 3 {
            return Err(error::invalid("A metric transformation can have at most 3 dimensions."));
        }
        if t.get("defaultValue").is_some() && !dims.is_empty() {
            return Err(error::invalid("Cannot set a default value together with dimensions."));
        }
        if !dims.is_empty() && !matches!(pattern.family(), PatternFamily::Json | PatternFamily::Delimited) {
            return Err(error::invalid(
                "Dimensions are only supported for JSON and space-delimited filter patterns.",
            ));
        }
    }
    let (_, _) = logs.existing_group(call, group).await?;
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let existing = group_filters(logs, account, region, group).await?;
    let key = model::filter_key(account, region, group, name);
    let previous = logs.store.get(model::METRIC_FILTERS, &key).await.map_err(internal)?;
    if previous.is_none() && existing.len() >= MAX_FILTERS_PER_GROUP {
        return Err(error::limit("Resource limit exceeded."));
    }
    let record = MetricFilterRecord {
        filter_name: name.to_owned(),
        filter_pattern: pattern_text.to_owned(),
        transformations,
        creation_time: now_millis(call.ctx.time),
    };
    let mut batch = WriteBatch::new();
    batch.expect(model::METRIC_FILTERS, &key, previous.as_deref()).put(
        model::METRIC_FILTERS,
        &key,
        &serde_json::to_vec(&record).map_err(internal)?,
    );
    Ok(Effect::write(json!({}), batch))
}

pub(crate) async fn delete_metric_filter(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let group = req_str(&call.input, "logGroupName", logs_missing)?;
    let name = req_str(&call.input, "filterName", logs_missing)?;
    logs.existing_group(call, group).await?;
    let key = model::filter_key(call.ctx.account_id(), &call.ctx.region, group, name);
    let Some(raw) = logs.store.get(model::METRIC_FILTERS, &key).await.map_err(internal)? else {
        return Err(error::not_found("The specified metric filter does not exist."));
    };
    let mut batch = WriteBatch::new();
    batch
        .expect(model::METRIC_FILTERS, &key, Some(&raw))
        .delete(model::METRIC_FILTERS, &key);
    Ok(Effect::write(json!({}), batch))
}

pub(crate) async fn describe_metric_filters(logs: &Logs, call: &Call) -> Result<Effect, AwsError> {
    let (account, region) = (call.ctx.account_id(), call.ctx.region.as_str());
    let group = opt_str(&call.input, "logGroupName");
    let name_prefix = opt_str(&call.input, "filterNamePrefix").unwrap_or("");
    if !name_prefix.is_empty() && group.is_none() {
        return Err(error::invalid("filterNamePrefix requires logGroupName."));
    }
    let metric_name = opt_str(&call.input, "metricName");
    let metric_namespace = opt_str(&call.input, "metricNamespace");
    if metric_name.is_some() != metric_namespace.is_some() {
        return Err(error::invalid("metricName and metricNamespace must be given together."));
    }
    let limit = opt_i64(&call.input, "limit").unwrap_or(50).clamp(1, 50) as usize;
    let offset = match opt_str(&call.input, "nextToken") {
        Some(t) => decode_token(t)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| error::invalid("The specified nextToken is invalid."))? as usize,
        None => 0,
    };
    let prefix = match group {
        Some(g) => {
            logs.existing_group(call, g).await?;
            model::filters_prefix(account, region, g, name_prefix)
        }
        None => model::groups_prefix(account, region, ""),
    };
    let rows = logs.scan_all(model::METRIC_FILTERS, &prefix).await?;
    let mut all = Vec::new();
    for (key, raw) in &rows {
        let Ok(record) = serde_json::from_slice::<MetricFilterRecord>(raw) else {
            continue;
        };
        let mut reader = citadel_store::keys::KeyReader::new(key);
        let (Ok(_), Ok(_), Ok(group_name)) = (reader.str(), reader.str(), reader.str()) else {
            continue;
        };
        let t = record.transformations.as_array().and_then(|a| a.first());
        if let (Some(n), Some(ns)) = (metric_name, metric_namespace) {
            let hit = t.is_some_and(|t| {
                t.get("metricName").and_then(Value::as_str) == Some(n)
                    && t.get("metricNamespace").and_then(Value::as_str) == Some(ns)
            });
            if !hit {
                continue;
            }
        }
        all.push(json!({
            "filterName": record.filter_name,
            "filterPattern": record.filter_pattern,
            "metricTransformations": record.transformations,
            "creationTime": record.creation_time,
            "logGroupName": group_name,
        }));
    }
    let page: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
    let mut output = json!({ "metricFilters": page });
    if offset + limit < all.len() {
        output["nextToken"] = json!(encode_token(&json!(offset + limit)));
    }
    Ok(Effect::read(output))
}

pub(crate) fn test_metric_filter(call: &Call) -> Result<Effect, AwsError> {
    let pattern_text = req_str(&call.input, "filterPattern", logs_missing)?;
    let pattern = FilterPattern::parse(pattern_text).map_err(|_| bad_pattern())?;
    let messages = str_list(&call.input, "logEventMessages");
    if messages.is_empty() || messages.len() > 50 {
        return Err(error::invalid("logEventMessages must hold between 1 and 50 messages."));
    }
    let matches: Vec<Value> = messages
        .iter()
        .enumerate()
        .filter_map(|(i, message)| {
            let extracted = pattern.match_extract(message)?;
            Some(json!({ "eventNumber": i + 1, "eventMessage": message, "extractedValues": extracted }))
        })
        .collect();
    Ok(Effect::read(json!({ "matches": matches })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pattern: &str, transformation: Value) -> MetricFilterRecord {
        MetricFilterRecord {
            filter_name: "f".into(),
            filter_pattern: pattern.into(),
            transformations: json!([transformation]),
            creation_time: 0,
        }
    }

    fn ev(ts: i64, message: &str) -> InputEvent {
        InputEvent {
            timestamp: ts,
            message: message.into(),
        }
    }

    #[test]
    #[allow(clippy::type_complexity)] // A table of (input, events, expected) tuples reads best inline.
    fn metric_values_from_literals_json_fields_and_delimited_fields() {
        let minute = 60_000;
        let cases: Vec<(MetricFilterRecord, Vec<InputEvent>, Vec<(i64, f64, f64)>)> = vec![
            (
                record(
                    r#"{ $.errorCode = "AccessDenied*" }"#,
                    json!({"metricName": "D", "metricNamespace": "CIS", "metricValue": "1"}),
                ),
                vec![
                    ev(0, r#"{"errorCode":"AccessDenied"}"#),
                    ev(1, r#"{"errorCode":"x"}"#),
                    ev(2, r#"{"errorCode":"AccessDeniedException"}"#),
                ],
                vec![(0, 2.0, 2.0)],
            ),
            (
                record(
                    "{ $.latency > 0 }",
                    json!({"metricName": "L", "metricNamespace": "App", "metricValue": "$.latency"}),
                ),
                vec![
                    ev(0, r#"{"latency":80}"#),
                    ev(minute, r#"{"latency":20}"#),
                    ev(minute + 1, r#"{"latency":30}"#),
                ],
                vec![(0, 1.0, 80.0), (minute, 2.0, 50.0)],
            ),
            (
                record(
                    "[ip, status, bytes]",
                    json!({"metricName": "B", "metricNamespace": "Web", "metricValue": "$bytes"}),
                ),
                vec![ev(5, "1.2.3.4 200 1000"), ev(6, "1.2.3.4 200 x")],
                vec![(0, 1.0, 1000.0)],
            ),
            (
                record(
                    "ERROR",
                    json!({"metricName": "E", "metricNamespace": "App", "metricValue": "1", "defaultValue": 0.0}),
                ),
                vec![ev(7, "INFO ok"), ev(9, "INFO fine")],
                vec![(9, 1.0, 0.0)],
            ),
        ];
        for (record, events, want) in cases {
            let filter = CompiledFilter::new(&record).unwrap();
            let got: Vec<(i64, f64, f64)> = filter
                .points(&events)
                .iter()
                .map(|p| (p.timestamp, p.stats.count, p.stats.sum))
                .collect();
            assert_eq!(got, want, "{}", record.filter_pattern);
        }
    }

    #[test]
    fn dimensions_come_from_the_event() {
        let filter = CompiledFilter::new(&record(
            "{ $.eventName = * }",
            json!({"metricName": "N", "metricNamespace": "CT", "metricValue": "1", "dimensions": {"Event": "$.eventName"}}),
        ))
        .unwrap();
        let points = filter.points(&[
            ev(0, r#"{"eventName":"A"}"#),
            ev(0, r#"{"eventName":"B"}"#),
            ev(0, r#"{"eventName":"A"}"#),
        ]);
        let got: Vec<(Vec<(String, String)>, f64)> = points
            .iter()
            .map(|p| (p.metric.dimensions.clone(), p.stats.sum))
            .collect();
        assert_eq!(
            got,
            vec![
                (vec![("Event".into(), "A".into())], 2.0),
                (vec![("Event".into(), "B".into())], 1.0)
            ]
        );
    }
}
