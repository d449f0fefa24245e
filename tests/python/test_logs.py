"""CloudWatch Logs and CloudWatch alarms through boto3 and the aws CLI.

Covers log groups and streams, PutLogEvents/GetLogEvents/FilterLogEvents with several pattern
kinds, retention, TestMetricFilter, a CIS metric filter firing a CloudWatch alarm, and error codes.
"""

import json
import time
import uuid

import botocore.exceptions
import pytest


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def now_ms():
    return int(time.time() * 1000)


@pytest.fixture
def logs(server):
    return server.client("logs")


@pytest.fixture
def cloudwatch(server):
    return server.client("cloudwatch")


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def make_stream(logs, group=None, stream="s1"):
    group = group or unique("/citadel/test")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    return group, stream


def test_groups_streams_and_errors(logs):
    group = unique("/citadel/groups")
    logs.create_log_group(logGroupName=group, tags={"team": "sec"})
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.create_log_group(logGroupName=group)
    assert error_code(exc) == "ResourceAlreadyExistsException"
    described = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in described] == [group]
    assert described[0]["arn"].endswith(f":log-group:{group}:*")
    assert logs.list_tags_log_group(logGroupName=group)["tags"] == {"team": "sec"}

    logs.create_log_stream(logGroupName=group, logStreamName="a")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.create_log_stream(logGroupName=group, logStreamName="a")
    assert error_code(exc) == "ResourceAlreadyExistsException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.create_log_stream(logGroupName=unique("/missing"), logStreamName="a")
    assert error_code(exc) == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.put_log_events(logGroupName=group, logStreamName="missing",
                            logEvents=[{"timestamp": now_ms(), "message": "x"}])
    assert error_code(exc) == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.put_retention_policy(logGroupName=group, retentionInDays=8)
    assert error_code(exc) == "InvalidParameterException"
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["a"]
    logs.delete_log_stream(logGroupName=group, logStreamName="a")
    logs.delete_log_group(logGroupName=group)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.delete_log_group(logGroupName=group)
    assert error_code(exc) == "ResourceNotFoundException"


def test_describe_log_groups_paginates(logs):
    prefix = unique("/citadel/page")
    for i in range(5):
        logs.create_log_group(logGroupName=f"{prefix}/{i}")
    pages = logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix, PaginationConfig={"PageSize": 2})
    names = [g["logGroupName"] for page in pages for g in page["logGroups"]]
    assert names == [f"{prefix}/{i}" for i in range(5)]


def test_put_get_events_and_tokens(logs):
    group, stream = make_stream(logs)
    t = now_ms()
    out = logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": t - 3000, "message": "first"},
        {"timestamp": t - 2000, "message": "second"},
        {"timestamp": t - 1000, "message": "third"},
    ])
    assert out["nextSequenceToken"]
    head = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True, limit=2)
    assert [e["message"] for e in head["events"]] == ["first", "second"]
    rest = logs.get_log_events(logGroupName=group, logStreamName=stream, nextToken=head["nextForwardToken"])
    assert [e["message"] for e in rest["events"]] == ["third"]
    done = logs.get_log_events(logGroupName=group, logStreamName=stream, nextToken=rest["nextForwardToken"])
    assert done["events"] == [] and done["nextForwardToken"] == rest["nextForwardToken"]
    tail = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=1)
    assert [e["message"] for e in tail["events"]] == ["third"]


def test_put_log_events_rules(logs):
    group, stream = make_stream(logs)
    t = now_ms()
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
            {"timestamp": t, "message": "b"}, {"timestamp": t - 1, "message": "a"}])
    assert error_code(exc) == "InvalidParameterException"
    out = logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": t - 15 * 86_400_000, "message": "too old"},
        {"timestamp": t - 15 * 86_400_000 + 1000, "message": "too old too"},
    ])
    assert out["rejectedLogEventsInfo"]["tooOldLogEventEndIndex"] == 1
    out = logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": t, "message": "ok"}, {"timestamp": t + 3 * 3_600_000, "message": "too new"}])
    assert out["rejectedLogEventsInfo"]["tooNewLogEventStartIndex"] == 1
    big = "x" * (1_048_576 // 2)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
            {"timestamp": t, "message": big}, {"timestamp": t, "message": big}])
    assert error_code(exc) == "InvalidParameterException"
    events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    assert [e["message"] for e in events] == ["ok"]


APACHE = '127.0.0.1 Prod frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534'


@pytest.mark.parametrize("pattern,expected", [
    ("ERROR", ["[ERROR 400] BAD REQUEST", "[ERROR 419] MISSING ARGUMENTS"]),
    ("?ERROR ?WARN", ["[ERROR 400] BAD REQUEST", "[ERROR 419] MISSING ARGUMENTS", "WARN disk at 91"]),
    ("ERROR -ARGUMENTS", ["[ERROR 400] BAD REQUEST"]),
    ('"disk at"', ["WARN disk at 91"]),
    ("{ $.latency > 75 }", ['{"latency":80,"user":{"id":1}}']),
    ('{ $.user.id = 1 && $.latency >= 80 }', ['{"latency":80,"user":{"id":1}}']),
    ("[ip, user, username, timestamp, request = *.html*, status_code = 4*, bytes > 1000]", [APACHE]),
    # Regular expressions are case-sensitive: `[Ee]rror` does not match `ERROR`.
    ("%[Ee]rror|WARN%", ["WARN disk at 91"]),
])
def test_filter_log_events_patterns(logs, pattern, expected):
    group = unique("/citadel/filter")
    logs.create_log_group(logGroupName=group)
    t = now_ms()
    messages = ["[ERROR 400] BAD REQUEST", "[ERROR 419] MISSING ARGUMENTS", "WARN disk at 91",
                '{"latency":80,"user":{"id":1}}', '{"latency":50,"user":{"id":1}}', APACHE]
    for i, stream in enumerate(["a", "b"]):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        mine = messages[i::2]
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
            {"timestamp": t - 10_000 + 2 * j * 1000 + i * 1000, "message": m} for j, m in enumerate(mine)])
    out = logs.filter_log_events(logGroupName=group, filterPattern=pattern, startTime=0)
    assert sorted(e["message"] for e in out["events"]) == sorted(expected)
    for event in out["events"]:
        assert event["logStreamName"] in ("a", "b") and event["eventId"]


def test_filter_log_events_paginates_through_cli(server, logs):
    group = unique("/citadel/cli")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    t = now_ms()
    logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
        {"timestamp": t - 1000 + i, "message": f"ERROR number {i}"} for i in range(7)])
    result = server.aws("logs", "filter-log-events", "--log-group-name", group, "--filter-pattern", "ERROR",
                        "--start-time", "0", "--page-size", "3")
    events = json.loads(result.stdout)["events"]
    assert [e["message"] for e in events] == [f"ERROR number {i}" for i in range(7)]


def test_retention_policy(logs):
    group, stream = make_stream(logs)
    t = now_ms()
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": t - 3 * 86_400_000, "message": "three days old"}])
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[{"timestamp": t, "message": "fresh"}])
    logs.put_retention_policy(logGroupName=group, retentionInDays=1)
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["retentionInDays"] == 1
    events = logs.filter_log_events(logGroupName=group)["events"]
    assert [e["message"] for e in events] == ["fresh"]
    out = logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": t - 25 * 3_600_000, "message": "expired"}, {"timestamp": t - 3_600_000, "message": "kept"}])
    assert out["rejectedLogEventsInfo"]["expiredLogEventEndIndex"] == 0
    logs.delete_retention_policy(logGroupName=group)
    assert "retentionInDays" not in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]


def test_test_metric_filter_cli(server):
    out = server.aws("logs", "test-metric-filter", "--filter-pattern",
                     "[ip, user, username, timestamp, request, status_code, bytes > 1000]",
                     "--log-event-messages", APACHE)
    matches = json.loads(out.stdout)["matches"]
    assert len(matches) == 1 and matches[0]["eventNumber"] == 1
    assert matches[0]["extractedValues"]["$bytes"] == "1534"
    out = server.aws("logs", "test-metric-filter", "--filter-pattern", "{ $.latency > 75 }",
                     "--log-event-messages", '{"latency":80}', '{"latency":50}')
    assert [m["eventNumber"] for m in json.loads(out.stdout)["matches"]] == [1]
    bad = server.aws("logs", "test-metric-filter", "--filter-pattern", "[a, b = 4* && c > 1]",
                     "--log-event-messages", "x", check=False)
    assert bad.returncode != 0 and "InvalidParameterException" in bad.stderr


ROOT_USAGE = ('{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS '
              '&& $.eventType != "AwsServiceEvent" }')
UNAUTHORIZED = '{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }'


def cloudtrail_record(**fields):
    record = {"eventVersion": "1.08", "userIdentity": {"type": "IAMUser", "accountId": "000000000000"},
              "eventTime": "2024-01-01T00:00:00Z", "eventSource": "iam.amazonaws.com", "eventName": "ListUsers",
              "awsRegion": "us-east-1", "sourceIPAddress": "10.0.0.1", "eventType": "AwsApiCall"}
    record.update(fields)
    return json.dumps(record)


@pytest.mark.parametrize("pattern,quiet,firing", [
    (ROOT_USAGE,
     [cloudtrail_record(userIdentity={"type": "Root", "invokedBy": "config.amazonaws.com"})],
     cloudtrail_record(userIdentity={"type": "Root"}, eventName="ConsoleLogin", eventType="AwsConsoleSignIn")),
    (UNAUTHORIZED,
     [cloudtrail_record(errorCode="NoSuchEntity")],
     cloudtrail_record(errorCode="AccessDenied", errorMessage="User is not authorized")),
])
def test_cis_metric_filter_fires_alarm(logs, cloudwatch, pattern, quiet, firing):
    group, stream = make_stream(logs, stream="000000000000_CloudTrail_us-east-1")
    metric = unique("CisMetric")
    logs.put_metric_filter(logGroupName=group, filterName="cis", filterPattern=pattern, metricTransformations=[
        {"metricName": metric, "metricNamespace": "CISBenchmark", "metricValue": "1", "defaultValue": 0}])
    filters = logs.describe_metric_filters(logGroupName=group)["metricFilters"]
    assert filters[0]["filterPattern"] == pattern
    alarm = unique("cis-alarm")
    cloudwatch.put_metric_alarm(AlarmName=alarm, MetricName=metric, Namespace="CISBenchmark", Statistic="Sum",
                                Period=300, EvaluationPeriods=1, Threshold=1,
                                ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching")
    t = now_ms()
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": t, "message": m} for m in quiet])
    state = cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"]
    assert state == "OK"
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[{"timestamp": t + 1, "message": firing}])
    described = cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]
    assert described["StateValue"] == "ALARM", described["StateReason"]
    history = cloudwatch.describe_alarm_history(AlarmName=alarm, HistoryItemType="StateUpdate")["AlarmHistoryItems"]
    assert history[0]["HistorySummary"] == "Alarm updated from OK to ALARM"
    stats = cloudwatch.get_metric_statistics(Namespace="CISBenchmark", MetricName=metric,
                                             StartTime=(t - 600_000) / 1000, EndTime=(t + 600_000) / 1000,
                                             Period=60, Statistics=["Sum"])
    assert sum(dp["Sum"] for dp in stats["Datapoints"]) == 1
    cloudwatch.delete_alarms(AlarmNames=[alarm])


def test_cloudwatch_metric_data_and_errors(cloudwatch):
    namespace = unique("Citadel/Test")
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "Latency", "Value": 10, "Dimensions": [{"Name": "Host", "Value": "a"}]},
        {"MetricName": "Latency", "Values": [20, 30], "Counts": [1, 2], "Dimensions": [{"Name": "Host", "Value": "a"}]},
    ])
    now = time.time()
    stats = cloudwatch.get_metric_statistics(Namespace=namespace, MetricName="Latency",
                                             Dimensions=[{"Name": "Host", "Value": "a"}],
                                             StartTime=now - 600, EndTime=now + 600, Period=1200,
                                             Statistics=["Sum", "SampleCount", "Average", "Minimum", "Maximum"])
    dp = stats["Datapoints"][0]
    assert (dp["Sum"], dp["SampleCount"], dp["Minimum"], dp["Maximum"], dp["Average"]) == (90, 4, 10, 30, 22.5)
    metrics = cloudwatch.list_metrics(Namespace=namespace)["Metrics"]
    assert metrics == [{"Namespace": namespace, "MetricName": "Latency",
                        "Dimensions": [{"Name": "Host", "Value": "a"}]}]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        cloudwatch.set_alarm_state(AlarmName=unique("none"), StateValue="OK", StateReason="x")
    assert error_code(exc) == "ResourceNotFound"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        cloudwatch.put_metric_data(Namespace="AWS/EC2", MetricData=[{"MetricName": "x", "Value": 1}])
    assert error_code(exc) == "InvalidParameterValue"


def test_set_alarm_state_and_cli(server, cloudwatch):
    alarm = unique("manual")
    server.aws("cloudwatch", "put-metric-alarm", "--alarm-name", alarm, "--metric-name", "M",
               "--namespace", "Citadel/Manual", "--statistic", "Maximum", "--period", "60",
               "--evaluation-periods", "1", "--threshold", "5",
               "--comparison-operator", "GreaterThanThreshold")
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="testing")
    out = json.loads(server.aws("cloudwatch", "describe-alarms", "--alarm-names", alarm).stdout)
    assert out["MetricAlarms"][0]["StateValue"] == "ALARM"
    assert out["MetricAlarms"][0]["StateReason"] == "testing"
    server.aws("cloudwatch", "delete-alarms", "--alarm-names", alarm)
    out = json.loads(server.aws("cloudwatch", "describe-alarms", "--alarm-names", alarm).stdout)
    assert out["MetricAlarms"] == []
