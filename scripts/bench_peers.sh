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

wait_port() { for _ in $(seq 1 300); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

run() { # label port pid
  python3 "$HARNESS/run_bench.py" "http://127.0.0.1:$2" --label "$1" --duration "$DURATION" --warmup 1 \
    --conc 1 16 --scenarios $SCENARIOS --server-pid "$3" --out "$OUT/$1" | tee "$OUT/$1.txt"
}

# Citadel: every request SigV4-verified, authorized and audited, embedded durable store.
DATA=$(mktemp -d)
export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
CITADEL_ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID CITADEL_ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
  "$CITADEL" serve --listen 127.0.0.1:4610 --data-dir "$DATA" > "$OUT/citadel.log" 2>&1 &
CPID=$!; wait_port 4610
run citadel 4610 $CPID
kill $CPID; wait $CPID || true; rm -rf "$DATA"

# moto_server (pip install 'moto[server]').
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
moto_server -p 4611 > "$OUT/moto.log" 2>&1 &
MPID=$!; wait_port 4611
run moto 4611 $MPID
kill $MPID; wait $MPID || true

# fakecloud with SigV4 verification on: the reserved test/test identity bypasses verification,
# so the benchmark signs with an IAM user's key created through fakecloud's own IAM.
"$FAKECLOUD" --addr 127.0.0.1:4612 --verify-sigv4 --log-level error > "$OUT/fakecloud.log" 2>&1 &
FPID=$!; wait_port 4612
read -r AK SK < <(python3 - <<'PY'
import boto3
iam = boto3.client("iam", endpoint_url="http://127.0.0.1:4612", region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
iam.create_user(UserName="bench")
iam.attach_user_policy(UserName="bench", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
k = iam.create_access_key(UserName="bench")["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
PY
)
export AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK
run fakecloud 4612 $FPID
kill $FPID; wait $FPID || true
echo "results in $OUT"
