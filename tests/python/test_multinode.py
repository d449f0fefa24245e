"""Two `citadel serve` nodes on one PostgreSQL store act as one system (issue 9).

Needs a PostgreSQL server: CITADEL_TEST_POSTGRES_URL (scripts/pg-test-server.sh start prints one).
Without it the tests are skipped, except under CI, where a missing server is a failure.
"""

import base64
import gzip
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import CitadelServer
from helpers import bucket_for_trails

PG_URL = os.environ.get("CITADEL_TEST_POSTGRES_URL")

if not PG_URL:
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the multi-node tests: set CITADEL_TEST_POSTGRES_URL")
    pytest.skip("CITADEL_TEST_POSTGRES_URL is not set: multi-node tests NOT run", allow_module_level=True)


def fresh_database():
    """A new, empty database on the test server; returns its URL."""
    name = f"citadel_nodes_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", PG_URL, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return PG_URL.rsplit("/", 1)[0] + "/" + name, name


def drop_database(name):
    subprocess.run(["psql", PG_URL, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


@pytest.fixture(scope="module")
def cluster():
    url, name = fresh_database()
    shared = tempfile.mkdtemp(prefix="citadel-shared-blobs-")
    env = {"CITADEL_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()}
    args = ["--store", url, "--blobs", f"file://{shared}", "--trail-delivery-interval", "1s"]
    a = CitadelServer(*args, env=env)
    b = CitadelServer(*args, env=env)
    yield a, b, url
    a.close()
    b.close()
    drop_database(name)
    shutil.rmtree(shared, ignore_errors=True)


def user_with_key(iam, name, policy):
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def test_user_made_on_a_authenticates_on_b_at_once(cluster):
    a, b, _ = cluster
    key_id, secret = user_with_key(a.client("iam"), "alice", {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]})
    identity = b.client("sts", access_key=key_id, secret=secret).get_caller_identity()
    assert identity["Arn"].endswith(":user/alice")
    assert b.client("iam", access_key=key_id, secret=secret).get_user()["User"]["UserName"] == "alice"


def test_policy_change_on_a_takes_effect_on_b_within_a_second(cluster):
    a, b, _ = cluster
    iam_a = a.client("iam")
    key_id, secret = user_with_key(iam_a, "bob", {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"}]})
    iam_b = b.client("iam", access_key=key_id, secret=secret)
    iam_b.list_users()  # allowed, and now cached on B
    iam_a.put_user_policy(UserName="bob", PolicyName="deny", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "iam:ListUsers", "Resource": "*"}]}))
    changed = time.time()
    while True:
        try:
            iam_b.list_users()
        except ClientError as err:
            assert err.response["Error"]["Code"] == "AccessDenied"
            break
        assert time.time() - changed < 1.0, "B still allows a call A's policy change denies"
        time.sleep(0.02)
    # Deactivating a key on A locks it out on B as quickly.
    iam_a.update_access_key(UserName="bob", AccessKeyId=key_id, Status="Inactive")
    changed = time.time()
    sts_b = b.client("sts", access_key=key_id, secret=secret)
    while True:
        try:
            sts_b.get_caller_identity()
        except ClientError as err:
            assert err.response["Error"]["Code"] == "InvalidClientTokenId"
            break
        assert time.time() - changed < 1.0, "B still accepts a key A deactivated"
        time.sleep(0.02)


def test_objects_and_keys_are_shared(cluster):
    a, b, _ = cluster
    s3_a, s3_b = a.client("s3"), b.client("s3")
    s3_a.create_bucket(Bucket="shared-bucket")
    body = os.urandom(300_000)
    s3_a.put_object(Bucket="shared-bucket", Key="k", Body=body)
    assert s3_b.get_object(Bucket="shared-bucket", Key="k")["Body"].read() == body
    key_id = a.client("kms").create_key()["KeyMetadata"]["KeyId"]
    blob = a.client("kms").encrypt(KeyId=key_id, Plaintext=b"secret",
                                    EncryptionContext={"app": "x"})["CiphertextBlob"]
    plain = b.client("kms").decrypt(CiphertextBlob=blob, EncryptionContext={"app": "x"})["Plaintext"]
    assert plain == b"secret"
    assert "shared-bucket" in [x["Name"] for x in s3_b.list_buckets()["Buckets"]]


def test_cloudtrail_delivers_each_event_exactly_once(cluster):
    a, b, _ = cluster
    s3 = a.client("s3")
    bucket = bucket_for_trails(s3)
    trail = a.client("cloudtrail").create_trail(Name="nodes", S3BucketName=bucket)["TrailARN"]
    a.client("cloudtrail").start_logging(Name=trail)
    marker = f"mark{uuid.uuid4().hex[:8]}"
    for i in range(10):
        node = a if i % 2 else b
        node.client("iam").create_user(UserName=f"{marker}-{i}")

    def delivered_ids():
        ids = []
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="AWSLogs/")
        for page in pages:
            for obj in page.get("Contents", []):
                if "/CloudTrail/" not in obj["Key"]:
                    continue
                raw = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                for record in json.loads(gzip.decompress(raw))["Records"]:
                    if record["eventName"] == "CreateUser" and marker in json.dumps(record):
                        ids.append(record["eventID"])
        return ids

    deadline = time.time() + 30
    ids = []
    while time.time() < deadline:
        ids = delivered_ids()
        if len(set(ids)) == 10:
            break
        time.sleep(1)
    assert len(set(ids)) == 10, f"delivered {len(set(ids))} of 10 events"
    # Both nodes run the delivery task; the lease lets only one of them write each file.
    time.sleep(3)
    ids = delivered_ids()
    assert len(ids) == 10, f"events delivered more than once: {len(ids)} records for 10 events"


def test_a_node_with_another_master_key_refuses_to_start(cluster):
    _, _, url = cluster
    with pytest.raises(RuntimeError):
        CitadelServer("--store", url, env={"CITADEL_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()})
