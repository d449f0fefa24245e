#!/usr/bin/env bash
# A throwaway PostgreSQL server for the PostgreSQL store backend's tests (crates/store/tests/postgres.rs).
#
#   scripts/pg-test-server.sh start   # creates the cluster if needed, starts it, prints its URL
#   scripts/pg-test-server.sh url     # prints the URL
#   scripts/pg-test-server.sh stop    # stops it (the cluster directory is kept for the next start)
#
# Typical use:  export CITADEL_TEST_POSTGRES_URL="$(scripts/pg-test-server.sh start)"
#
# PostgreSQL refuses to run as root, and CI runs as root, so the server runs as the unprivileged
# user `postgres` (override with CITADEL_PG_USER) through runuser.
# It listens on 127.0.0.1 only, with trust authentication: it holds nothing but test data.
# Every command is idempotent: `start` on a running server only prints the URL, `stop` on a stopped
# one does nothing.
#
# Settings (environment): CITADEL_PG_DIR (default /tmp/citadel-pg), CITADEL_PG_PORT (default 55432),
# CITADEL_PG_USER (default postgres).
# Only the URL goes to standard output; progress and errors go to standard error.
set -euo pipefail

PG_DIR="${CITADEL_PG_DIR:-/tmp/citadel-pg}"
PG_PORT="${CITADEL_PG_PORT:-55432}"
PG_USER="${CITADEL_PG_USER:-postgres}"
DATA="$PG_DIR/data"
LOG="$PG_DIR/server.log"
URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"

say() { echo "pg-test-server: $*" >&2; }

# Finds a PostgreSQL binary: PATH, then /usr/local/bin, then Debian's versioned directories (newest first).
find_bin() {
  local name="$1" candidate
  if candidate="$(command -v "$name" 2>/dev/null)"; then
    echo "$candidate"
    return 0
  fi
  for candidate in /usr/local/bin/"$name" $(ls -d /usr/lib/postgresql/*/bin/"$name" 2>/dev/null | sort -rV); do
    if [ -x "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# Installs Debian's PostgreSQL when no server binaries are present (a fresh CI machine), as root only.
ensure_installed() {
  if find_bin initdb >/dev/null && find_bin pg_ctl >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    say "initdb/pg_ctl not found; install PostgreSQL (Debian: apt-get install postgresql)"
    exit 1
  fi
  say "installing Debian's postgresql package"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
  find_bin initdb >/dev/null || { say "initdb still not found after installing postgresql"; exit 1; }
}

# Runs a command as the server's user, from a directory that user can read.
as_pg() {
  (cd / && runuser -u "$PG_USER" -- "$@")
}

is_running() {
  [ -f "$DATA/PG_VERSION" ] && as_pg "$PG_CTL" -D "$DATA" status >/dev/null 2>&1
}

start() {
  ensure_installed
  INITDB="$(find_bin initdb)"
  PG_CTL="$(find_bin pg_ctl)"
  if ! id "$PG_USER" >/dev/null 2>&1; then
    say "user $PG_USER does not exist; create it (useradd --system $PG_USER) or set CITADEL_PG_USER"
    exit 1
  fi
  if is_running; then
    echo "$URL"
    return 0
  fi
  mkdir -p "$PG_DIR"
  chown "$PG_USER" "$PG_DIR"
  chmod 700 "$PG_DIR"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    say "creating a cluster in $DATA"
    as_pg "$INITDB" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
    # Tests create and drop a database per case; keep enough connections for parallel test threads.
    cat >>"$DATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 300
EOF
  fi
  # A port taken by something else would make the server fail after a confusing wait; say so now.
  if (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null; then
    say "port $PG_PORT is already in use by another process; set CITADEL_PG_PORT"
    exit 1
  fi
  say "starting on 127.0.0.1:$PG_PORT (log: $LOG)"
  # -w waits until the server accepts connections (or the timeout passes).
  if ! as_pg "$PG_CTL" -D "$DATA" -l "$LOG" -w -t 60 -o "-p $PG_PORT" start >/dev/null; then
    say "the server did not start; its log follows"
    tail -n 30 "$LOG" >&2 || true
    exit 1
  fi
  echo "$URL"
}

stop() {
  PG_CTL="$(find_bin pg_ctl)" || return 0
  if is_running; then
    as_pg "$PG_CTL" -D "$DATA" -w -t 60 -m fast stop >/dev/null
    say "stopped"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) echo "$URL" ;;
  *)
    echo "usage: $0 start|stop|url" >&2
    exit 2
    ;;
esac
