#!/usr/bin/env python3
"""IAM scenarios for the shared load harness (../shared/bench), issue 4's speed section.

Scenarios, run in this order against one server:

  list-page-10k     10,000 users are created (boto3, 16 threads), then one ListUsers page of 100
                    (MaxItems=100) is timed 20 times with boto3; median and max are reported.
  iam-listusers     ListUsers, MaxItems=100, over those 10,000 users (one request replayed by wrk).
  iam-getuser       GetUser of an existing user (the harness's presign.py scenario).
  iam-createuser    CreateUser only, every request a user name never used before. The harness's
                    `iam-user` scenario pre-signs 20,000 CreateUser+GetUser pairs with botocore, and
                    a fast server goes through them and then replays names that exist
                    (EntityAlreadyExists), which made its c=16 row invalid. Here the requests are
                    signed by a small SigV4 signer in this file (the same canonical request botocore
                    builds for the query protocol; the dry run proves the server accepts it), fast
                    enough to sign a few hundred thousand. The warm-up run (its own names) measures
                    the rate, the timed run gets 2.5 times as many names as that rate needs, and the
                    row is marked invalid if wrk wrapped around its list or saw a non-2xx reply.

Usage (from the project root):
  python3 scripts/bench_iam.py run http://127.0.0.1:PORT --label citadel [--duration 8] \
      [--warmup 1] [--conc 1 16] [--server-pid PID] [--out DIR]
  python3 scripts/bench_iam.py report DIR/citadel DIR/moto > DIR/summary.md

Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (root or an administrator).
"""
import argparse
import concurrent.futures
import datetime
import hashlib
import hmac
import json
import os
import re
import socket
import statistics
import sys
import time
import urllib.parse
from urllib.parse import urlsplit

HARNESS = os.environ.get("HARNESS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench")
sys.path.insert(0, os.path.abspath(HARNESS))
import presign  # noqa: E402  (request capture and WRKREQ1 writer)
import run_bench  # noqa: E402  (wrk runner)
import server_probe  # noqa: E402  (server CPU/RSS from /proc)
from bench_sts import send_raw  # noqa: E402  (one raw pre-signed request)

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

REGION = presign.REGION
CFG = Config(retries={"total_max_attempts": 1}, max_pool_connections=32)
SCENARIOS = ["list-page-10k", "iam-listusers", "iam-getuser", "iam-createuser"]
LIST_USERS = 10_000


class Signer:
    """SigV4 for IAM's query protocol (POST /, form body), the signing key derived once per day."""

    def __init__(self, endpoint, ak, sk):
        self.host = urlsplit(endpoint).netloc
        self.ak = ak
        self.amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        day = self.amz_date[:8]
        key = ("AWS4" + sk).encode()
        for part in (day, REGION, "iam", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self.key = key
        self.scope = f"{day}/{REGION}/iam/aws4_request"

    def create_user(self, name):
        body = urllib.parse.urlencode({"Action": "CreateUser", "UserName": name, "Version": "2010-05-08"}).encode()
        content_type = "application/x-www-form-urlencoded; charset=utf-8"
        canonical = "\n".join([
            "POST", "/", "",
            f"content-type:{content_type}", f"host:{self.host}", f"x-amz-date:{self.amz_date}", "",
            "content-type;host;x-amz-date", hashlib.sha256(body).hexdigest()])
        to_sign = "\n".join(["AWS4-HMAC-SHA256", self.amz_date, self.scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        signature = hmac.new(self.key, to_sign.encode(), hashlib.sha256).hexdigest()
        head = (f"POST / HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: {content_type}\r\n"
                f"X-Amz-Date: {self.amz_date}\r\n"
                f"Authorization: AWS4-HMAC-SHA256 Credential={self.ak}/{self.scope}, "
                f"SignedHeaders=content-type;host;x-amz-date, Signature={signature}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        return head.encode() + body


def iam_client(endpoint):
    return boto3.session.Session(region_name=REGION).client("iam", endpoint_url=endpoint, config=CFG)


def list_page_10k(endpoint, prefix):
    """Creates LIST_USERS users, then times a ListUsers page of 100 (boto3, 20 times)."""
    iam = iam_client(endpoint)
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: iam.create_user(UserName=f"{prefix}-list-{i:05d}"), range(LIST_USERS)))
    made = time.perf_counter() - t0
    population = 0
    marker = None
    while True:
        page = iam.list_users(**({"Marker": marker} if marker else {}))
        population += len(page["Users"])
        if not page.get("IsTruncated"):
            break
        marker = page["Marker"]
    times = []
    for _ in range(20):
        t = time.perf_counter()
        page = iam.list_users(MaxItems=100)
        times.append((time.perf_counter() - t) * 1000)
    # moto ignores MaxItems and answers every user in one page; the page size is recorded.
    page_size = len(page["Users"])
    assert page_size >= 100 and (page_size > 100 or page["IsTruncated"])
    second = []
    for _ in range(5 if page.get("IsTruncated") else 0):
        t = time.perf_counter()
        iam.list_users(MaxItems=100, Marker=page["Marker"])
        second.append((time.perf_counter() - t) * 1000)
    return {"scenario": "list-page-10k", "users": population, "create_s": made, "page_size": page_size,
            "median_ms": statistics.median(times), "max_ms": max(times), "min_ms": min(times),
            "second_page_median_ms": statistics.median(second) if second else None}


def createuser_file(endpoint, path, prefix, units, ak, sk):
    signer = Signer(endpoint, ak, sk)
    t0 = time.perf_counter()
    presign.write_file(path, [[signer.create_user(f"{prefix}-{i:07d}")] for i in range(units)])
    return time.perf_counter() - t0


def wrk_row(endpoint, reqfile, conc, duration, pid):
    cpu0 = server_probe.cpu_s(pid) if pid else 0
    r = run_bench.wrk(endpoint, reqfile, conc, duration)
    cpu1 = server_probe.cpu_s(pid) if pid else 0
    errors = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_status"] + r["err_timeout"]
    row = {"rps": r["rps"], "p50_ms": r["lat_p50_us"] / 1000, "p99_ms": r["lat_p99_us"] / 1000,
           "errors": errors, "requests": r["requests"], "wraps": r.get("wraps", 0), "raw": r}
    if pid:
        row["server_cpu_ms_per_req"] = 1000.0 * (cpu1 - cpu0) / max(1, r["requests"])
        row["rss_after_kib"] = server_probe.rss_kib(pid)
    return row


def run(a):
    os.makedirs(a.out, exist_ok=True)
    ak = os.environ.get("AWS_ACCESS_KEY_ID", presign.DEFAULT_AK)
    sk = os.environ.get("AWS_SECRET_ACCESS_KEY", presign.DEFAULT_SK)
    pid = a.server_pid
    stamp = f"{a.label}-{int(time.time())}".lower()
    rows = []
    jl = open(os.path.join(a.out, "results.jsonl"), "a")

    def record(row):
        row.update(label=a.label, duration_s=a.duration,
                   loadavg_1m_after=float(open("/proc/loadavg").read().split()[0]))
        rows.append(row)
        jl.write(json.dumps(row) + "\n")
        jl.flush()
        print(json.dumps({k: v for k, v in row.items() if k != "raw"}), file=sys.stderr)

    for sc in a.scenarios:
        if sc == "list-page-10k":
            record(list_page_10k(a.endpoint, stamp))
            continue
        for c in a.conc:
            tag = f"{sc}-c{c}"
            reqfile = os.path.join(a.out, f"{tag}.req")
            if sc == "iam-createuser":
                prefix = f"{stamp}-c{c}"
                # Dry run: one request from the same signer must create a user.
                status, body = send_raw(a.endpoint, Signer(a.endpoint, ak, sk).create_user(f"{prefix}-dry"))
                assert status == 200 and b"<CreateUserResponse" in body, (status, body[:300])
                warm = os.path.join(a.out, f"{tag}-warm.req")
                warm_units = a.warm_units
                createuser_file(a.endpoint, warm, f"{prefix}-w", warm_units, ak, sk)
                w = wrk_row(a.endpoint, warm, c, a.warmup, 0)
                os.remove(warm)
                if w["wraps"]:
                    print(f"{tag}: warm-up wrapped ({w['rps']:.0f} req/s is a lower bound)", file=sys.stderr)
                units = max(5000, int(w["rps"] * a.duration * 2.5))
                signed_s = createuser_file(a.endpoint, reqfile, f"{prefix}-t", units, ak, sk)
                row = wrk_row(a.endpoint, reqfile, c, a.duration, pid)
                row.update(units=units, warmup_rps=w["rps"], sign_s=signed_s,
                           valid=row["wraps"] == 0 and row["errors"] == 0 and row["requests"] <= units)
            else:
                if sc == "iam-listusers":
                    _, cap = presign.make_clients(a.endpoint, ak, sk)
                    presign.write_file(reqfile, [[presign.capture(cap["iam"], "list_users", MaxItems=100)]])
                    status, body = send_raw(a.endpoint, open(reqfile, "rb").read().split(b"\n", 2)[2])
                    assert status == 200 and body.count(b"<UserName>") >= 100, (status, body[:300])
                else:
                    run_bench.presign(a.endpoint, sc, reqfile, 0, f"{stamp}-{tag}")
                if a.warmup:
                    run_bench.wrk(a.endpoint, reqfile, c, a.warmup)
                row = wrk_row(a.endpoint, reqfile, c, a.duration, pid)
                row["valid"] = row["errors"] == 0
            os.remove(reqfile)
            row.update(scenario=sc, conc=c)
            record(row)
    jl.close()


def load(d):
    rows = {}
    with open(os.path.join(d, "results.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            rows[(r["scenario"], r.get("conc"))] = r
    return rows


def report(a):
    c, m = load(a.citadel), load(a.moto)
    names = {"iam-createuser": "CreateUser, a new name every request", "iam-getuser": "GetUser of an existing user",
             "iam-listusers": "ListUsers, page of 100 over 10,000 users"}
    print("| scenario | conc | Citadel req/s | p50 ms | p99 ms | CPU ms/req | moto req/s | p50 ms | p99 ms "
          "| CPU ms/req | Citadel / moto | valid (Citadel / moto) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for sc in ("iam-createuser", "iam-getuser", "iam-listusers"):
        for conc in sorted({k[1] for k in c if k[0] == sc}):
            x, y = c[(sc, conc)], m.get((sc, conc))
            cell = lambda r: (f"{r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "  # noqa: E731
                              f"{r.get('server_cpu_ms_per_req', float('nan')):.3f}") if r else "- | - | - | -"
            ratio = f"{x['rps'] / y['rps']:.1f}x" if y and y['rps'] else "-"
            validity = f"{'yes' if x['valid'] else 'NO'} / {('yes' if y['valid'] else 'NO') if y else '-'}"
            print(f"| {names[sc]} | {conc} | {cell(x)} | {cell(y)} | {ratio} | {validity} |")
    print()
    for label, rows in (("Citadel", c), ("moto", m)):
        r = rows.get(("list-page-10k", None))
        if r:
            second = r.get("second_page_median_ms")
            print(f"- {label}: ListUsers MaxItems=100 over {r['users']:,} users returned {r.get('page_size', 100):,} "
                  f"users: median {r['median_ms']:.1f} ms, min {r['min_ms']:.1f} ms, max {r['max_ms']:.1f} ms "
                  f"(20 calls, boto3); second page median {f'{second:.1f} ms' if second else '-'}; "
                  f"creating the users took {r['create_s']:.1f} s")
        cu = [rows.get(("iam-createuser", k)) for k in (1, 16)]
        for row in filter(None, cu):
            print(f"- {label} CreateUser c={row['conc']}: {row['requests']:,} requests over {row['units']:,} "
                  f"distinct names, wraps {row['wraps']}, errors {row['errors']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("endpoint")
    r.add_argument("--label", default="endpoint")
    r.add_argument("--duration", type=int, default=8)
    r.add_argument("--warmup", type=int, default=1)
    r.add_argument("--warm-units", type=int, default=40000)
    r.add_argument("--conc", type=int, nargs="+", default=[1, 16])
    r.add_argument("--scenarios", nargs="+", default=SCENARIOS)
    r.add_argument("--server-pid", type=int, default=0)
    r.add_argument("--out", required=True)
    p = sub.add_parser("report")
    p.add_argument("citadel")
    p.add_argument("moto")
    a = ap.parse_args()
    run(a) if a.cmd == "run" else report(a)


if __name__ == "__main__":
    main()
