"""Blobs in an S3-compatible object store (`--blobs s3://...`, issue 9).

Node A is a plain Citadel serving as the object store; node B is a Citadel started with
`--blobs s3://blobbucket/nodeb?endpoint=<A>` and A's root credentials in `CITADEL_BLOBS_*`.
Everything B writes as a blob (object data, multipart parts, SSE-KMS objects, CloudTrail log files)
must land in A's bucket, as ciphertext: B encrypts object data before it reaches its blob store.
"""

import gzip
import hashlib
import json
import random
import string
import os
import subprocess

import pytest
from boto3.s3.transfer import TransferConfig

from conftest import ROOT_ACCESS_KEY_ID, ROOT_SECRET_ACCESS_KEY, CitadelServer, citadel_binary
from helpers import bucket_for_trails, unique, wait_for

BLOB_BUCKET = "blobbucket"
BLOB_PREFIX = "nodeb/"
MARKER = b"CITADEL-PLAINTEXT-MARKER-7f3a9c"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def nodes():
    store = CitadelServer()
    store.client("s3").create_bucket(Bucket=BLOB_BUCKET)
    # The standard variables hold keys A does not know: the CITADEL_BLOBS_* ones must win.
    node = CitadelServer(
        "--test-api", "--blobs", f"s3://{BLOB_BUCKET}/nodeb?endpoint={store.endpoint}&region=us-east-1",
        "--trail-delivery-interval", "2s",
        env={
            "CITADEL_BLOBS_ACCESS_KEY_ID": ROOT_ACCESS_KEY_ID,
            "CITADEL_BLOBS_SECRET_ACCESS_KEY": ROOT_SECRET_ACCESS_KEY,
            "AWS_ACCESS_KEY_ID": "AKIANOTTHEBLOBSTORE0",
            "AWS_SECRET_ACCESS_KEY": "not-the-blob-store-secret",
            "AWS_SESSION_TOKEN": "not-the-blob-store-token",
        })
    yield store, node
    node.close()
    store.close()


def blob_objects(store):
    """Every object in A's blob bucket: key -> (size, etag)."""
    s3 = store.client("s3")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BLOB_BUCKET):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = (obj["Size"], obj["ETag"])
    return found


def read_blob(store, key):
    return store.client("s3").get_object(Bucket=BLOB_BUCKET, Key=key)["Body"].read()


def plaintext(size):
    """`size` bytes that are easy to find: the marker again and again, with a counter."""
    out = bytearray()
    n = 0
    while len(out) < size:
        out += MARKER + b"%08d|" % n
        n += 1
    return bytes(out[:size])


def assert_ciphertext(store, keys, *secrets):
    for key in keys:
        data = read_blob(store, key)
        for secret in secrets:
            assert secret not in data, f"plaintext in blob {key}"


def test_node_keeps_no_local_blobs_and_objects_land_in_the_store(nodes):
    store, node = nodes
    s3 = node.client("s3")
    bucket = unique("b")
    s3.create_bucket(Bucket=bucket)
    before = blob_objects(store)
    body = plaintext(100_000)
    s3.put_object(Bucket=bucket, Key="small.txt", Body=body)
    new = set(blob_objects(store)) - set(before)
    assert len(new) == 1, new
    (key,) = new
    assert key.startswith(BLOB_PREFIX + "s3/"), key
    assert blob_objects(store)[key][0] > len(body), "sealed chunks carry tags"
    assert_ciphertext(store, new, MARKER)
    assert s3.get_object(Bucket=bucket, Key="small.txt")["Body"].read() == body
    got = s3.get_object(Bucket=bucket, Key="small.txt", Range="bytes=70000-70099")
    assert got["Body"].read() == body[70000:70100]
    assert not os.path.exists(os.path.join(node.data_dir, "blobs"))

    # Deleting the object removes its blob from the store.
    s3.delete_object(Bucket=bucket, Key="small.txt")
    wait_for(lambda: key not in blob_objects(store), timeout=20, step=0.2)


def test_multipart_upload_and_range_get(nodes, tmp_path):
    store, node = nodes
    s3 = node.client("s3")
    bucket = unique("mp")
    s3.create_bucket(Bucket=bucket)
    before = blob_objects(store)
    body = plaintext(20 * MiB)
    source = tmp_path / "big.bin"
    source.write_bytes(body)
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB)
    s3.upload_file(str(source), bucket, "big.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == len(body)
    assert head["ETag"].strip('"').endswith("-3")

    got = s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
    # A range across the first part boundary, and one at the end.
    ranged = s3.get_object(Bucket=bucket, Key="big.bin", Range=f"bytes={8 * MiB - 1000}-{8 * MiB + 999}")
    assert ranged["ContentRange"] == f"bytes {8 * MiB - 1000}-{8 * MiB + 999}/{len(body)}"
    assert ranged["Body"].read() == body[8 * MiB - 1000:8 * MiB + 1000]
    tail = s3.get_object(Bucket=bucket, Key="big.bin", Range="bytes=-5000")["Body"].read()
    assert tail == body[-5000:]

    after = blob_objects(store)
    new = set(after) - set(before)
    # One blob per part; parts over 5 MiB reached the store as multipart uploads themselves.
    assert len(new) == 3, new
    assert sum(after[k][0] for k in new) > len(body)
    assert any(after[k][1].strip('"').count("-") == 1 for k in new), [after[k] for k in new]
    assert_ciphertext(store, new, MARKER)


def test_sse_kms_objects_are_blobs_in_the_store(nodes):
    store, node = nodes
    s3 = node.client("s3")
    kms = node.client("kms")
    key_id = kms.create_key(Description="blobs in s3")["KeyMetadata"]["KeyId"]
    bucket = unique("kms")
    s3.create_bucket(Bucket=bucket)
    before = blob_objects(store)
    body = plaintext(300_000)
    put = s3.put_object(Bucket=bucket, Key="secret", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)
    assert put["ServerSideEncryption"] == "aws:kms"
    got = s3.get_object(Bucket=bucket, Key="secret")
    assert got["ServerSideEncryption"] == "aws:kms"
    assert got["Body"].read() == body
    new = set(blob_objects(store)) - set(before)
    assert len(new) == 1, new
    assert_ciphertext(store, new, MARKER)

    # KMS itself still works with data that never touches the blob store.
    blob = kms.encrypt(KeyId=key_id, Plaintext=MARKER)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == MARKER


def test_cloudtrail_log_files_are_blobs_in_the_store(nodes):
    store, node = nodes
    s3 = node.client("s3")
    ct = node.client("cloudtrail")
    bucket = bucket_for_trails(s3)
    name = unique("trail")
    before = blob_objects(store)
    ct.create_trail(Name=name, S3BucketName=bucket)
    ct.start_logging(Name=name)
    user = unique("marker-user")
    iam = node.client("iam")
    iam.create_user(UserName=user)
    # Log files of at most 16 KiB are kept as rows of the (PostgreSQL) store, like any small
    # object; tags with incompressible values make this delivery's file larger than that.
    for i in range(3):
        tagged = f"{user}-{i}"
        iam.create_user(UserName=tagged)
        iam.tag_user(UserName=tagged, Tags=[
            {"Key": f"k{j}", "Value": "".join(random.choices(string.ascii_letters + string.digits, k=250))}
            for j in range(50)])

    def delivered_with_user():
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])
                if o["Key"].endswith(".json.gz")]
        for key in keys:
            records = json.loads(gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
            if user in json.dumps(records):
                return key
        return None

    wait_for(delivered_with_user, timeout=60)
    # The user's own record may come in an earlier, small (inline) file than the tagged users'
    # records, so wait for the large file to land as a blob.
    new = wait_for(lambda: set(blob_objects(store)) - set(before), timeout=60)
    ct.stop_logging(Name=name)
    assert_ciphertext(store, new, user.encode(), b"CreateUser")


def test_s3_blobs_without_credentials_refuse_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CITADEL_BLOBS_"))}
    result = subprocess.run(
        [citadel_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"),
         "--blobs", "s3://blobbucket?endpoint=http://127.0.0.1:9"],
        env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "CITADEL_BLOBS_ACCESS_KEY_ID" in result.stderr, result.stderr
    bad = subprocess.run(
        [citadel_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data2"),
         "--blobs", "s3://blobbucket?colour=red"],
        env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    assert "unknown parameter" in bad.stderr, bad.stderr

