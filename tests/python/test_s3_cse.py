"""Client-side encryption with `citadel s3 cp` in the Amazon S3 Encryption Client v2 format
(issue 7): the object at rest is ciphertext with v2 metadata, boto3 sees no plaintext, the CLI
decrypts it back, and the format is checked independently with Python's `cryptography`."""

import base64
import json
import os
import subprocess
import uuid

import pytest

from conftest import citadel_binary

try:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError:  # pragma: no cover - the independent check is optional
    AESGCM = None


def cp(server, *args, check=True):
    env = server.cli_env()
    result = subprocess.run([citadel_binary(), "s3", "cp", *args], env=env, capture_output=True, text=True,
                            timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"citadel s3 cp {' '.join(args)} failed: {result.stderr}")
    return result


@pytest.fixture
def bucket(server):
    name = f"cse-{uuid.uuid4().hex[:16]}"
    server.client("s3").create_bucket(Bucket=name)
    return name


def test_cse_kms_round_trip(server, bucket, tmp_path):
    s3, kms = server.client("s3"), server.client("kms")
    key_id = kms.create_key(Description="cse test key")["KeyMetadata"]["KeyId"]
    plaintext = b"top secret payroll data " * 1000
    source = tmp_path / "payroll.csv"
    source.write_bytes(plaintext)

    cp(server, str(source), f"s3://{bucket}/hr/payroll.csv", "--cse-kms", key_id,
       "--cse-context", "department=hr")

    stored = s3.get_object(Bucket=bucket, Key="hr/payroll.csv")
    body = stored["Body"].read()
    meta = stored["Metadata"]
    assert meta["x-amz-cek-alg"] == "AES/GCM/NoPadding"
    assert meta["x-amz-wrap-alg"] == "kms+context"
    assert meta["x-amz-tag-len"] == "128"
    assert meta["x-amz-unencrypted-content-length"] == str(len(plaintext))
    assert json.loads(meta["x-amz-matdesc"]) == {"aws:x-amz-cek-alg": "AES/GCM/NoPadding", "department": "hr"}
    assert len(base64.b64decode(meta["x-amz-iv"])) == 12
    assert base64.b64decode(meta["x-amz-key-v2"])
    # What S3 holds is ciphertext: GCM output plus its 16-byte tag, and no plaintext in it.
    assert len(body) == len(plaintext) + 16
    assert b"payroll" not in body

    # The wrapped key is a KMS ciphertext blob bound to the context: KMS Decrypt gives the CEK, and
    # the body opens with AES-GCM, as any v2 S3 Encryption Client would read it.
    if AESGCM is not None:
        cek = kms.decrypt(CiphertextBlob=base64.b64decode(meta["x-amz-key-v2"]),
                          EncryptionContext=json.loads(meta["x-amz-matdesc"]))["Plaintext"]
        assert AESGCM(cek).decrypt(base64.b64decode(meta["x-amz-iv"]), body, None) == plaintext

    target = tmp_path / "back.csv"
    cp(server, f"s3://{bucket}/hr/payroll.csv", str(target))
    assert target.read_bytes() == plaintext

    # A tampered body fails authentication instead of decrypting to garbage.
    tampered = bytearray(body)
    tampered[10] ^= 1
    s3.put_object(Bucket=bucket, Key="hr/tampered.csv", Body=bytes(tampered), Metadata=meta)
    failed = cp(server, f"s3://{bucket}/hr/tampered.csv", str(tmp_path / "bad.csv"), check=False)
    assert failed.returncode != 0 and "altered" in failed.stderr


def test_cse_local_key_round_trip(server, bucket, tmp_path):
    s3 = server.client("s3")
    kek = os.urandom(32)
    key_file = tmp_path / "cse.key"
    key_file.write_text(base64.b64encode(kek).decode())
    plaintext = os.urandom(70_000)
    source = tmp_path / "blob.bin"
    source.write_bytes(plaintext)

    cp(server, str(source), f"s3://{bucket}/blob.bin", "--cse-key", str(key_file))

    stored = s3.get_object(Bucket=bucket, Key="blob.bin")
    body, meta = stored["Body"].read(), stored["Metadata"]
    assert meta["x-amz-wrap-alg"] == "AES/GCM"
    assert meta["x-amz-cek-alg"] == "AES/GCM/NoPadding"
    assert json.loads(meta["x-amz-matdesc"]) == {}
    assert body != plaintext and len(body) == len(plaintext) + 16
    if AESGCM is not None:
        wrapped = base64.b64decode(meta["x-amz-key-v2"])
        cek = AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], b"AES/GCM/NoPadding")
        assert AESGCM(cek).decrypt(base64.b64decode(meta["x-amz-iv"]), body, None) == plaintext

    target = tmp_path / "out.bin"
    cp(server, f"s3://{bucket}/blob.bin", str(target), "--cse-key", str(key_file))
    assert target.read_bytes() == plaintext

    # Without the key, or with another key, nothing is decrypted.
    missing = cp(server, f"s3://{bucket}/blob.bin", str(tmp_path / "x"), check=False)
    assert missing.returncode != 0 and "--cse-key" in missing.stderr
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    wrong = cp(server, f"s3://{bucket}/blob.bin", str(tmp_path / "y"), "--cse-key", str(other), check=False)
    assert wrong.returncode != 0
    assert not (tmp_path / "y").exists()


def test_plain_copies_and_directory_targets(server, bucket, tmp_path):
    source = tmp_path / "plain.txt"
    source.write_bytes(b"not encrypted")
    cp(server, str(source), f"s3://{bucket}/dir/")
    assert server.client("s3").get_object(Bucket=bucket, Key="dir/plain.txt")["Body"].read() == b"not encrypted"
    out = tmp_path / "out"
    out.mkdir()
    cp(server, f"s3://{bucket}/dir/plain.txt", str(out))
    assert (out / "plain.txt").read_bytes() == b"not encrypted"
    denied = cp(server, f"s3://{bucket}/nope", str(out), check=False)
    assert denied.returncode != 0 and "NoSuchKey" in denied.stderr
