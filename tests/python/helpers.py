"""Helpers the Python suite's test files share: unique names, error codes, polling, and buckets that
CloudTrail may deliver to.

They live here rather than in conftest.py because they are plain functions the tests call, not
fixtures; conftest.py keeps the server process and its fixtures.
"""

import json
import time
import uuid

from conftest import ACCOUNT_ID


def unique(prefix):
    """A name no other test run uses, so tests can share one server without cleaning up."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_code(excinfo):
    """The AWS error code of a `pytest.raises(ClientError)` result."""
    return excinfo.value.response["Error"]["Code"]


def wait_for(predicate, timeout=60, step=1.0):
    """Polls `predicate` until it returns something truthy, and returns that.

    Delivery (log files, digests, CloudWatch Logs events) runs on the server's own schedule, so
    tests wait for its outcome rather than for a fixed time.
    """
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def cloudtrail_bucket_policy(bucket, log_prefix=None):
    """The bucket policy AWS documents for trail delivery: CloudTrail may read the ACL and write
    its files under `[log_prefix/]AWSLogs/<account>/` with the owner in full control."""
    path = f"{log_prefix}/AWSLogs/{ACCOUNT_ID}/*" if log_prefix else f"AWSLogs/{ACCOUNT_ID}/*"
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AWSCloudTrailAclCheck", "Effect": "Allow",
             "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:GetBucketAcl", "Resource": f"arn:aws:s3:::{bucket}"},
            {"Sid": "AWSCloudTrailWrite", "Effect": "Allow",
             "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/{path}",
             "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}},
        ],
    })


def bucket_for_trails(s3, log_prefix=None, policy=True):
    """A new bucket with the delivery policy for trails writing under `log_prefix` (none without
    `policy`, for tests of CreateTrail's policy check); returns its name."""
    bucket = unique("ct")
    s3.create_bucket(Bucket=bucket)
    if policy:
        s3.put_bucket_policy(Bucket=bucket, Policy=cloudtrail_bucket_policy(bucket, log_prefix))
    return bucket
