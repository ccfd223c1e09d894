#!/usr/bin/env bash
# Schemathesis (pinned, from PyPI) against `autoshares-bff dev`, with every default check
# and the examples, coverage, fuzzing and stateful phases, in a bounded time.
#
#   tests/schemathesis/run.sh [seconds, default 90]
#
# The venv is cached under ~/.cache/autoshares-bff/. dev runs in a temporary folder on
# loopback ports of its own, with its quotas raised and the pumping breaker off, so the
# fuzzer's binds reach the sandbox instead of stopping at a 429 or 403.
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_BUDGET="${1:-90}"
VERSION=4.32.5
VENV="$HOME/.cache/autoshares-bff/schemathesis-$VERSION"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/autoshares-bff/target}"
if [ ! -x "$VENV/bin/st" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==$VERSION"
fi
cargo build --quiet
BIN="$CARGO_TARGET_DIR/debug/autoshares-bff"

WORK="$(mktemp -d)"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PUBLIC=$(port) ADMIN=$(port) SANDBOX=$(port)
cleanup() {
  [ -n "${DEV_PID:-}" ] && kill "$DEV_PID" 2>/dev/null && wait "$DEV_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

(
  cd "$WORK"
  exec env -u RUST_LOG \
    BFF__SERVER__LISTEN="127.0.0.1:$PUBLIC" BFF__SERVER__ADMIN_LISTEN="127.0.0.1:$ADMIN" \
    BFF__SANDBOX__LISTEN="127.0.0.1:$SANDBOX" BFF__LOG__LEVEL=warn \
    BFF__RATE_LIMIT__BIND_PER_USER=1000000/hour BFF__RATE_LIMIT__BIND_PER_PHONE=1000000/day \
    BFF__RATE_LIMIT__BIND_PER_CLIENT=off BFF__RATE_LIMIT__REQUESTS_PER_USER=off \
    BFF__ABUSE__MODES__CONVERSION=off \
    "$BIN" dev
) > "$WORK/dev.out" 2>&1 &
DEV_PID=$!
for _ in $(seq 1 100); do
  grep -q '^export TOKEN=' "$WORK/dev.out" 2>/dev/null && break
  sleep 0.1
done
TOKEN=$(sed -n 's/^export TOKEN=//p' "$WORK/dev.out")
[ -n "$TOKEN" ] || { cat "$WORK/dev.out" >&2; echo "schemathesis: dev did not start" >&2; exit 1; }

# From the temporary folder: Schemathesis keeps a cache of its findings in the folder it
# runs in, which is not the clone's to keep.
CONFIG="$PWD/tests/schemathesis/schemathesis.toml"
cd "$WORK"
"$VENV/bin/st" --config-file "$CONFIG" run \
  "http://127.0.0.1:$PUBLIC/openapi.json" \
  --header "Authorization: Bearer $TOKEN" \
  --phases examples,coverage,fuzzing,stateful \
  --max-time "$SECONDS_BUDGET" \
  --no-color
