#!/usr/bin/env bash
# Runs Citadel's whole test suite: the Rust unit and integration tests, then the Python suite
# (boto3 and the aws CLI against the real binary).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c "import boto3, pytest" 2>/dev/null || ! command -v aws >/dev/null; then
  python3 -m pip install -q -r tests/python/requirements.txt
fi

# PostgreSQL for the store backend's tests, started here when the caller has not given one
# (needs root to run it as the postgres user; otherwise set CITADEL_TEST_POSTGRES_URL yourself).
if [ -z "${CITADEL_TEST_POSTGRES_URL:-}" ] && [ "$(id -u)" = 0 ]; then
  CITADEL_TEST_POSTGRES_URL="$(./scripts/pg-test-server.sh start)"
  export CITADEL_TEST_POSTGRES_URL
fi

# One package selection (--workspace) for every cargo call: a narrower one (-p citadel) resolves
# other features (no dev-dependency `test-util`), which rebuilds most of the tree a second time and
# doubles the target directory. `cargo test` builds target/debug/citadel too, which pytest runs.
cargo test --workspace --no-fail-fast
# Memory-bound checks measure the whole test process, so they run alone, one process each.
cargo test --workspace --test it -- --ignored --exact blobs_s3::large_put_streams_in_bounded_memory
python3 -m pytest -q tests/python
