"""Every operation is authorized by the engine for a non-root principal (issue 4).

For a broad sample of operations across IAM, STS, KMS, S3, CloudTrail, CloudWatch Logs and CloudWatch,
an IAM user with no policies gets AWS's AccessDenied (query and REST-XML protocols) or
AccessDeniedException (JSON protocols), with AWS's message
`User: <caller ARN> is not authorized to perform: <service>:<Action> on resource: <ARN> ...`.
An inline policy allowing exactly that action (and nothing else) then lets the same call past
authorization: it succeeds, or fails for another reason (a missing entity, say), never AccessDenied.
"""

import json
import re
import time
import uuid

import botocore.exceptions
import pytest

from conftest import ROOT_ACCESS_KEY_ID

ACCOUNT = "000000000000"
REGION = "us-east-1"
DENIED_CODES = {"AccessDenied", "AccessDeniedException"}


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def world(server):
    """Resources owned by the account (made by root) that the unprivileged callers aim at."""
    iam = server.client("iam")
    names = {"user": unique("ad-target"), "role": unique("ad-role"), "bucket": unique("ad-bucket"),
             "group": unique("/ad/group")}
    iam.create_user(UserName=names["user"])
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}
    names["role_arn"] = iam.create_role(RoleName=names["role"],
                                        AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    s3 = server.client("s3")
    s3.create_bucket(Bucket=names["bucket"])
    s3.put_object(Bucket=names["bucket"], Key="k", Body=b"data")
    key = server.client("kms").create_key()["KeyMetadata"]
    names["key_id"], names["key_arn"] = key["KeyId"], key["Arn"]
    logs = server.client("logs")
    logs.create_log_group(logGroupName=names["group"])
    logs.create_log_stream(logGroupName=names["group"], logStreamName="s")
    return names


def P(text):
    """A policy document as a string."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                                               "Resource": text}]})


# (service, client method, kwargs (callable on the world), IAM action, expected resource or None).
# A resource of None means the action has no specific resource (`*`) or AWS's ARN for it is not asserted.
CASES = [
    # IAM (query protocol: AccessDenied)
    ("iam", "list_users", lambda w: {}, "iam:ListUsers", None),
    ("iam", "get_user", lambda w: {"UserName": w["user"]}, "iam:GetUser",
     lambda w: f"arn:aws:iam::{ACCOUNT}:user/{w['user']}"),
    ("iam", "create_user", lambda w: {"UserName": "ad-new-user"}, "iam:CreateUser",
     lambda w: f"arn:aws:iam::{ACCOUNT}:user/ad-new-user"),
    ("iam", "delete_user", lambda w: {"UserName": "ad-missing"}, "iam:DeleteUser",
     lambda w: f"arn:aws:iam::{ACCOUNT}:user/ad-missing"),
    ("iam", "list_roles", lambda w: {}, "iam:ListRoles", None),
    ("iam", "get_role", lambda w: {"RoleName": w["role"]}, "iam:GetRole", lambda w: w["role_arn"]),
    ("iam", "create_role", lambda w: {"RoleName": "ad-new-role", "AssumeRolePolicyDocument": json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                 "Principal": {"Service": "ec2.amazonaws.com"}}]})},
     "iam:CreateRole", lambda w: f"arn:aws:iam::{ACCOUNT}:role/ad-new-role"),
    ("iam", "list_policies", lambda w: {}, "iam:ListPolicies", None),
    ("iam", "create_policy", lambda w: {"PolicyName": "ad-new-policy", "PolicyDocument": P("*")},
     "iam:CreatePolicy", lambda w: f"arn:aws:iam::{ACCOUNT}:policy/ad-new-policy"),
    ("iam", "list_groups", lambda w: {}, "iam:ListGroups", None),
    ("iam", "create_group", lambda w: {"GroupName": "ad-new-group"}, "iam:CreateGroup",
     lambda w: f"arn:aws:iam::{ACCOUNT}:group/ad-new-group"),
    ("iam", "list_access_keys", lambda w: {"UserName": w["user"]}, "iam:ListAccessKeys",
     lambda w: f"arn:aws:iam::{ACCOUNT}:user/{w['user']}"),
    ("iam", "create_access_key", lambda w: {"UserName": "ad-missing"}, "iam:CreateAccessKey",
     lambda w: f"arn:aws:iam::{ACCOUNT}:user/ad-missing"),
    ("iam", "put_user_policy", lambda w: {"UserName": w["user"], "PolicyName": "p", "PolicyDocument": P("*")},
     "iam:PutUserPolicy", lambda w: f"arn:aws:iam::{ACCOUNT}:user/{w['user']}"),
    ("iam", "tag_user", lambda w: {"UserName": w["user"], "Tags": [{"Key": "k", "Value": "v"}]}, "iam:TagUser",
     lambda w: f"arn:aws:iam::{ACCOUNT}:user/{w['user']}"),
    ("iam", "list_mfa_devices", lambda w: {"UserName": w["user"]}, "iam:ListMFADevices",
     lambda w: f"arn:aws:iam::{ACCOUNT}:user/{w['user']}"),
    ("iam", "get_account_summary", lambda w: {}, "iam:GetAccountSummary", None),
    ("iam", "get_account_password_policy", lambda w: {}, "iam:GetAccountPasswordPolicy", None),
    ("iam", "get_account_authorization_details", lambda w: {}, "iam:GetAccountAuthorizationDetails", None),
    ("iam", "generate_credential_report", lambda w: {}, "iam:GenerateCredentialReport", None),
    ("iam", "list_account_aliases", lambda w: {}, "iam:ListAccountAliases", None),
    ("iam", "list_open_id_connect_providers", lambda w: {}, "iam:ListOpenIDConnectProviders", None),
    ("iam", "list_instance_profiles", lambda w: {}, "iam:ListInstanceProfiles", None),
    ("iam", "simulate_principal_policy",
     lambda w: {"PolicySourceArn": f"arn:aws:iam::{ACCOUNT}:user/{w['user']}", "ActionNames": ["s3:GetObject"]},
     "iam:SimulatePrincipalPolicy", lambda w: f"arn:aws:iam::{ACCOUNT}:user/{w['user']}"),
    # STS operations that need a permission (GetCallerIdentity and GetSessionToken need none).
    ("sts", "assume_role", lambda w: {"RoleArn": w["role_arn"], "RoleSessionName": "ad-session"}, "sts:AssumeRole",
     lambda w: w["role_arn"]),
    ("sts", "get_federation_token", lambda w: {"Name": "ad-fed"}, "sts:GetFederationToken",
     lambda w: f"arn:aws:sts::{ACCOUNT}:federated-user/ad-fed"),
    ("sts", "get_access_key_info", lambda w: {"AccessKeyId": ROOT_ACCESS_KEY_ID}, "sts:GetAccessKeyInfo", None),
    ("sts", "decode_authorization_message", lambda w: {"EncodedMessage": "not-a-message"},
     "sts:DecodeAuthorizationMessage", None),
    # KMS (JSON protocol: AccessDeniedException)
    ("kms", "create_key", lambda w: {}, "kms:CreateKey", None),
    ("kms", "list_keys", lambda w: {}, "kms:ListKeys", None),
    ("kms", "list_aliases", lambda w: {}, "kms:ListAliases", None),
    ("kms", "describe_key", lambda w: {"KeyId": w["key_id"]}, "kms:DescribeKey", lambda w: w["key_arn"]),
    ("kms", "encrypt", lambda w: {"KeyId": w["key_id"], "Plaintext": b"x"}, "kms:Encrypt", lambda w: w["key_arn"]),
    ("kms", "generate_data_key", lambda w: {"KeyId": w["key_id"], "KeySpec": "AES_256"}, "kms:GenerateDataKey",
     lambda w: w["key_arn"]),
    ("kms", "get_key_policy", lambda w: {"KeyId": w["key_id"], "PolicyName": "default"}, "kms:GetKeyPolicy",
     lambda w: w["key_arn"]),
    ("kms", "get_key_rotation_status", lambda w: {"KeyId": w["key_id"]}, "kms:GetKeyRotationStatus",
     lambda w: w["key_arn"]),
    ("kms", "list_resource_tags", lambda w: {"KeyId": w["key_id"]}, "kms:ListResourceTags", lambda w: w["key_arn"]),
    ("kms", "tag_resource", lambda w: {"KeyId": w["key_id"], "Tags": [{"TagKey": "k", "TagValue": "v"}]},
     "kms:TagResource", lambda w: w["key_arn"]),
    # S3 (REST-XML: AccessDenied)
    ("s3", "list_buckets", lambda w: {}, "s3:ListAllMyBuckets", None),
    ("s3", "create_bucket", lambda w: {"Bucket": "ad-new-bucket"}, "s3:CreateBucket",
     lambda w: "arn:aws:s3:::ad-new-bucket"),
    ("s3", "list_objects_v2", lambda w: {"Bucket": w["bucket"]}, "s3:ListBucket",
     lambda w: f"arn:aws:s3:::{w['bucket']}"),
    ("s3", "get_object", lambda w: {"Bucket": w["bucket"], "Key": "k"}, "s3:GetObject",
     lambda w: f"arn:aws:s3:::{w['bucket']}/k"),
    ("s3", "put_object", lambda w: {"Bucket": w["bucket"], "Key": "new", "Body": b"x"}, "s3:PutObject",
     lambda w: f"arn:aws:s3:::{w['bucket']}/new"),
    ("s3", "delete_object", lambda w: {"Bucket": w["bucket"], "Key": "missing"}, "s3:DeleteObject",
     lambda w: f"arn:aws:s3:::{w['bucket']}/missing"),
    ("s3", "get_bucket_versioning", lambda w: {"Bucket": w["bucket"]}, "s3:GetBucketVersioning",
     lambda w: f"arn:aws:s3:::{w['bucket']}"),
    ("s3", "get_bucket_tagging", lambda w: {"Bucket": w["bucket"]}, "s3:GetBucketTagging",
     lambda w: f"arn:aws:s3:::{w['bucket']}"),
    ("s3", "get_bucket_policy", lambda w: {"Bucket": w["bucket"]}, "s3:GetBucketPolicy",
     lambda w: f"arn:aws:s3:::{w['bucket']}"),
    ("s3", "get_bucket_acl", lambda w: {"Bucket": w["bucket"]}, "s3:GetBucketAcl",
     lambda w: f"arn:aws:s3:::{w['bucket']}"),
    # CloudTrail (JSON)
    ("cloudtrail", "describe_trails", lambda w: {}, "cloudtrail:DescribeTrails", None),
    ("cloudtrail", "list_trails", lambda w: {}, "cloudtrail:ListTrails", None),
    ("cloudtrail", "lookup_events", lambda w: {"MaxResults": 1}, "cloudtrail:LookupEvents", None),
    ("cloudtrail", "get_trail_status", lambda w: {"Name": "ad-missing-trail"}, "cloudtrail:GetTrailStatus",
     lambda w: f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/ad-missing-trail"),
    ("cloudtrail", "create_trail", lambda w: {"Name": "ad-new-trail", "S3BucketName": w["bucket"]},
     "cloudtrail:CreateTrail", lambda w: f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/ad-new-trail"),
    # CloudWatch Logs (JSON)
    ("logs", "describe_log_groups", lambda w: {}, "logs:DescribeLogGroups", None),
    ("logs", "create_log_group", lambda w: {"logGroupName": "/ad/new-group"}, "logs:CreateLogGroup", None),
    ("logs", "describe_log_streams", lambda w: {"logGroupName": w["group"]}, "logs:DescribeLogStreams", None),
    ("logs", "put_log_events", lambda w: {"logGroupName": w["group"], "logStreamName": "s", "logEvents": [
        {"timestamp": int(time.time() * 1000), "message": "hello"}]}, "logs:PutLogEvents", None),
    ("logs", "filter_log_events", lambda w: {"logGroupName": w["group"]}, "logs:FilterLogEvents", None),
    ("logs", "put_retention_policy", lambda w: {"logGroupName": w["group"], "retentionInDays": 7},
     "logs:PutRetentionPolicy", None),
    ("logs", "delete_log_group", lambda w: {"logGroupName": "/ad/missing"}, "logs:DeleteLogGroup", None),
    # CloudWatch metrics and alarms
    ("cloudwatch", "list_metrics", lambda w: {}, "cloudwatch:ListMetrics", None),
    ("cloudwatch", "put_metric_data", lambda w: {"Namespace": "Citadel/AD", "MetricData": [
        {"MetricName": "m", "Value": 1.0}]}, "cloudwatch:PutMetricData", None),
    ("cloudwatch", "describe_alarms", lambda w: {}, "cloudwatch:DescribeAlarms", None),
]


def bare_user(server):
    """A user with an access key and no policy at all; returns (name, arn, client factory)."""
    iam = server.client("iam")
    name = unique("ad-caller")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    key = iam.create_access_key(UserName=name)["AccessKey"]

    def client(service):
        return server.client(service, access_key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    return name, arn, client


def call(client, method, kwargs):
    """The call's error code and message, or (None, None) when it succeeded."""
    try:
        getattr(client, method)(**kwargs)
    except botocore.exceptions.ClientError as e:
        error = e.response.get("Error", {})
        return error.get("Code"), error.get("Message", "")
    return None, None


def message_pattern(caller_arn, action):
    return re.compile(
        rf"^User: {re.escape(caller_arn)} is not authorized to perform: {re.escape(action)}"
        rf"(?: on resource: \"?(?P<resource>[^\" ]+)\"?)?"
        rf"(?: because .*| with an explicit deny.*)?$")


@pytest.mark.parametrize("service,method,kwargs,action,resource", CASES,
                         ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_denied_without_policy_then_allowed_by_exactly_that_action(server, world, service, method, kwargs, action,
                                                                   resource):
    name, arn, client = bare_user(server)
    args = kwargs(world)

    code, message = call(client(service), method, args)
    expected_code = "AccessDenied" if service in ("iam", "sts", "s3") else "AccessDeniedException"
    assert code == expected_code, (code, message)
    match = message_pattern(arn, action).match(message or "")
    assert match, message
    if resource is not None:
        assert match.group("resource") == resource(world), message

    server.client("iam").put_user_policy(UserName=name, PolicyName="exactly-one-action", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]}))
    code, message = call(client(service), method, args)
    assert code not in DENIED_CODES, (code, message)


def test_cases_span_every_service_and_forty_operations():
    services = {c[0] for c in CASES}
    assert services == {"iam", "sts", "kms", "s3", "cloudtrail", "logs", "cloudwatch"}
    assert len({(c[0], c[1]) for c in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize("service,method,kwargs", [
    ("sts", "get_caller_identity", {}),
    ("sts", "get_session_token", {}),
])
def test_sts_operations_that_need_no_permission(server, service, method, kwargs):
    """As in AWS, GetCallerIdentity and GetSessionToken work for a user without any policy."""
    _, _, client = bare_user(server)
    assert call(client(service), method, kwargs) == (None, None)


def test_another_action_on_the_same_service_stays_denied(server, world):
    """A policy for one action does not leak to its neighbours."""
    name, arn, client = bare_user(server)
    server.client("iam").put_user_policy(UserName=name, PolicyName="only-list-users", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"}]}))
    iam = client("iam")
    assert call(iam, "list_users", {}) == (None, None)
    code, message = call(iam, "get_user", {"UserName": world["user"]})
    assert code == "AccessDenied"
    assert message_pattern(arn, "iam:GetUser").match(message), message
    code, message = call(client("kms"), "list_keys", {})
    assert code == "AccessDeniedException"
    assert message_pattern(arn, "kms:ListKeys").match(message), message
