//! Handler tests: each call runs `execute` and commits the effect's batch, as the pipeline does
//! (without the policy decision and model validation, which the pipeline's own tests cover).
//! Time is a manual clock so retention and alarm periods can be crossed.

use super::*;
use citadel_core::clock::{Clock, ManualClock};
use citadel_core::{Principal, RequestContext};
use citadel_store::RedbStore;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use time::OffsetDateTime;

struct Env {
    logs: Logs,
    cw: CloudWatch,
    store: Arc<dyn Store>,
    clock: ManualClock,
    requests: AtomicU64,
    principal: Arc<Principal>,
    _dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.path().join("t.redb")).unwrap());
        Self {
            logs: Logs::new(store.clone()),
            cw: CloudWatch::new(store.clone()),
            store,
            clock: ManualClock::new(OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()),
            requests: AtomicU64::new(0),
            principal: Arc::new(Principal::root("111122223333", None)),
            _dir: dir,
        }
    }

    fn now_ms(&self) -> i64 {
        (self.clock.now().unix_timestamp_nanos() / 1_000_000) as i64
    }

    async fn run(&self, op: &str, input: Value) -> Result<Value, AwsError> {
        let (service, spec): (&dyn Service, &'static ServiceSpec) = match LOGS_SPEC.operation(op) {
            Some(_) => (&self.logs, &LOGS_SPEC),
            None => (&self.cw, &CLOUDWATCH_SPEC),
        };
        let op = spec.operation(op).unwrap();
        let call = Call {
            ctx: RequestContext {
                request_id: format!("req-{}", self.requests.fetch_add(1, Ordering::SeqCst)),
                principal: self.principal.clone(),
                region: "us-east-1".into(),
                source_ip: "127.0.0.1".parse().unwrap(),
                user_agent: "test".into(),
                secure_transport: false,
                time: self.clock.now(),
                service: spec.signing_name,
                operation: op.name,
            },
            op,
            input,
        };
        let effect = service.execute(&call, &Authorized::for_tests()).await?;
        if !effect.batch.is_empty() {
            self.store.commit(effect.batch).await.unwrap();
        }
        Ok(effect.output)
    }

    async fn ok(&self, op: &str, input: Value) -> Value {
        match self.run(op, input).await {
            Ok(v) => v,
            Err(e) => panic!("{op} failed: {e}"),
        }
    }

    async fn code(&self, op: &str, input: Value) -> String {
        match self.run(op, input).await {
            Ok(v) => panic!("{op} succeeded: {v}"),
            Err(e) => e.code.to_string(),
        }
    }

    async fn put(&self, group: &str, stream: &str, events: &[(i64, &str)]) -> Value {
        let events: Vec<Value> = events
            .iter()
            .map(|(t, m)| json!({"timestamp": t, "message": m}))
            .collect();
        self.ok(
            "PutLogEvents",
            json!({"logGroupName": group, "logStreamName": stream, "logEvents": events}),
        )
        .await
    }
}

fn messages(output: &Value) -> Vec<String> {
    output["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn groups_and_streams_lifecycle_and_errors() {
    let env = Env::new();
    for name in ["/app/a", "/app/b", "/other"] {
        env.ok("CreateLogGroup", json!({"logGroupName": name, "tags": {"team": "sec"}}))
            .await;
    }
    assert_eq!(
        env.code("CreateLogGroup", json!({"logGroupName": "/app/a"})).await,
        "ResourceAlreadyExistsException"
    );
    let page = env
        .ok("DescribeLogGroups", json!({"logGroupNamePrefix": "/app/", "limit": 1}))
        .await;
    assert_eq!(page["logGroups"][0]["logGroupName"], "/app/a");
    assert_eq!(
        page["logGroups"][0]["arn"],
        "arn:aws:logs:us-east-1:111122223333:log-group:/app/a:*"
    );
    let token = page["nextToken"].as_str().unwrap();
    let page = env
        .ok(
            "DescribeLogGroups",
            json!({"logGroupNamePrefix": "/app/", "limit": 1, "nextToken": token}),
        )
        .await;
    assert_eq!(page["logGroups"][0]["logGroupName"], "/app/b");
    assert!(page.get("nextToken").is_none());

    env.ok(
        "PutRetentionPolicy",
        json!({"logGroupName": "/app/a", "retentionInDays": 7}),
    )
    .await;
    assert_eq!(
        env.code(
            "PutRetentionPolicy",
            json!({"logGroupName": "/app/a", "retentionInDays": 8})
        )
        .await,
        "InvalidParameterException"
    );
    let key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    env.ok("AssociateKmsKey", json!({"logGroupName": "/app/a", "kmsKeyId": key}))
        .await;
    let described = env
        .ok("DescribeLogGroups", json!({"logGroupNamePrefix": "/app/a"}))
        .await;
    assert_eq!(described["logGroups"][0]["retentionInDays"], 7);
    assert_eq!(described["logGroups"][0]["kmsKeyId"], key);
    env.ok("DisassociateKmsKey", json!({"logGroupName": "/app/a"})).await;
    env.ok("DeleteRetentionPolicy", json!({"logGroupName": "/app/a"})).await;
    let described = env
        .ok("DescribeLogGroups", json!({"logGroupNamePrefix": "/app/a"}))
        .await;
    assert!(described["logGroups"][0].get("retentionInDays").is_none());
    assert!(described["logGroups"][0].get("kmsKeyId").is_none());

    let arn = "arn:aws:logs:us-east-1:111122223333:log-group:/app/a";
    env.ok("TagResource", json!({"resourceArn": arn, "tags": {"env": "prod"}}))
        .await;
    env.ok("TagLogGroup", json!({"logGroupName": "/app/a", "tags": {"x": "1"}}))
        .await;
    env.ok("UntagLogGroup", json!({"logGroupName": "/app/a", "tags": ["team"]}))
        .await;
    let tags = env.ok("ListTagsForResource", json!({"resourceArn": arn})).await;
    assert_eq!(tags["tags"], json!({"env": "prod", "x": "1"}));
    env.ok("UntagResource", json!({"resourceArn": arn, "tagKeys": ["x"]}))
        .await;
    let tags = env.ok("ListTagsLogGroup", json!({"logGroupName": "/app/a"})).await;
    assert_eq!(tags["tags"], json!({"env": "prod"}));

    env.ok(
        "CreateLogStream",
        json!({"logGroupName": "/app/a", "logStreamName": "s1"}),
    )
    .await;
    env.ok(
        "CreateLogStream",
        json!({"logGroupName": "/app/a", "logStreamName": "s2"}),
    )
    .await;
    let cases = [
        (
            "CreateLogStream",
            json!({"logGroupName": "/app/a", "logStreamName": "s1"}),
            "ResourceAlreadyExistsException",
        ),
        (
            "CreateLogStream",
            json!({"logGroupName": "/nope", "logStreamName": "s1"}),
            "ResourceNotFoundException",
        ),
        (
            "DeleteLogStream",
            json!({"logGroupName": "/app/a", "logStreamName": "zz"}),
            "ResourceNotFoundException",
        ),
        (
            "DeleteLogGroup",
            json!({"logGroupName": "/nope"}),
            "ResourceNotFoundException",
        ),
        (
            "DescribeLogStreams",
            json!({"logGroupName": "/nope"}),
            "ResourceNotFoundException",
        ),
        (
            "PutLogEvents",
            json!({"logGroupName": "/app/a", "logStreamName": "zz", "logEvents": [{"timestamp": 1, "message": "m"}]}),
            "ResourceNotFoundException",
        ),
        (
            "FilterLogEvents",
            json!({"logGroupName": "/app/a", "filterPattern": "{ $.a = "}),
            "InvalidParameterException",
        ),
    ];
    for (op, input, code) in cases {
        assert_eq!(env.code(op, input.clone()).await, code, "{op} {input}");
    }
    let streams = env
        .ok("DescribeLogStreams", json!({"logGroupName": "/app/a", "limit": 1}))
        .await;
    assert_eq!(streams["logStreams"][0]["logStreamName"], "s1");
    assert!(streams["nextToken"].is_string());
    env.ok(
        "DeleteLogStream",
        json!({"logGroupName": "/app/a", "logStreamName": "s1"}),
    )
    .await;
    env.ok("DeleteLogGroup", json!({"logGroupName": "/app/a"})).await;
    let described = env
        .ok("DescribeLogGroups", json!({"logGroupNamePrefix": "/app/"}))
        .await;
    assert_eq!(described["logGroups"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn put_get_and_filter_events() {
    let env = Env::new();
    env.ok("CreateLogGroup", json!({"logGroupName": "g"})).await;
    for s in ["a", "b"] {
        env.ok("CreateLogStream", json!({"logGroupName": "g", "logStreamName": s}))
            .await;
    }
    let t = env.now_ms();
    let out = env
        .put(
            "g",
            "a",
            &[
                (t - 5000, "ERROR one"),
                (t - 3000, r#"{"level":"warn","latency":90}"#),
                (t - 1000, "INFO three"),
            ],
        )
        .await;
    let first_token = out["nextSequenceToken"].as_str().unwrap().to_owned();
    let out = env
        .put(
            "g",
            "b",
            &[
                (t - 4000, "WARN two"),
                (t - 2000, "127.0.0.1 GET 404 1534"),
                (t + 3 * 3_600_000, "future"),
            ],
        )
        .await;
    assert_eq!(out["rejectedLogEventsInfo"]["tooNewLogEventStartIndex"], 2);
    assert_ne!(out["nextSequenceToken"].as_str().unwrap(), first_token);

    let head = env
        .ok(
            "GetLogEvents",
            json!({"logGroupName": "g", "logStreamName": "a", "startFromHead": true, "limit": 2}),
        )
        .await;
    assert_eq!(messages(&head), vec!["ERROR one", r#"{"level":"warn","latency":90}"#]);
    let next = env
        .ok(
            "GetLogEvents",
            json!({"logGroupName": "g", "logStreamName": "a", "nextToken": head["nextForwardToken"]}),
        )
        .await;
    assert_eq!(messages(&next), vec!["INFO three"]);
    let end = env
        .ok(
            "GetLogEvents",
            json!({"logGroupName": "g", "logStreamName": "a", "nextToken": next["nextForwardToken"]}),
        )
        .await;
    assert!(messages(&end).is_empty());
    assert_eq!(end["nextForwardToken"], next["nextForwardToken"]);
    let tail = env
        .ok(
            "GetLogEvents",
            json!({"logGroupName": "g", "logStreamName": "a", "limit": 1}),
        )
        .await;
    assert_eq!(messages(&tail), vec!["INFO three"]);
    let back = env
        .ok(
            "GetLogEvents",
            json!({"logGroupName": "g", "logStreamName": "a", "nextToken": tail["nextBackwardToken"], "limit": 5}),
        )
        .await;
    assert_eq!(messages(&back).len(), 2);

    let cases: &[(&str, Value, &[&str])] = &[
        (
            "",
            json!({}),
            &[
                "ERROR one",
                "WARN two",
                r#"{"level":"warn","latency":90}"#,
                "127.0.0.1 GET 404 1534",
                "INFO three",
            ],
        ),
        ("?ERROR ?WARN", json!({}), &["ERROR one", "WARN two"]),
        ("{ $.latency > 75 }", json!({}), &[r#"{"level":"warn","latency":90}"#]),
        (
            "[ip, method, status = 4*, bytes > 1000]",
            json!({}),
            &["127.0.0.1 GET 404 1534"],
        ),
        (
            "-ERROR -WARN",
            json!({"logStreamNames": ["a"]}),
            &[r#"{"level":"warn","latency":90}"#, "INFO three"],
        ),
        (
            "",
            json!({"startTime": t - 3500, "endTime": t - 1000}),
            &[r#"{"level":"warn","latency":90}"#, "127.0.0.1 GET 404 1534"],
        ),
        ("%WAR.%", json!({"logStreamNamePrefix": "b"}), &["WARN two"]),
    ];
    for (pattern, extra, want) in cases {
        let mut input = json!({"logGroupName": "g", "filterPattern": pattern});
        for (k, v) in extra.as_object().unwrap() {
            input[k] = v.clone();
        }
        let out = env.ok("FilterLogEvents", input).await;
        assert_eq!(messages(&out), *want, "pattern {pattern} {extra}");
    }
    // Pagination walks every event exactly once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut input = json!({"logGroupName": "g", "limit": 2});
        if let Some(t) = &token {
            input["nextToken"] = json!(t);
        }
        let out = env.ok("FilterLogEvents", input).await;
        seen.extend(messages(&out));
        match out.get("nextToken").and_then(Value::as_str) {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
}

#[tokio::test]
async fn retention_hides_and_purges_old_events() {
    let env = Env::new();
    env.ok("CreateLogGroup", json!({"logGroupName": "g"})).await;
    env.ok("CreateLogStream", json!({"logGroupName": "g", "logStreamName": "s"}))
        .await;
    let t = env.now_ms();
    env.put("g", "s", &[(t - 2 * 86_400_000, "old")]).await;
    env.put("g", "s", &[(t, "new")]).await;
    env.ok("PutRetentionPolicy", json!({"logGroupName": "g", "retentionInDays": 1}))
        .await;
    let out = env.ok("FilterLogEvents", json!({"logGroupName": "g"})).await;
    assert_eq!(messages(&out), vec!["new"]);
    let prefix = model::events_prefix("111122223333", "us-east-1", "g", "s");
    let rows = env.store.scan(model::EVENTS, &prefix, None, 100, false).await.unwrap();
    assert_eq!(rows.len(), 1, "the expired event was purged");
    // Two days later the remaining event expires too, and a put of expired events is rejected.
    env.clock.advance(time::Duration::days(2));
    let out = env
        .ok(
            "GetLogEvents",
            json!({"logGroupName": "g", "logStreamName": "s", "startFromHead": true}),
        )
        .await;
    assert!(messages(&out).is_empty());
    let t = env.now_ms();
    let out = env
        .put(
            "g",
            "s",
            &[(t - 25 * 3_600_000, "expired"), (t - 2 * 3_600_000, "fresh")],
        )
        .await;
    assert_eq!(out["rejectedLogEventsInfo"]["expiredLogEventEndIndex"], 0);
    let out = env.ok("FilterLogEvents", json!({"logGroupName": "g"})).await;
    assert_eq!(messages(&out), vec!["fresh"]);
}

const ROOT_FILTER: &str =
    r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }"#;

#[tokio::test]
async fn cis_metric_filter_fires_alarm_and_alarm_recovers() {
    let env = Env::new();
    env.ok("CreateLogGroup", json!({"logGroupName": "trail"})).await;
    env.ok(
        "CreateLogStream",
        json!({"logGroupName": "trail", "logStreamName": "111122223333_CloudTrail"}),
    )
    .await;
    env.ok(
        "PutMetricFilter",
        json!({"logGroupName": "trail", "filterName": "root", "filterPattern": ROOT_FILTER,
               "metricTransformations": [{"metricName": "RootUsage", "metricNamespace": "CIS", "metricValue": "1"}]}),
    )
    .await;
    assert_eq!(
        env.code(
            "PutMetricFilter",
            json!({"logGroupName": "trail", "filterName": "bad", "filterPattern": "[a, b = 4* && c > 1]",
                   "metricTransformations": [{"metricName": "X", "metricNamespace": "CIS", "metricValue": "1"}]}),
        )
        .await,
        "InvalidParameterException"
    );
    let filters = env.ok("DescribeMetricFilters", json!({"logGroupName": "trail"})).await;
    assert_eq!(filters["metricFilters"][0]["filterName"], "root");
    env.ok(
        "PutMetricAlarm",
        json!({"AlarmName": "root-usage", "MetricName": "RootUsage", "Namespace": "CIS", "Statistic": "Sum",
               "Period": 300, "EvaluationPeriods": 1, "Threshold": 1.0,
               "ComparisonOperator": "GreaterThanOrEqualToThreshold", "TreatMissingData": "notBreaching"}),
    )
    .await;
    let alarms = env.ok("DescribeAlarms", json!({"AlarmNames": ["root-usage"]})).await;
    assert_eq!(alarms["MetricAlarms"][0]["StateValue"], "OK");

    let t = env.now_ms();
    let user =
        r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser"},"eventName":"ListUsers","eventType":"AwsApiCall"}"#;
    let service = r#"{"userIdentity":{"type":"Root","invokedBy":"config.amazonaws.com"},"eventName":"GetBucketAcl","eventType":"AwsApiCall"}"#;
    env.put("trail", "111122223333_CloudTrail", &[(t, user), (t, service)])
        .await;
    let alarms = env.ok("DescribeAlarms", json!({"AlarmNames": ["root-usage"]})).await;
    assert_eq!(
        alarms["MetricAlarms"][0]["StateValue"], "OK",
        "non-root records do not fire"
    );

    let root = r#"{"eventVersion":"1.08","userIdentity":{"type":"Root","arn":"arn:aws:iam::111122223333:root"},"eventName":"ConsoleLogin","eventType":"AwsConsoleSignIn"}"#;
    env.put("trail", "111122223333_CloudTrail", &[(t + 1, root)]).await;
    let alarms = env.ok("DescribeAlarms", json!({"StateValue": "ALARM"})).await;
    assert_eq!(alarms["MetricAlarms"][0]["AlarmName"], "root-usage");
    let stats = env
        .ok(
            "GetMetricStatistics",
            json!({"Namespace": "CIS", "MetricName": "RootUsage", "StartTime": (t - 600_000) / 1000,
                   "EndTime": (t + 600_000) / 1000, "Period": 60, "Statistics": ["Sum", "SampleCount"]}),
        )
        .await;
    assert_eq!(stats["Datapoints"][0]["Sum"], 1.0);
    let listed = env.ok("ListMetrics", json!({"Namespace": "CIS"})).await;
    assert_eq!(listed["Metrics"][0]["MetricName"], "RootUsage");

    // A period later nothing breaches: missing data is notBreaching, so the alarm returns to OK.
    env.clock.advance(time::Duration::minutes(6));
    let alarms = env.ok("DescribeAlarms", json!({})).await;
    assert_eq!(alarms["MetricAlarms"][0]["StateValue"], "OK");
    let history = env
        .ok(
            "DescribeAlarmHistory",
            json!({"AlarmName": "root-usage", "HistoryItemType": "StateUpdate"}),
        )
        .await;
    let summaries: Vec<&str> = history["AlarmHistoryItems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["HistorySummary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        vec![
            "Alarm updated from ALARM to OK",
            "Alarm updated from OK to ALARM",
            "Alarm updated from INSUFFICIENT_DATA to OK"
        ]
    );
}

#[tokio::test]
async fn put_metric_data_alarm_transitions_and_set_alarm_state() {
    let env = Env::new();
    env.ok(
        "PutMetricAlarm",
        json!({"AlarmName": "lat", "MetricName": "Latency", "Namespace": "App", "Statistic": "Average",
               "Dimensions": [{"Name": "Host", "Value": "a"}],
               "Period": 60, "EvaluationPeriods": 2, "DatapointsToAlarm": 2, "Threshold": 100.0,
               "ComparisonOperator": "GreaterThanThreshold"}),
    )
    .await;
    let state = |v: &Value| v["MetricAlarms"][0]["StateValue"].as_str().unwrap().to_owned();
    assert_eq!(state(&env.ok("DescribeAlarms", json!({})).await), "INSUFFICIENT_DATA");
    let data = |value: f64| {
        json!({"Namespace": "App", "MetricData": [{"MetricName": "Latency", "Value": value,
               "Dimensions": [{"Name": "Host", "Value": "a"}]}]})
    };
    env.ok("PutMetricData", data(150.0)).await;
    assert_eq!(
        state(&env.ok("DescribeAlarms", json!({})).await),
        "OK",
        "1 of 2 breaching"
    );
    env.clock.advance(time::Duration::minutes(1));
    env.ok("PutMetricData", data(300.0)).await;
    assert_eq!(state(&env.ok("DescribeAlarms", json!({})).await), "ALARM");
    // Data for another dimension value does not reach the alarm.
    env.ok(
        "PutMetricData",
        json!({"Namespace": "App", "MetricData": [{"MetricName": "Latency", "Value": 1.0,
               "Dimensions": [{"Name": "Host", "Value": "b"}]}]}),
    )
    .await;
    assert_eq!(state(&env.ok("DescribeAlarms", json!({})).await), "ALARM");
    env.ok(
        "SetAlarmState",
        json!({"AlarmName": "lat", "StateValue": "OK", "StateReason": "manual"}),
    )
    .await;
    assert_eq!(
        state(&env.ok("DescribeAlarms", json!({})).await),
        "OK",
        "held until the next period"
    );
    env.clock.advance(time::Duration::minutes(1));
    env.ok("PutMetricData", data(500.0)).await;
    assert_eq!(state(&env.ok("DescribeAlarms", json!({})).await), "ALARM");
    env.clock.advance(time::Duration::minutes(5));
    assert_eq!(state(&env.ok("DescribeAlarms", json!({})).await), "INSUFFICIENT_DATA");
    assert_eq!(
        env.code(
            "SetAlarmState",
            json!({"AlarmName": "none", "StateValue": "OK", "StateReason": "x"})
        )
        .await,
        "ResourceNotFound"
    );
    assert_eq!(
        env.code("DeleteAlarms", json!({"AlarmNames": ["none"]})).await,
        "ResourceNotFound"
    );
    assert_eq!(
        env.code(
            "PutMetricData",
            json!({"Namespace": "AWS/EC2", "MetricData": [{"MetricName": "x", "Value": 1.0}]})
        )
        .await,
        "InvalidParameterValue"
    );
    env.ok("DeleteAlarms", json!({"AlarmNames": ["lat"]})).await;
    assert!(
        env.ok("DescribeAlarms", json!({})).await["MetricAlarms"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn test_metric_filter_reports_matches_and_extracted_values() {
    let env = Env::new();
    let out = env
        .ok(
            "TestMetricFilter",
            json!({"filterPattern": "[ip, user, username, timestamp, request, status_code, bytes > 1000]",
                   "logEventMessages": [r#"127.0.0.1 Prod frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534"#, "x"]}),
        )
        .await;
    assert_eq!(out["matches"].as_array().unwrap().len(), 1);
    assert_eq!(out["matches"][0]["eventNumber"], 1);
    assert_eq!(out["matches"][0]["extractedValues"]["$bytes"], "1534");
    let out = env
        .ok("TestMetricFilter", json!({"filterPattern": "{ $.latency > 75 }", "logEventMessages": [r#"{"latency":50}"#, r#"{"latency":80}"#]}))
        .await;
    assert_eq!(out["matches"][0]["eventNumber"], 2);
    assert_eq!(
        env.code(
            "TestMetricFilter",
            json!({"filterPattern": "{ $.a IS NOT NULL }", "logEventMessages": ["x"]})
        )
        .await,
        "InvalidParameterException"
    );
}

#[tokio::test]
async fn agent_ships_lines_once_across_restarts() {
    // The agent's HTTP path is covered by the integration tests; here its file handling is
    // checked against a fake endpoint that is never reached because nothing is pending.
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("agent.json");
    std::fs::write(
        &config_path,
        r#"[{"file":"/nonexistent/file","log_group":"g","log_stream":"s"}]"#,
    )
    .unwrap();
    let config = agent::AgentConfig::load(&config_path).unwrap();
    let client = agent::LogsClient::new(
        "http://127.0.0.1:9",
        AgentCredentials {
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
            session_token: None,
            region: "us-east-1".into(),
        },
    )
    .unwrap();
    assert_eq!(agent::ship_once(&config, &client).await.unwrap(), 0);
}

#[tokio::test]
async fn invoke_as_asks_the_authorizer_then_commits() {
    let env = Env::new();
    env.ok("CreateLogGroup", json!({"logGroupName": "trail"})).await;
    let authorizer = citadel_core::authz::Authorizer::default();
    let ctx = |principal: Arc<Principal>| RequestContext {
        request_id: "in-process".into(),
        principal,
        region: "us-east-1".into(),
        source_ip: "127.0.0.1".parse().unwrap(),
        user_agent: "cloudtrail.amazonaws.com".into(),
        secure_transport: true,
        time: env.clock.now(),
        service: "",
        operation: "",
    };
    // Without a policy source only the account root is allowed; a user is denied before any change.
    let user = Arc::new(Principal {
        account_id: "111122223333".into(),
        arn: "arn:aws:iam::111122223333:user/u".into(),
        principal_id: "AIDAUSER".into(),
        kind: citadel_core::PrincipalKind::User {
            name: "u".into(),
            path: "/".into(),
        },
        access_key_id: None,
        tags: Vec::new(),
        session: None,
    });
    let err = env
        .logs
        .invoke_as(
            &authorizer,
            ctx(user),
            "CreateLogStream",
            json!({"logGroupName": "trail", "logStreamName": "s"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "AccessDeniedException");
    assert!(err.message.contains("logs:CreateLogStream"), "{}", err.message);
    env.code("GetLogEvents", json!({"logGroupName": "trail", "logStreamName": "s"}))
        .await;

    let root = env.principal.clone();
    env.logs
        .invoke_as(
            &authorizer,
            ctx(root.clone()),
            "CreateLogStream",
            json!({"logGroupName": "trail", "logStreamName": "s"}),
        )
        .await
        .unwrap();
    let now = env.now_ms();
    env.logs
        .invoke_as(
            &authorizer,
            ctx(root),
            "PutLogEvents",
            json!({"logGroupName": "trail", "logStreamName": "s", "logEvents": [{"timestamp": now, "message": "{\"eventName\":\"CreateUser\"}"}]}),
        )
        .await
        .unwrap();
    let got = env
        .ok(
            "FilterLogEvents",
            json!({"logGroupName": "trail", "filterPattern": "{ $.eventName = CreateUser }"}),
        )
        .await;
    assert_eq!(got["events"].as_array().unwrap().len(), 1);
}
