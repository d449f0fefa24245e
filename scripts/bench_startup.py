#!/usr/bin/env python3
"""Measures cold start (process start to first answered GetCallerIdentity) and idle RSS of a server.

Usage: scripts/bench_startup.py --runs 10 -- CMD ARGS...   (the command must listen on --port)
For citadel: scripts/bench_startup.py --port 4599 -- target/release/citadel serve --listen 127.0.0.1:4599 --data-dir {tmp}
{tmp} is replaced by a fresh temporary directory on every run.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import boto3
import botocore.config


def rss_kib(pid):
    total = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    endpoint = f"http://127.0.0.1:{args.port}"
    client = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
                          aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                          config=botocore.config.Config(retries={"max_attempts": 0}, connect_timeout=0.05, read_timeout=5))
    # Sign once, so that signing time is not counted.
    starts, rss = [], []
    for _ in range(args.runs):
        tmp = tempfile.mkdtemp()
        argv = [a.replace("{tmp}", tmp) for a in cmd]
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            try:
                client.get_caller_identity()
                break
            except Exception:
                if proc.poll() is not None:
                    raise SystemExit("server exited")
                time.sleep(0.001)
        starts.append((time.perf_counter() - t0) * 1000)
        time.sleep(1.0)
        rss.append(rss_kib(proc.pid) / 1024)
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"cold start to first GetCallerIdentity: median {statistics.median(starts):.1f} ms "
          f"(min {min(starts):.1f}, max {max(starts):.1f}, n={len(starts)})")
    print(f"idle RSS after 1 s: median {statistics.median(rss):.1f} MiB")


if __name__ == "__main__":
    main()
