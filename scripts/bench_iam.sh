#!/usr/bin/env bash
# IAM throughput (issue 4): CreateUser (a new name every request), GetUser and ListUsers, and a
# ListUsers page over 10,000 users, for Citadel and moto_server in one run, back to back, through the
# shared load harness (../shared/bench: requests pre-signed, wrk replays). Scenarios: scripts/bench_iam.py.
# Writes raw results under bench-results/iam-<date>/ and the side-by-side table to summary.md.
# Needs: a release build of citadel (cargo build --release -p citadel), wrk, boto3, moto[server].
set -euo pipefail
cd "$(dirname "$0")/.."
export HARNESS=${HARNESS:-$(cd ../shared/bench && pwd)}
CITADEL=${CITADEL:-${CARGO_TARGET_DIR:-target}/release/citadel}
DURATION=${DURATION:-8}
CONC=${CONC:-"1 16"}
OUT=bench-results/iam-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
export AWS_DEFAULT_REGION=us-east-1
. scripts/bench_lib.sh
run() { # label port pid
  python3 scripts/bench_iam.py run "http://127.0.0.1:$2" --label "$1" --duration "$DURATION" --warmup 1 \
    --conc $CONC --server-pid "$3" --out "$OUT/$1" 2>&1 | tee "$OUT/$1.txt"
}
{ echo "start $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) nproc $(nproc)"
  echo "citadel $("$CITADEL" --version 2>/dev/null || echo '?') ($CITADEL)"
  echo "moto $(python3 -c 'import moto; print(moto.__version__)')"; } | tee "$OUT/env.txt"

# Citadel: every request SigV4-verified, authorized and audited; writes fsync'd with their event.
start_citadel 4630
run citadel 4630 "$SERVER_PID"
stop_server
echo "between $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"

# moto_server (pip install 'moto[server]'): no signature check, no authorization, no audit, in memory.
start_moto 4631
run moto 4631 "$SERVER_PID"
stop_server
echo "end $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"

python3 scripts/bench_iam.py report "$OUT/citadel" "$OUT/moto" | tee "$OUT/summary.md"
echo "results in $OUT"
