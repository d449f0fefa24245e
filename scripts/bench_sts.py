#!/usr/bin/env python3
"""STS scenarios for the shared load harness (../shared/bench), issue 5's speed section.

The harness's presign.py has no AssumeRole and no session-credential scenario. This script
reuses its request capture (botocore signs, the request is captured before it is sent) and its
request-file format (WRKREQ1, replayed by replay.lua), and its run_bench.wrk() runner, for:

  sts-assume-role   AssumeRole of a role whose trust policy trusts the account root (so the
                    caller's identity policy decides), signed with an IAM user's long-term key;
                    RoleSessionName fixed, DurationSeconds 900. Each replay issues a new session.
  sts-gci-longterm  GetCallerIdentity signed with the same IAM user's long-term access key.
  sts-gci-session   GetCallerIdentity signed with session credentials from AssumeRole
                    (X-Amz-Security-Token is a signed header).

Usage (from the project root):
  python3 scripts/bench_sts.py run http://127.0.0.1:PORT --label citadel [--duration 8] \
      [--warmup 1] [--conc 1 16] [--scenarios ...] [--server-pid PID] [--out DIR]
  python3 scripts/bench_sts.py report DIR/citadel DIR/moto > DIR/summary.md

`run` creates the fixtures (user, inline policy, access key, role) with boto3 using the
credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the admin or root identity), then,
per scenario: signs the request file, sends every distinct request once with a plain socket and
checks that the reply is HTTP 200 with the expected caller (a dry run: a benchmark of error
replies would be worthless), then warm-up and timed wrk runs exactly as run_bench.py does
(one connection per wrk thread, server CPU from /proc). Requests are signed just before each
scenario runs, so they stay inside SigV4's 15-minute window.
"""
import argparse
import json
import os
import re
import socket
import sys
import time
from urllib.parse import urlsplit

HARNESS = os.environ.get("HARNESS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench")
sys.path.insert(0, os.path.abspath(HARNESS))
import presign  # noqa: E402  (request capture and WRKREQ1 writer)
import run_bench  # noqa: E402  (wrk runner and table)
import server_probe  # noqa: E402  (server CPU/RSS from /proc)

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

# GetCallerIdentity runs first: moto finds a key by scanning every session AssumeRole issued
# before looking in IAM, so a long-term key would otherwise pay for the AssumeRole run's sessions.
SCENARIOS = ["sts-gci-longterm", "sts-gci-session", "sts-assume-role"]
REGION = presign.REGION
CFG = Config(retries={"total_max_attempts": 1})


def sts_clients(endpoint, ak, sk, token=None):
    """A real STS client and a capturing one (presign.py's before-send trick), same credentials."""
    sess = boto3.session.Session(aws_access_key_id=ak, aws_secret_access_key=sk,
                                 aws_session_token=token, region_name=REGION)
    real = sess.client("sts", endpoint_url=endpoint, config=CFG)
    cap = sess.client("sts", endpoint_url=endpoint, config=CFG)
    cap.meta.events.register("before-send", presign._capture_handler)
    return real, cap


def setup(endpoint, prefix):
    """User with a long-term key allowed to assume a role that trusts the account root."""
    admin = boto3.session.Session(region_name=REGION)
    iam = admin.client("iam", endpoint_url=endpoint, config=CFG)
    sts = admin.client("sts", endpoint_url=endpoint, config=CFG)
    account = sts.get_caller_identity()["Account"]
    user, role = f"{prefix}-user", f"{prefix}-role"
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": "sts:AssumeRole"}]}
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.create_user(UserName=user)
    # GetCallerIdentity needs no permission; AssumeRole needs the caller's identity policy to
    # allow it, since the trust policy names the account rather than the user.
    iam.put_user_policy(UserName=user, PolicyName="assume-bench-role", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Resource": role_arn}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return {"account": account, "user": user, "role": role, "role_arn": role_arn,
            "ak": key["AccessKeyId"], "sk": key["SecretAccessKey"]}


def session_creds(endpoint, fx, session_name):
    real, _ = sts_clients(endpoint, fx["ak"], fx["sk"])
    last = None
    for _ in range(50):  # a new key may take a moment to be usable on an eventually consistent peer
        try:
            c = real.assume_role(RoleArn=fx["role_arn"], RoleSessionName=session_name,
                                 DurationSeconds=900)["Credentials"]
            return c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]
        except Exception as e:  # noqa: BLE001
            last = e
            time.sleep(0.1)
    raise RuntimeError(f"AssumeRole with the bench user's key failed: {last}")


def build(endpoint, scenario, fx, session, units):
    """Signed raw requests for one scenario (list of units, one request each)."""
    if scenario == "sts-assume-role":
        _, cap = sts_clients(endpoint, fx["ak"], fx["sk"])
        raw = lambda: presign.capture(cap, "assume_role", RoleArn=fx["role_arn"],  # noqa: E731
                                      RoleSessionName="bench-session", DurationSeconds=900)
        expect = [b"<AssumeRoleResponse", b"<SessionToken>", b":assumed-role/" + fx["role"].encode()]
    elif scenario == "sts-gci-longterm":
        _, cap = sts_clients(endpoint, fx["ak"], fx["sk"])
        raw = lambda: presign.capture(cap, "get_caller_identity")  # noqa: E731
        expect = [b"<GetCallerIdentityResponse", b":user/" + fx["user"].encode() + b"</Arn>"]
    elif scenario == "sts-gci-session":
        _, cap = sts_clients(endpoint, *session)
        raw = lambda: presign.capture(cap, "get_caller_identity")  # noqa: E731
        expect = [b"<GetCallerIdentityResponse", b":assumed-role/" + fx["role"].encode() + b"/"]
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    reqs = [[raw()] for _ in range(units)]
    if scenario == "sts-gci-session":
        head = reqs[0][0].split(b"\r\n\r\n", 1)[0].lower()
        assert b"\r\nx-amz-security-token: " in head, "session token header missing"
        signed = re.search(rb"signedheaders=([^,]+)", head).group(1)
        assert b"x-amz-security-token" in signed.split(b";"), f"token not signed: {signed!r}"
    return reqs, expect


def send_raw(endpoint, raw, timeout=30):
    """One pre-signed request over a fresh connection; returns (status, body)."""
    u = urlsplit(endpoint)
    with socket.create_connection((u.hostname, u.port or 80), timeout=timeout) as s:
        s.sendall(raw)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if m:
            n = int(m.group(1))
            while len(body) < n:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
        elif re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
            while not body.endswith(b"0\r\n\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
        return status, body


def dry_run(endpoint, scenario, reqs, expect):
    for unit in reqs:
        for raw in unit:
            for attempt in range(2):  # the replay of an identical request must succeed too
                status, body = send_raw(endpoint, raw)
                missing = [e for e in expect if e not in body]
                if status != 200 or missing:
                    raise SystemExit(f"dry run {scenario}: HTTP {status}, missing {missing}:\n"
                                     f"{body[:800].decode('utf-8', 'replace')}")
    print(f"dry run {scenario}: {len(reqs)} request(s) x2 -> HTTP 200, expected caller", file=sys.stderr)


def cmd_run(a):
    out = a.out or os.path.join("bench-results", f"sts-{a.label}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(out, exist_ok=True)
    prefix = f"sts{int(time.time() * 1000) % 10**9}"
    fx = setup(a.endpoint, prefix)
    session = session_creds(a.endpoint, fx, "bench-gci")
    with open(os.path.join(out, "fixtures.json"), "w") as f:
        json.dump({k: v for k, v in fx.items() if k != "sk"}, f, indent=1)
    pid = a.server_pid
    rows = []
    jl = open(os.path.join(out, "results.jsonl"), "a")
    if pid:
        jl.write(json.dumps({"label": a.label, "event": "rss_before", "rss_kib": server_probe.rss_kib(pid)}) + "\n")
    for sc in a.scenarios:
        for c in a.conc:
            tag = f"{sc}-c{c}"
            reqfile = os.path.join(out, f"{tag}.req")
            reqs, expect = build(a.endpoint, sc, fx, session, a.units)
            presign.write_file(reqfile, reqs)
            dry_run(a.endpoint, sc, reqs, expect)
            if a.warmup:
                run_bench.wrk(a.endpoint, reqfile, c, a.warmup)
            rss0 = server_probe.rss_kib(pid) if pid else 0
            cpu0 = server_probe.cpu_s(pid) if pid else 0
            r = run_bench.wrk(a.endpoint, reqfile, c, a.duration)
            cpu1 = server_probe.cpu_s(pid) if pid else 0
            elapsed = r["duration_us"] / 1e6
            errs = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_status"] + r["err_timeout"]
            row = {"scenario": sc, "conc": c, "rps": r["rps"], "mib_per_s": None,
                   "p50_ms": r["lat_p50_us"] / 1000, "p99_ms": r["lat_p99_us"] / 1000,
                   "errors": errs, "requests": r["requests"], "raw": r}
            if pid:
                row["server_cpu_pct"] = 100.0 * (cpu1 - cpu0) / elapsed
                row["server_cpu_ms_per_req"] = 1000.0 * (cpu1 - cpu0) / max(1, r["requests"])
                row["rss_before_kib"] = rss0
                row["rss_after_kib"] = server_probe.rss_kib(pid)
            row["loadavg_1m_after"] = float(open("/proc/loadavg").read().split()[0])
            row["label"] = a.label
            row["duration_s"] = a.duration
            rows.append(row)
            jl.write(json.dumps(row) + "\n")
            jl.flush()
            if not a.keep_req:
                os.remove(reqfile)
            print(f"{a.label} {tag}: {row['rps']:.1f} req/s p50 {row['p50_ms']:.2f} ms "
                  f"p99 {row['p99_ms']:.2f} ms errors {errs}"
                  + (f" (non-2xx {r['err_status']})" if r["err_status"] else ""), file=sys.stderr)
    if pid:
        jl.write(json.dumps({"label": a.label, "event": "rss_after", "rss_kib": server_probe.rss_kib(pid)}) + "\n")
    jl.close()
    md = run_bench.table(rows)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(f"# {a.label} @ {a.endpoint} ({time.strftime('%Y-%m-%d %H:%M:%S')}, {a.duration}s per run)\n\n" + md)
    print(md)


def load(d):
    rows = {}
    with open(os.path.join(d, "results.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if "scenario" in r:
                rows[(r["scenario"], r["conc"])] = r
    return rows


def cmd_report(a):
    a_rows, b_rows = load(a.dirs[0]), load(a.dirs[1])
    an, bn = a.names
    names = {"sts-assume-role": "AssumeRole (900 s)", "sts-gci-longterm": "GetCallerIdentity, long-term key",
             "sts-gci-session": "GetCallerIdentity, session creds"}
    fmt = lambda x: f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"  # noqa: E731
    print(f"| scenario | conc | {an} req/s | p50 ms | p99 ms | errors | CPU ms/req "
          f"| {bn} req/s | p50 ms | p99 ms | errors | CPU ms/req | {an} / {bn} |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(a_rows, key=lambda k: (SCENARIOS.index(k[0]) if k[0] in SCENARIOS else 9, k[1])):
        x, y = a_rows[key], b_rows.get(key)
        cells = [names.get(key[0], key[0]), str(key[1])]
        for r in (x, y):
            if r is None:
                cells += ["-"] * 5
                continue
            cpu = r.get("server_cpu_ms_per_req")
            cells += [fmt(r["rps"]), f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", str(r["errors"]),
                      f"{cpu:.3f}" if cpu is not None else ""]
        cells.append(f"{x['rps'] / y['rps']:.1f}x" if y else "-")
        print("| " + " | ".join(cells) + " |")
    print()
    print("Session credentials versus long-term key (GetCallerIdentity), overhead = long-term / session - 1"
          " for throughput, session / long-term - 1 for CPU per request and p50:")
    print()
    print("| server | conc | throughput overhead | CPU/req overhead | p50 overhead |")
    print("|---|---|---|---|---|")
    for name, rows in ((an, a_rows), (bn, b_rows)):
        for c in sorted({k[1] for k in rows}):
            lt, se = rows.get(("sts-gci-longterm", c)), rows.get(("sts-gci-session", c))
            if not lt or not se:
                continue
            thr = lt["rps"] / se["rps"] - 1
            cpu = (se["server_cpu_ms_per_req"] / lt["server_cpu_ms_per_req"] - 1
                   if lt.get("server_cpu_ms_per_req") and se.get("server_cpu_ms_per_req") else None)
            p50 = se["p50_ms"] / lt["p50_ms"] - 1
            print(f"| {name} | {c} | {thr * 100:+.1f}% | "
                  + (f"{cpu * 100:+.1f}%" if cpu is not None else "") + f" | {p50 * 100:+.1f}% |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("endpoint")
    r.add_argument("--label", default="endpoint")
    r.add_argument("--duration", type=int, default=8)
    r.add_argument("--warmup", type=int, default=1)
    r.add_argument("--conc", type=int, nargs="+", default=[1, 16])
    r.add_argument("--scenarios", nargs="+", default=SCENARIOS, choices=SCENARIOS)
    r.add_argument("--units", type=int, default=1, help="distinct signed requests per scenario")
    r.add_argument("--server-pid", type=int, default=0)
    r.add_argument("--keep-req", action="store_true", help="keep the signed request files")
    r.add_argument("--out", default=None)
    p = sub.add_parser("report")
    p.add_argument("dirs", nargs=2)
    p.add_argument("--names", nargs=2, default=["Citadel", "moto"])
    a = ap.parse_args()
    cmd_run(a) if a.cmd == "run" else cmd_report(a)


if __name__ == "__main__":
    main()
