#!/usr/bin/env bash
# IAM throughput (shared harness scenarios iam-user and iam-getuser) and a ListUsers page over
# 10,000 users, for Citadel and moto_server in one session.
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${HARNESS:-../shared/bench}
CITADEL=${CITADEL:-${CARGO_TARGET_DIR:-target}/release/citadel}
DURATION=${DURATION:-8}
OUT=bench-results/iam-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
export AWS_DEFAULT_REGION=us-east-1
wait_port() { for _ in $(seq 1 300); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
list_page() { # endpoint
  python3 - "$1" <<'PY'
import sys, time, concurrent.futures, boto3, statistics
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1")
def make(i):
    iam.create_user(UserName=f"list-{i:05d}")
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(make, range(10000)))
times = []
for _ in range(20):
    t = time.perf_counter(); page = iam.list_users(MaxItems=100); times.append((time.perf_counter() - t) * 1000)
    assert len(page["Users"]) == 100 and page["IsTruncated"]
print(f"ListUsers page of 100 over 10,000+ users: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms")
PY
}
DATA=$(mktemp -d)
export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
CITADEL_ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID CITADEL_ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
  "$CITADEL" serve --listen 127.0.0.1:4630 --data-dir "$DATA" > "$OUT/citadel.log" 2>&1 &
CPID=$!; wait_port 4630
python3 "$HARNESS/run_bench.py" http://127.0.0.1:4630 --label citadel --duration "$DURATION" --warmup 1 --conc 1 16 \
  --scenarios iam-user iam-getuser --server-pid $CPID --out "$OUT/citadel" | tee "$OUT/citadel.txt"
list_page http://127.0.0.1:4630 | tee -a "$OUT/citadel.txt"
kill $CPID; wait $CPID || true; rm -rf "$DATA"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
moto_server -p 4631 > "$OUT/moto.log" 2>&1 &
MPID=$!; wait_port 4631
python3 "$HARNESS/run_bench.py" http://127.0.0.1:4631 --label moto --duration "$DURATION" --warmup 1 --conc 1 16 \
  --scenarios iam-user iam-getuser --server-pid $MPID --out "$OUT/moto" | tee "$OUT/moto.txt"
list_page http://127.0.0.1:4631 | tee -a "$OUT/moto.txt"
kill $MPID; wait $MPID || true
echo "results in $OUT"
