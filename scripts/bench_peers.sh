#!/usr/bin/env bash
# Runs the shared load harness (../shared/bench) against Citadel, moto_server and fakecloud in one run,
# on the same machine, back to back, and writes the raw results under bench-results/<date>/.
# Needs: a release build of citadel (cargo build --release -p citadel), wrk, boto3, moto[server],
# and fakecloud on PATH or in $FAKECLOUD (cargo install fakecloud).
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${HARNESS:-../shared/bench}
CITADEL=${CITADEL:-${CARGO_TARGET_DIR:-target}/release/citadel}
FAKECLOUD=${FAKECLOUD:-fakecloud}
DURATION=${DURATION:-10}
SCENARIOS=${SCENARIOS:-"sts-gci kms-encrypt s3-put4k s3-get4k"}
OUT=bench-results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
export AWS_DEFAULT_REGION=us-east-1

. scripts/bench_lib.sh

run() { # label port pid
  python3 "$HARNESS/run_bench.py" "http://127.0.0.1:$2" --label "$1" --duration "$DURATION" --warmup 1 \
    --conc 1 16 --scenarios $SCENARIOS --server-pid "$3" --out "$OUT/$1" | tee "$OUT/$1.txt"
}

# Citadel: every request SigV4-verified, authorized and audited, embedded durable store.
start_citadel 4610
run citadel 4610 "$SERVER_PID"
stop_server

start_moto 4611
run moto 4611 "$SERVER_PID"
stop_server

start_fakecloud 4612
run fakecloud 4612 "$SERVER_PID"
stop_server
echo "results in $OUT"
