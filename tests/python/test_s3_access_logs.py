"""S3 server access logging (issue 7): PutBucketLogging/GetBucketLogging through boto3, and log
objects delivered into the target bucket in AWS's format by the logging service principal."""

import json
import re
import time
import uuid

import botocore.exceptions
import pytest
import requests

from conftest import ACCOUNT_ID, CitadelServer

# AWS's server access log record: 26 space-delimited fields, three of them quoted, time in brackets.
RECORD = re.compile(
    r'^(?P<owner>\S+) (?P<bucket>\S+) \[(?P<time>[^\]]+)\] (?P<ip>\S+) (?P<requester>\S+) (?P<request_id>\S+) '
    r'(?P<operation>\S+) (?P<key>\S+) "(?P<uri>[^"]*)" (?P<status>\S+) (?P<error>\S+) (?P<bytes_sent>\S+) '
    r'(?P<object_size>\S+) (?P<total_time>\S+) (?P<turnaround>\S+) "(?P<referer>[^"]*)" "(?P<user_agent>[^"]*)" '
    r'(?P<version_id>\S+) (?P<host_id>\S+) (?P<sigv>\S+) (?P<cipher>\S+) (?P<auth_type>\S+) (?P<host>\S+) '
    r'(?P<tls>\S+) (?P<access_point>\S+) (?P<acl_required>\S+)$')
OBJECT_NAME = re.compile(r"^(?P<prefix>.*)\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9A-F]{16}$")


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def logging_policy(target, source=None):
    statement = {
        "Sid": "S3ServerAccessLogsPolicy", "Effect": "Allow",
        "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{target}/*",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}},
    }
    if source:
        statement["Condition"]["ArnLike"] = {"aws:SourceArn": f"arn:aws:s3:::{source}"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def logged_pair(s3, prefix="logs/"):
    source, target = name("src"), name("logs")
    s3.create_bucket(Bucket=source)
    s3.create_bucket(Bucket=target)
    s3.put_bucket_policy(Bucket=target, Policy=logging_policy(target, source))
    s3.put_bucket_logging(Bucket=source, BucketLoggingStatus={
        "LoggingEnabled": {"TargetBucket": target, "TargetPrefix": prefix}})
    return source, target


def records(s3, target, prefix="logs/", want=1, timeout=20):
    """Waits until the target holds at least `want` records; returns (object keys, parsed records)."""
    deadline = time.time() + timeout
    while True:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=target, Prefix=prefix).get("Contents", [])]
        lines = []
        for key in keys:
            body = s3.get_object(Bucket=target, Key=key)["Body"].read().decode()
            lines += [line for line in body.splitlines() if line]
        if len(lines) >= want or time.time() > deadline:
            parsed = []
            for line in lines:
                match = RECORD.match(line)
                assert match, f"not an access log record: {line!r}"
                parsed.append(match.groupdict())
            return keys, parsed
        time.sleep(0.5)


@pytest.fixture(scope="module")
def log_server():
    s = CitadelServer("--test-api", "--access-log-interval", "2s")
    yield s
    s.close()


@pytest.fixture
def s3(log_server):
    return log_server.client("s3")


def error_of(info):
    return info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_put_and_get_bucket_logging(s3):
    source, target = logged_pair(s3, prefix="access/")
    enabled = s3.get_bucket_logging(Bucket=source)["LoggingEnabled"]
    assert enabled == {"TargetBucket": target, "TargetPrefix": "access/"}
    s3.put_bucket_logging(Bucket=source, BucketLoggingStatus={})
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=source)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.get_bucket_logging(Bucket=name("missing"))
    assert error_of(info) == ("NoSuchBucket", 404)


def test_target_must_exist_and_admit_the_logging_service(log_server, s3):
    source = name("src")
    s3.create_bucket(Bucket=source)
    enable = lambda target, prefix="": s3.put_bucket_logging(Bucket=source, BucketLoggingStatus={
        "LoggingEnabled": {"TargetBucket": target, "TargetPrefix": prefix}})
    with pytest.raises(botocore.exceptions.ClientError) as info:
        enable(name("nowhere"))
    assert error_of(info) == ("InvalidTargetBucketForLogging", 400)
    # A target whose policy does not let logging.s3.amazonaws.com put objects is refused.
    bare = name("bare")
    s3.create_bucket(Bucket=bare)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        enable(bare)
    assert error_of(info) == ("InvalidTargetBucketForLogging", 400)
    # A policy for some other source bucket does not admit this one (aws:SourceArn).
    s3.put_bucket_policy(Bucket=bare, Policy=logging_policy(bare, source="someone-else"))
    with pytest.raises(botocore.exceptions.ClientError) as info:
        enable(bare)
    assert error_of(info) == ("InvalidTargetBucketForLogging", 400)
    # A policy that admits only another prefix does not cover this one.
    s3.put_bucket_policy(Bucket=bare, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bare}/allowed/*"}]}))
    with pytest.raises(botocore.exceptions.ClientError) as info:
        enable(bare, "other/")
    assert error_of(info) == ("InvalidTargetBucketForLogging", 400)
    enable(bare, "allowed/")
    # A target in another region is refused, as AWS does.
    far = name("far")
    s3.create_bucket(Bucket=far, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_policy(Bucket=far, Policy=logging_policy(far))
    with pytest.raises(botocore.exceptions.ClientError) as info:
        enable(far)
    assert error_of(info) == ("CrossLocationLoggingProhibited", 403)


def test_target_owned_by_another_account_is_refused(log_server, s3):
    from test_foundation import signed_admin_post
    created = signed_admin_post(log_server, "/_citadel/accounts", {"Name": name("other")})
    assert created.status_code == 200, created.text
    body = created.json()
    other = log_server.client("s3", access_key=body["AccessKeyId"], secret=body["SecretAccessKey"])
    foreign = name("foreign")
    other.create_bucket(Bucket=foreign)
    other.put_bucket_policy(Bucket=foreign, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{foreign}/*"}]}))
    source = name("src")
    s3.create_bucket(Bucket=source)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.put_bucket_logging(Bucket=source, BucketLoggingStatus={
            "LoggingEnabled": {"TargetBucket": foreign, "TargetPrefix": ""}})
    assert error_of(info) == ("InvalidTargetBucketForLogging", 400)


def test_requests_are_delivered_in_aws_format(log_server, s3):
    source, target = logged_pair(s3)
    s3.put_object(Bucket=source, Key="dir/hello world.txt", Body=b"hello")
    assert s3.get_object(Bucket=source, Key="dir/hello world.txt")["Body"].read() == b"hello"
    with pytest.raises(botocore.exceptions.ClientError):
        s3.get_object(Bucket=source, Key="missing")
    s3.list_objects_v2(Bucket=source)
    # An anonymous request is logged too, with its failure.
    anonymous = requests.get(f"{log_server.endpoint}/{source}/dir/hello%20world.txt",
                             headers={"Referer": "https://example.com/page"})
    assert anonymous.status_code == 403
    keys, parsed = records(s3, target, want=6)
    assert keys and all(OBJECT_NAME.match(k).group("prefix") == "logs/" for k in keys)
    by_op = {}
    for record in parsed:
        by_op.setdefault((record["operation"], record["status"]), []).append(record)
    put = by_op[("REST.PUT.OBJECT", "200")][0]
    assert put["bucket"] == source
    assert re.fullmatch(r"[0-9a-f]{64}", put["owner"])
    assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", put["time"])
    assert put["ip"] == "127.0.0.1"
    assert put["requester"] == f"arn:aws:iam::{ACCOUNT_ID}:root"
    assert re.fullmatch(r"[0-9A-F]{16}", put["request_id"])
    assert put["key"] == "dir/hello%20world.txt"
    assert put["uri"].startswith(f"PUT /{source}/dir/hello%20world.txt")
    assert put["uri"].endswith("HTTP/1.1")
    assert put["error"] == "-"
    assert put["object_size"] == "5"
    assert put["user_agent"].startswith("Boto3/")
    assert put["sigv"] == "SigV4" and put["auth_type"] == "AuthHeader"
    assert put["host"] == log_server.endpoint.split("//", 1)[1]
    get = by_op[("REST.GET.OBJECT", "200")][0]
    assert get["bytes_sent"] == "5" and get["object_size"] == "5"
    missing = by_op[("REST.GET.OBJECT", "404")][0]
    assert missing["error"] == "NoSuchKey" and missing["key"] == "missing"
    assert ("REST.GET.BUCKET", "200") in by_op
    denied = by_op[("REST.GET.OBJECT", "403")][0]
    assert denied["requester"] == "-" and denied["error"] == "AccessDenied"
    assert denied["sigv"] == "-" and denied["auth_type"] == "-"
    assert denied["referer"] == "https://example.com/page"
    # Logging's own deliveries into the target are written as the logging service, under the policy.
    assert all(record["bucket"] == source for record in parsed)


def test_delivery_stops_when_the_target_refuses(log_server, s3):
    source, target = logged_pair(s3)
    s3.delete_bucket_policy(Bucket=target)
    s3.put_object(Bucket=source, Key="k", Body=b"x")
    time.sleep(4)
    assert s3.list_objects_v2(Bucket=target).get("KeyCount", 0) == 0


def test_records_are_flushed_on_graceful_shutdown():
    server = CitadelServer("--access-log-interval", "1h")
    try:
        s3 = server.client("s3")
        source, target = logged_pair(s3)
        s3.put_object(Bucket=source, Key="a", Body=b"abc")
        s3.head_object(Bucket=source, Key="a")
        assert s3.list_objects_v2(Bucket=target).get("KeyCount", 0) == 0
        assert server.stop() == 0
        server.start()
        s3 = server.client("s3")
        _, parsed = records(s3, target, want=2, timeout=5)
        operations = [r["operation"] for r in parsed]
        assert "REST.PUT.OBJECT" in operations and "REST.HEAD.OBJECT" in operations
    finally:
        server.close()
