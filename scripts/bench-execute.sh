#!/usr/bin/env bash
# Measures `POST /api/database/execute` with `SELECT 1` on PostgreSQL and MariaDB,
# warm pool, at 1 and 32 concurrent clients, with wrk against the release build,
# and pgbench at the same concurrency on the same machine in the same run: plain
# `SELECT 1`, the read-only envelope one statement at a time, and the envelope
# pipelined. Also `GET /api/health` and `GET /api/database/status` with a token
# (the cost of verifying a token). Prints a Markdown section for BENCHMARKS.md.
# Loopback only; every run is bounded in time.
#
#   bash scripts/bench-execute.sh [seconds-per-run]   (default 10)
#
# TOKIO_WORKER_THREADS (default: one per core) is passed to the server; 1 runs
# tokio's single-threaded scheduler (BENCHMARKS.md compares the two).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
PORT=${BENCH_PORT:-18181}

command -v wrk >/dev/null || { echo "installing wrk" >&2; apt-get install -y -qq wrk >/dev/null; }
bash scripts/setup-test-dbs.sh >/dev/null
# QUERYGATE_BIN names a binary to measure instead of building the release one.
BIN=${QUERYGATE_BIN:-./target/release/querygate}
[ -n "${QUERYGATE_BIN:-}" ] || cargo build --release --locked --quiet

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
secret=$(head -c 32 /dev/urandom | base64)
QUERYGATE_KEYS="bench:$secret" SQLITE_DIR="$work/sqlite" HOST=127.0.0.1 PORT=$PORT \
  RATE_LIMIT_MAX_REQUESTS=0 POOL_MAX_CONNECTIONS=32 RUST_LOG=warn \
  "$BIN" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/api/health" >/dev/null && break; sleep 0.1; done

token_for() {
  curl -fs -X POST "http://127.0.0.1:$PORT/api/database/connect" -H 'content-type: application/json' -d "$1" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
pg_token=$(token_for '{"dbType":"postgresql","host":"127.0.0.1","username":"postgres","database":"test","ssl":"disable"}')
my_token=$(token_for '{"dbType":"mysql","host":"127.0.0.1","username":"root","database":"test","ssl":"disable"}')
for engine in pg my; do
  token_var="${engine}_token"
  cat >"$work/execute-$engine.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"sql":"SELECT 1"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer ${!token_var}"
LUA
done
cat >"$work/status.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $pg_token"
LUA
echo 'SELECT 1;' >"$work/select1.sql"
printf 'BEGIN READ ONLY;\nSET LOCAL statement_timeout = 30000;\nSELECT 1;\nROLLBACK;\n' >"$work/envelope.sql"
printf '\\startpipeline\nBEGIN READ ONLY;\nSET LOCAL statement_timeout = 30000;\nSELECT 1;\nROLLBACK;\n\\endpipeline\n' >"$work/pipelined.sql"

psql -q -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'qg_bench'" | grep -q 1 ||
  psql -q -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE qg_bench'
pgbench -q -i -s 1 -h 127.0.0.1 -U postgres qg_bench >/dev/null 2>&1
# Let the initial load settle (analyze, checkpoint) before anything is measured.
psql -q -h 127.0.0.1 -U postgres -d qg_bench -c 'VACUUM ANALYZE' -c 'CHECKPOINT'

# Warm the pools to their full size.
for engine in pg my; do
  wrk -t2 -c32 -d2s -s "$work/execute-$engine.lua" "http://127.0.0.1:$PORT/api/database/execute" >/dev/null
done

wrk_run() { # clients threads label script path
  local out
  out=$(wrk -t"$2" -c"$1" -d"${DURATION}s" --latency -s "$4" "http://127.0.0.1:$PORT$5")
  if grep -q "Non-2xx" <<<"$out"; then echo "wrk saw errors:" >&2; echo "$out" >&2; exit 1; fi
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  echo "| $3 | $1 | $rps | $p50 | $p99 |"
}
echo 'wrk.method = "GET"' >"$work/get.lua"
pgbench_run() { # clients threads label args...
  local clients=$1 threads=$2 label=$3; shift 3
  local out tps lat
  out=$(pgbench -n -M extended -h 127.0.0.1 -U postgres -c "$clients" -j "$threads" -T "$DURATION" "$@" qg_bench 2>&1)
  tps=$(awk -F'= ' '/^tps/ {split($2, a, " "); print a[1]}' <<<"$out")
  lat=$(awk -F'= ' '/latency average/ {print $2}' <<<"$out")
  echo "| $label | $clients | $tps | avg $lat | – |"
}

echo "### execute SELECT 1 vs pgbench, $(date -u +%Y-%m-%d), ${DURATION}s per run"
echo
echo "Command: \`bash scripts/bench-execute.sh $DURATION\`. Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr); PostgreSQL $(psql -h 127.0.0.1 -U postgres -Atc 'SHOW server_version' | cut -d' ' -f1), MariaDB $(mariadb -h127.0.0.1 -uroot -Nse 'SELECT VERSION()' | cut -d- -f1); querygate release build, pools of 32, TOKIO_WORKER_THREADS=${TOKIO_WORKER_THREADS:-default}; wrk, pgbench and the servers share the cores."
echo
echo "| what | clients | requests or transactions / s | p50 | p99 |"
echo "|---|---|---|---|---|"
for clients in 1 32; do
  threads=$([ "$clients" = 1 ] && echo 1 || echo 2)
  wrk_run "$clients" "$threads" "querygate \`execute\` SELECT 1, PostgreSQL" "$work/execute-pg.lua" /api/database/execute
  wrk_run "$clients" "$threads" "querygate \`execute\` SELECT 1, MariaDB" "$work/execute-my.lua" /api/database/execute
  pgbench_run "$clients" "$threads" "pgbench SELECT 1" -f "$work/select1.sql"
  pgbench_run "$clients" "$threads" "pgbench envelope, one statement at a time" -f "$work/envelope.sql"
  pgbench_run "$clients" "$threads" "pgbench envelope, pipelined" -f "$work/pipelined.sql"
  wrk_run "$clients" "$threads" "querygate \`GET /api/health\`" "$work/get.lua" /api/health
  wrk_run "$clients" "$threads" "querygate \`GET /api/database/status\` with a token" "$work/status.lua" /api/database/status
done
