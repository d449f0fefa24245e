"""The AWS Encryption SDK CLI against Citadel's KMS: a file encrypted under a KMS key with an
encryption context decrypts back byte for byte, and a wrong encryption context is refused.

The CLI builds its KMS clients through botocore with no endpoint option; botocore honours
AWS_ENDPOINT_URL_KMS (and AWS_ENDPOINT_URL), and the region comes from the key ARN.
"""

import base64
import json
import os
import shutil
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError


def encryption_cli():
    beside = os.path.join(os.path.dirname(sys.executable), "aws-encryption-cli")
    return beside if os.path.exists(beside) else shutil.which("aws-encryption-cli")


def run_cli(server, args, tmp_path):
    env = server.cli_env()
    env["AWS_ENDPOINT_URL_KMS"] = server.endpoint
    env["AWS_REGION"] = "us-east-1"
    return subprocess.run([encryption_cli(), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)


def test_encryption_sdk_cli_round_trip(server, tmp_path):
    kms = server.client("kms")
    key_arn = kms.create_key(Description="esdk")["KeyMetadata"]["Arn"]
    plaintext = os.urandom(100_000) + b"the end"
    source = tmp_path / "f"
    source.write_bytes(plaintext)

    encrypted = run_cli(server, ["--encrypt", "--input", str(source), "--output", str(tmp_path / "f.enc"),
                                 "--wrapping-keys", f"key={key_arn}", "--encryption-context", "purpose=test",
                                 "--metadata-output", "-"], tmp_path)
    assert encrypted.returncode == 0, encrypted.stderr
    metadata = json.loads(encrypted.stdout.strip().splitlines()[-1])
    assert metadata["mode"] == "encrypt"
    assert metadata["header"]["encryption_context"]["purpose"] == "test"
    [data_key] = metadata["header"]["encrypted_data_keys"]
    # The CLI prints the header's binary fields base64-encoded.
    assert base64.b64decode(data_key["key_provider"]["provider_id"]) == b"aws-kms"
    assert base64.b64decode(data_key["key_provider"]["key_info"]) == key_arn.encode()
    ciphertext = (tmp_path / "f.enc").read_bytes()
    assert plaintext[:64] not in ciphertext

    decrypted = run_cli(server, ["--decrypt", "--input", str(tmp_path / "f.enc"),
                                 "--output", str(tmp_path / "f.dec"), "--wrapping-keys", f"key={key_arn}",
                                 "--encryption-context", "purpose=test", "--metadata-output", "-"], tmp_path)
    assert decrypted.returncode == 0, decrypted.stderr
    assert (tmp_path / "f.dec").read_bytes() == plaintext
    assert json.loads(decrypted.stdout.strip().splitlines()[-1])["mode"] == "decrypt"

    # A wrong required context: the CLI refuses the message, reports why and leaves no output (it
    # exits 0 and says so in the metadata and the log, by design).
    wrong = run_cli(server, ["--decrypt", "--input", str(tmp_path / "f.enc"), "--output", str(tmp_path / "bad"),
                             "--wrapping-keys", f"key={key_arn}", "--encryption-context", "purpose=other",
                             "--metadata-output", "-"], tmp_path)
    refused = json.loads(wrong.stdout.strip().splitlines()[-1])
    assert refused["skipped"] is True
    assert refused["missing_encryption_context_pairs"] == [["purpose", "other"]]
    assert "Operation failed" in wrong.stderr
    assert not (tmp_path / "bad").exists()

    # The data key in the message is bound to the encryption context by Citadel's KMS itself: the
    # SDK's full context (with its signing key) opens it, a wrong context does not.
    header_context = metadata["header"]["encryption_context"]
    edk = base64.b64decode(data_key["encrypted_data_key"])
    opened = kms.decrypt(CiphertextBlob=edk, EncryptionContext=header_context, KeyId=key_arn)
    assert opened["KeyId"] == key_arn and len(opened["Plaintext"]) == 32
    with pytest.raises(ClientError) as excinfo:
        kms.decrypt(CiphertextBlob=edk, EncryptionContext={**header_context, "purpose": "other"}, KeyId=key_arn)
    assert excinfo.value.response["Error"]["Code"] == "InvalidCiphertextException"


def test_encryption_sdk_cli_refuses_a_key_the_message_was_not_encrypted_under(server, tmp_path):
    kms = server.client("kms")
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    other_arn = kms.create_key()["KeyMetadata"]["Arn"]
    (tmp_path / "g").write_bytes(b"hello")
    encrypted = run_cli(server, ["--encrypt", "--input", "g", "--output", "g.enc", "--wrapping-keys",
                                 f"key={key_arn}", "--encryption-context", "purpose=test",
                                 "--metadata-output", "-"], tmp_path)
    assert encrypted.returncode == 0, encrypted.stderr
    refused = run_cli(server, ["--decrypt", "--input", "g.enc", "--output", "g.dec", "--wrapping-keys",
                               f"key={other_arn}", "--metadata-output", "-"], tmp_path)
    assert refused.returncode != 0
    assert not (tmp_path / "g.dec").exists()
