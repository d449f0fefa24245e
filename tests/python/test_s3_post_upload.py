"""Browser POST uploads with a signed policy (issue 7): boto3's generate_presigned_post and a plain
multipart/form-data POST with requests, as a browser form sends it."""

import base64
import json
import uuid
import xml.etree.ElementTree as ET

import pytest
import requests
from botocore.config import Config

SIGV4 = Config(signature_version="s3v4")


def bucket_name():
    return f"post-{uuid.uuid4().hex[:20]}"


@pytest.fixture
def s3(server):
    return server.client("s3", config=SIGV4)


@pytest.fixture
def bucket(s3):
    name = bucket_name()
    s3.create_bucket(Bucket=name)
    return name


def error(response):
    root = ET.fromstring(response.content)
    return root.findtext("Code"), root.findtext("Message")


def test_presigned_post_uploads_the_file(s3, bucket):
    post = s3.generate_presigned_post(Bucket=bucket, Key="uploads/hello.txt", ExpiresIn=300)
    assert post["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    response = requests.post(post["url"], data=post["fields"],
                             files={"file": ("hello.txt", b"hello from a browser form")})
    assert response.status_code == 204, response.text
    assert response.headers["ETag"]
    assert response.headers["Location"].endswith(f"/{bucket}/uploads/hello.txt")
    got = s3.get_object(Bucket=bucket, Key="uploads/hello.txt")
    assert got["Body"].read() == b"hello from a browser form"
    assert got["ServerSideEncryption"] == "AES256"


def test_success_action_status_and_redirect(s3, bucket):
    post = s3.generate_presigned_post(
        Bucket=bucket, Key="created.txt",
        Fields={"success_action_status": "201", "Content-Type": "text/plain"},
        Conditions=[{"success_action_status": "201"}, {"Content-Type": "text/plain"}])
    response = requests.post(post["url"], data=post["fields"], files={"file": ("f", b"abc")})
    assert response.status_code == 201, response.text
    root = ET.fromstring(response.content)
    strip = lambda tag: tag.split("}", 1)[-1]
    fields = {strip(child.tag): child.text for child in root}
    assert fields["Bucket"] == bucket and fields["Key"] == "created.txt"
    assert fields["ETag"].strip('"') == s3.head_object(Bucket=bucket, Key="created.txt")["ETag"].strip('"')
    assert s3.head_object(Bucket=bucket, Key="created.txt")["ContentType"] == "text/plain"

    post = s3.generate_presigned_post(
        Bucket=bucket, Key="redirected.txt",
        Fields={"success_action_redirect": "https://example.com/done"},
        Conditions=[{"success_action_redirect": "https://example.com/done"}])
    response = requests.post(post["url"], data=post["fields"], files={"file": ("f", b"abc")},
                             allow_redirects=False)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("https://example.com/done?bucket=")
    assert "key=redirected.txt" in response.headers["Location"]


def test_tampered_policy_is_refused(s3, bucket):
    post = s3.generate_presigned_post(Bucket=bucket, Key="k", ExpiresIn=300,
                                      Conditions=[["content-length-range", 0, 10]])
    fields = dict(post["fields"])
    policy = json.loads(base64.b64decode(fields["policy"]))
    policy["conditions"] = [c for c in policy["conditions"] if not (isinstance(c, list) and c[0] == "content-length-range")]
    fields["policy"] = base64.b64encode(json.dumps(policy).encode()).decode()
    response = requests.post(post["url"], data=fields, files={"file": ("f", b"x" * 100)})
    assert response.status_code == 403
    assert error(response)[0] == "SignatureDoesNotMatch"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_violated_conditions_get_aws_errors(s3, bucket):
    post = s3.generate_presigned_post(Bucket=bucket, Key="uploads/${filename}", ExpiresIn=300,
                                      Conditions=[["starts-with", "$key", "uploads/"],
                                                  ["content-length-range", 1, 10]])
    fields = dict(post["fields"])
    fields["key"] = "elsewhere/x.txt"
    response = requests.post(post["url"], data=fields, files={"file": ("x.txt", b"abc")})
    assert response.status_code == 403
    code, message = error(response)
    assert code == "AccessDenied"
    assert message == 'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "uploads/"]'

    fields["key"] = "uploads/big.txt"
    response = requests.post(post["url"], data=fields, files={"file": ("big.txt", b"x" * 11)})
    assert response.status_code == 400
    assert error(response)[0] == "EntityTooLarge"

    eq = s3.generate_presigned_post(Bucket=bucket, Key="exact.txt", ExpiresIn=300)
    fields = dict(eq["fields"])
    fields["key"] = "other.txt"
    response = requests.post(eq["url"], data=fields, files={"file": ("f", b"abc")})
    assert response.status_code == 403
    assert error(response) == (
        "AccessDenied", 'Invalid according to Policy: Policy Condition failed: ["eq", "$key", "exact.txt"]')
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_expired_policy_is_refused(s3, bucket):
    post = s3.generate_presigned_post(Bucket=bucket, Key="late.txt", ExpiresIn=-60)
    response = requests.post(post["url"], data=post["fields"], files={"file": ("f", b"abc")})
    assert response.status_code == 403
    assert error(response) == ("AccessDenied", "Invalid according to Policy: Policy expired.")


def test_post_is_authorized_like_put_object(server, s3, bucket):
    iam = server.client("iam")
    user = f"poster-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    poster = server.client("s3", access_key=key["AccessKeyId"], secret=key["SecretAccessKey"], config=SIGV4)
    post = poster.generate_presigned_post(Bucket=bucket, Key="incoming/a.txt", ExpiresIn=300)
    response = requests.post(post["url"], data=post["fields"], files={"file": ("a", b"abc")})
    assert response.status_code == 403
    assert error(response)[0] == "AccessDenied"
    # The grant is on the object the form names: s3:PutObject on incoming/* lets the upload through.
    iam.put_user_policy(UserName=user, PolicyName="put", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject",
                                                "Resource": f"arn:aws:s3:::{bucket}/incoming/*"}]}))
    response = requests.post(post["url"], data=post["fields"], files={"file": ("a", b"abc")})
    assert response.status_code == 204, response.text
    post = poster.generate_presigned_post(Bucket=bucket, Key="outgoing/a.txt", ExpiresIn=300)
    response = requests.post(post["url"], data=post["fields"], files={"file": ("a", b"abc")})
    assert response.status_code == 403
    assert s3.get_object(Bucket=bucket, Key="incoming/a.txt")["Body"].read() == b"abc"


def test_sigv2_presigned_post_from_default_boto3(server, bucket):
    # boto3 signs POST policies with SigV2 unless told otherwise.
    post = server.client("s3").generate_presigned_post(Bucket=bucket, Key="v2.txt", ExpiresIn=300)
    assert "signature" in post["fields"]
    response = requests.post(post["url"], data=post["fields"], files={"file": ("f", b"v2 body")})
    assert response.status_code == 204, response.text
    assert server.client("s3").get_object(Bucket=bucket, Key="v2.txt")["Body"].read() == b"v2 body"
    fields = dict(post["fields"])
    fields["signature"] = "AAAA" + fields["signature"][4:]
    response = requests.post(post["url"], data=fields, files={"file": ("f", b"v2 body")})
    assert response.status_code == 403
    assert error(response)[0] == "SignatureDoesNotMatch"
