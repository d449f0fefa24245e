#!/usr/bin/env python3
"""Captures real botocore requests as fixtures for the citadel-wire codec tests.

Each case builds a botocore client against a dummy endpoint, lets botocore serialize and sign the call,
records the request in a `before-send` hook and aborts before anything is sent. The fixture holds the
request (method, path, query, the headers the codec reads, body) and the parameters given to botocore,
normalised the way the codec hands inputs to handlers: datetimes as epoch seconds, bytes as base64.

Usage: python3 crates/wire/scripts/capture_fixtures.py  (rewrites crates/wire/tests/fixtures/requests.json)
"""

import base64
import datetime
import json
import os
import sys
import urllib.parse

import botocore
import botocore.session

# Signing name (the codec's model key) -> botocore service name.
SERVICE_NAMES = {"monitoring": "cloudwatch"}

POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/a key+&<x>*"}],
})
START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
END = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)

CASES = [
    ("iam", "CreateUser", {"Path": "/eng/", "UserName": "bob", "PermissionsBoundary": "arn:aws:iam::aws:policy/X",
                           "Tags": [{"Key": "team", "Value": "a b"}, {"Key": "cost", "Value": "x=y+z @"}]}),
    ("iam", "CreateUser", {"UserName": "alice", "Tags": []}),
    ("iam", "PutUserPolicy", {"UserName": "bob", "PolicyName": "inline", "PolicyDocument": POLICY}),
    ("iam", "CreateRole", {"RoleName": "r1", "AssumeRolePolicyDocument": POLICY, "Description": "role é",
                           "MaxSessionDuration": 7200, "Tags": [{"Key": "k", "Value": "v"}]}),
    ("iam", "ListUsers", {"PathPrefix": "/eng/", "MaxItems": 10, "Marker": "m+1"}),
    ("iam", "SimulateCustomPolicy", {
        "PolicyInputList": [POLICY, POLICY.replace("Allow", "Deny")],
        "ActionNames": ["s3:GetObject", "s3:PutObject"],
        "ResourceArns": ["arn:aws:s3:::b/k"],
        "ContextEntries": [
            {"ContextKeyName": "aws:SourceIp", "ContextKeyValues": ["10.0.0.1", "10.0.0.2"], "ContextKeyType": "ipList"},
            {"ContextKeyName": "aws:MultiFactorAuthPresent", "ContextKeyValues": ["true"], "ContextKeyType": "boolean"},
        ],
    }),
    ("iam", "UpdateAccountPasswordPolicy", {"MinimumPasswordLength": 12, "RequireSymbols": True,
                                            "RequireNumbers": False, "AllowUsersToChangePassword": True}),
    ("iam", "GetAccountAuthorizationDetails", {"Filter": ["User", "Role"], "MaxItems": 100}),
    ("sts", "GetCallerIdentity", {}),
    ("sts", "AssumeRole", {"RoleArn": "arn:aws:iam::123456789012:role/r1", "RoleSessionName": "s1",
                           "DurationSeconds": 900, "Policy": POLICY,
                           "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
                           "Tags": [{"Key": "project", "Value": "citadel"}], "TransitiveTagKeys": ["project"],
                           "ExternalId": "ext-1"}),
    ("kms", "CreateKey", {"Description": "test key", "KeyUsage": "ENCRYPT_DECRYPT", "KeySpec": "SYMMETRIC_DEFAULT",
                          "Tags": [{"TagKey": "env", "TagValue": "dev"}], "MultiRegion": False}),
    ("kms", "Encrypt", {"KeyId": "alias/app", "Plaintext": b"hello \x00\xff world",
                        "EncryptionContext": {"purpose": "test", "a b": "c"}}),
    ("kms", "ListKeys", {}),
    ("logs", "PutLogEvents", {"logGroupName": "/app/web", "logStreamName": "s-1",
                              "logEvents": [{"timestamp": 1704067200000, "message": "hello"},
                                            {"timestamp": 1704067200001, "message": "line \"2\"\n"}]}),
    ("cloudtrail", "LookupEvents", {"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "CreateUser"}],
                                    "StartTime": START, "EndTime": END, "MaxResults": 50}),
    ("monitoring", "PutMetricAlarm", {"AlarmName": "errors", "MetricName": "Errors", "Namespace": "App",
                                      "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 1, "Threshold": 5.5,
                                      "ComparisonOperator": "GreaterThanThreshold",
                                      "Dimensions": [{"Name": "Svc", "Value": "web"}], "ActionsEnabled": True}),
]

# Headers the codec reads; the signature headers vary per run and stay out of the fixtures.
KEPT_HEADERS = {"content-type", "x-amz-target", "x-amzn-query-mode"}


class Captured(Exception):
    """Raised from the hook to stop botocore after serialization."""


def normalise(value):
    if isinstance(value, datetime.datetime):
        seconds = value.timestamp()
        return int(seconds) if seconds == int(seconds) else seconds
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def capture(session, service, operation, params):
    client = session.create_client(
        SERVICE_NAMES.get(service, service), region_name="us-east-1", endpoint_url="http://x",
        aws_access_key_id="a", aws_secret_access_key="b")
    record = {}

    def before_send(request, **_):
        url = urllib.parse.urlsplit(request.url)
        body = request.body or b""
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode()
        record.update({
            "method": request.method,
            "path": url.path or "/",
            "query": url.query,
            "headers": {k.lower(): (v.decode() if isinstance(v, bytes) else v)
                        for k, v in request.headers.items() if k.lower() in KEPT_HEADERS},
            "body": body.decode("utf-8"),
        })
        raise Captured()

    client.meta.events.register("before-send", before_send)
    method = getattr(client, botocore.xform_name(operation))
    try:
        method(**params)
    except Captured:
        pass
    protocol = client.meta.service_model.resolved_protocol if hasattr(client.meta.service_model, "resolved_protocol") \
        else client.meta.service_model.protocol
    return {"service": service, "operation": operation, "protocol": protocol, "request": record,
            "expected": normalise(params)}


def main():
    session = botocore.session.get_session()
    fixtures = [capture(session, *case) for case in CASES]
    target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "requests.json")
    with open(target, "w", encoding="utf-8") as handle:
        json.dump({"botocore": botocore.__version__, "cases": fixtures}, handle, indent=1, ensure_ascii=False)
        handle.write("\n")
    print(f"wrote {len(fixtures)} captures to {os.path.normpath(target)} ({os.path.getsize(target)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
