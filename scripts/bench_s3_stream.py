#!/usr/bin/env python3
"""Streams one large object through Citadel's S3 in each server-side encryption mode and reports
PUT and GET throughput, the cost of each mode against the default, and the server's memory.

Usage (from the repository root, after `cargo build --release -p citadel`):
  python3 scripts/bench_s3_stream.py [--bin target/release/citadel] [--size-mib 1024] [--http]
      [--modes default sse-s3 sse-kms sse-c] [--dir /var/tmp] [--repeat 1] [--interleave]

Method:
- Starts its own release citadel with a fresh data directory under --dir, over TLS with a
  self-signed certificate (SSE-C is refused over plain HTTP, as on AWS, so every mode uses TLS to
  keep the modes comparable; --http runs the other modes without TLS).
- Writes one file of --size-mib random MiB, then per mode: one streamed PutObject from the file
  (boto3 `put_object` with the file as body, one request, no multipart), one GetObject read in
  1 MiB pieces and thrown away, then DeleteObject, so the modes do not add up on disk.
- Warms up with one untimed 64 MiB PUT and GET.
- Reads the server's CPU time (user + system, /proc/PID/stat) around each PUT and GET and reports
  CPU seconds per GiB: the figure to compare modes by on a shared machine, where MiB/s move with
  the neighbours' load but the server's work per byte does not.
- Samples the server's VmRSS from /proc/PID/status every 50 ms: reported before the first mode
  and at its peak during each mode.

What the modes mean: Citadel has no unencrypted storage (every object body is AES-256-GCM
ciphertext at rest, as on AWS since 2023, where SSE-S3 is the default of every bucket).
`default` sends no encryption header, which is the lowest-cost path there is: the bucket's implicit
SSE-S3. `sse-s3` asks for it explicitly (AES256), `sse-kms` for aws:kms under the account's
default aws/s3 key, `sse-c` sends a customer key. The overhead column compares each mode with
`default`; the body cipher is the same AES-256-GCM in every mode, the modes differ in how the
data key is protected (and SSE-C in the key check).

Client and server share the machine: the figures include boto3's own costs (TLS, checksums).
"""
import argparse
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import boto3
import urllib3
from botocore.config import Config

ROOT_AK = "AKIAIOSFODNN7EXAMPLE"
ROOT_SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
MIB = 1024 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port}")


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


class RssSampler:
    """Samples VmRSS every 50 ms; `peak()` is the highest value since the last `reset()`."""

    def __init__(self, pid):
        self.pid = pid
        self._peak = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            value = rss_kib(self.pid)
            with self._lock:
                self._peak = max(self._peak, value)
            time.sleep(0.05)

    def reset(self):
        with self._lock:
            self._peak = rss_kib(self.pid)

    def peak(self):
        with self._lock:
            return self._peak

    def stop(self):
        self._stop.set()
        self._thread.join()


def cpu_s(pid):
    """The server's CPU time so far (user + system, all threads), in seconds, from /proc/PID/stat.

    CPU seconds per GiB depend far less on the machine's load than MiB/s do: a busy neighbour
    slows the stream down but does not make the server do more work per byte."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def make_file(path, size):
    with open(path, "wb") as f:
        left = size
        block = os.urandom(4 * MIB)
        counter = 0
        while left > 0:
            # A different block each time (cheap): the first 8 bytes carry a counter.
            piece = counter.to_bytes(8, "big") + block[8:]
            n = min(left, len(piece))
            f.write(piece[:n])
            left -= n
            counter += 1


def file_md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(8 * MIB), b""):
            h.update(piece)
    return h.hexdigest()


def mode_args(mode, customer_key):
    if mode == "default":
        return {}, {}
    if mode == "sse-s3":
        return {"ServerSideEncryption": "AES256"}, {}
    if mode == "sse-kms":
        return {"ServerSideEncryption": "aws:kms"}, {}
    if mode == "sse-c":
        both = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": customer_key}
        return dict(both), dict(both)
    raise ValueError(mode)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("CITADEL_BIN", "target/release/citadel"))
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--modes", nargs="+", default=["default", "sse-s3", "sse-kms", "sse-c"])
    ap.add_argument("--dir", default=None, help="where the data directory and the source file go")
    ap.add_argument("--http", action="store_true", help="plain HTTP (SSE-C is then skipped)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--interleave", action="store_true",
                    help="with --repeat, run the modes round-robin so that load drift hits every mode alike")
    a = ap.parse_args()

    size = a.size_mib * MIB
    work = tempfile.mkdtemp(prefix="citadel-stream-", dir=a.dir)
    data_dir = os.path.join(work, "data")
    source = os.path.join(work, "object.bin")
    port = free_port()
    args = [a.bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir]
    if not a.http:
        args.append("--tls-self-signed")
    env = dict(os.environ, CITADEL_ROOT_ACCESS_KEY_ID=ROOT_AK, CITADEL_ROOT_SECRET_ACCESS_KEY=ROOT_SK)
    log = open(os.path.join(work, "citadel.log"), "wb")
    server = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    sampler = None
    try:
        wait_port(port)
        scheme = "http" if a.http else "https"
        urllib3.disable_warnings()
        s3 = boto3.client(
            "s3",
            endpoint_url=f"{scheme}://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id=ROOT_AK,
            aws_secret_access_key=ROOT_SK,
            verify=False,
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1},
                          read_timeout=600, connect_timeout=10),
        )
        bucket = f"stream-{int(time.time())}"
        s3.create_bucket(Bucket=bucket)
        print(f"writing a {a.size_mib} MiB source file in {work} ...", file=sys.stderr)
        make_file(source, size)
        want_md5 = file_md5(source)
        sampler = RssSampler(server.pid)
        time.sleep(0.3)
        rss_before = rss_kib(server.pid)
        # One untimed round first, so that the first mode does not pay for warming up the
        # connection, the page cache and the store.
        with open(source, "rb") as f:
            warm = f.read(min(size, 64 * MIB))
        s3.put_object(Bucket=bucket, Key="warm-up", Body=warm)
        s3.get_object(Bucket=bucket, Key="warm-up")["Body"].read()
        s3.delete_object(Bucket=bucket, Key="warm-up")
        del warm
        customer_key = os.urandom(32)
        modes = [m for m in a.modes if not (a.http and m == "sse-c")]
        rows = []
        if a.interleave:
            order = [m for _ in range(a.repeat) for m in modes]
        else:
            order = [m for m in modes for _ in range(a.repeat)]
        for mode in order:
            put_extra, get_extra = mode_args(mode, customer_key)
            sampler.reset()
            c0 = cpu_s(server.pid)
            t0 = time.perf_counter()
            with open(source, "rb") as f:
                put = s3.put_object(Bucket=bucket, Key="big", Body=f, ContentLength=size, **put_extra)
            t1 = time.perf_counter()
            c1 = cpu_s(server.pid)
            got = s3.get_object(Bucket=bucket, Key="big", **get_extra)
            h = hashlib.md5()
            n = 0
            for piece in got["Body"].iter_chunks(MIB):
                h.update(piece)
                n += len(piece)
            t2 = time.perf_counter()
            c2 = cpu_s(server.pid)
            peak = sampler.peak()
            if n != size or h.hexdigest() != want_md5:
                raise RuntimeError(f"{mode}: read back {n} bytes, md5 {h.hexdigest()} != {want_md5}")
            if put["ETag"].strip('"') != want_md5 and mode != "sse-kms" and mode != "sse-c":
                raise RuntimeError(f"{mode}: ETag {put['ETag']} is not the MD5 of the body")
            echo = got.get("ServerSideEncryption") or ("SSE-C" if got.get("SSECustomerAlgorithm") else "")
            s3.delete_object(Bucket=bucket, Key="big")
            gib = size / (1024 * MIB)
            rows.append((mode, echo, size / MIB / (t1 - t0), size / MIB / (t2 - t1), peak,
                         (c1 - c0) / gib, (c2 - c1) / gib))
            print(f"{mode}: PUT {rows[-1][2]:.1f} MiB/s {rows[-1][5]:.2f} CPU s/GiB, "
                  f"GET {rows[-1][3]:.1f} MiB/s {rows[-1][6]:.2f} CPU s/GiB, "
                  f"peak RSS {peak / 1024:.1f} MiB", file=sys.stderr)
        # The baseline is the median run of the first mode (by CPU per GiB, the steadier figure).
        def median(values):
            values = sorted(values)
            middle = len(values) // 2
            return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
        first = [r for r in rows if r[0] == modes[0]]
        base_put, base_get = median([r[2] for r in first]), median([r[3] for r in first])
        base_put_cpu, base_get_cpu = median([r[5] for r in first]), median([r[6] for r in first])
        print(f"\n{a.size_mib} MiB object, {'HTTP' if a.http else 'HTTPS (self-signed)'}, "
              f"load average {os.getloadavg()[0]:.2f}; server RSS before {rss_before / 1024:.1f} MiB\n")
        print("| mode | stored as | PUT MiB/s | GET MiB/s | PUT cost vs default | GET cost vs default "
              "| PUT server CPU s/GiB | GET server CPU s/GiB | PUT CPU vs default | GET CPU vs default "
              "| peak RSS MiB | RSS growth MiB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for mode, echo, put_rate, get_rate, peak, put_cpu, get_cpu in rows:
            put_cost = (base_put / put_rate - 1) * 100
            get_cost = (base_get / get_rate - 1) * 100
            put_cpu_cost = (put_cpu / base_put_cpu - 1) * 100 if base_put_cpu else 0.0
            get_cpu_cost = (get_cpu / base_get_cpu - 1) * 100 if base_get_cpu else 0.0
            print(f"| {mode} | {echo} | {put_rate:.1f} | {get_rate:.1f} | {put_cost:+.1f}% | {get_cost:+.1f}% "
                  f"| {put_cpu:.2f} | {get_cpu:.2f} | {put_cpu_cost:+.1f}% | {get_cpu_cost:+.1f}% "
                  f"| {peak / 1024:.1f} | {(peak - rss_before) / 1024:.1f} |")
    finally:
        if sampler:
            sampler.stop()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        for root, dirs, files in os.walk(work, topdown=False):
            for name in files:
                os.remove(os.path.join(root, name))
            for name in dirs:
                os.rmdir(os.path.join(root, name))
        os.rmdir(work)


if __name__ == "__main__":
    main()
