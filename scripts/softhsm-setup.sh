#!/usr/bin/env bash
# Makes SoftHSM2 (Debian's `softhsm2` package) available for the PKCS#11 tests of the master key
# (crates/store/tests/pkcs11.rs, tests/python/test_hsm.py), then prints the module's path.
#
# Typical use:  export CITADEL_TEST_PKCS11_MODULE="$(scripts/softhsm-setup.sh)"
#
# Idempotent: when the module and softhsm2-util are present it only prints the path.
# Otherwise it installs the package as root, running `apt-get update` only when apt does not know
# the package yet (a fresh machine whose package lists were never downloaded).
# It creates no token: each test makes its own in a temporary directory through SOFTHSM2_CONF, so
# nothing global (/var/lib/softhsm/tokens) is touched.
# Only the module path goes to standard output; progress and errors go to standard error.
set -euo pipefail

MODULE="${CITADEL_TEST_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"

say() { echo "softhsm-setup: $*" >&2; }

installed() {
  [ -f "$MODULE" ] && command -v softhsm2-util >/dev/null
}

if ! installed; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    say "$MODULE or softhsm2-util is missing; install SoftHSM2 (Debian: apt-get install softhsm2)"
    exit 1
  fi
  # `apt-cache show` fails, or prints nothing, when the package lists do not name the package yet.
  if ! apt-cache show softhsm2 2>/dev/null | grep -q '^Package: softhsm2$'; then
    say "updating the package lists"
    apt-get update -qq >&2
  fi
  say "installing Debian's softhsm2 package"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends softhsm2 >&2
  installed || { say "$MODULE or softhsm2-util still missing after installing softhsm2"; exit 1; }
fi
echo "$MODULE"
