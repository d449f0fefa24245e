"""Workload credentials from Citadel's EC2-style instance metadata listener (IMDSv2).

The server runs with `--imds-listen` and `--imds-role`; boto3 is given no keys at all and finds
credentials on its own through its instance-metadata provider (`AWS_EC2_METADATA_SERVICE_ENDPOINT`).
"""

import json
import socket
import urllib.error
import urllib.request

import boto3
import pytest

from conftest import CitadelServer

ACCOUNT = "000000000000"
ROLE = "citadel-instance-role"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def imds_server():
    port = free_port()
    server = CitadelServer("--imds-listen", f"127.0.0.1:{port}", "--imds-role", ROLE)
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    iam = server.client("iam")
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName=ROLE, PolicyName="sts", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*"}]}))
    server.imds = f"http://127.0.0.1:{port}"
    yield server
    server.close()


def test_boto3_finds_credentials_through_instance_metadata(imds_server, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_EC2_METADATA_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds_server.imds + "/")
    session = boto3.Session(region_name="us-east-1")
    credentials = session.get_credentials()
    assert credentials is not None
    assert credentials.method == "iam-role"
    frozen = credentials.get_frozen_credentials()
    assert frozen.access_key.startswith("ASIA") and frozen.token
    sts = session.client("sts", endpoint_url=imds_server.endpoint)
    who = sts.get_caller_identity()
    assert who["Account"] == ACCOUNT
    assert who["Arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/i-")
    # The role's own policy applies to the session.
    session.client("iam", endpoint_url=imds_server.endpoint).list_roles()


def test_imdsv1_and_bad_tokens_are_refused(imds_server):
    path = imds_server.imds + "/latest/meta-data/iam/security-credentials/"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(path, timeout=5)
    assert e.value.code == 401
    request = urllib.request.Request(path, headers={"X-aws-ec2-metadata-token": "forged"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=5)
    assert e.value.code == 401
    token_request = urllib.request.Request(imds_server.imds + "/latest/api/token", method="PUT",
                                           headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    token = urllib.request.urlopen(token_request, timeout=5).read().decode()
    listing = urllib.request.urlopen(urllib.request.Request(path, headers={"X-aws-ec2-metadata-token": token}),
                                     timeout=5).read().decode()
    assert listing == ROLE
    document = json.loads(urllib.request.urlopen(urllib.request.Request(
        path + ROLE, headers={"X-aws-ec2-metadata-token": token}), timeout=5).read())
    assert document["Code"] == "Success" and document["Type"] == "AWS-HMAC"
    assert set(document) >= {"LastUpdated", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
