#!/usr/bin/env bash
# Issue 9's speed section: the GetCallerIdentity, KMS and S3 scenarios of the shared harness
# (../shared/bench) against one Citadel node on the embedded store, one node on PostgreSQL, and two
# nodes on one PostgreSQL (two harness runs at once, one per node; their rates are added).
# Needs: a release build (cargo build --release -p citadel), wrk, boto3, and a PostgreSQL URL in
# CITADEL_TEST_POSTGRES_URL (scripts/pg-test-server.sh start prints one). Raw results go to
# bench-results/<date>-store/.
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${HARNESS:-../shared/bench}
CITADEL=${CITADEL:-${CARGO_TARGET_DIR:-target}/release/citadel}
DURATION=${DURATION:-10}
SCENARIOS=${SCENARIOS:-"sts-gci kms-encrypt s3-put4k s3-get4k"}
CONC=${CONC:-"1 16"}
PG=${CITADEL_TEST_POSTGRES_URL:?set CITADEL_TEST_POSTGRES_URL (scripts/pg-test-server.sh start)}
OUT=bench-results/$(date -u +%Y%m%dT%H%M%SZ)-store
mkdir -p "$OUT"
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
export CITADEL_ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID CITADEL_ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export CITADEL_MASTER_KEY=$(head -c 32 /dev/urandom | base64)

wait_port() { for _ in $(seq 1 300); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
bench() { # label port pid
  python3 "$HARNESS/run_bench.py" "http://127.0.0.1:$2" --label "$1" --duration "$DURATION" --warmup 1 \
    --conc $CONC --scenarios $SCENARIOS --server-pid "$3" --out "$OUT/$1" > "$OUT/$1.txt" 2>&1
  cat "$OUT/$1.txt"
}
fresh_db() {
  local name=citadel_bench_$RANDOM$RANDOM
  psql "$PG" -qc "CREATE DATABASE $name" >/dev/null
  echo "${PG%/*}/$name"
}
# The benchmark databases hold hundreds of MB of audit records; drop each when its run is over.
drop_db() { # url
  psql "$PG" -qc "DROP DATABASE ${1##*/}" >/dev/null
}

# 1. One node, embedded store.
DATA=$(mktemp -d)
"$CITADEL" serve --listen 127.0.0.1:4620 --data-dir "$DATA" > "$OUT/embedded.log" 2>&1 &
P=$!; wait_port 4620
bench embedded 4620 $P
kill $P; wait $P || true; rm -rf "$DATA"

# 2. One node, PostgreSQL.
URL=$(fresh_db); DATA=$(mktemp -d); BLOBS=$(mktemp -d)
"$CITADEL" serve --listen 127.0.0.1:4621 --data-dir "$DATA" --store "$URL" --blobs "file://$BLOBS" > "$OUT/pg1.log" 2>&1 &
P=$!; wait_port 4621
bench postgres-1node 4621 $P
kill $P; wait $P || true; rm -rf "$DATA" "$BLOBS"; drop_db "$URL"

# 3. Two nodes on one PostgreSQL, loaded at once.
URL=$(fresh_db); DA=$(mktemp -d); DB=$(mktemp -d); BLOBS=$(mktemp -d)
"$CITADEL" serve --listen 127.0.0.1:4622 --data-dir "$DA" --store "$URL" --blobs "file://$BLOBS" > "$OUT/pg2a.log" 2>&1 &
PA=$!; wait_port 4622
"$CITADEL" serve --listen 127.0.0.1:4623 --data-dir "$DB" --store "$URL" --blobs "file://$BLOBS" > "$OUT/pg2b.log" 2>&1 &
PB=$!; wait_port 4623
bench postgres-2nodes-a 4622 $PA &
W=$!
bench postgres-2nodes-b 4623 $PB
wait $W || true
kill $PA $PB; wait $PA $PB || true; rm -rf "$DA" "$DB" "$BLOBS"; drop_db "$URL"
echo "results in $OUT"
