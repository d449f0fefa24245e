"""CloudTrail log files encrypted with SSE-KMS under the trail's key, through boto3: CreateTrail checks
the key and its policy, log files (not digests) are `aws:kms` objects under that key, a reader allowed
`kms:Decrypt` gets them and a reader without it gets AccessDenied.
"""

import gzip
import json
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT_ID, CitadelServer
from helpers import bucket_for_trails, error_code, unique, wait_for

REGION = "us-east-1"


@pytest.fixture(scope="module")
def kms_server():
    s = CitadelServer("--test-api", "--trail-delivery-interval", "2s", "--digest-interval", "4s")
    yield s
    s.close()


def key_policy(allow_cloudtrail):
    statements = [{"Sid": "Enable IAM policies", "Effect": "Allow",
                   "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}, "Action": "kms:*", "Resource": "*"}]
    if allow_cloudtrail:
        statements.append({
            "Sid": "Allow CloudTrail to encrypt logs", "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "kms:GenerateDataKey*",
            "Resource": "*",
            "Condition": {"StringLike": {
                "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:aws:cloudtrail:*:{ACCOUNT_ID}:trail/*"}}})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def reader(server, iam, bucket, key_arn, decrypt):
    name = unique("reader")
    iam.create_user(UserName=name)
    actions = [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]
    if decrypt:
        actions.append({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key_arn})
    iam.put_user_policy(UserName=name, PolicyName="read",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": actions}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return server.client("s3", access_key=key["AccessKeyId"], secret=key["SecretAccessKey"])


def test_create_trail_checks_the_key(kms_server):
    ct, s3, kms = (kms_server.client(s) for s in ("cloudtrail", "s3", "kms"))
    bucket = bucket_for_trails(s3)
    closed = kms.create_key(Policy=key_policy(False))["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        ct.create_trail(Name=unique("t"), S3BucketName=bucket, KmsKeyId=closed)
    assert error_code(e) == "InsufficientEncryptionPolicyException"
    with pytest.raises(ClientError) as e:
        ct.create_trail(Name=unique("t"), S3BucketName=bucket, KmsKeyId=str(uuid.uuid4()))
    assert error_code(e) == "KmsKeyNotFoundException"
    with pytest.raises(ClientError) as e:
        ct.create_trail(Name=unique("t"), S3BucketName=bucket, KmsKeyId="alias/no-such-alias")
    assert error_code(e) == "KmsKeyNotFoundException"


def test_log_files_are_sse_kms_and_need_kms_decrypt(kms_server):
    ct, s3, kms, iam = (kms_server.client(s) for s in ("cloudtrail", "s3", "kms", "iam"))
    bucket = bucket_for_trails(s3)
    key = kms.create_key(Policy=key_policy(True))["KeyMetadata"]
    alias = f"alias/{unique('trail')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    trail = unique("enc")
    out = ct.create_trail(Name=trail, S3BucketName=bucket, KmsKeyId=alias, EnableLogFileValidation=True)
    assert out["KmsKeyId"] == key["Arn"]
    assert ct.get_trail(Name=trail)["Trail"]["KmsKeyId"] == key["Arn"]
    ct.start_logging(Name=trail)
    kms.describe_key(KeyId=key["KeyId"])

    def listed(kind):
        prefix = f"AWSLogs/{ACCOUNT_ID}/{kind}/"
        return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]

    log_key = wait_for(lambda: listed("CloudTrail"))[0]
    head = s3.head_object(Bucket=bucket, Key=log_key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key["Arn"]
    digest_key = wait_for(lambda: listed("CloudTrail-Digest"), timeout=30)[0]
    assert s3.head_object(Bucket=bucket, Key=digest_key).get("ServerSideEncryption") != "aws:kms"

    allowed = reader(kms_server, iam, bucket, key["Arn"], decrypt=True)
    body = gzip.decompress(allowed.get_object(Bucket=bucket, Key=log_key)["Body"].read())
    assert json.loads(body)["Records"]
    denied = reader(kms_server, iam, bucket, key["Arn"], decrypt=False)
    with pytest.raises(ClientError) as e:
        denied.get_object(Bucket=bucket, Key=log_key)
    assert error_code(e) == "AccessDenied"
    # The digest is not under the key: the reader without kms:Decrypt still reads it.
    assert denied.get_object(Bucket=bucket, Key=digest_key)["Body"].read()
    ct.stop_logging(Name=trail)
    status = ct.get_trail_status(Name=trail)
    assert "LatestDeliveryError" not in status
