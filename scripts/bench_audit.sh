#!/usr/bin/env bash
# Audit benchmarks of issue 8 (bench/audit-figures.md):
#   (a) durable group commit of CloudTrail records through RedbStore   (crates/cloudtrail/benches/audit.rs commit)
#   (b) filter pattern scan over >= 1 GB of JSON events on one core    (crates/logs/benches/filter_1gb.rs)
#   (c) delivery + digest signing of a day of events (1M)               (crates/cloudtrail/benches/audit.rs delivery)
#   moto: FilterLogEvents through moto_server on a smaller group (moto keeps events in Python lists).
# Usage: scripts/bench_audit.sh [all|rust|moto]   (CARGO_TARGET_DIR is honoured; MOTO_EVENTS=20000)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"

if [[ "$what" == all || "$what" == rust ]]; then
    cargo bench -p citadel-cloudtrail --bench audit
    taskset -c 0 cargo bench -p citadel-logs --bench filter_1gb 2>/dev/null || cargo bench -p citadel-logs --bench filter_1gb
fi

if [[ "$what" == all || "$what" == moto ]]; then
    port="${MOTO_PORT:-5123}"
    moto_server -p "$port" >/tmp/bench-audit-moto.log 2>&1 &
    moto_pid=$!
    trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
    MOTO_PORT="$port" MOTO_EVENTS="${MOTO_EVENTS:-20000}" python3 - <<'PY'
import os, time, boto3
port = os.environ["MOTO_PORT"]
n = int(os.environ["MOTO_EVENTS"])
for _ in range(50):
    try:
        logs = boto3.client("logs", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")
        logs.describe_log_groups()
        break
    except Exception:
        time.sleep(0.2)
names = ["ListUsers", "GetObject", "PutRolePolicy", "ConsoleLogin", "Decrypt", "AssumeRole"]
def event(i):
    error = ',"errorCode":"AccessDenied","errorMessage":"User: arn:aws:iam::111122223333:user/u is not authorized to perform: iam:ListUsers"' if i % 97 == 0 else ""
    return ('{"eventVersion":"1.11","userIdentity":{"type":"IAMUser","principalId":"AIDA%016d","arn":"arn:aws:iam::111122223333:user/u%d","accountId":"111122223333","accessKeyId":"AKIA%016d","userName":"u%d"},"eventTime":"2026-01-01T00:00:00Z","eventSource":"iam.amazonaws.com","eventName":"%s","awsRegion":"us-east-1","sourceIPAddress":"10.0.%d.%d","userAgent":"aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64 command/iam","requestParameters":{"maxItems":100,"pathPrefix":"/engineering/"},"responseElements":null%s,"requestID":"%032x","eventID":"%032x","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333","eventCategory":"Management","tlsDetails":{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256","clientProvidedHostHeader":"iam.amazonaws.com"}}'
            % (i, i % 500, i, i % 500, names[i % len(names)], i % 256, (i // 256) % 256, error, i, i))
logs.create_log_group(logGroupName="bench")
logs.create_log_stream(logGroupName="bench", logStreamName="s")
now = int(time.time() * 1000)
total = 0
for start in range(0, n, 1000):
    batch = [event(i) for i in range(start, min(n, start + 1000))]
    total += sum(len(m) for m in batch)
    logs.put_log_events(logGroupName="bench", logStreamName="s",
                        logEvents=[{"timestamp": now, "message": m} for m in batch])
for label, pattern in (("terms AccessDenied", "AccessDenied"),
                       ("cis_unauthorized (JSON)", '{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }')):
    t0 = time.time()
    matches, token = 0, None
    while True:
        kw = {"nextToken": token} if token else {}
        page = logs.filter_log_events(logGroupName="bench", filterPattern=pattern, **kw)
        matches += len(page["events"])
        token = page.get("nextToken")
        if not token:
            break
    dt = time.time() - t0
    print(f"moto filter_log_events [{label}]: {n} events, {total/1e6:.1f} MB, {matches} matches, {dt:.2f} s = {total/1e6/dt:.1f} MB/s")
PY
fi
