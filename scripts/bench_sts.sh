#!/usr/bin/env bash
# STS throughput (issue 5): AssumeRole, and GetCallerIdentity signed with session credentials versus an
# IAM user's long-term key, for Citadel and moto_server in one run, back to back, through the shared
# load harness (../shared/bench: botocore pre-signs, wrk replays). Scenarios: scripts/bench_sts.py.
# Writes raw results under bench-results/sts-<date>/ and the side-by-side table to summary.md.
# Needs: a release build of citadel (cargo build --release -p citadel), wrk, boto3, moto[server].
set -euo pipefail
cd "$(dirname "$0")/.."
export HARNESS=${HARNESS:-$(cd ../shared/bench && pwd)}
CITADEL=${CITADEL:-${CARGO_TARGET_DIR:-target}/release/citadel}
DURATION=${DURATION:-8}
CONC=${CONC:-"1 16"}
OUT=bench-results/sts-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
export AWS_DEFAULT_REGION=us-east-1
. scripts/bench_lib.sh
run() { # label port pid
  python3 scripts/bench_sts.py run "http://127.0.0.1:$2" --label "$1" --duration "$DURATION" --warmup 1 \
    --conc $CONC --server-pid "$3" --out "$OUT/$1" | tee "$OUT/$1.txt"
}
{ echo "start $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) nproc $(nproc)"
  echo "citadel $("$CITADEL" --version 2>/dev/null || echo '?') ($CITADEL)"
  echo "moto $(python3 -c 'import moto; print(moto.__version__)')"; } | tee "$OUT/env.txt"

# Citadel: every request SigV4-verified, authorized and audited, embedded durable store.
start_citadel 4640
run citadel 4640 "$SERVER_PID"
stop_server
echo "between $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"

# moto_server (pip install 'moto[server]'): no signature check, no authorization, no audit.
start_moto 4641
run moto 4641 "$SERVER_PID"
stop_server
echo "end $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"

python3 scripts/bench_sts.py report "$OUT/citadel" "$OUT/moto" | tee "$OUT/summary.md"
echo "results in $OUT"
