"""s3cmd against Citadel: a third real S3 client next to boto3 and the aws CLI (issue 7)."""

import hashlib
import os
import shutil
import subprocess
import uuid

import pytest

from conftest import ROOT_ACCESS_KEY_ID, ROOT_SECRET_ACCESS_KEY

pytestmark = pytest.mark.skipif(shutil.which("s3cmd") is None, reason="s3cmd is not installed")


@pytest.fixture
def s3cmd(server, tmp_path):
    """Runs s3cmd with a configuration file pointing at the server (path-style, SigV4, plain HTTP)."""
    host = server.endpoint.split("//", 1)[1]
    config = tmp_path / "s3cfg"
    config.write_text("\n".join([
        "[default]",
        f"access_key = {ROOT_ACCESS_KEY_ID}",
        f"secret_key = {ROOT_SECRET_ACCESS_KEY}",
        f"host_base = {host}",
        f"host_bucket = {host}",
        "bucket_location = us-east-1",
        "signature_v2 = False",
        "use_https = False",
        "check_ssl_certificate = False",
        "",
    ]))

    def run(*args, check=True):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        result = subprocess.run(["s3cmd", "--config", str(config), "--no-progress", *args],
                                capture_output=True, text=True, timeout=120, env=env)
        if check and result.returncode != 0:
            raise AssertionError(f"s3cmd {' '.join(args)} failed ({result.returncode}): {result.stderr}{result.stdout}")
        return result

    return run


def test_s3cmd_round_trip(server, s3cmd, tmp_path):
    bucket = f"s3cmd-{uuid.uuid4().hex[:16]}"
    payload = os.urandom(200_000) + b"end"
    source = tmp_path / "upload.bin"
    source.write_bytes(payload)
    text = tmp_path / "notes.txt"
    text.write_text("hello from s3cmd\n")

    s3cmd("mb", f"s3://{bucket}")
    assert bucket in s3cmd("ls").stdout
    s3cmd("put", str(source), f"s3://{bucket}/data/upload.bin")
    s3cmd("put", str(text), f"s3://{bucket}/notes.txt")
    listing = s3cmd("ls", "--recursive", f"s3://{bucket}").stdout
    assert f"s3://{bucket}/data/upload.bin" in listing
    assert f"s3://{bucket}/notes.txt" in listing
    assert f"s3://{bucket}/data/" in s3cmd("ls", f"s3://{bucket}").stdout

    target = tmp_path / "download.bin"
    s3cmd("get", f"s3://{bucket}/data/upload.bin", str(target))
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(payload).digest()
    # boto3 sees the same object.
    assert server.client("s3").get_object(Bucket=bucket, Key="notes.txt")["Body"].read() == b"hello from s3cmd\n"

    # rb refuses a bucket that still holds objects, as S3 does.
    assert s3cmd("rb", f"s3://{bucket}", check=False).returncode != 0
    s3cmd("del", f"s3://{bucket}/data/upload.bin")
    s3cmd("del", f"s3://{bucket}/notes.txt")
    assert "upload.bin" not in s3cmd("ls", "--recursive", f"s3://{bucket}").stdout
    s3cmd("rb", f"s3://{bucket}")
    assert bucket not in s3cmd("ls").stdout


def test_s3cmd_multipart_and_server_side_encryption(server, s3cmd, tmp_path):
    bucket = f"s3cmd-{uuid.uuid4().hex[:16]}"
    s3cmd("mb", f"s3://{bucket}")
    big = tmp_path / "big.bin"
    payload = os.urandom(6 * 1024 * 1024)
    big.write_bytes(payload)
    # A 5 MiB chunk size makes s3cmd use a multipart upload.
    s3cmd("put", "--multipart-chunk-size-mb=5", "--server-side-encryption", str(big), f"s3://{bucket}/big.bin")
    head = server.client("s3").head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == len(payload)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ETag"].strip('"').endswith("-2")
    target = tmp_path / "big.out"
    s3cmd("get", f"s3://{bucket}/big.bin", str(target))
    assert target.read_bytes() == payload
    info = s3cmd("info", f"s3://{bucket}/big.bin", check=False)
    assert info.returncode == 0, info.stderr
    s3cmd("del", f"s3://{bucket}/big.bin")
    s3cmd("rb", f"s3://{bucket}")
