#!/usr/bin/env bash
# KMS request throughput: Encrypt of 1 KiB, Decrypt of a 1 KiB ciphertext and GenerateDataKey (AES_256)
# against Citadel, moto_server and fakecloud, back to back on the same machine, with the shared harness
# (../shared/bench): requests are pre-signed by botocore (presign.py's capture) and replayed by wrk
# (replay.lua), one connection per wrk thread, after an uncounted warm-up; the server's CPU time per
# request comes from /proc (server_probe.py), which is much less sensitive to a busy machine than req/s.
#
# The harness's presign.py knows only kms-encrypt, so the request files are built here with its own
# helpers (make_clients, capture, write_file) and driven with run_bench.py's wrk runner.
#
# Usage: scripts/bench_kms.sh                     (all three servers)
#        TARGETS="citadel moto" scripts/bench_kms.sh
#        ENDPOINT=http://127.0.0.1:4610 PID=1234 LABEL=citadel scripts/bench_kms.sh   (a running server)
# Env: CITADEL (binary), FAKECLOUD, HARNESS, DURATION (s, default 10), WARMUP (s, 1), CONC ("1 16"),
#      SCENARIOS ("kms-encrypt kms-decrypt kms-gdk").
# Needs: a release build of citadel, wrk, boto3, moto[server], fakecloud.
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=$(cd "${HARNESS:-../shared/bench}" && pwd)
CITADEL=${CITADEL:-${CARGO_TARGET_DIR:-target}/release/citadel}
FAKECLOUD=${FAKECLOUD:-$(command -v fakecloud || echo /work/peers/bin/fakecloud)}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
CONC=${CONC:-"1 16"}
SCENARIOS=${SCENARIOS:-"kms-encrypt kms-decrypt kms-gdk"}
TARGETS=${TARGETS:-"citadel moto fakecloud"}
OUT=${OUT:-bench-results/kms-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
export AWS_DEFAULT_REGION=us-east-1

DRIVER="$OUT/kms_driver.py"
cat > "$DRIVER" <<'PY'
"""Pre-signs one KMS scenario per run and replays it with wrk; prints one JSON row per run."""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.environ["HARNESS"])
import presign  # noqa: E402
import run_bench  # noqa: E402
import server_probe  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("endpoint")
ap.add_argument("--label", required=True)
ap.add_argument("--pid", type=int, default=0)
ap.add_argument("--duration", type=int, default=10)
ap.add_argument("--warmup", type=int, default=1)
ap.add_argument("--conc", type=int, nargs="+", default=[1, 16])
ap.add_argument("--scenarios", nargs="+", default=["kms-encrypt", "kms-decrypt", "kms-gdk"])
ap.add_argument("--out", required=True)
a = ap.parse_args()

ak = os.environ.get("AWS_ACCESS_KEY_ID", presign.DEFAULT_AK)
sk = os.environ.get("AWS_SECRET_ACCESS_KEY", presign.DEFAULT_SK)
real, cap = presign.make_clients(a.endpoint, ak, sk)
kms_real, kms_cap = real["kms"], cap["kms"]


def requests_for(scenario, key_id):
    """One unit per request; 64 distinct units so every connection replays its own requests."""
    units = []
    for _ in range(64):
        if scenario == "kms-encrypt":
            units.append([presign.capture(kms_cap, "encrypt", KeyId=key_id, Plaintext=os.urandom(1024))])
        elif scenario == "kms-decrypt":
            blob = kms_real.encrypt(KeyId=key_id, Plaintext=os.urandom(1024))["CiphertextBlob"]
            units.append([presign.capture(kms_cap, "decrypt", CiphertextBlob=blob)])
        elif scenario == "kms-gdk":
            units.append([presign.capture(kms_cap, "generate_data_key", KeyId=key_id, KeySpec="AES_256")])
        else:
            sys.exit(f"unknown scenario {scenario}")
    return units


rows = []
for scenario in a.scenarios:
    key_id = kms_real.create_key(Description=f"{a.label} {scenario} bench")["KeyMetadata"]["KeyId"]
    reqfile = os.path.join(a.out, f"{a.label}-{scenario}.req")
    presign.write_file(reqfile, requests_for(scenario, key_id))
    for conc in a.conc:
        if a.warmup:
            run_bench.wrk(a.endpoint, reqfile, conc, a.warmup)
        cpu0 = server_probe.cpu_s(a.pid) if a.pid else 0.0
        r = run_bench.wrk(a.endpoint, reqfile, conc, a.duration)
        cpu1 = server_probe.cpu_s(a.pid) if a.pid else 0.0
        errors = sum(r[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
        row = {
            "label": a.label, "scenario": scenario, "conc": conc, "rps": r["rps"],
            "p50_ms": r["lat_p50_us"] / 1000, "p99_ms": r["lat_p99_us"] / 1000,
            "errors": errors, "requests": r["requests"],
            "server_cpu_ms_per_req": (1000.0 * (cpu1 - cpu0) / max(1, r["requests"])) if a.pid else None,
            "loadavg_1m_after": float(open("/proc/loadavg").read().split()[0]),
            "time": time.strftime("%H:%M:%S"),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    os.remove(reqfile)
with open(os.path.join(a.out, f"{a.label}.jsonl"), "a") as f:
    for row in rows:
        f.write(json.dumps(row) + "\n")
PY

. scripts/bench_lib.sh

drive() { # label port pid
  HARNESS="$HARNESS" python3 "$DRIVER" "http://127.0.0.1:$2" --label "$1" --pid "$3" --duration "$DURATION" \
    --warmup "$WARMUP" --conc $CONC --scenarios $SCENARIOS --out "$OUT" | tee -a "$OUT/$1.txt"
}

if [ -n "${ENDPOINT:-}" ]; then
  HARNESS="$HARNESS" python3 "$DRIVER" "$ENDPOINT" --label "${LABEL:-endpoint}" --pid "${PID:-0}" \
    --duration "$DURATION" --warmup "$WARMUP" --conc $CONC --scenarios $SCENARIOS --out "$OUT"
  exit 0
fi

for target in $TARGETS; do
  case $target in
    # Citadel: every request SigV4-verified, authorized and audited, embedded durable store.
    citadel) start_citadel 4610; drive citadel 4610 "$SERVER_PID" ;;
    moto) start_moto 4611; drive moto 4611 "$SERVER_PID" ;;
    fakecloud) start_fakecloud 4612; drive fakecloud 4612 "$SERVER_PID" ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
  esac
  stop_server
done
echo "results in $OUT"
