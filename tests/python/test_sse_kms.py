"""SSE-KMS: S3 objects whose data keys are KMS data keys, through boto3 and the aws CLI."""

import base64
import json
import os
import uuid

import botocore.exceptions
import pytest
import requests
from botocore.config import Config

from conftest import ACCOUNT_ID

SIGV2_MESSAGE = "Requests specifying Server Side Encryption with AWS KMS managed keys require AWS Signature Version 4."


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def error_of(info):
    response = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def s3(server):
    return server.client("s3")


@pytest.fixture
def kms(server):
    return server.client("kms")


@pytest.fixture
def bucket(s3):
    name = unique("kms")
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def key(kms):
    return kms.create_key(Description="sse-kms test key")["KeyMetadata"]


def user_with_policy(server, policy):
    """A new IAM user with one inline policy; returns its S3 and KMS clients."""
    iam = server.client("iam")
    name = unique("u")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    created = iam.create_access_key(UserName=name)["AccessKey"]
    creds = {"access_key": created["AccessKeyId"], "secret": created["SecretAccessKey"]}
    return name, server.client("s3", **creds)


def test_put_get_with_a_customer_key_by_id_arn_and_alias(s3, kms, bucket, key):
    alias = f"alias/{unique('app')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    for i, key_id in enumerate([key["KeyId"], key["Arn"], alias]):
        put = s3.put_object(Bucket=bucket, Key=f"o{i}", Body=b"secret body %d" % i,
                            ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)
        assert put["ServerSideEncryption"] == "aws:kms"
        assert put["SSEKMSKeyId"] == key["Arn"]
        got = s3.get_object(Bucket=bucket, Key=f"o{i}")
        assert got["Body"].read() == b"secret body %d" % i
        assert got["ServerSideEncryption"] == "aws:kms"
        assert got["SSEKMSKeyId"] == key["Arn"]
        head = s3.head_object(Bucket=bucket, Key=f"o{i}")
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key["Arn"]
    ranged = s3.get_object(Bucket=bucket, Key="o0", Range="bytes=7-10")["Body"].read()
    assert ranged == b"body"


def test_encryption_context_header_is_bound_and_echoed(s3, bucket, key):
    context = base64.b64encode(json.dumps({"project": "apollo"}).encode()).decode()
    put = s3.put_object(Bucket=bucket, Key="ctx", Body=b"with context", ServerSideEncryption="aws:kms",
                        SSEKMSKeyId=key["KeyId"], SSEKMSEncryptionContext=context)
    echoed = json.loads(base64.b64decode(put["SSEKMSEncryptionContext"]))
    assert echoed == {"project": "apollo", "aws:s3:arn": f"arn:aws:s3:::{bucket}/ctx"}
    assert s3.get_object(Bucket=bucket, Key="ctx")["Body"].read() == b"with context"
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"x", ServerSideEncryption="aws:kms",
                      SSEKMSEncryptionContext=base64.b64encode(b"[1]").decode())
    assert error_of(info) == ("InvalidArgument", 400)


def test_default_aws_managed_key_is_created_on_first_use(s3, kms, bucket):
    put = s3.put_object(Bucket=bucket, Key="managed", Body=b"managed", ServerSideEncryption="aws:kms")
    arn = put["SSEKMSKeyId"]
    assert arn.startswith(f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/")
    aliases = {a["AliasName"]: a for a in kms.list_aliases()["Aliases"]}
    assert "alias/aws/s3" in aliases
    assert arn.endswith(aliases["alias/aws/s3"]["TargetKeyId"])
    meta = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert meta["KeyManager"] == "AWS" and meta["Arn"] == arn
    again = s3.put_object(Bucket=bucket, Key="managed2", Body=b"again", ServerSideEncryption="aws:kms")
    assert again["SSEKMSKeyId"] == arn
    assert s3.get_object(Bucket=bucket, Key="managed")["Body"].read() == b"managed"
    # Its policy allows use only through S3, and no one may manage it.
    for call in [lambda: kms.encrypt(KeyId="alias/aws/s3", Plaintext=b"direct"),
                 lambda: kms.disable_key(KeyId=arn)]:
        with pytest.raises(botocore.exceptions.ClientError) as info:
            call()
        assert error_of(info) == ("AccessDeniedException", 400)


def test_default_bucket_encryption_with_a_kms_key_and_bucket_keys(s3, bucket, key):
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["KeyId"]},
        "BucketKeyEnabled": True,
    }]})
    put = s3.put_object(Bucket=bucket, Key="default", Body=b"by default")
    assert put["ServerSideEncryption"] == "aws:kms"
    assert put["SSEKMSKeyId"] == key["Arn"]
    assert put["BucketKeyEnabled"] is True
    got = s3.get_object(Bucket=bucket, Key="default")
    assert got["Body"].read() == b"by default" and got["BucketKeyEnabled"] is True
    # An explicit SSE-S3 request still wins over the default.
    plain = s3.put_object(Bucket=bucket, Key="s3", Body=b"x", ServerSideEncryption="AES256")
    assert plain["ServerSideEncryption"] == "AES256" and "SSEKMSKeyId" not in plain


def test_multipart_and_copy_under_kms(s3, bucket, key):
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ServerSideEncryption="aws:kms",
                                        SSEKMSKeyId=key["KeyId"])
    assert upload["ServerSideEncryption"] == "aws:kms" and upload["SSEKMSKeyId"] == key["Arn"]
    first = b"a" * (5 * 1024 * 1024)
    parts = []
    for number, body in [(1, first), (2, b"tail")]:
        part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=number, Body=body)
        assert part["ServerSideEncryption"] == "aws:kms"
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload["UploadId"],
                                        MultipartUpload={"Parts": parts})
    assert done["ServerSideEncryption"] == "aws:kms"
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == first + b"tail"
    copied = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "mp"},
                            ServerSideEncryption="aws:kms")
    managed = copied["SSEKMSKeyId"]
    assert managed != key["Arn"]
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == first + b"tail"
    # Copying an SSE-KMS object back to SSE-S3.
    back = s3.copy_object(Bucket=bucket, Key="plain", CopySource={"Bucket": bucket, "Key": "copy"})
    assert back["ServerSideEncryption"] == "AES256"


def test_key_permissions_are_required_for_put_and_get(server, s3, bucket, key):
    s3_only = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    _, writer = user_with_policy(server, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": key["Arn"]},
    ]})
    put = writer.put_object(Bucket=bucket, Key="w", Body=b"written", ServerSideEncryption="aws:kms",
                            SSEKMSKeyId=key["KeyId"])
    assert put["SSEKMSKeyId"] == key["Arn"]
    # No kms:Decrypt: the object cannot be read, but HEAD (no KMS call) still works, as on AWS.
    with pytest.raises(botocore.exceptions.ClientError) as info:
        writer.get_object(Bucket=bucket, Key="w")
    assert error_of(info) == ("AccessDenied", 403)
    assert "not allowed to access" in info.value.response["Error"]["Message"]
    assert writer.head_object(Bucket=bucket, Key="w")["SSEKMSKeyId"] == key["Arn"]
    assert s3.get_object(Bucket=bucket, Key="w")["Body"].read() == b"written"

    name, s3_user = user_with_policy(server, s3_only)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3_user.put_object(Bucket=bucket, Key="n", Body=b"x", ServerSideEncryption="aws:kms",
                           SSEKMSKeyId=key["KeyId"])
    assert error_of(info) == ("AccessDenied", 403)
    message = info.value.response["Error"]["Message"]
    assert "kms:GenerateDataKey" in message and name in message and key["Arn"] in message
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3_user.get_object(Bucket=bucket, Key="w")
    assert error_of(info) == ("AccessDenied", 403)
    # The AWS managed key's policy lets every principal of the account use it through S3.
    managed = s3_user.put_object(Bucket=bucket, Key="m", Body=b"managed", ServerSideEncryption="aws:kms")
    assert managed["ServerSideEncryption"] == "aws:kms"
    assert s3_user.get_object(Bucket=bucket, Key="m")["Body"].read() == b"managed"


def test_key_policy_can_pin_use_to_s3(server, s3, kms, bucket):
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "OnlyThroughS3", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringNotEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}},
        {"Sid": "OnlyThisBucket", "Effect": "Deny", "Principal": "*", "Action": "kms:GenerateDataKey",
         "Resource": "*",
         "Condition": {"StringNotLike": {"kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{bucket}/allowed/*"}}},
    ]}
    key = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]
    s3.put_object(Bucket=bucket, Key="allowed/a", Body=b"ok", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["KeyId"])
    assert s3.get_object(Bucket=bucket, Key="allowed/a")["Body"].read() == b"ok"
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.put_object(Bucket=bucket, Key="elsewhere", Body=b"no", ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=key["KeyId"])
    assert error_of(info) == ("AccessDenied", 403)


def test_disabled_key_makes_get_and_put_fail(s3, kms, bucket, key):
    s3.put_object(Bucket=bucket, Key="d", Body=b"soon unreadable", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["KeyId"])
    kms.disable_key(KeyId=key["KeyId"])
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.get_object(Bucket=bucket, Key="d")
    assert error_of(info) == ("KMS.DisabledException", 400)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.put_object(Bucket=bucket, Key="d2", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key["KeyId"])
    assert error_of(info) == ("KMS.DisabledException", 400)
    kms.enable_key(KeyId=key["KeyId"])
    assert s3.get_object(Bucket=bucket, Key="d")["Body"].read() == b"soon unreadable"
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.get_object(Bucket=bucket, Key="d")
    assert error_of(info) == ("KMS.KMSInvalidStateException", 400)


def test_unknown_keys_and_sigv2_are_refused(server, s3, bucket, key):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        s3.put_object(Bucket=bucket, Key="x", Body=b"x", ServerSideEncryption="aws:kms",
                      SSEKMSKeyId="alias/does-not-exist")
    assert error_of(info) == ("KMS.NotFoundException", 400)
    s3.put_object(Bucket=bucket, Key="v4", Body=b"v4 only", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["KeyId"])
    v2 = server.client("s3", config=Config(signature_version="s3"))
    with pytest.raises(botocore.exceptions.ClientError) as info:
        v2.put_object(Bucket=bucket, Key="v2", Body=b"x", ServerSideEncryption="aws:kms")
    assert error_of(info) == ("InvalidArgument", 400)
    assert info.value.response["Error"]["Message"] == SIGV2_MESSAGE
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v4"}, ExpiresIn=300)
    assert "AWSAccessKeyId=" in url
    response = requests.get(url)
    assert response.status_code == 400 and SIGV2_MESSAGE in response.text
    v4 = server.client("s3", config=Config(signature_version="s3v4"))
    url4 = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v4"}, ExpiresIn=300)
    assert requests.get(url4).content == b"v4 only"


def test_aws_cli_sse_kms(server, bucket, key, tmp_path):
    source = tmp_path / "file.txt"
    source.write_bytes(b"from the cli")
    server.aws("s3", "cp", str(source), f"s3://{bucket}/cli.txt", "--sse", "aws:kms", "--sse-kms-key-id", key["KeyId"])
    head = json.loads(server.aws("s3api", "head-object", "--bucket", bucket, "--key", "cli.txt").stdout)
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key["Arn"]
    target = tmp_path / "back.txt"
    server.aws("s3", "cp", f"s3://{bucket}/cli.txt", str(target))
    assert target.read_bytes() == b"from the cli"


def test_data_directory_holds_no_plaintext_under_kms(fresh_server):
    s3 = fresh_server.client("s3")
    kms = fresh_server.client("kms")
    name = unique("kms")
    s3.create_bucket(Bucket=name)
    key = kms.create_key()["KeyMetadata"]
    marker = b"CITADEL-KMS-PLAINTEXT-" + uuid.uuid4().hex.encode()
    s3.put_object(Bucket=name, Key="doc", Body=marker * 500, ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["KeyId"])
    s3.put_object(Bucket=name, Key="managed", Body=marker * 10, ServerSideEncryption="aws:kms")
    assert s3.get_object(Bucket=name, Key="doc")["Body"].read() == marker * 500
    found = []
    for root, _, files in os.walk(fresh_server.data_dir):
        for file in files:
            path = os.path.join(root, file)
            with open(path, "rb") as handle:
                if marker in handle.read():
                    found.append(path)
    assert found == []
