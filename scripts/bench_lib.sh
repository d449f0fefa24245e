# Shared by the bench_*.sh scripts (sourced): starting and stopping the servers they compare.
# Each start_* function starts one server in the background, waits for its port, sets SERVER_PID
# and exports the AWS credentials to sign with; stop_server ends it. Logs go to "$OUT/<label>.log".

wait_port() { for _ in $(seq 1 300); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# Citadel on PORT with a fresh data directory (removed by stop_server), signed as the root user.
start_citadel() { # port
  SERVER_DATA=$(mktemp -d)
  export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
  CITADEL_ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID CITADEL_ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
    "$CITADEL" serve --listen "127.0.0.1:$1" --data-dir "$SERVER_DATA" > "$OUT/citadel.log" 2>&1 &
  SERVER_PID=$!; wait_port "$1"
}

# moto_server on PORT (pip install 'moto[server]'): no signature check, no authorization, no audit.
start_moto() { # port
  SERVER_DATA=
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  moto_server -p "$1" > "$OUT/moto.log" 2>&1 &
  SERVER_PID=$!; wait_port "$1"
}

# fakecloud on PORT with SigV4 verification on: its reserved test/test identity bypasses
# verification, so requests are signed with an IAM user's key made through fakecloud's own IAM.
start_fakecloud() { # port
  SERVER_DATA=
  "$FAKECLOUD" --addr "127.0.0.1:$1" --verify-sigv4 --log-level error > "$OUT/fakecloud.log" 2>&1 &
  SERVER_PID=$!; wait_port "$1"
  local keys
  keys=$(FAKECLOUD_PORT=$1 python3 - <<'PY'
import os
import boto3
iam = boto3.client("iam", endpoint_url=f"http://127.0.0.1:{os.environ['FAKECLOUD_PORT']}", region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
iam.create_user(UserName="bench")
iam.attach_user_policy(UserName="bench", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
k = iam.create_access_key(UserName="bench")["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
PY
)
  read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY <<< "$keys"
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
}

stop_server() {
  kill "$SERVER_PID"; wait "$SERVER_PID" || true
  if [ -n "${SERVER_DATA:-}" ]; then rm -rf "$SERVER_DATA"; fi
}
