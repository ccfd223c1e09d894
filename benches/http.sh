#!/usr/bin/env bash
# Throughput and latency of autoshares-bff next to a plain nginx reverse proxy, both in
# front of the same stub AutoShares (nginx answering canned documented bodies), on this
# machine, in one run. Prints each side and the ratio bff / nginx.
#
#   benches/http.sh [seconds per run, default 10] [connections, default 32]
#   BENCH_LOG_LEVEL=warn benches/http.sh   # without the per-request log lines
#   BENCH_PROFILE=bind benches/http.sh      # also a CPU profile of the service during that
#                                           # scenario (perf; top entries printed at the end)
#
# Needs nginx and wrk (Debian: apt-get install nginx-light wrk). Everything listens on
# 127.0.0.1 only and stops when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
CONNECTIONS="${2:-32}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/autoshares-bff/target}"
for tool in nginx wrk; do
  command -v "$tool" >/dev/null || { echo "benches/http.sh needs $tool (apt-get install nginx-light wrk)" >&2; exit 2; }
done

cargo build --release --quiet
BIN="$CARGO_TARGET_DIR/release/autoshares-bff"
WORK="$(mktemp -d)"
STUB=18181 PROXY=18182 BFF=18183 ADMIN=18184
PHONE_PATH=/api/v1.0/users/1001/subscriptions/settings/phonenumber

cleanup() {
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  [ -n "${BFF_PID:-}" ] && kill "$BFF_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/nginx.conf" <<NGINX
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/body;
  proxy_temp_path $WORK/proxy;
  fastcgi_temp_path $WORK/fastcgi;
  uwsgi_temp_path $WORK/uwsgi;
  scgi_temp_path $WORK/scgi;
  upstream stub { server 127.0.0.1:$STUB; keepalive 128; }
  # The stub AutoShares: the documented answers of /token, bind (PUT) and read (GET).
  server {
    listen 127.0.0.1:$STUB;
    default_type application/json;
    location = /api/token { return 200 '{"State":"Succeeded","Token":"bench-token"}'; }
    location /api/ {
      if (\$request_method = PUT) {
        return 200 '{"m_Item1":{"PhoneNumber":"+13108904569","PhoneNumberState":"NotVerified"},"m_Item2":1925}';
      }
      return 200 '{"PhoneNumber":"+13108904569","PhoneNumberState":"Active"}';
    }
  }
  # The baseline: a plain reverse proxy to the same stub, no checks at all.
  server {
    listen 127.0.0.1:$PROXY;
    location / {
      proxy_pass http://stub$PHONE_PATH;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log"

export BFF__SERVER__LISTEN="127.0.0.1:$BFF" BFF__SERVER__ADMIN_LISTEN="127.0.0.1:$ADMIN"
export BFF__UPSTREAM__BASE_URL="http://127.0.0.1:$STUB/api" BFF__UPSTREAM__APP_KEY=bench-key
export BFF__UPSTREAM__USERNAME=bench BFF__UPSTREAM__PASSWORD=bench-password
export BFF__AUTH__ISSUER=bench-issuer BFF__AUTH__AUDIENCE=autoshares-bff
export BFF__AUTH__HS256_SECRET="$(head -c 32 /dev/urandom | base64)"
export BFF__VERIFICATION__TOKEN_SECRET="$(head -c 32 /dev/urandom | base64)"
export BFF__DATABASE__URL="sqlite://$WORK/bench.db"
export BFF__RATE_LIMIT__BIND_PER_USER=1000000/second BFF__RATE_LIMIT__BIND_PER_PHONE=1000000/second
export BFF__RATE_LIMIT__BIND_PER_CLIENT=off
# The abuse rules stay on, evaluated on every bind, but never refuse the bench's traffic.
export BFF__ABUSE__PREFIX_BUDGET=1000000000/second
export BFF__ABUSE__CONVERSION__MIN_SENDS_COUNTRY=4000000000 BFF__ABUSE__CONVERSION__MIN_SENDS_PREFIX=4000000000
export BFF__LOG__FORMAT=json BFF__LOG__LEVEL="${BENCH_LOG_LEVEL:-info}"
"$BIN" users link bench-user 1001 >/dev/null
JWT="$("$BIN" token mint --sub bench-user --ttl 1h)"
"$BIN" serve > "$WORK/bff.log" 2>&1 &
BFF_PID=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done

cat > "$WORK/bind.lua" <<'LUA'
wrk.method = "PUT"
wrk.body = '{"phoneNumber": "+1 (310) 890-4569"}'
wrk.headers["Content-Type"] = "application/json"
LUA

# Runs wrk and prints "requests_per_second p50_ms p99_ms".
measure() {
  local url="$1" script="${2:-}"
  local args=(-t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Authorization: Bearer $JWT")
  [ -n "$script" ] && args+=(-s "$script")
  wrk "${args[@]}" "$url" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
    /^Requests\/sec/ { rps = $2 }
    /Non-2xx/ { bad = $NF }
    END { if (bad > 0) { print "non-2xx answers: " bad > "/dev/stderr"; exit 1 } printf "%.0f %.2f %.2f\n", rps, p50, p99 }'
}

# Warm both sides (connections, the service token, the link cache).
curl -fs -o /dev/null -H "Authorization: Bearer $JWT" "http://127.0.0.1:$BFF/v1/me/phone-number"
curl -fs -o /dev/null "http://127.0.0.1:$PROXY/"

echo "wrk: 2 threads, $CONNECTIONS connections, ${DURATION}s per run; $(nproc) cores shared by wrk, nginx and the service"
printf '%-12s %12s %12s %8s %18s %18s\n' scenario "nginx req/s" "bff req/s" ratio "nginx p50/p99 ms" "bff p50/p99 ms"
for scenario in read bind; do
  if [ "$scenario" = read ]; then script=""; else script="$WORK/bind.lua"; fi
  read -r n_rps n_p50 n_p99 < <(measure "http://127.0.0.1:$PROXY/" "$script")
  if [ "${BENCH_PROFILE:-}" = "$scenario" ]; then
    perf record -q -F 499 -g -o "$WORK/perf.data" -p "$BFF_PID" -- sleep "$DURATION" 2>/dev/null &
    PERF_PID=$!
  fi
  read -r b_rps b_p50 b_p99 < <(measure "http://127.0.0.1:$BFF/v1/me/phone-number" "$script")
  [ -n "${PERF_PID:-}" ] && { wait "$PERF_PID" || true; unset PERF_PID; }
  ratio="$(awk -v b="$b_rps" -v n="$n_rps" 'BEGIN { printf "%.2f", b / n }')"
  printf '%-12s %12s %12s %8s %18s %18s\n' "$scenario" "$n_rps" "$b_rps" "$ratio" "$n_p50/$n_p99" "$b_p50/$b_p99"
done

if [ -n "${BENCH_PROFILE:-}" ] && [ -f "$WORK/perf.data" ]; then
  echo
  echo "CPU profile of the service during '$BENCH_PROFILE' (self time, top 40):"
  perf report -i "$WORK/perf.data" --stdio --no-children -g none --sort symbol 2>/dev/null |
    grep -E '^ +[0-9]' | sed 's/ *$//' | cut -c1-120 | head -40
fi
