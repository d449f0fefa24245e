"""Starts the real citadel binary for the Python suite (boto3 and the aws CLI)."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import boto3
import pytest

ROOT_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
ROOT_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ACCOUNT_ID = "000000000000"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def citadel_binary():
    explicit = os.environ.get("CITADEL_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    return os.path.join(target, "debug", "citadel")


class CitadelServer:
    """One server process on a free port with its own data directory."""

    def __init__(self, *extra_args, env=None, data_dir=None):
        self.dir = tempfile.mkdtemp(prefix="citadel-py-")
        self.data_dir = data_dir or os.path.join(self.dir, "data")
        self.extra_args = list(extra_args)
        self.env = dict(os.environ)
        self.env.update({
            "CITADEL_ROOT_ACCESS_KEY_ID": ROOT_ACCESS_KEY_ID,
            "CITADEL_ROOT_SECRET_ACCESS_KEY": ROOT_SECRET_ACCESS_KEY,
        })
        self.env.update(env or {})
        self.proc = None
        self.endpoint = None
        try:
            self.start()
        except BaseException:
            # A server that refuses to start (some tests expect that) leaves no directory behind.
            self.close()
            raise

    def start(self):
        self.proc = subprocess.Popen(
            [citadel_binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir, *self.extra_args],
            stdout=subprocess.PIPE, stderr=None, env=self.env, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("citadel exited before listening")
            if line.startswith("Citadel listening on "):
                self.endpoint = line.split("on ", 1)[1].strip().replace("https://127.0.0.1", "https://localhost")
                return
        raise RuntimeError("citadel did not start in time")

    def stop(self, sig=None):
        if self.proc and self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        return self.proc.returncode

    def client(self, service, access_key=ROOT_ACCESS_KEY_ID, secret=ROOT_SECRET_ACCESS_KEY, token=None, **kw):
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=access_key, aws_secret_access_key=secret,
                            aws_session_token=token, **kw)

    def cli_env(self, access_key=ROOT_ACCESS_KEY_ID, secret=ROOT_SECRET_ACCESS_KEY, token=None):
        env = dict(os.environ)
        env.update({
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_CONFIG_FILE": os.path.join(self.dir, "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.dir, "no-credentials"),
        })
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
        if token:
            env["AWS_SESSION_TOKEN"] = token
        return env

    def aws(self, *args, check=True, **kw):
        """Runs the aws CLI against this server; returns CompletedProcess."""
        result = subprocess.run(["aws", *args], env=self.cli_env(**kw), capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed: {result.stderr}")
        return result

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def server():
    s = CitadelServer("--test-api")
    yield s
    s.close()


@pytest.fixture
def fresh_server():
    s = CitadelServer()
    yield s
    s.close()
