//! CloudWatch metrics and metric alarms: datapoint storage, statistics, and alarm evaluation.
//!
//! Datapoints are stored as pre-aggregated statistic sets (count, sum, min, max), which is what
//! every `PutMetricData` form (`Value`, `Values`/`Counts`, `StatisticValues`) and every metric
//! filter publication reduces to, and from which all five standard statistics follow.
//!
//! Alarms are evaluated when data arrives for their metric (in the same batch as the data, so the
//! state change is atomic with the datapoint) and again when `DescribeAlarms` reads them, both at
//! the request's time from the injected clock; there is no background evaluator.
//! The evaluation windows are the `EvaluationPeriods` periods ending with the period that contains
//! "now", so a datapoint counts as soon as it arrives. [`evaluate`] is pure and unit-tested.

use crate::error::{self, internal};
use citadel_store::keys::{Key, prefix_end};
use citadel_store::{Store, WriteBatch};
use citadel_wire::AwsError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Datapoints: (account, region, namespace, name, dimensions, timestamp ms, unique) -> [`Stats`] JSON.
pub const DATA: &str = "cw.data";
/// Known metrics: (account, region, namespace, name, dimensions) -> `Metric` shape JSON.
pub const METRICS: &str = "cw.metrics";
/// Alarms: (account, region, alarm name) -> `MetricAlarm` shape JSON (plus internal members).
pub const ALARMS: &str = "cw.alarms";
/// Alarm history: (account, region, alarm name, timestamp ms, unique) -> `AlarmHistoryItem` JSON.
pub const HISTORY: &str = "cw.history";

/// A metric's identity: namespace, name and dimensions sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MetricId {
    /// The namespace.
    pub namespace: String,
    /// The metric name.
    pub name: String,
    /// Dimensions, sorted by name.
    pub dimensions: Vec<(String, String)>,
}

impl MetricId {
    /// A metric id; sorts the dimensions.
    pub fn new(namespace: &str, name: &str, mut dimensions: Vec<(String, String)>) -> Self {
        dimensions.sort();
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            dimensions,
        }
    }

    fn dims_key(&self) -> String {
        serde_json::to_string(&self.dimensions).unwrap_or_default()
    }

    fn prefix(&self, account: &str, region: &str) -> Vec<u8> {
        Key::new()
            .str(account)
            .str(region)
            .str(&self.namespace)
            .str(&self.name)
            .str(&self.dims_key())
            .finish()
    }

    fn dimensions_json(&self) -> Value {
        Value::Array(
            self.dimensions
                .iter()
                .map(|(n, v)| json!({"Name": n, "Value": v}))
                .collect(),
        )
    }
}

/// Reads `[{Name, Value}]` dimensions.
pub fn dimensions_of(value: Option<&Value>) -> Vec<(String, String)> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|d| {
                    Some((
                        d.get("Name")?.as_str()?.to_owned(),
                        d.get("Value").and_then(Value::as_str).unwrap_or("").to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A statistic set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of samples.
    pub count: f64,
    /// Sum of samples.
    pub sum: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
}

impl Stats {
    /// The statistics of one sample.
    pub fn one(value: f64) -> Self {
        Self {
            count: 1.0,
            sum: value,
            min: value,
            max: value,
        }
    }

    /// Merges another set into this one.
    pub fn merge(&mut self, other: &Stats) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// One of the five standard statistics.
    pub fn statistic(&self, statistic: &str) -> Option<f64> {
        match statistic {
            "SampleCount" => Some(self.count),
            "Sum" => Some(self.sum),
            "Minimum" => Some(self.min),
            "Maximum" => Some(self.max),
            "Average" => (self.count > 0.0).then(|| self.sum / self.count),
            _ => None,
        }
    }
}

/// One datapoint to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The metric.
    pub metric: MetricId,
    /// Epoch milliseconds.
    pub timestamp: i64,
    /// The statistics.
    pub stats: Stats,
    /// The unit, if given.
    pub unit: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPoint {
    #[serde(flatten)]
    stats: Stats,
    unit: Option<String>,
}

/// The standard statistics CloudWatch accepts.
pub const STATISTICS: &[&str] = &["SampleCount", "Average", "Sum", "Minimum", "Maximum"];

/// The comparison of an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `GreaterThanOrEqualToThreshold`.
    Ge,
    /// `GreaterThanThreshold`.
    Gt,
    /// `LessThanThreshold`.
    Lt,
    /// `LessThanOrEqualToThreshold`.
    Le,
}

impl Comparison {
    /// Parses the API name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "GreaterThanOrEqualToThreshold" => Some(Self::Ge),
            "GreaterThanThreshold" => Some(Self::Gt),
            "LessThanThreshold" => Some(Self::Lt),
            "LessThanOrEqualToThreshold" => Some(Self::Le),
            _ => None,
        }
    }

    fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Ge => value >= threshold,
            Self::Gt => value > threshold,
            Self::Lt => value < threshold,
            Self::Le => value <= threshold,
        }
    }

    fn words(self) -> &'static str {
        match self {
            Self::Ge => "greater than or equal to",
            Self::Gt => "greater than",
            Self::Lt => "less than",
            Self::Le => "less than or equal to",
        }
    }
}

/// What an alarm's rule says, read from its stored `MetricAlarm` form.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRule {
    /// The statistic.
    pub statistic: String,
    /// The period in seconds.
    pub period: i64,
    /// How many recent periods are evaluated.
    pub evaluation_periods: usize,
    /// How many of them must breach.
    pub datapoints_to_alarm: usize,
    /// The threshold.
    pub threshold: f64,
    /// The comparison.
    pub comparison: Comparison,
    /// `missing`, `notBreaching`, `breaching` or `ignore`.
    pub treat_missing: String,
}

impl AlarmRule {
    /// Reads the rule of a stored alarm.
    pub fn from_alarm(alarm: &Value) -> Option<Self> {
        let evaluation_periods = alarm.get("EvaluationPeriods")?.as_u64()? as usize;
        Some(Self {
            statistic: alarm.get("Statistic")?.as_str()?.to_owned(),
            period: alarm.get("Period")?.as_i64()?,
            evaluation_periods,
            datapoints_to_alarm: alarm
                .get("DatapointsToAlarm")
                .and_then(Value::as_u64)
                .map_or(evaluation_periods, |d| d as usize),
            threshold: alarm.get("Threshold")?.as_f64()?,
            comparison: Comparison::parse(alarm.get("ComparisonOperator")?.as_str()?)?,
            treat_missing: alarm
                .get("TreatMissingData")
                .and_then(Value::as_str)
                .unwrap_or("missing")
                .to_owned(),
        })
    }

    /// The earliest timestamp (ms) the evaluation at `now` reads.
    pub fn window_start(&self, now: i64) -> i64 {
        let period = self.period.max(1) * 1000;
        (now.div_euclid(period) + 1 - self.evaluation_periods as i64) * period
    }
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: &'static str,
    /// AWS-style reason text.
    pub reason: String,
}

/// Evaluates a rule over datapoints `(timestamp ms, stats)` at `now` (ms); `current` is the state
/// the alarm is in, which `TreatMissingData = ignore` keeps when no data is present.
pub fn evaluate(rule: &AlarmRule, points: &[(i64, Stats)], now: i64, current: &str) -> Evaluation {
    let period = rule.period.max(1) * 1000;
    let first = rule.window_start(now);
    let mut windows: Vec<Option<Stats>> = vec![None; rule.evaluation_periods];
    for (ts, stats) in points {
        if *ts < first {
            continue;
        }
        let index = ((ts - first) / period) as usize;
        if let Some(slot) = windows.get_mut(index) {
            match slot {
                Some(s) => s.merge(stats),
                None => *slot = Some(*stats),
            }
        }
    }
    let values: Vec<Option<f64>> = windows
        .iter()
        .map(|w| w.and_then(|s| s.statistic(&rule.statistic)))
        .collect();
    let present = values.iter().flatten().count();
    let n = rule.evaluation_periods;
    if present == 0 {
        return match rule.treat_missing.as_str() {
            "breaching" => Evaluation {
                state: "ALARM",
                reason: format!(
                    "Threshold Crossed: no datapoints were received for {n} periods and {n} missing datapoints were treated as [Breaching]."
                ),
            },
            "notBreaching" => Evaluation {
                state: "OK",
                reason: format!(
                    "Threshold Crossed: no datapoints were received for {n} periods and {n} missing datapoints were treated as [NonBreaching]."
                ),
            },
            "ignore" => Evaluation {
                state: match current {
                    "OK" => "OK",
                    "ALARM" => "ALARM",
                    _ => "INSUFFICIENT_DATA",
                },
                reason: "Missing datapoints are ignored.".to_owned(),
            },
            _ => Evaluation {
                state: "INSUFFICIENT_DATA",
                reason: format!("Insufficient Data: {n} datapoints were unknown."),
            },
        };
    }
    let mut breaching = 0;
    let mut shown = Vec::new();
    for value in &values {
        match value {
            Some(v) => {
                shown.push(format!("{v:?}"));
                if rule.comparison.breaches(*v, rule.threshold) {
                    breaching += 1;
                }
            }
            None if rule.treat_missing == "breaching" => breaching += 1,
            None => {}
        }
    }
    let alarm = breaching >= rule.datapoints_to_alarm;
    let verb = if alarm { "" } else { "not " };
    Evaluation {
        state: if alarm { "ALARM" } else { "OK" },
        reason: format!(
            "Threshold Crossed: {breaching} out of the last {n} datapoints [{}] {verb}{} the threshold ({:?}) (minimum {} datapoint{} for {} transition).",
            shown.join(", "),
            rule.comparison.words(),
            rule.threshold,
            rule.datapoints_to_alarm,
            if rule.datapoints_to_alarm == 1 { "" } else { "s" },
            if alarm { "OK -> ALARM" } else { "ALARM -> OK" },
        ),
    }
}

/// The metric an alarm watches.
pub fn alarm_metric(alarm: &Value) -> Option<MetricId> {
    Some(MetricId::new(
        alarm.get("Namespace")?.as_str()?,
        alarm.get("MetricName")?.as_str()?,
        dimensions_of(alarm.get("Dimensions")),
    ))
}

/// Milliseconds to epoch seconds with millisecond precision.
pub fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// The key of an alarm.
pub fn alarm_key(account: &str, region: &str, name: &str) -> Vec<u8> {
    Key::new().str(account).str(region).str(name).finish()
}

/// The prefix of every alarm (or history item) of an account and region whose name starts with `prefix`.
pub fn alarms_prefix(account: &str, region: &str, prefix: &str) -> Vec<u8> {
    Key::new().str(account).str(region).str_prefix(prefix).finish()
}

/// Reads stored datapoints of `metric` with timestamps in `[from, to)`.
pub async fn read_points(
    store: &dyn Store,
    account: &str,
    region: &str,
    metric: &MetricId,
    from: i64,
    to: Option<i64>,
) -> Result<Vec<(i64, Stats, Option<String>)>, AwsError> {
    let prefix = metric.prefix(account, region);
    let mut start = Key::new().i64(from).finish();
    start.splice(0..0, prefix.iter().copied());
    let end = match to {
        Some(t) => {
            let mut e = prefix.clone();
            e.extend(Key::new().i64(t).finish());
            Some(e)
        }
        None => prefix_end(&prefix),
    };
    let mut out = Vec::new();
    loop {
        let rows = store
            .scan(DATA, &start, end.as_deref(), 1000, false)
            .await
            .map_err(internal)?;
        let full = rows.len() == 1000;
        for (key, raw) in &rows {
            start = key.clone();
            start.push(0);
            let ts = key
                .get(prefix.len()..prefix.len() + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(|b| (u64::from_be_bytes(b) ^ (1 << 63)) as i64);
            let (Some(ts), Ok(point)) = (ts, serde_json::from_slice::<StoredPoint>(raw)) else {
                continue;
            };
            out.push((ts, point.stats, point.unit));
        }
        if !full {
            return Ok(out);
        }
    }
}

/// A history item for an alarm.
pub fn history_item(name: &str, now: i64, kind: &str, summary: &str, data: Value) -> Value {
    json!({
        "AlarmName": name,
        "AlarmType": "MetricAlarm",
        "Timestamp": seconds(now),
        "HistoryItemType": kind,
        "HistorySummary": summary,
        "HistoryData": data.to_string(),
    })
}

/// Adds a history item to the batch.
pub fn put_history(
    batch: &mut WriteBatch,
    account: &str,
    region: &str,
    name: &str,
    now: i64,
    unique: &str,
    item: &Value,
) {
    let key = Key::new()
        .str(account)
        .str(region)
        .str(name)
        .i64(now)
        .str(unique)
        .finish();
    batch.put(HISTORY, &key, item.to_string().as_bytes());
}

/// Applies an evaluation to a stored alarm: when the state changes, updates it and records a
/// `StateUpdate` history item. Returns whether it changed.
pub fn apply_evaluation(
    alarm: &mut Value,
    evaluation: &Evaluation,
    now: i64,
    account: &str,
    region: &str,
    unique: &str,
    batch: &mut WriteBatch,
) -> bool {
    let old = alarm
        .get("StateValue")
        .and_then(Value::as_str)
        .unwrap_or("INSUFFICIENT_DATA")
        .to_owned();
    if old == evaluation.state {
        return false;
    }
    let name = alarm.get("AlarmName").and_then(Value::as_str).unwrap_or("").to_owned();
    alarm["StateValue"] = json!(evaluation.state);
    alarm["StateReason"] = json!(evaluation.reason);
    alarm["StateUpdatedTimestamp"] = json!(seconds(now));
    alarm["StateTransitionedTimestamp"] = json!(seconds(now));
    let item = history_item(
        &name,
        now,
        "StateUpdate",
        &format!("Alarm updated from {old} to {}", evaluation.state),
        json!({
            "version": "1.0",
            "oldState": {"stateValue": old},
            "newState": {"stateValue": evaluation.state, "stateReason": evaluation.reason},
        }),
    );
    put_history(batch, account, region, &name, now, unique, &item);
    true
}

/// Stores datapoints and evaluates the alarms that watch their metrics, all into `batch`.
///
/// `unique` (the request id) keeps datapoint keys of different requests apart.
pub async fn publish(
    store: &dyn Store,
    account: &str,
    region: &str,
    points: &[Point],
    now: i64,
    unique: &str,
    batch: &mut WriteBatch,
) -> Result<(), AwsError> {
    if points.is_empty() {
        return Ok(());
    }
    for (index, point) in points.iter().enumerate() {
        let mut key = point.metric.prefix(account, region);
        key.extend(
            Key::new()
                .i64(point.timestamp)
                .str(&format!("{unique}-{index}"))
                .finish(),
        );
        let stored = StoredPoint {
            stats: point.stats,
            unit: point.unit.clone(),
        };
        batch.put(DATA, &key, &serde_json::to_vec(&stored).map_err(internal)?);
        let metric = json!({
            "Namespace": point.metric.namespace,
            "MetricName": point.metric.name,
            "Dimensions": point.metric.dimensions_json(),
        });
        batch.put(
            METRICS,
            &point.metric.prefix(account, region),
            metric.to_string().as_bytes(),
        );
    }
    let prefix = alarms_prefix(account, region, "");
    let end = prefix_end(&prefix);
    let alarms = store
        .scan(ALARMS, &prefix, end.as_deref(), usize::MAX, false)
        .await
        .map_err(internal)?;
    for (key, raw) in alarms {
        let Ok(mut alarm) = serde_json::from_slice::<Value>(&raw) else {
            continue;
        };
        let Some(metric) = alarm_metric(&alarm) else { continue };
        if !points.iter().any(|p| p.metric == metric) {
            continue;
        }
        let Some(rule) = AlarmRule::from_alarm(&alarm) else {
            continue;
        };
        let mut data: Vec<(i64, Stats)> = read_points(store, account, region, &metric, rule.window_start(now), None)
            .await?
            .into_iter()
            .map(|(t, s, _)| (t, s))
            .collect();
        data.extend(
            points
                .iter()
                .filter(|p| p.metric == metric)
                .map(|p| (p.timestamp, p.stats)),
        );
        let current = alarm.get("StateValue").and_then(Value::as_str).unwrap_or("").to_owned();
        let evaluation = evaluate(&rule, &data, now, &current);
        if apply_evaluation(&mut alarm, &evaluation, now, account, region, unique, batch) {
            batch.expect(ALARMS, &key, Some(&raw));
            batch.put(ALARMS, &key, alarm.to_string().as_bytes());
        }
    }
    Ok(())
}

/// Checks a namespace as `PutMetricData` does.
pub fn check_namespace(namespace: &str) -> Result<(), AwsError> {
    if namespace.starts_with("AWS/") {
        return Err(error::cw_invalid(format!(
            "The value {namespace} for parameter Namespace is invalid."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(stat: &str, periods: usize, m: usize, threshold: f64, cmp: Comparison, missing: &str) -> AlarmRule {
        AlarmRule {
            statistic: stat.into(),
            period: 60,
            evaluation_periods: periods,
            datapoints_to_alarm: m,
            threshold,
            comparison: cmp,
            treat_missing: missing.into(),
        }
    }

    #[test]
    fn statistics_of_merged_sets() {
        let mut s = Stats::one(2.0);
        s.merge(&Stats::one(6.0));
        s.merge(&Stats {
            count: 2.0,
            sum: 4.0,
            min: 1.0,
            max: 3.0,
        });
        let want = [
            ("SampleCount", 4.0),
            ("Sum", 12.0),
            ("Minimum", 1.0),
            ("Maximum", 6.0),
            ("Average", 3.0),
        ];
        for (name, value) in want {
            assert_eq!(s.statistic(name), Some(value), "{name}");
        }
        assert_eq!(s.statistic("p99"), None);
    }

    #[test]
    #[allow(clippy::type_complexity)] // A table of (input, events, expected) tuples reads best inline.
    fn evaluation_table() {
        let now = 1_000 * 60_000 + 30_000; // 30 s into a minute
        let minute = 60_000;
        let cases: Vec<(AlarmRule, Vec<(i64, f64)>, &str, &str)> = vec![
            // One breaching point in the current period fires a 1-of-1 alarm at once.
            (
                rule("Sum", 1, 1, 1.0, Comparison::Ge, "missing"),
                vec![(now - 1000, 1.0)],
                "INSUFFICIENT_DATA",
                "ALARM",
            ),
            (
                rule("Sum", 1, 1, 1.0, Comparison::Ge, "missing"),
                vec![(now - 1000, 0.0)],
                "ALARM",
                "OK",
            ),
            // Points outside the window do not count.
            (
                rule("Sum", 1, 1, 1.0, Comparison::Ge, "missing"),
                vec![(now - 2 * minute, 5.0)],
                "OK",
                "INSUFFICIENT_DATA",
            ),
            (
                rule("Sum", 1, 1, 1.0, Comparison::Ge, "notBreaching"),
                vec![],
                "ALARM",
                "OK",
            ),
            (
                rule("Sum", 1, 1, 1.0, Comparison::Ge, "breaching"),
                vec![],
                "OK",
                "ALARM",
            ),
            (
                rule("Sum", 1, 1, 1.0, Comparison::Ge, "ignore"),
                vec![],
                "ALARM",
                "ALARM",
            ),
            // 2 of 3: one breach is not enough, two are.
            (
                rule("Maximum", 3, 2, 10.0, Comparison::Gt, "missing"),
                vec![(now, 11.0), (now - minute, 5.0)],
                "OK",
                "OK",
            ),
            (
                rule("Maximum", 3, 2, 10.0, Comparison::Gt, "missing"),
                vec![(now, 11.0), (now - 2 * minute, 50.0)],
                "OK",
                "ALARM",
            ),
            // Missing periods treated as breaching count towards M.
            (
                rule("Average", 3, 3, 10.0, Comparison::Gt, "breaching"),
                vec![(now, 11.0)],
                "OK",
                "ALARM",
            ),
            (
                rule("Minimum", 2, 2, 5.0, Comparison::Lt, "missing"),
                vec![(now, 1.0), (now - minute, 4.0)],
                "OK",
                "ALARM",
            ),
            (
                rule("SampleCount", 1, 1, 3.0, Comparison::Le, "missing"),
                vec![(now, 1.0), (now, 1.0)],
                "OK",
                "ALARM",
            ),
            (
                rule("SampleCount", 1, 1, 1.0, Comparison::Le, "missing"),
                vec![(now, 1.0), (now, 1.0)],
                "ALARM",
                "OK",
            ),
        ];
        for (rule, points, current, want) in cases {
            let points: Vec<(i64, Stats)> = points.into_iter().map(|(t, v)| (t, Stats::one(v))).collect();
            let got = evaluate(&rule, &points, now, current);
            assert_eq!(got.state, want, "{rule:?} {points:?}: {}", got.reason);
        }
    }
}
