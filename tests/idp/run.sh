#!/usr/bin/env bash
# The identity-provider test: installs its pinned npm packages (package-lock.json), builds
# the binary, and runs idp.test.mjs with node's test runner against a real OpenID provider.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/autoshares-bff/target}"
npm ci --prefer-offline --no-audit --no-fund --loglevel=error
(cd ../.. && cargo build --quiet)
BFF_BIN="$CARGO_TARGET_DIR/debug/autoshares-bff" node --test idp.test.mjs
