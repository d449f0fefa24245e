"""The foundation seen through boto3 and the aws CLI."""

import json
import os
import signal
import urllib.request

import boto3
import botocore.exceptions
import pytest

from conftest import ACCOUNT_ID, ROOT_ACCESS_KEY_ID, CitadelServer


def test_boto3_get_caller_identity(server):
    identity = server.client("sts").get_caller_identity()
    assert identity["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:root"
    assert identity["Account"] == ACCOUNT_ID
    assert identity["ResponseMetadata"]["RequestId"]
    assert identity["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"] == identity["ResponseMetadata"]["RequestId"]


def test_boto3_with_aws_endpoint_url_env(server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
    client = boto3.client("sts", region_name="eu-west-1", aws_access_key_id=ROOT_ACCESS_KEY_ID,
                          aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert client.get_caller_identity()["Account"] == ACCOUNT_ID


def test_aws_cli_get_caller_identity(server):
    result = server.aws("sts", "get-caller-identity", "--output", "json")
    assert json.loads(result.stdout)["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:root"


def test_cli_wrong_secret_and_unknown_key(server):
    result = server.aws("sts", "get-caller-identity", check=False, secret="x" * 40)
    assert result.returncode != 0
    assert "SignatureDoesNotMatch" in result.stderr
    result = server.aws("sts", "get-caller-identity", check=False, access_key="AKIANOSUCHKEY0000000")
    assert "InvalidClientTokenId" in result.stderr


def test_boto3_errors_parse_with_code_and_status(server):
    bad = server.client("sts", secret="y" * 40)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        bad.get_caller_identity()
    error = info.value.response
    assert error["Error"]["Code"] == "SignatureDoesNotMatch"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_query_action_is_invalid_action(server):
    client = server.client("sts")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        raise_if_ok(client, {"Action": "NoSuchAction", "Version": "2011-06-15"})
    assert info.value.response["Error"]["Code"] == "InvalidAction"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def raise_if_ok(client, params):
    """Sends a hand-made, correctly signed query request and raises ClientError from its answer."""
    import urllib.parse

    import botocore.auth
    import botocore.awsrequest
    import botocore.parsers
    creds = client._request_signer._credentials
    body = urllib.parse.urlencode(params)
    req = botocore.awsrequest.AWSRequest(method="POST", url=client.meta.endpoint_url + "/", data=body,
                                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    botocore.auth.SigV4Auth(creds, "sts", "us-east-1").add_auth(req)
    prepared = req.prepare()
    response = client._endpoint.http_session.send(prepared)
    parsed = botocore.parsers.create_parser("query").parse(
        {"status_code": response.status_code, "headers": response.headers, "body": response.content}, None)
    if response.status_code >= 300:
        raise botocore.exceptions.ClientError(parsed, "Custom")
    return parsed


def test_health_endpoint(server):
    with urllib.request.urlopen(server.endpoint + "/_citadel/health") as response:
        health = json.loads(response.read())
    assert health["status"] == "ok"
    assert "sts" in health["services"]


def test_moto_reset_endpoint_keeps_root_credentials(server):
    request = urllib.request.Request(server.endpoint + "/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    assert server.client("sts").get_caller_identity()["Account"] == ACCOUNT_ID


def test_https_self_signed(tmp_path):
    s = CitadelServer("--tls-self-signed")
    try:
        import os
        cert = os.path.join(s.data_dir, "tls-cert.pem")
        client = boto3.client("sts", endpoint_url=s.endpoint, region_name="us-east-1", verify=cert,
                              aws_access_key_id=ROOT_ACCESS_KEY_ID,
                              aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        assert client.get_caller_identity()["Account"] == ACCOUNT_ID
        result = s.aws("--no-verify-ssl", "sts", "get-caller-identity")
        assert ACCOUNT_ID in result.stdout
    finally:
        s.close()


def test_sigterm_is_graceful():
    s = CitadelServer()
    try:
        assert s.client("sts").get_caller_identity()["Account"] == ACCOUNT_ID
        assert s.stop(signal.SIGTERM) == 0
        rest = s.proc.stdout.read()
        assert "Citadel stopped" in rest
    finally:
        s.close()


def signed_admin_post(server, path, payload, access_key=ROOT_ACCESS_KEY_ID,
                      secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"):
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    import requests
    body = json.dumps(payload)
    req = botocore.awsrequest.AWSRequest(method="POST", url=server.endpoint + path, data=body,
                                         headers={"Content-Type": "application/json"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(access_key, secret), "sts", "us-east-1").add_auth(req)
    prepared = req.prepare()
    return requests.post(prepared.url, data=body, headers=dict(prepared.headers))


def test_account_api_creates_accounts_with_their_own_root(server):
    response = signed_admin_post(server, "/_citadel/accounts", {"Name": "second"})
    assert response.status_code == 200, response.text
    created = response.json()
    assert len(created["AccountId"]) == 12
    assert created["AccessKeyId"].startswith("AKIA") and len(created["SecretAccessKey"]) == 40
    other = server.client("sts", access_key=created["AccessKeyId"], secret=created["SecretAccessKey"])
    assert other.get_caller_identity()["Arn"] == f"arn:aws:iam::{created['AccountId']}:root"
    # Only the default account's root may create accounts.
    denied = signed_admin_post(server, "/_citadel/accounts", {"Name": "third"},
                               access_key=created["AccessKeyId"], secret=created["SecretAccessKey"])
    assert denied.status_code == 403
    unsigned = __import__("requests").post(server.endpoint + "/_citadel/accounts", data="{}")
    assert unsigned.status_code == 403


def test_root_credentials_file_cut_short_is_rewritten_from_the_store():
    """A crash can leave the root-credentials file truncated; the store holds the sealed root key,
    so the next start serves the same credentials and rewrites the file instead of refusing to start
    or trusting a cut-off secret."""
    s = CitadelServer(env={"CITADEL_ROOT_ACCESS_KEY_ID": "", "CITADEL_ROOT_SECRET_ACCESS_KEY": ""})
    try:
        path = os.path.join(s.data_dir, "root-credentials")
        original = open(path).read()
        values = dict(
            (k.strip(), v.strip()) for k, v in
            (line.split("=", 1) for line in original.splitlines() if "=" in line))
        key, secret = values["aws_access_key_id"], values["aws_secret_access_key"]
        assert s.client("sts", key, secret).get_caller_identity()["Arn"].endswith(":root")
        s.stop()
        with open(path, "w") as f:
            f.write(original[: original.index("aws_secret_access_key") + 30])
        s.start()
        assert open(path).read() == original
        assert s.client("sts", key, secret).get_caller_identity()["Arn"].endswith(":root")
        s.stop()
        os.remove(path)
        s.start()
        assert open(path).read() == original
    finally:
        s.close()
