#!/usr/bin/env python3
"""Crash-safety harness (issue 9): kill -9 under a mixed write load, restart, verify.

A few threads run a mixed write load against one `citadel serve` process: IAM CreateUser and
PutUserPolicy, KMS CreateKey / Encrypt / CreateAlias, S3 PutObject (single and multipart, SSE-S3
and SSE-KMS, some overwrites) and CloudTrail CreateTrail / AddTags, while a trail with log file
validation delivers to its bucket.
At a random moment (uniformly 0.2-3 s after the load started) the server gets SIGKILL; it is
restarted on the same data directory and port, and the harness checks that

- every acknowledged write (the client got a success reply) is present: users with their policies,
  keys, aliases, ciphertexts that decrypt to their plaintexts, objects whose bytes have the recorded
  MD5, trails with their tags;
- no object is torn: an acknowledged object is byte-exact, and an object whose write got an error
  or a reset ("unknown") is either absent or byte-exact (for an overwrite: the old bytes or the new).

After the last kill the server is stopped gracefully and started again, delivery runs for a few
seconds, and `aws cloudtrail validate-logs` must report every digest and log file valid. Every
acknowledged CreateUser must also have its CloudTrail record (a change is durable together with its
record): one missing from LookupEvents is a loss; one recorded but not in a delivered log file is
reported as undelivered (the delivery cursor's documented settle-time weakness), not as a loss.

After a kill the dead process's CloudTrail delivery lease must lapse before delivery resumes, which
is longer than most rounds; so every `--delivery-every`-th round starts its load only once delivery
runs again, and its kill lands amid log and digest deliveries.

Every acknowledged write is appended to a journal (JSON lines) next to the report; `--report FILE`
writes a JSON summary. Exit status 0 when there are no losses, no torn objects and the chain is
valid.

    scripts/crash_harness.py --kills 100 --seed 1 --report /tmp/crash.json
    scripts/crash_harness.py --kills 30 --store postgres://u@127.0.0.1:5432/db --blobs file:///tmp/blobs
"""

import argparse
import base64
import datetime
import gzip
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
ROOT_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ACCOUNT_ID = "000000000000"
REGION = "us-east-1"
MIB = 1024 * 1024


def default_binary():
    explicit = os.environ.get("CITADEL_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    return os.path.join(target, "debug", "citadel")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# The server process ---------------------------------------------------------------------------------


class Server:
    """One `citadel serve` on a fixed port and data directory, restartable."""

    def __init__(self, binary, data_dir, port, store=None, blobs=None, extra=()):
        self.binary = binary
        self.data_dir = data_dir
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.args = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir,
                     "--trail-delivery-interval", "1s", "--digest-interval", "3s", *extra]
        if store:
            self.args += ["--store", store]
        if blobs:
            self.args += ["--blobs", blobs]
        self.env = dict(os.environ)
        self.env.update({
            "CITADEL_ROOT_ACCESS_KEY_ID": ROOT_ACCESS_KEY_ID,
            "CITADEL_ROOT_SECRET_ACCESS_KEY": ROOT_SECRET_ACCESS_KEY,
        })
        self.proc = None
        self.starts = 0
        self.log_path = os.path.join(os.path.dirname(data_dir), "server.log")

    def start(self, timeout=60):
        self.starts += 1
        with open(self.log_path, "ab") as out:
            out.write(f"\n===== start {self.starts} at {time.time():.3f} =====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                         stdin=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"citadel exited with {self.proc.returncode} on start; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/_citadel/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"citadel did not answer /_citadel/health in {timeout}s; see {self.log_path}")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def client(self, service, retries=1, read_timeout=60):
        cfg = Config(retries={"total_max_attempts": retries, "mode": "standard"}, connect_timeout=3,
                     read_timeout=read_timeout, s3={"addressing_style": "path"})
        return boto3.session.Session().client(
            service, endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=ROOT_ACCESS_KEY_ID,
            aws_secret_access_key=ROOT_SECRET_ACCESS_KEY, config=cfg)

    def cli_env(self, workdir):
        env = dict(os.environ)
        env.update({
            "AWS_ACCESS_KEY_ID": ROOT_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": ROOT_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_CONFIG_FILE": os.path.join(workdir, "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(workdir, "no-credentials"),
        })
        for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
            env.pop(k, None)
        return env


# What was written -----------------------------------------------------------------------------------


class Ledger:
    """Acknowledged and unknown writes, shared by the load threads; every ack goes to the journal."""

    def __init__(self, journal_path):
        self.lock = threading.Lock()
        self.journal = open(journal_path, "a", buffering=1)
        # name -> policy document (None until PutUserPolicy is acknowledged)
        self.users = {}
        self.keys = set()                    # acknowledged CreateKey ids
        self.ciphertexts = []                # (key_id, ciphertext, plaintext, context)
        self.aliases = {}                    # alias name -> target key id
        # bucket/key -> {"md5", "size", "round"}; "prev" = earlier acknowledged content (md5, size)
        self.objects = {}
        self.unknown_objects = {}            # bucket/key -> set of allowed (md5, size), besides absence
        self.trails = {}                     # trail name -> tag key
        self.acks = {}                       # kind -> count
        self.unknowns = {}                   # kind -> count
        self.round = 0
        self.mine = {}                       # load thread id -> keys it put
        self.clients = {}                    # load thread id -> service -> boto3 client

    def ack(self, kind, **fields):
        with self.lock:
            self.acks[kind] = self.acks.get(kind, 0) + 1
            self.journal.write(json.dumps({"t": time.time(), "round": self.round, "ack": kind, **fields}) + "\n")

    def unknown(self, kind, **fields):
        with self.lock:
            self.unknowns[kind] = self.unknowns.get(kind, 0) + 1
            self.journal.write(json.dumps({"t": time.time(), "round": self.round, "unknown": kind, **fields}) + "\n")


POLICY_TEMPLATE = {"Version": "2012-10-17", "Statement": [
    {"Sid": "S", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::crash/{}"}]}


class Load(threading.Thread):
    """One load thread: a weighted mix of writes until `stop` is set."""

    WEIGHTS = [("iam", 25), ("kms_encrypt", 20), ("kms_alias", 8), ("kms_key", 3), ("s3_put", 30),
               ("s3_overwrite", 6), ("s3_multipart", 2), ("cloudtrail", 6)]

    def __init__(self, server, ledger, ctx, stop, rng, tid):
        super().__init__(daemon=True)
        self.server, self.ledger, self.ctx, self.stop, self.rng, self.tid = server, ledger, ctx, stop, rng, tid
        # boto3 clients take a while to make; each thread id keeps its own across rounds.
        clients = ledger.clients.setdefault(tid, {})
        for service, attr in (("iam", "iam"), ("kms", "kms"), ("s3", "s3"), ("cloudtrail", "ct")):
            if service not in clients:
                clients[service] = server.client(service)
            setattr(self, attr, clients[service])
        self.kinds = [k for k, w in self.WEIGHTS for _ in range(w)]
        self.ops = 0
        # Keys this thread id put, across rounds: only their owner overwrites them, so the writes to
        # one key are sequential (the threads of a round are joined before the next round starts).
        self.mine = ledger.mine.setdefault(tid, [])

    def name(self, prefix):
        return f"{prefix}-{self.ledger.round}-{self.tid}-{uuid.UUID(int=self.rng.getrandbits(128)).hex[:12]}"

    def run(self):
        while not self.stop.is_set():
            kind = self.rng.choice(self.kinds)
            try:
                getattr(self, "op_" + kind)()
            except Exception as e:  # noqa: BLE001 - any failure of the harness itself must be visible
                self.ledger.unknown("harness_error", error=repr(e))
            self.ops += 1

    # Each op records its write as acknowledged after a success reply and as unknown after an error
    # or a reset; objects record their intended bytes first, so a present "unknown" one is checked.

    def _call(self, kind, fn, **fields):
        try:
            out = fn()
        except (ClientError, BotoCoreError, OSError) as e:
            self.ledger.unknown(kind, error=type(e).__name__, **fields)
            return None
        return out

    def op_iam(self):
        user = self.name("crash-user")
        if self._call("iam_user", lambda: self.iam.create_user(UserName=user), name=user) is None:
            return
        with self.ledger.lock:
            self.ledger.users[user] = None
        self.ledger.ack("iam_user", name=user)
        doc = json.loads(json.dumps(POLICY_TEMPLATE))
        doc["Statement"][0]["Resource"] = f"arn:aws:s3:::crash/{user}/*"
        if self._call("iam_policy", lambda: self.iam.put_user_policy(
                UserName=user, PolicyName="p", PolicyDocument=json.dumps(doc)), name=user) is None:
            return
        with self.ledger.lock:
            self.ledger.users[user] = doc
        self.ledger.ack("iam_policy", name=user)

    def _encrypt(self, key_id):
        plaintext = self.rng.randbytes(self.rng.randint(1, 4096))
        context = {"harness": self.name("ctx")}
        out = self._call("kms_encrypt", lambda: self.kms.encrypt(
            KeyId=key_id, Plaintext=plaintext, EncryptionContext=context), key=key_id)
        if out is None:
            return
        with self.ledger.lock:
            self.ledger.ciphertexts.append((key_id, out["CiphertextBlob"], plaintext, context))
        self.ledger.ack("kms_encrypt", key=key_id, ciphertext=base64.b64encode(out["CiphertextBlob"]).decode(),
                        plaintext_sha256=hashlib.sha256(plaintext).hexdigest())

    def op_kms_encrypt(self):
        with self.ledger.lock:
            keys = [self.ctx["key_id"]] + sorted(self.ledger.keys)
        self._encrypt(self.rng.choice(keys))

    def op_kms_key(self):
        out = self._call("kms_key", lambda: self.kms.create_key(Description="crash harness"))
        if out is None:
            return
        key_id = out["KeyMetadata"]["KeyId"]
        with self.ledger.lock:
            self.ledger.keys.add(key_id)
        self.ledger.ack("kms_key", key=key_id)
        self._encrypt(key_id)

    def op_kms_alias(self):
        alias = "alias/" + self.name("crash")
        with self.ledger.lock:
            keys = [self.ctx["key_id"]] + sorted(self.ledger.keys)
        target = self.rng.choice(keys)
        if self._call("kms_alias", lambda: self.kms.create_alias(AliasName=alias, TargetKeyId=target),
                      alias=alias) is None:
            return
        with self.ledger.lock:
            self.ledger.aliases[alias] = target
        self.ledger.ack("kms_alias", alias=alias, key=target)

    def _body(self, size):
        # Random bytes are slow to make in Python at MiBs; a random 64 KiB block repeated with a
        # per-object random header is just as good at detecting torn or mixed-up bodies.
        block = self.rng.randbytes(64 * 1024)
        body = (self.rng.randbytes(64) + block * (size // len(block) + 1))[:size]
        return body

    def _sse(self):
        if self.rng.random() < 0.5:
            return {"ServerSideEncryption": "AES256"}, "SSE-S3"
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.ctx["key_id"]}, "SSE-KMS"

    def _put(self, key, size, overwrite):
        bucket = self.ctx["bucket"]
        body = self._body(size)
        md5 = hashlib.md5(body).hexdigest()
        sse, mode = self._sse()
        ref = f"{bucket}/{key}"
        with self.ledger.lock:
            allowed = self.ledger.unknown_objects.setdefault(ref, set())
            allowed.add((md5, size))
        if self._call("s3_put", lambda: self.s3.put_object(Bucket=bucket, Key=key, Body=body, **sse),
                      key=ref, md5=md5, size=size) is None:
            return
        with self.ledger.lock:
            self.ledger.objects[ref] = {"md5": md5, "size": size, "round": self.ledger.round, "sse": mode}
            # Acknowledged: from now on only these bytes (or a later write's) are allowed.
            self.ledger.unknown_objects[ref] = {(md5, size)}
        if not overwrite:
            self.mine.append(key)
        self.ledger.ack("s3_overwrite" if overwrite else "s3_put", key=ref, md5=md5, size=size, sse=mode)

    def op_s3_put(self):
        # Log-uniform between 1 KiB and 2 MiB: mostly small, some large.
        size = int(2 ** self.rng.uniform(10, 21))
        self._put(self.name("obj"), size, False)

    def op_s3_overwrite(self):
        if not self.mine:
            return self.op_s3_put()
        self._put(self.rng.choice(self.mine), int(2 ** self.rng.uniform(10, 21)), True)

    def op_s3_multipart(self):
        bucket = self.ctx["bucket"]
        key = self.name("mpu")
        ref = f"{bucket}/{key}"
        sizes = [5 * MIB, self.rng.randint(1024, 2 * MIB)]
        parts = [self._body(s) for s in sizes]
        whole = b"".join(parts)
        md5 = hashlib.md5(whole).hexdigest()
        sse, mode = self._sse()
        with self.ledger.lock:
            self.ledger.unknown_objects.setdefault(ref, set()).add((md5, len(whole)))
        up = self._call("s3_multipart", lambda: self.s3.create_multipart_upload(Bucket=bucket, Key=key, **sse), key=ref)
        if up is None:
            return
        done = []
        for n, part in enumerate(parts, start=1):
            if self.stop.is_set():
                return
            out = self._call("s3_multipart", lambda: self.s3.upload_part(
                Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=part), key=ref)
            if out is None:
                return
            done.append({"PartNumber": n, "ETag": out["ETag"]})
        if self._call("s3_multipart", lambda: self.s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": done}),
                key=ref, md5=md5, size=len(whole)) is None:
            return
        with self.ledger.lock:
            self.ledger.objects[ref] = {"md5": md5, "size": len(whole), "round": self.ledger.round, "sse": mode}
        self.ledger.ack("s3_multipart", key=ref, md5=md5, size=len(whole), sse=mode)

    def op_cloudtrail(self):
        trail = self.name("crash-trail")
        if self._call("cloudtrail", lambda: self.ct.create_trail(
                Name=trail, S3BucketName=self.ctx["trail_bucket"], S3KeyPrefix="side"), name=trail) is None:
            return
        with self.ledger.lock:
            self.ledger.trails[trail] = None
        self.ledger.ack("cloudtrail_trail", name=trail)
        tag = self.name("tag")
        arn = f"arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:trail/{trail}"
        if self._call("cloudtrail", lambda: self.ct.add_tags(
                ResourceId=arn, TagsList=[{"Key": tag, "Value": "v"}]), name=trail) is None:
            return
        with self.ledger.lock:
            self.ledger.trails[trail] = tag
        self.ledger.ack("cloudtrail_tag", name=trail, tag=tag)


# Setup, verification, validate-logs -----------------------------------------------------------------


def trail_bucket_policy(bucket, prefixes):
    resources = [f"arn:aws:s3:::{bucket}/{p}/AWSLogs/{ACCOUNT_ID}/*" for p in prefixes]
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "AWSCloudTrailAclCheck", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:GetBucketAcl", "Resource": f"arn:aws:s3:::{bucket}"},
        {"Sid": "AWSCloudTrailWrite", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
         "Action": "s3:PutObject", "Resource": resources,
         "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control"}}}]})


def setup(server, rng):
    s3 = server.client("s3", retries=3)
    kms = server.client("kms", retries=3)
    ct = server.client("cloudtrail", retries=3)
    suffix = uuid.UUID(int=rng.getrandbits(128)).hex[:10]
    trail_bucket = f"crash-trail-{suffix}"
    bucket = f"crash-data-{suffix}"
    s3.create_bucket(Bucket=trail_bucket)
    s3.put_bucket_policy(Bucket=trail_bucket, Policy=trail_bucket_policy(trail_bucket, ["logs", "side"]))
    s3.create_bucket(Bucket=bucket)
    key_id = kms.create_key(Description="crash harness main key")["KeyMetadata"]["KeyId"]
    trail = f"crash-{suffix}"
    ct.create_trail(Name=trail, S3BucketName=trail_bucket, S3KeyPrefix="logs", EnableLogFileValidation=True)
    ct.start_logging(Name=trail)
    return {"bucket": bucket, "trail_bucket": trail_bucket, "key_id": key_id, "trail": trail,
            "trail_arn": f"arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:trail/{trail}"}


def code_of(e):
    return e.response.get("Error", {}).get("Code", "") if isinstance(e, ClientError) else ""


class Verifier:
    """Checks the ledger against the restarted server; returns a list of problems."""

    def __init__(self, server, ledger, ctx, rng, sample):
        self.server, self.ledger, self.ctx, self.rng, self.sample = server, ledger, ctx, rng, sample
        self.iam = server.client("iam", retries=3)
        self.kms = server.client("kms", retries=3)
        self.s3 = server.client("s3", retries=3)
        self.ct = server.client("cloudtrail", retries=3)
        self.verified_objects = {}   # ref -> md5 last verified byte-exact
        self.verified_ciphertexts = 0
        self.verified_unknown = set()
        self.verified_policies = set()
        self.verified_trails = set()

    def fresh_and_sample(self, items, verified, full):
        """Items not verified yet (all of them when `full`), plus a sample of the verified ones."""
        if full:
            return list(items)
        fresh = [i for i in items if i not in verified]
        old = [i for i in items if i in verified]
        return fresh + self.pick(old, False)

    def pick(self, items, full):
        items = list(items)
        if full or len(items) <= self.sample:
            return items
        return self.rng.sample(items, self.sample)

    def run(self, full=False):
        losses, torn = [], []
        with self.ledger.lock:
            users = dict(self.ledger.users)
            keys = set(self.ledger.keys)
            ciphertexts = list(self.ledger.ciphertexts)
            aliases = dict(self.ledger.aliases)
            objects = {k: dict(v) for k, v in self.ledger.objects.items()}
            unknown_objects = {k: set(v) for k, v in self.ledger.unknown_objects.items()}
            trails = dict(self.ledger.trails)
        checked = {"users": 0, "policies": 0, "keys": 0, "ciphertexts": 0, "aliases": 0, "objects": 0,
                   "object_bytes": 0, "unknown_objects_present": 0, "trails": 0}

        # IAM: every acknowledged user by listing; policies of new users plus a sample.
        listed = set()
        for page in self.iam.get_paginator("list_users").paginate():
            listed.update(u["UserName"] for u in page["Users"])
        for user in users:
            checked["users"] += 1
            if user not in listed:
                losses.append(f"iam user {user} missing")
        with_policy = [u for u, d in users.items() if d is not None and u in listed]
        for user in self.fresh_and_sample(with_policy, self.verified_policies, full):
            checked["policies"] += 1
            try:
                doc = self.iam.get_user_policy(UserName=user, PolicyName="p")["PolicyDocument"]
                if isinstance(doc, str):
                    doc = json.loads(doc)
                if doc != users[user]:
                    losses.append(f"iam policy of {user} differs: {doc}")
                else:
                    self.verified_policies.add(user)
            except ClientError as e:
                losses.append(f"iam policy of {user}: {code_of(e)}")

        # KMS: keys, aliases, and ciphertexts (those not yet verified, plus a sample of older ones).
        for key_id in keys:
            checked["keys"] += 1
            try:
                self.kms.describe_key(KeyId=key_id)
            except ClientError as e:
                losses.append(f"kms key {key_id}: {code_of(e)}")
        listed_aliases = {}
        for page in self.kms.get_paginator("list_aliases").paginate():
            listed_aliases.update({a["AliasName"]: a.get("TargetKeyId") for a in page["Aliases"]})
        for alias, target in aliases.items():
            checked["aliases"] += 1
            if listed_aliases.get(alias) != target:
                losses.append(f"kms alias {alias} -> {listed_aliases.get(alias)}, expected {target}")
        fresh = ciphertexts[self.verified_ciphertexts:]
        older = ciphertexts[:self.verified_ciphertexts]
        for key_id, blob, plaintext, context in fresh + self.pick(older, full):
            checked["ciphertexts"] += 1
            try:
                out = self.kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)
                if out["Plaintext"] != plaintext:
                    losses.append(f"kms ciphertext under {key_id} decrypts to other bytes")
            except ClientError as e:
                losses.append(f"kms ciphertext under {key_id}: {code_of(e)}")
        self.verified_ciphertexts = len(ciphertexts)

        # S3: every object by listing (size), bytes of new ones and a sample, and unknown ones.
        bucket = self.ctx["bucket"]
        listing = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                listing[f"{bucket}/{o['Key']}"] = o["Size"]
        to_read = []
        for ref, want in objects.items():
            checked["objects"] += 1
            allowed = {(want["md5"], want["size"])} | unknown_objects.get(ref, set())
            if ref not in listing:
                losses.append(f"s3 object {ref} missing from the listing")
                continue
            if listing[ref] not in {size for _, size in allowed}:
                torn.append(f"s3 object {ref} listed with {listing[ref]} bytes, expected {want['size']}")
            if full or self.verified_objects.get(ref) != want["md5"]:
                to_read.append(ref)
        reading = set(to_read)
        verified = [r for r in objects if r not in reading]
        to_read += self.pick(verified, False) if not full else []
        for ref in to_read:
            want = objects[ref]
            allowed = {(want["md5"], want["size"])} | unknown_objects.get(ref, set())
            got = self.read(ref)
            checked["object_bytes"] += 1
            if got is None:
                losses.append(f"s3 object {ref} missing on GET")
            elif got not in allowed:
                torn.append(f"s3 object {ref} has md5/size {got}, expected {want['md5']}/{want['size']}")
            elif got == (want["md5"], want["size"]):
                self.verified_objects[ref] = want["md5"]
        for ref, allowed in unknown_objects.items():
            if ref in objects or ref in self.verified_unknown:
                continue
            if ref not in listing:
                continue
            got = self.read(ref)
            if got is None:
                continue
            checked["unknown_objects_present"] += 1
            if got not in allowed:
                torn.append(f"unacknowledged s3 object {ref} is present with md5/size {got}, not a written body")
            else:
                self.verified_unknown.add(ref)

        # CloudTrail: acknowledged trails and tags.
        for trail in self.fresh_and_sample(list(trails), self.verified_trails, full):
            tag = trails[trail]
            checked["trails"] += 1
            try:
                self.ct.get_trail(Name=trail)
            except ClientError as e:
                losses.append(f"trail {trail}: {code_of(e)}")
                continue
            if tag:
                arn = f"arn:aws:cloudtrail:{REGION}:{ACCOUNT_ID}:trail/{trail}"
                tags = self.ct.list_tags(ResourceIdList=[arn])["ResourceTagList"][0].get("TagsList", [])
                if not any(t["Key"] == tag for t in tags):
                    losses.append(f"trail {trail}: tag {tag} missing")
                    continue
            self.verified_trails.add(trail)
        return losses, torn, checked

    def read(self, ref):
        bucket, key = ref.split("/", 1)
        try:
            obj = self.s3.get_object(Bucket=bucket, Key=key)
        except ClientError as e:
            if code_of(e) in ("NoSuchKey", "404"):
                return None
            raise
        h = hashlib.md5()
        size = 0
        for chunk in obj["Body"].iter_chunks(1 << 20):
            h.update(chunk)
            size += len(chunk)
        return h.hexdigest(), size


def keys_under(s3, bucket, prefix):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


def delivered_user_events(server, ctx):
    """The user names of CreateUser records in the main trail's delivered log files."""
    s3 = server.client("s3", retries=3)
    prefix = f"logs/AWSLogs/{ACCOUNT_ID}/CloudTrail/"
    names = set()
    for key in keys_under(s3, ctx["trail_bucket"], prefix):
        body = gzip.decompress(s3.get_object(Bucket=ctx["trail_bucket"], Key=key)["Body"].read())
        for record in json.loads(body).get("Records", []):
            if record.get("eventName") == "CreateUser" and record.get("errorCode") is None:
                params = record.get("requestParameters") or {}
                name = params.get("userName") or params.get("UserName")
                if name:
                    names.add(name)
    return names


def recorded_user_events(server):
    """The user names of successful CreateUser records in the events table (LookupEvents)."""
    ct = server.client("cloudtrail", retries=3)
    names = set()
    pages = ct.get_paginator("lookup_events").paginate(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "CreateUser"}])
    for page in pages:
        for event in page["Events"]:
            record = json.loads(event["CloudTrailEvent"])
            if record.get("errorCode") is None:
                params = record.get("requestParameters") or {}
                names.add(params.get("userName") or params.get("UserName"))
    return names


def validate_logs(server, ctx, start, workdir):
    args = ["aws", "cloudtrail", "validate-logs", "--region", REGION, "--trail-arn", ctx["trail_arn"],
            "--start-time", start, "--verbose"]
    result = subprocess.run(args, env=server.cli_env(workdir), capture_output=True, text=True, timeout=900)
    out = result.stdout + result.stderr
    summary = [line for line in out.splitlines() if " files valid" in line or "INVALID" in line]
    return {
        "returncode": result.returncode,
        "valid": result.returncode == 0 and "INVALID" not in out and "digest files valid" in out,
        "summary": [line for line in summary if "INVALID" not in line][-3:],
        "invalid": [line for line in out.splitlines() if "INVALID" in line][:50],
        "gaps": [line for line in out.splitlines() if line.startswith("No log files were delivered")][:50],
        "valid_digests": sum(1 for line in out.splitlines() if line.startswith("Digest file") and line.endswith("valid")),
        "valid_logs": sum(1 for line in out.splitlines() if line.startswith("Log file") and line.endswith("valid")),
    }


def wait_for_delivery(ct, ctx, since, timeout=30):
    """Waits until the trail's log or digest delivery time is after `since`; returns whether it was."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            status = ct.get_trail_status(Name=ctx["trail"])
        except (ClientError, BotoCoreError):
            status = {}
        times = [status.get(k) for k in ("LatestDeliveryTime", "LatestDigestDeliveryTime")]
        if any(t is not None and t.timestamp() > since for t in times):
            return True
        time.sleep(0.2)
    return False


# Main -----------------------------------------------------------------------------------------------


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=100)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--binary", default=default_binary())
    p.add_argument("--store", default=None, help="passed through as `citadel serve --store URL`")
    p.add_argument("--blobs", default=None, help="passed through as `citadel serve --blobs URL`")
    p.add_argument("--report", default=None, help="write a JSON summary here")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--min-delay", type=float, default=0.2)
    p.add_argument("--max-delay", type=float, default=3.0)
    p.add_argument("--sample", type=int, default=25, help="older items re-read per verification")
    p.add_argument("--workdir", default=None, help="data directory, server log and journal (kept)")
    p.add_argument("--delivery-every", type=int, default=3,
                   help="every Nth round starts its load only once CloudTrail delivery runs again (0: never)")
    p.add_argument("--settle", type=float, default=8.0, help="seconds of delivery before validate-logs")
    args = p.parse_args(argv)

    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    workdir = args.workdir or tempfile.mkdtemp(prefix="citadel-crash-")
    os.makedirs(workdir, exist_ok=True)
    data_dir = os.path.join(workdir, "data")
    journal = os.path.join(workdir, "journal.jsonl")
    log(f"seed {seed}, workdir {workdir}, binary {args.binary}, store {args.store or 'embedded'}")
    if not os.path.exists(args.binary):
        sys.exit(f"no citadel binary at {args.binary} (cargo build -p citadel)")

    began = time.time()
    server = Server(args.binary, data_dir, free_port(), store=args.store, blobs=args.blobs)
    ledger = Ledger(journal)
    result = {"seed": seed, "kills": 0, "store": args.store or "embedded", "workdir": workdir}
    ok = False
    try:
        server.start()
        start_time = (datetime.datetime.now(datetime.timezone.utc)
                      - datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ctx = setup(server, rng)
        log(f"setup: {ctx}")
        verifier = Verifier(server, ledger, ctx, rng, args.sample)
        all_losses, all_torn, restart_times, load_ops = [], [], [], 0
        ct = server.client("cloudtrail", retries=3)
        delivery_rounds = 0
        for round_no in range(1, args.kills + 1):
            ledger.round = round_no
            if round_no > 1 and args.delivery_every and round_no % args.delivery_every == 0:
                # After a kill the dead process's delivery lease must lapse (up to its time to live)
                # before the new one delivers; most rounds are shorter, so in these rounds the load
                # starts only once delivery is running again and the kill lands amid deliveries.
                if wait_for_delivery(ct, ctx, since=time.time()):
                    delivery_rounds += 1
            stop = threading.Event()
            threads = [Load(server, ledger, ctx, stop, random.Random(rng.getrandbits(64)), t)
                       for t in range(args.threads)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(args.min_delay, args.max_delay))
            # Threads finish (or lose) the call they are in and start no new one; the kill lands
            # amid those calls.
            stop.set()
            server.kill()
            t_kill = time.time()
            for t in threads:
                t.join(timeout=120)
            join_s = time.time() - t_kill
            load_ops += sum(t.ops for t in threads)
            result["kills"] = round_no
            t0 = time.time()
            server.start()
            restart_times.append(time.time() - t0)
            t1 = time.time()
            losses, torn, checked = verifier.run()
            verify_s = time.time() - t1
            all_losses += [f"round {round_no}: {x}" for x in losses]
            all_torn += [f"round {round_no}: {x}" for x in torn]
            log(f"kill {round_no}/{args.kills}: acks {sum(ledger.acks.values())} "
                f"unknown {sum(v for k, v in ledger.unknowns.items() if k != 'harness_error')} "
                f"losses {len(losses)} torn {len(torn)} join {join_s:.1f}s restart {restart_times[-1]:.2f}s "
                f"verify {verify_s:.1f}s")
            for x in (losses + torn)[:10]:
                log(f"  !! {x}")

        # The end: a full verification, a graceful restart, delivery, and validate-logs.
        losses, torn, checked = verifier.run(full=True)
        all_losses += [f"final: {x}" for x in losses]
        all_torn += [f"final: {x}" for x in torn]
        log(f"final verification: {checked}, losses {len(losses)}, torn {len(torn)}")
        rc = server.stop()
        log(f"graceful stop: exit {rc}")
        server.start()
        # One more write so the session after the graceful restart delivers a log file too.
        server.client("iam", retries=3).create_user(UserName=f"crash-final-{uuid.uuid4().hex[:8]}")
        time.sleep(args.settle)
        losses, torn, _ = verifier.run(full=False)
        all_losses += [f"after graceful restart: {x}" for x in losses]
        all_torn += [f"after graceful restart: {x}" for x in torn]

        delivered = delivered_user_events(server, ctx)
        with ledger.lock:
            acked_users = set(ledger.users)
        trail_missing = sorted(acked_users - delivered)
        # Not delivered is one thing (a record committed more than the delivery settle time after
        # its event time can be passed by the cursor, a documented weakness); not recorded at all
        # would break "a change is durable together with its CloudTrail record".
        trail_lost = sorted(set(trail_missing) - recorded_user_events(server)) if trail_missing else []
        validation = validate_logs(server, ctx, start_time, workdir)
        s3 = server.client("s3", retries=3)
        # Files put before a kill whose delivery state was not committed yet: delivered again, so
        # they sit outside the chain (validate-logs walks the chain from the newest digest).
        validation["digest_files_in_bucket"] = len(keys_under(
            s3, ctx["trail_bucket"], f"logs/AWSLogs/{ACCOUNT_ID}/CloudTrail-Digest/"))
        validation["log_files_in_bucket"] = len(keys_under(
            s3, ctx["trail_bucket"], f"logs/AWSLogs/{ACCOUNT_ID}/CloudTrail/"))
        log(f"validate-logs: rc {validation['returncode']} valid {validation['valid']} "
            f"{validation['summary']} gaps {len(validation['gaps'])}")
        for line in validation["invalid"][:20]:
            log(f"  !! {line}")
        if trail_missing:
            log(f"  !! {len(trail_missing)} acknowledged CreateUser calls missing from delivered logs, "
                f"e.g. {trail_missing[:5]}; {len(trail_lost)} of them missing from LookupEvents too")

        result.update({
            "acknowledged": dict(sorted(ledger.acks.items())),
            "acknowledged_total": sum(ledger.acks.values()),
            "unknown": dict(sorted(ledger.unknowns.items())),
            "load_ops": load_ops,
            "losses": len(all_losses),
            "loss_details": all_losses[:100],
            "torn": len(all_torn),
            "torn_details": all_torn[:100],
            "unknown_objects_present_and_complete": len(verifier.verified_unknown),
            "trail_records_undelivered": len(trail_missing),
            "trail_records_undelivered_details": trail_missing[:50],
            "trail_records_lost": len(trail_lost),
            "trail_records_lost_details": trail_lost[:50],
            "validate_logs": validation,
            "delivery_rounds": delivery_rounds,
            "restart_seconds_max": round(max(restart_times, default=0), 2),
            "restart_seconds_mean": round(sum(restart_times) / max(len(restart_times), 1), 2),
        })
        ok = (not all_losses and not all_torn and validation["valid"] and not trail_lost
              and not ledger.unknowns.get("harness_error"))
    finally:
        server.stop()
        result["wall_seconds"] = round(time.time() - began, 1)
        result["ok"] = ok
        if args.report:
            with open(args.report, "w") as f:
                json.dump(result, f, indent=2)
        log("summary: " + json.dumps({k: v for k, v in result.items()
                                       if not k.endswith("_details") and k != "validate_logs"}))
        if not args.workdir and ok:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
