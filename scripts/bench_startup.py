#!/usr/bin/env python3
"""Measures cold start (process start to first answered GetCallerIdentity) and idle RSS of a server.

Usage: scripts/bench_startup.py --runs 10 -- CMD ARGS...   (the command must listen on --port)
For citadel: scripts/bench_startup.py --port 4599 -- target/release/citadel serve --listen 127.0.0.1:4599 --data-dir {tmp}
{tmp} is replaced by a fresh temporary directory on every run (a first start), or with --warm by
one directory that an uncounted first run has initialised (a restart of an existing data dir).
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
import botocore.exceptions


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
    ap.add_argument("--warm", action="store_true",
                    help="restart on one existing data directory instead of a fresh one per run")
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
    warm_dir = tempfile.mkdtemp() if args.warm else None
    # With --warm the first run only initialises the data directory and is not counted.
    for run in range(args.runs + (1 if args.warm else 0)):
        tmp = warm_dir or tempfile.mkdtemp()
        argv = [a.replace("{tmp}", tmp) for a in cmd]
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            try:
                client.get_caller_identity()
                break
            except botocore.exceptions.ClientError as err:
                # The server answered, but not with success (usually: its root keys are not the ones
                # signed with; set CITADEL_ROOT_ACCESS_KEY_ID/SECRET_ACCESS_KEY to them).
                proc.terminate()
                raise SystemExit(f"server refused GetCallerIdentity: {err}")
            except Exception:
                if proc.poll() is not None:
                    raise SystemExit("server exited")
                time.sleep(0.001)
        elapsed = (time.perf_counter() - t0) * 1000
        time.sleep(1.0)
        resident = rss_kib(proc.pid) / 1024
        proc.terminate()
        proc.wait()
        if not args.warm:
            shutil.rmtree(tmp, ignore_errors=True)
        if args.warm and run == 0:
            continue
        starts.append(elapsed)
        rss.append(resident)
    if warm_dir:
        shutil.rmtree(warm_dir, ignore_errors=True)
    kind = "warm start (existing data dir)" if args.warm else "cold start"
    print(f"{kind} to first GetCallerIdentity: median {statistics.median(starts):.1f} ms "
          f"(min {min(starts):.1f}, max {max(starts):.1f}, n={len(starts)})")
    print(f"idle RSS after 1 s: median {statistics.median(rss):.1f} MiB")


if __name__ == "__main__":
    main()
