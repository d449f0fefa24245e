"""`citadel backup` while the server serves, and `citadel restore` into a new data directory
(and into PostgreSQL when CITADEL_TEST_POSTGRES_URL is set) (issue 9)."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import uuid

import pytest

from conftest import CitadelServer, citadel_binary

PG_URL = os.environ.get("CITADEL_TEST_POSTGRES_URL")


def citadel(*args, check=True):
    result = subprocess.run([citadel_binary(), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def populated():
    """A server with a user and key, objects and a KMS ciphertext, backed up while under load."""
    server = CitadelServer()
    iam, s3, kms = server.client("iam"), server.client("s3"), server.client("kms")
    iam.create_user(UserName="carol")
    iam.put_user_policy(UserName="carol", PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "kms:Decrypt"], "Resource": "*"}]}))
    key = iam.create_access_key(UserName="carol")["AccessKey"]
    s3.create_bucket(Bucket="kept")
    body = os.urandom(200_000)
    s3.put_object(Bucket="kept", Key="before", Body=body)
    # Bodies over 16 KiB are blob files (smaller ones are rows of the store): this one's deletion
    # after the backup must not reach the backup's copy.
    doomed = os.urandom(20_000)
    s3.put_object(Bucket="kept", Key="doomed", Body=doomed)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"kept secret")["CiphertextBlob"]

    # Writes and deletes carry on while the backup runs.
    stop = threading.Event()

    def churn():
        i = 0
        while not stop.is_set():
            s3.put_object(Bucket="kept", Key=f"during-{i}", Body=os.urandom(10_000 if i % 2 else 20_000))
            if i % 3 == 0:
                s3.delete_object(Bucket="kept", Key=f"during-{i}")
            i += 1

    worker = threading.Thread(target=churn)
    worker.start()
    backup_dir = os.path.join(tempfile.mkdtemp(prefix="citadel-backup-"), "b1")
    try:
        out = citadel("backup", backup_dir, "--data-dir", server.data_dir, "--endpoint", server.endpoint)
    finally:
        stop.set()
        worker.join()
    manifest = json.loads(out.stdout)
    s3.delete_object(Bucket="kept", Key="doomed")  # after the backup: the backup still has it
    server.close()
    yield {"dir": backup_dir, "manifest": manifest, "key": key, "body": body, "doomed": doomed, "blob": blob}
    shutil.rmtree(os.path.dirname(backup_dir), ignore_errors=True)


def check_restored(server, state):
    s3 = server.client("s3", access_key=state["key"]["AccessKeyId"], secret=state["key"]["SecretAccessKey"])
    assert s3.get_object(Bucket="kept", Key="before")["Body"].read() == state["body"]
    assert s3.get_object(Bucket="kept", Key="doomed")["Body"].read() == state["doomed"]
    kms = server.client("kms", access_key=state["key"]["AccessKeyId"], secret=state["key"]["SecretAccessKey"])
    assert kms.decrypt(CiphertextBlob=state["blob"])["Plaintext"] == b"kept secret"
    # Every object the snapshot lists is whole: the backup is consistent although writes went on.
    root = server.client("s3")
    listed = [o["Key"] for o in root.list_objects_v2(Bucket="kept").get("Contents", [])]
    assert "before" in listed
    for key in listed:
        root.get_object(Bucket="kept", Key=key)["Body"].read()


def test_backup_while_serving_restores_into_a_new_data_directory(populated):
    manifest = populated["manifest"]
    assert manifest["format"] == "citadel-backup-1" and manifest["master_key"] is True
    assert manifest["rows"] > 0 and manifest["blobs"] >= 2
    target = tempfile.mkdtemp(prefix="citadel-restored-")
    data_dir = os.path.join(target, "data")
    out = citadel("restore", populated["dir"], "--data-dir", data_dir)
    assert json.loads(out.stdout)["sha256"] == manifest["sha256"]
    again = citadel("restore", populated["dir"], "--data-dir", data_dir, check=False)
    assert again.returncode != 0 and "already holds a store" in again.stderr
    server = CitadelServer(data_dir=data_dir)
    try:
        check_restored(server, populated)
    finally:
        server.close()
        shutil.rmtree(target, ignore_errors=True)


def test_a_damaged_backup_is_refused(populated):
    work = tempfile.mkdtemp(prefix="citadel-damaged-")
    try:
        copy = os.path.join(work, "b")
        shutil.copytree(populated["dir"], copy)
        rows = os.path.join(copy, "store.rows")
        data = bytearray(open(rows, "rb").read())
        data[len(data) // 2] ^= 0xFF
        open(rows, "wb").write(bytes(data))
        data_dir = os.path.join(work, "data")
        result = citadel("restore", copy, "--data-dir", data_dir, check=False)
        assert result.returncode != 0 and "damaged" in result.stderr
        assert not os.path.exists(os.path.join(data_dir, "citadel.redb"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.skipif(not PG_URL, reason="CITADEL_TEST_POSTGRES_URL is not set")
def test_restore_into_postgres(populated):
    name = f"citadel_restore_{uuid.uuid4().hex[:10]}"
    subprocess.run(["psql", PG_URL, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    target = tempfile.mkdtemp(prefix="citadel-restored-pg-")
    data_dir = os.path.join(target, "data")
    try:
        citadel("restore", populated["dir"], "--data-dir", data_dir, "--store", url)
        refused = citadel("restore", populated["dir"], "--data-dir", data_dir, "--store", url, check=False)
        assert refused.returncode != 0 and "not empty" in refused.stderr
        server = CitadelServer("--store", url, data_dir=data_dir)
        try:
            check_restored(server, populated)
        finally:
            server.close()
    finally:
        subprocess.run(["psql", PG_URL, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)
        shutil.rmtree(target, ignore_errors=True)
