#!/usr/bin/env python3
"""Writes the list of functions the linker places first: those a `citadel serve` start-up runs, then
those of the common calls.

Why: the release binary's text is ~17 MB, and a cold start touches code all over it. Each first touch
of a page maps the whole 64 KiB around it (the kernel's fault-around), so start-up used to leave about
9 MiB of text resident, most of the idle RSS, and spent a third of its time in page faults. Linked
with `--symbol-ordering-file` (crates/server/build.rs), the functions that start-up runs sit side by
side at the start of the text segment.

How: runs the given release binary under valgrind's callgrind with a fresh data directory, asks
`/_citadel/health` once the server answers, then makes the first call that
`scripts/bench_startup.py` times (a signed GetCallerIdentity through boto3), lets the server idle
for a moment, stops it with SIGINT (a graceful shutdown, so callgrind writes its profile), and keeps
every function of the binary that ran, by its mangled name. A second run adds a few of each call the
load harness times (KMS Encrypt, S3 PutObject and GetObject): their functions follow the start-up
ones, so the request path is packed too, away from code that never runs. Names the binary does not
define are dropped; the linker ignores names that a later build no longer has, so a stale list only
places fewer functions.

Usage: scripts/startup_symbols.py target/release/citadel [--out crates/server/startup-symbols.txt]
Needs valgrind, nm and boto3.
"""

import argparse
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.request

import boto3

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def functions_that_ran(profile, binary):
    """Mangled names of the functions of `binary` in a callgrind profile, in first-seen order."""
    objects, functions, names, seen = {}, {}, [], set()
    current_object = None
    binary = os.path.realpath(binary)
    for line in open(profile, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        match = re.match(r"^(c?ob)=\((\d+)\)(?: (.*))?$", line)
        if match:
            kind, ident, name = match.groups()
            if name:
                objects[ident] = os.path.realpath(name)
            if kind == "ob":
                current_object = objects.get(ident)
            continue
        match = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line)
        if match:
            kind, ident, name = match.groups()
            if name:
                functions[ident] = name
            if kind == "fn" and current_object == binary:
                name = functions[ident]
                if name not in seen:
                    seen.add(name)
                    names.append(name)
    return names


def defined_functions(binary):
    listing = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    rows = (line.split() for line in listing.splitlines())
    # nm rows are "address type name"; t/T/w/W are code symbols.
    return {row[2] for row in rows if len(row) == 3 and row[1] in "tTwW"}


def profile_run(binary, port, workload):
    """The functions of `binary` that ran in one callgrind run of a first start, a health check, a
    signed GetCallerIdentity and then `workload(session, endpoint)` (a boto3 session signing as root)."""
    with tempfile.TemporaryDirectory() as work:
        profile = os.path.join(work, "callgrind.out")
        env = dict(os.environ)
        env.setdefault("CITADEL_ROOT_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        env.setdefault("CITADEL_ROOT_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={profile}", binary,
             "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", os.path.join(work, "data")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 120
            while True:
                try:
                    urllib.request.urlopen(f"{endpoint}/_citadel/health", timeout=5).read()
                    break
                except OSError:
                    if time.time() > deadline or server.poll() is not None:
                        raise SystemExit("the server did not answer under valgrind")
                    time.sleep(0.2)
            session = boto3.session.Session(aws_access_key_id=env["CITADEL_ROOT_ACCESS_KEY_ID"],
                                            aws_secret_access_key=env["CITADEL_ROOT_SECRET_ACCESS_KEY"],
                                            region_name="us-east-1")
            session.client("sts", endpoint_url=endpoint).get_caller_identity()
            workload(session, endpoint)
            time.sleep(2)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=120)
        return functions_that_ran(profile, binary)


def common_calls(session, endpoint):
    """The calls the load harness (../shared/bench) times, a few of each: KMS Encrypt, S3 PutObject
    and GetObject of 4 KiB, GetCallerIdentity."""
    kms = session.client("kms", endpoint_url=endpoint)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    s3 = session.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket="startup-symbols")
    sts = session.client("sts", endpoint_url=endpoint)
    for n in range(3):
        kms.encrypt(KeyId=key, Plaintext=b"x" * 1024)
        s3.put_object(Bucket="startup-symbols", Key=f"k{n}", Body=b"x" * 4096)
        s3.get_object(Bucket="startup-symbols", Key=f"k{n}")["Body"].read()
        sts.get_caller_identity()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("--out", default=os.path.join(REPO, "crates", "server", "startup-symbols.txt"))
    parser.add_argument("--port", type=int, default=4641)
    args = parser.parse_args()
    startup = profile_run(args.binary, args.port, lambda session, endpoint: None)
    requests = profile_run(args.binary, args.port, common_calls)
    seen = set(startup)
    names = startup + [name for name in requests if name not in seen]
    defined = defined_functions(args.binary)
    kept = [name for name in names if name in defined]
    with open(args.out, "w", encoding="utf-8") as out:
        out.write("\n".join(kept) + "\n")
    print(f"{len(kept)} functions written to {args.out}: {sum(n in defined for n in startup)} of start-up, then the "
          f"rest of the common calls ({len(names) - len(kept)} names not defined by the binary)")


if __name__ == "__main__":
    main()
