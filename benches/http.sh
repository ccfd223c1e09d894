#!/usr/bin/env bash
# Throughput and latency of autoshares-bff next to a plain nginx reverse proxy, both in
# front of the same stub AutoShares (nginx answering canned documented bodies), on this
# machine, in one run. For each scenario it prints req/s, p50/p99 and errors of both
# sides, the ratio bff / nginx, the CPU time each side spent per request (us: user and
# system time of the service, or of nginx's workers, over the requests served), the
# service's peak RSS during the scenario, and after the table the service's CPU time a
# request on each kind of thread (actix-web's workers, SQLite's, the log writer's) and its
# RSS at the scenario's end by kind (anonymous, mapped files).
#
#   benches/http.sh [seconds per run, default 10]
#
# The callers are BENCH_USERS distinct users (default 1000), each with a JWT of its own and
# a link in the database; binds carry BENCH_NUMBERS distinct numbers (default 1200) of six
# countries in mixed written forms. wrk picks a user and a number at random per request.
# BENCH_LINKS (default BENCH_USERS) links are in the database, of which BENCH_USERS call.
#
#   BENCH_SCENARIOS="bind:32 bind:512:busy" benches/http.sh   # a subset; the default is
#       read:32 bind:32 read:512 bind:512 bind:512:busy (`busy`: a busy loop on every core
#       beside the load, as on a pod at its CPU limit; the service's own view of the
#       failures is printed after the table). `reader` instead of `busy` (e.g. bind:32:reader,
#       SQLite only): another process holds a read transaction open on the service's
#       database file for the whole scenario, as an operator's backup or long query would
#   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bff_bench benches/http.sh
#       # links in PostgreSQL instead of a fresh SQLite file; a database of its own, as its
#       # links and audit events are deleted first (each run starts from the same tables)
#   BENCH_LOG_LEVEL=warn benches/http.sh   # without the per-request log lines
#   BENCH_PROFILE=bind:32 benches/http.sh   # also a CPU profile of the service during that
#       scenario (perf; its top entries are printed at the end)
#   BENCH_BASELINE=<git revision> benches/http.sh   # instead of the table: bind req/s and
#       p99 of that revision's build (the baseline, built in a worktree of its own) and of
#       this tree's, each on a fresh SQLite file and on a fresh PostgreSQL database
#       (BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/bff_bench, which it
#       drops and creates), bind:32 and bind:512; with the ratio this / baseline. E.g. the
#       cost of writing each audit event before its call rather than after the answer
#   BENCH_COLD=read benches/http.sh   # instead of the table: the service's first 1 000
#       requests (read or bind, 32 connections) from the moment it is ready, nothing warmed
#       (no connection to AutoShares, no service token, no link cached), then the steady
#       state (a run of the given seconds, after a warm-up run of as many); the p50/p99 of
#       each and their ratio first / steady, the figure for a pod the autoscaler just added
#   BENCH_CALLGRIND=bind benches/http.sh 30   # instead of the table: the service, then the
#       nginx proxy alone, under callgrind, 4 connections for the given seconds each, and
#       the instructions each executed per request (read or bind) and their ratio. The
#       count is the same whatever else the machine is doing, so it compares two builds
#       where req/s and CPU time are too noisy (needs valgrind)
#
# Needs nginx and wrk (Debian: apt-get install nginx-light wrk). Everything listens on
# 127.0.0.1 only and stops when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-10}"
USERS="${BENCH_USERS:-1000}"
NUMBERS="${BENCH_NUMBERS:-1200}"
SCENARIOS="${BENCH_SCENARIOS:-read:32 bind:32 read:512 bind:512 bind:512:busy}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/autoshares-bff/target}"
for tool in nginx wrk python3 ${BENCH_CALLGRIND:+valgrind}; do
  command -v "$tool" >/dev/null || { echo "benches/http.sh needs $tool (apt-get install nginx-light wrk${BENCH_CALLGRIND:+ valgrind})" >&2; exit 2; }
done

if [ -n "${BENCH_BASELINE:-}" ]; then
  BASE_SRC="$(mktemp -d)"
  trap 'git worktree remove --force "$BASE_SRC" >/dev/null 2>&1 || true; rm -rf "$BASE_SRC"' EXIT
  git worktree add --quiet --detach "$BASE_SRC" "$BENCH_BASELINE"
  (cd "$BASE_SRC" && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/../baseline-target" cargo build --release --quiet)
  cargo build --release --quiet
  POSTGRES="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/bff_bench}"
  ADMIN_URL="${POSTGRES%/*}/postgres"
  echo "bind req/s and p99 (ms): $(git rev-parse --short "$BENCH_BASELINE") (baseline) and this tree;" \
    "${DURATION}s per run; log.level ${BENCH_LOG_LEVEL:-info}"
  printf '%-9s %-9s %12s %12s %6s %14s %14s\n' database scenario "baseline r/s" "this r/s" ratio \
    "baseline p99" "this p99"
  for database in sqlite postgresql; do
    for scenario in bind:32 bind:512; do
      declare -A RPS P99
      for side in baseline this; do
        if [ "$side" = baseline ]; then bin="$CARGO_TARGET_DIR/../baseline-target/release/autoshares-bff"
        else bin="$CARGO_TARGET_DIR/release/autoshares-bff"; fi
        url=""
        if [ "$database" = postgresql ]; then
          name="${POSTGRES##*/}"
          psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null
          url="$POSTGRES"
        fi
        line="$(BENCH_BASELINE='' BENCH_BIN="$bin" BENCH_DATABASE_URL="$url" BENCH_SCENARIOS="$scenario" \
          "$0" "$DURATION" | awk -v s="$scenario" '$1 == s')"
        RPS[$side]="$(awk '{ print $3 }' <<<"$line")"
        P99[$side]="$(awk '{ split($6, l, "/"); print l[2] }' <<<"$line")"
      done
      printf '%-9s %-9s %12s %12s %6s %14s %14s\n' "$database" "$scenario" "${RPS[baseline]}" "${RPS[this]}" \
        "$(awk -v t="${RPS[this]}" -v b="${RPS[baseline]}" 'BEGIN { printf "%.2f", t / b }')" \
        "${P99[baseline]}" "${P99[this]}"
    done
  done
  exit 0
fi

if [ -n "${BENCH_BIN:-}" ]; then
  BIN="$BENCH_BIN"
else
  cargo build --release --quiet
  BIN="$CARGO_TARGET_DIR/release/autoshares-bff"
fi
WORK="$(mktemp -d)"
STUB=18181 PROXY=18182 BFF=18183 ADMIN=18184 PROXY_ALONE=18185
PHONE_PATH=/api/v1.0/users/1001/subscriptions/settings/phonenumber

BUSY_PIDS=()
start_busy() {
  for _ in $(seq 1 "$(nproc)"); do
    (while :; do :; done) &
    BUSY_PIDS+=($!)
  done
}
stop_busy() {
  [ "${#BUSY_PIDS[@]}" -gt 0 ] && kill "${BUSY_PIDS[@]}" 2>/dev/null || true
  BUSY_PIDS=()
}

READER_PID=""
start_reader() {
  [ -z "${BENCH_DATABASE_URL:-}" ] || { echo "a reader needs the SQLite file" >&2; exit 1; }
  python3 - "$WORK/bench.db" <<'PY' &
import sqlite3, sys, time
reading = sqlite3.connect(sys.argv[1], isolation_level=None)
reading.execute("BEGIN")
reading.execute("SELECT count(*) FROM user_links").fetchone()
time.sleep(3600)
PY
  READER_PID=$!
}
stop_reader() {
  [ -n "$READER_PID" ] && kill "$READER_PID" 2>/dev/null || true
  READER_PID=""
}

cleanup() {
  stop_reader
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  [ -n "${BFF_PID:-}" ] && kill "$BFF_PID" 2>/dev/null || true
  [ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null || true
  stop_busy
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# What both nginx configurations share: the main context of a process named $1 with $2
# workers, and in the http context the temp paths and the pool to the stub.
nginx_main() {
  cat <<NGINX
worker_processes $2;
pid $WORK/$1.pid;
error_log $WORK/$1-error.log warn;
events { worker_connections 4096; }
NGINX
}
http_common() {
  cat <<NGINX
  access_log off;
  client_body_temp_path $WORK/body;
  proxy_temp_path $WORK/proxy;
  fastcgi_temp_path $WORK/fastcgi;
  uwsgi_temp_path $WORK/uwsgi;
  scgi_temp_path $WORK/scgi;
  upstream stub { server 127.0.0.1:$STUB; keepalive 128; }
NGINX
}
# The baseline: a plain reverse proxy to the stub on port $1, no checks at all.
proxy_server() {
  cat <<NGINX
  server {
    listen 127.0.0.1:$1;
    location / {
      proxy_pass http://stub$PHONE_PATH;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
NGINX
}

cat > "$WORK/nginx.conf" <<NGINX
$(nginx_main nginx 2)
http {
$(http_common)
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
$(proxy_server "$PROXY")
}
NGINX
nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log"

export BFF__SERVER__LISTEN="127.0.0.1:$BFF" BFF__SERVER__ADMIN_LISTEN="127.0.0.1:$ADMIN"
export BFF__UPSTREAM__BASE_URL="http://127.0.0.1:$STUB/api" BFF__UPSTREAM__APP_KEY=bench-key
export BFF__UPSTREAM__USERNAME=bench BFF__UPSTREAM__PASSWORD=bench-password
export BFF__AUTH__ISSUER=bench-issuer BFF__AUTH__AUDIENCE=autoshares-bff
export BFF__AUTH__HS256_SECRET="$(head -c 32 /dev/urandom | base64)"
export BFF__VERIFICATION__TOKEN_SECRET="$(head -c 32 /dev/urandom | base64)"
export BFF__DATABASE__URL="${BENCH_DATABASE_URL:-sqlite://$WORK/bench.db}"
# Every limit is on and evaluated on every bind, but set out of the bench's way.
export BFF__RATE_LIMIT__BIND_PER_USER=1000000/second BFF__RATE_LIMIT__BIND_PER_PHONE=1000000/second
export BFF__RATE_LIMIT__BIND_PER_CLIENT=1000000000/second
export BFF__RATE_LIMIT__REQUESTS_PER_USER=1000000/second
export BFF__RATE_LIMIT__REQUESTS_PER_CLIENT=1000000000/second
export BFF__ABUSE__PREFIX_BUDGET=1000000000/second
export BFF__ABUSE__CONVERSION__MIN_SENDS_COUNTRY=4000000000 BFF__ABUSE__CONVERSION__MIN_SENDS_PREFIX=4000000000
export BFF__LOG__FORMAT=json BFF__LOG__LEVEL="${BENCH_LOG_LEVEL:-info}"
# The allocator's settings of the container image (Dockerfile).
eval "$(sed -n 's/^ENV \([A-Z_]*MALLOC_.*\)/export \1/p' Dockerfile)"

python3 benches/http_inputs.py "$WORK" "$USERS" "$NUMBERS" "${BENCH_LINKS:-$USERS}"
if [ -n "${BENCH_DATABASE_URL:-}" ]; then
  "$BIN" migrate >/dev/null
  command -v psql >/dev/null && psql -q "$BENCH_DATABASE_URL" -c 'TRUNCATE user_links, audit_events' >/dev/null
fi
"$BIN" users import "$WORK/links.csv" >/dev/null
SERVE=("$BIN" serve)
if [ -n "${BENCH_CALLGRIND:-}" ]; then
  SERVE=(valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$WORK/callgrind.out" "${SERVE[@]}")
fi
"${SERVE[@]}" > "$WORK/bff.log" 2>&1 &
BFF_PID=$!
# Under callgrind the service takes several seconds to start.
for _ in $(seq 1 600); do curl -fs "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done

# One request per call: a random user's JWT and, for bind, a random number.
cat > "$WORK/load.lua" <<'LUA'
local tokens, bodies, method = {}, {}, "GET"
function init(args)
  method = args[1]
  for line in io.lines(args[2]) do tokens[#tokens + 1] = "Bearer " .. line end
  for line in io.lines(args[3]) do bodies[#bodies + 1] = line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end
function request()
  local headers = { Authorization = tokens[math.random(#tokens)] }
  if method == "PUT" then
    headers["Content-Type"] = "application/json"
    return wrk.format("PUT", nil, headers, bodies[math.random(#bodies)])
  end
  return wrk.format("GET", nil, headers)
end
LUA

# Runs wrk and prints "requests_per_second p50_ms p99_ms errors requests", where errors are
# non-2xx answers plus connect, read, write and timeout errors. A script of its own ($4,
# default load.lua) may stop wrk before its seconds ($5, default DURATION) are up.
measure() {
  local url="$1" method="$2" connections="$3" script="${4:-$WORK/load.lua}" seconds="${5:-$DURATION}"
  wrk -t2 -c"$connections" -d"${seconds}s" --timeout 10s --latency -s "$script" "$url" \
    -- "$method" "$WORK/tokens.txt" "$WORK/bodies.txt" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
    /^Requests\/sec/ { rps = $2 } / requests in / { total = $1 }
    /Non-2xx/ { bad += $NF }
    /Socket errors/ { gsub(",", ""); bad += $4 + $6 + $8 + $10 }
    END { printf "%.0f %.2f %.2f %d %d\n", rps, p50, p99, bad, total }'
}

# CPU time (user + system, in clock ticks) the processes have used so far: the service, or
# nginx's workers. Divided by the requests served, it is a cost that other load on the
# machine changes far less than req/s.
cpu_ticks() { for pid in "$@"; do awk '{ print $14 + $15 }' "/proc/$pid/stat"; done | awk '{ t += $1 } END { print t }'; }
nginx_workers() { pgrep -P "$(cat "$WORK/nginx.pid")" | tr '\n' ' '; }
# The service's figure over nginx's, to two places.
ratio() { awk -v b="$1" -v n="$2" 'BEGIN { printf "%.2f", b / n }'; }
per_request_us() {
  awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", (n > 0 ? t / hz * 1e6 / n : 0) }'
}

# The CPU ticks of each of the service's threads so far, a line each: id, ticks, name.
# (A thread's name may hold spaces and parentheses: its stat fields are read after the last
# parenthesis.)
thread_ticks() {
  local task stat fields
  for task in /proc/"$BFF_PID"/task/*; do
    stat="$(cat "$task/stat" 2>/dev/null)" || continue
    read -r -a fields <<<"${stat##*) }"
    echo "${task##*/} $((fields[11] + fields[12])) $(tr ' ' _ < "$task/comm")"
  done
}
# Between two thread_ticks files, the CPU time a request of the $3 served took on each kind
# of thread: actix-web's workers, SQLite's connections (a thread each), the log writer,
# and the rest (startup's thread, the acceptor).
thread_split() {
  awk -v n="$3" -v hz="$(getconf CLK_TCK)" '
    FNR == NR { before[$1] = $2; next }
    { kind = $3 ~ /^actix-rt/ ? "actix workers" : $3 ~ /^sqlx-sqlite/ ? "SQLite" : $3 ~ /^log-writer/ ? "log writer" : "other"
      used[kind] += $2 - ($1 in before ? before[$1] : 0) }
    END {
      printf "  CPU a request by thread:"
      split("actix workers,SQLite,log writer,other", kinds, ",")
      for (i = 1; i <= 4; i++) printf "%s %s %.1f us", (i > 1 ? "," : ""), kinds[i], (n > 0 ? used[kinds[i]] / hz * 1e6 / n : 0)
      print ""
    }' "$1" "$2"
}

# The service's peak RSS since the last reset, in MiB.
peak_rss() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$BFF_PID/status"; }
reset_peak_rss() { echo 5 > "/proc/$BFF_PID/clear_refs"; }
# What the service holds now, by kind: anonymous memory (heap, stacks) and mapped files (the
# binary's code, the libraries' and SQLite's index of its log; they count in RSS, and the
# kernel maps a file's pages 64 KiB around each first touch).
rss_split() {
  awk '/^Rss(Anon|File):/ { mib[$1] = $2 / 1024 }
    END { printf "  RSS at the end: %.1f MiB anonymous, %.1f MiB mapped files\n", mib["RssAnon:"], mib["RssFile:"] }' \
    "/proc/$BFF_PID/status"
}

# The service's counters for the phone-number route, the AutoShares calls, the audit
# events lost (none may be: each bind is audited) and the audit transactions (their
# count, and the writes they took: events before the call and outcomes after it), one
# "series value" a line, to tell how a scenario's requests failed and were written.
counters() {
  curl -fs "http://127.0.0.1:$ADMIN/metrics" |
    awk '/^bff_(http_requests_total\{.*phone-number|upstream_requests_total|audit_dropped_total|audit_batch_events_(sum|count))/ { print $1, $2 }'
}
failures() {
  join -a 2 -e 0 -o '0,1.2,2.2' <(sort "$1") <(sort "$2") |
    awk '$3 - $2 > 0 && $1 !~ /status="200"/ { printf "  %s +%d\n", $1, $3 - $2 }'
}

if [ -n "${BENCH_COLD:-}" ]; then
  case "$BENCH_COLD" in read) method=GET ;; bind) method=PUT ;; *) echo "BENCH_COLD is read or bind" >&2; exit 2 ;; esac
  # The same requests, each of wrk's two threads stopping after its half of the first 1 000.
  { cat "$WORK/load.lua"
    cat <<'LUA'
local served = 0
function response()
  served = served + 1
  if served >= 500 then wrk.thread:stop() end
end
LUA
  } > "$WORK/first.lua"
  url="http://127.0.0.1:$BFF/v1/me/phone-number"
  read -r _ f_p50 f_p99 f_err f_total < <(measure "$url" "$method" 32 "$WORK/first.lua" 60)
  measure "$url" "$method" 32 >/dev/null
  read -r s_rps s_p50 s_p99 s_err _ < <(measure "$url" "$method" 32)
  echo "cold start, $BENCH_COLD, 32 connections: the first requests after ready, then ${DURATION}s of steady state"
  printf '%-8s %9s %9s %9s %7s\n' run requests "p50 ms" "p99 ms" errors
  printf '%-8s %9s %9s %9s %7s\n' first "$f_total" "$f_p50" "$f_p99" "$f_err"
  printf '%-8s %9s %9s %9s %7s\n' steady "$s_rps/s" "$s_p50" "$s_p99" "$s_err"
  echo "p99 first / steady: $(ratio "$f_p99" "$s_p99")"
  exit 0
fi

# Warm both sides (connections, the service token, the link cache of one user).
TOKEN="$(head -n 1 "$WORK/tokens.txt")"
curl -fs -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$BFF/v1/me/phone-number"
curl -fs -o /dev/null "http://127.0.0.1:$PROXY/"

if [ -n "${BENCH_CALLGRIND:-}" ]; then
  case "$BENCH_CALLGRIND" in read) method=GET ;; bind) method=PUT ;; *) echo "BENCH_CALLGRIND is read or bind" >&2; exit 2 ;; esac
  one_run() {
    wrk -t1 -c4 -d"$2s" --timeout 10s -s "$WORK/load.lua" "$1" \
      -- "$method" "$WORK/tokens.txt" "$WORK/bodies.txt"
  }
  # Prints, for side $5, the requests served and the instructions a request of process $1,
  # running under callgrind into file $2 and serving URL $3, stopped by signal $4; and sets
  # PER_REQUEST to the latter. Connections, tokens and caches warm first; then only the
  # measured requests are counted (and the process's shutdown, a fixed cost that a longer
  # run makes smaller).
  count_per_request() {
    local pid="$1" out="$2" url="$3" signal="$4" side="$5" served total
    one_run "$url" 3 >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    served="$(one_run "$url" "$DURATION" | awk '/ requests in / { print $1 }')"
    kill -"$signal" "$pid"
    wait "$pid" || true
    total="$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')"
    PER_REQUEST="$(awk -v t="$total" -v n="$served" 'BEGIN { printf "%.0f", t / n }')"
    echo "$side: $served requests, $PER_REQUEST instructions a request"
  }
  echo "callgrind, $BENCH_CALLGRIND, 4 connections, ${DURATION}s each"
  count_per_request "$BFF_PID" "$WORK/callgrind.out" "http://127.0.0.1:$BFF/v1/me/phone-number" TERM bff
  unset BFF_PID
  bff="$PER_REQUEST"
  cp "$WORK/callgrind.out" "$CARGO_TARGET_DIR/bench-callgrind.out"

  # The baseline under the same count: the proxy alone, in one nginx process of its own
  # (the stub stays in the other).
  cat > "$WORK/proxy.conf" <<NGINX
daemon off;
master_process off;
$(nginx_main proxy 1)
http {
$(http_common)
$(proxy_server "$PROXY_ALONE")
}
NGINX
  valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$WORK/nginx.callgrind.out" \
    nginx -c "$WORK/proxy.conf" -e "$WORK/proxy-error.log" > "$WORK/proxy.log" 2>&1 &
  PROXY_PID=$!
  for _ in $(seq 1 600); do curl -fs -o /dev/null "http://127.0.0.1:$PROXY_ALONE/" && break; sleep 0.1; done
  count_per_request "$PROXY_PID" "$WORK/nginx.callgrind.out" "http://127.0.0.1:$PROXY_ALONE/" QUIT nginx
  unset PROXY_PID
  echo "bff / nginx: $(ratio "$bff" "$PER_REQUEST")"
  echo "(the service's whole count stays in $CARGO_TARGET_DIR/bench-callgrind.out for callgrind_annotate)"
  exit 0
fi

echo "wrk: 2 threads, ${DURATION}s per run, $USERS users, $NUMBERS numbers;" \
  "$(nproc) cores shared by wrk, nginx and the service; log.level ${BFF__LOG__LEVEL}"
printf '%-14s %9s %9s %6s %15s %15s %8s %8s %8s %8s %7s\n' scenario "nginx r/s" "bff r/s" ratio \
  "nginx p50/p99" "bff p50/p99" "nginx er" "bff er" "nginx us" "bff us" "bff MiB"
REPORT="$WORK/report.txt"
: > "$REPORT"
for scenario in $SCENARIOS; do
  IFS=: read -r kind connections beside <<<"$scenario"
  if [ "$kind" = read ]; then method=GET; else method=PUT; fi
  case "$beside" in
    busy) start_busy ;;
    reader) start_reader ;;
  esac
  workers="$(nginx_workers)"
  n_cpu="$(cpu_ticks $workers)"
  read -r n_rps n_p50 n_p99 n_err n_total < <(measure "http://127.0.0.1:$PROXY/" "$method" "$connections")
  n_us="$(per_request_us "$(($(cpu_ticks $workers) - n_cpu))" "$n_total")"
  if [ "${BENCH_PROFILE:-}" = "$scenario" ]; then
    perf record -q -F 499 -g -o "$WORK/perf.data" -p "$BFF_PID" -- sleep "$DURATION" 2>/dev/null &
    PERF_PID=$!
  fi
  counters > "$WORK/before.txt"
  reset_peak_rss
  b_cpu="$(cpu_ticks "$BFF_PID")"
  thread_ticks > "$WORK/threads-before.txt"
  read -r b_rps b_p50 b_p99 b_err b_total < <(measure "http://127.0.0.1:$BFF/v1/me/phone-number" "$method" "$connections")
  b_us="$(per_request_us "$(($(cpu_ticks "$BFF_PID") - b_cpu))" "$b_total")"
  thread_ticks > "$WORK/threads-after.txt"
  rss="$(peak_rss)"
  counters > "$WORK/after.txt"
  stop_busy
  stop_reader
  [ -n "${PERF_PID:-}" ] && { wait "$PERF_PID" || true; unset PERF_PID; }
  rps_ratio="$(ratio "$b_rps" "$n_rps")"
  printf '%-14s %9s %9s %6s %15s %15s %8s %8s %8s %8s %7s\n' "$scenario" "$n_rps" "$b_rps" "$rps_ratio" \
    "$n_p50/$n_p99" "$b_p50/$b_p99" "$n_err" "$b_err" "$n_us" "$b_us" "$rss"
  { echo "$scenario: what the service counted besides 200s"
    failures "$WORK/before.txt" "$WORK/after.txt" | grep . || echo "  nothing"
    thread_split "$WORK/threads-before.txt" "$WORK/threads-after.txt" "$b_total"
    rss_split; } >> "$REPORT"
done
echo
cat "$REPORT"

if [ -n "${BENCH_PROFILE:-}" ] && [ -f "$WORK/perf.data" ]; then
  cp "$WORK/perf.data" "$CARGO_TARGET_DIR/bench-perf.data"
  echo
  echo "CPU profile of the service during '$BENCH_PROFILE' (with callees, top 40 of the service's own"
  echo "code; the whole profile stays in $CARGO_TARGET_DIR/bench-perf.data for perf report):"
  perf report -i "$WORK/perf.data" --stdio --children -g none --sort symbol 2>/dev/null |
    grep -E '^ +[0-9]' | grep -E 'autoshares_bff::' | sed 's/ *$//' | cut -c1-140 | head -40
  echo "CPU profile of the service during '$BENCH_PROFILE' (self time, top 40):"
  perf report -i "$WORK/perf.data" --stdio --no-children -g none --sort symbol 2>/dev/null |
    grep -E '^ +[0-9]' | sed 's/ *$//' | cut -c1-120 | head -40
fi
