"""CloudTrail delivering to CloudWatch Logs, through boto3: the CreateTrail checks of the group and
the role, records arriving as log events in `<account>_CloudTrail_<region>`, CIS metric filters and
alarms firing on them, and a role that loses its permissions showing up in GetTrailStatus.

The server delivers every 2 s, so each wait below is a few seconds.
"""

import json
import time

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT_ID, CitadelServer
from helpers import bucket_for_trails, error_code, unique, wait_for

REGION = "us-east-1"
STREAM = f"{ACCOUNT_ID}_CloudTrail_{REGION}"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
UNAUTHORIZED = '{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }'


@pytest.fixture(scope="module")
def cwl_server():
    s = CitadelServer("--test-api", "--trail-delivery-interval", "2s", "--digest-interval", "60s")
    yield s
    s.close()


def delivery_role(iam, group_arn, trust=TRUST, allow_logs=True):
    name = unique("CloudTrailToLogs")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    if allow_logs:
        iam.put_role_policy(RoleName=name, PolicyName="deliver", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"{group_arn.removesuffix(':*')}:log-stream:*"}]}))
    return name, arn


def group(logs):
    name = unique("CloudTrail/audit")
    logs.create_log_group(logGroupName=name)
    return name, f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}:*"


def test_create_trail_checks_group_and_role(cwl_server):
    ct, s3, iam, logs = (cwl_server.client(s) for s in ("cloudtrail", "s3", "iam", "logs"))
    bucket = bucket_for_trails(s3)
    name, group_arn = group(logs)
    _, good_role = delivery_role(iam, group_arn)
    _, untrusted = delivery_role(iam, group_arn, trust=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    _, powerless = delivery_role(iam, group_arn, allow_logs=False)
    missing_group = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{unique('missing')}:*"
    cases = [
        (missing_group, good_role, "InvalidCloudWatchLogsLogGroupArnException"),
        ("arn:aws:s3:::not-a-group", good_role, "InvalidCloudWatchLogsLogGroupArnException"),
        (group_arn, f"arn:aws:iam::{ACCOUNT_ID}:role/NoSuchRole", "InvalidCloudWatchLogsRoleArnException"),
        (group_arn, untrusted, "InvalidCloudWatchLogsRoleArnException"),
        (group_arn, powerless, "InvalidCloudWatchLogsRoleArnException"),
        (f"arn:aws:logs:eu-west-1:{ACCOUNT_ID}:log-group:{name}:*", good_role,
         "CloudWatchLogsDeliveryUnavailableException"),
    ]
    for group_value, role_value, code in cases:
        with pytest.raises(ClientError) as e:
            ct.create_trail(Name=unique("t"), S3BucketName=bucket, CloudWatchLogsLogGroupArn=group_value,
                            CloudWatchLogsRoleArn=role_value)
        assert error_code(e) == code, (group_value, role_value)
    trail = unique("t")
    out = ct.create_trail(Name=trail, S3BucketName=bucket, CloudWatchLogsLogGroupArn=group_arn,
                          CloudWatchLogsRoleArn=good_role)
    assert out["CloudWatchLogsLogGroupArn"] == group_arn
    assert out["CloudWatchLogsRoleArn"] == good_role
    with pytest.raises(ClientError) as e:
        ct.update_trail(Name=trail, CloudWatchLogsLogGroupArn=group_arn, CloudWatchLogsRoleArn=untrusted)
    assert error_code(e) == "InvalidCloudWatchLogsRoleArnException"
    described = ct.describe_trails(trailNameList=[trail])["trailList"][0]
    assert described["CloudWatchLogsRoleArn"] == good_role
    ct.delete_trail(Name=trail)


def test_records_reach_logs_and_cis_alarms_fire(cwl_server):
    ct, s3, iam, logs, cloudwatch = (
        cwl_server.client(s) for s in ("cloudtrail", "s3", "iam", "logs", "cloudwatch"))
    bucket = bucket_for_trails(s3)
    group_name, group_arn = group(logs)
    role_name, role_arn = delivery_role(iam, group_arn)
    namespace = unique("CISBenchmark")
    alarms = {}
    for metric, pattern in (("CreateUserCount", "{ ($.eventName = CreateUser) }"),
                            ("UnauthorizedAttemptCount", UNAUTHORIZED)):
        logs.put_metric_filter(logGroupName=group_name, filterName=metric, filterPattern=pattern,
                               metricTransformations=[{"metricName": metric, "metricNamespace": namespace,
                                                       "metricValue": "1"}])
        alarms[metric] = unique(metric)
        cloudwatch.put_metric_alarm(AlarmName=alarms[metric], MetricName=metric, Namespace=namespace,
                                    Statistic="Sum", Period=300, EvaluationPeriods=1, Threshold=1,
                                    ComparisonOperator="GreaterThanOrEqualToThreshold",
                                    TreatMissingData="notBreaching")
    trail = unique("cwl")
    ct.create_trail(Name=trail, S3BucketName=bucket, CloudWatchLogsLogGroupArn=group_arn,
                    CloudWatchLogsRoleArn=role_arn)
    ct.start_logging(Name=trail)

    # A CreateUser, and an AccessDenied from a user without permissions.
    user = unique("cis-user")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    intruder = cwl_server.client("iam", access_key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    with pytest.raises(ClientError) as e:
        intruder.list_users()
    assert error_code(e) == "AccessDenied"

    def found(pattern):
        return logs.filter_log_events(logGroupName=group_name, filterPattern=pattern)["events"]

    # Matched as CIS and detection rules do, on the event name and on AWS's parameter names.
    created = wait_for(lambda: found(f'{{ ($.eventName = CreateUser) && ($.requestParameters.userName = "{user}") }}'))
    assert created[0]["logStreamName"] == STREAM
    record = json.loads(created[0]["message"])
    assert record["eventSource"] == "iam.amazonaws.com"
    assert record["requestParameters"] == {"userName": user}
    event_time = time.mktime(time.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert created[0]["timestamp"] == int(event_time) * 1000
    denied = wait_for(lambda: found(UNAUTHORIZED))
    assert any(json.loads(ev["message"])["userIdentity"].get("userName") == user for ev in denied)
    streams = logs.describe_log_streams(logGroupName=group_name)["logStreams"]
    assert [s["logStreamName"] for s in streams] == [STREAM]

    for metric, alarm in alarms.items():
        state = wait_for(lambda: (a := cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0])
                         ["StateValue"] == "ALARM" and a)
        assert state["StateValue"] == "ALARM", metric
    status = ct.get_trail_status(Name=trail)
    assert status["LatestCloudWatchLogsDeliveryTime"]
    assert "LatestCloudWatchLogsDeliveryError" not in status

    # The role loses its permission: delivery to the group fails and GetTrailStatus says so,
    # while S3 delivery goes on.
    iam.delete_role_policy(RoleName=role_name, PolicyName="deliver")
    iam.create_user(UserName=unique("after"))
    failing = wait_for(lambda: (s := ct.get_trail_status(Name=trail)).get("LatestCloudWatchLogsDeliveryError") and s)
    assert "Access denied" in failing["LatestCloudWatchLogsDeliveryError"]
    assert "LatestDeliveryError" not in failing
    ct.delete_trail(Name=trail)
