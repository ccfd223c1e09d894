#!/usr/bin/env bash
# The browser test: installs its pinned npm packages (package-lock.json) and Debian's
# Chromium if they are missing, builds the binary, and runs browser.test.mjs with node's
# test runner. Playwright never downloads a browser: it drives /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/autoshares-bff/target}"
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --prefer-offline --no-audit --no-fund --loglevel=error
(cd ../.. && cargo build --quiet)
BFF_BIN="$CARGO_TARGET_DIR/debug/autoshares-bff" node --test browser.test.mjs
