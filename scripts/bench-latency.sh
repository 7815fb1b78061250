#!/usr/bin/env bash
# Latency of execute, schema (no-cache) and connect with the database 10 ms away:
# loopback delay proxies (scripts/delay_proxy.py, 5 ms each way) in front of the
# local PostgreSQL and MariaDB, querygate's release build, one client. Prints a
# Markdown section for BENCHMARKS.md. Loopback only; bounded in count and time.
#
#   bash scripts/bench-latency.sh [one-way-delay-ms]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
DELAY=${1:-5}
PORT=${BENCH_PORT:-18182}
PG_PROXY=${BENCH_PG_PROXY:-15432}
MY_PROXY=${BENCH_MY_PROXY:-13306}

bash scripts/setup-test-dbs.sh >/dev/null
# QUERYGATE_BIN names a binary to measure instead of building the release one.
BIN=${QUERYGATE_BIN:-./target/release/querygate}
[ -n "${QUERYGATE_BIN:-}" ] || cargo build --release --locked --quiet

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
for proxy in "$PG_PROXY 127.0.0.1:5432" "$MY_PROXY 127.0.0.1:3306"; do
  # shellcheck disable=SC2086
  python3 scripts/delay_proxy.py $proxy "$DELAY" >"$work/proxy-${proxy%% *}.log" 2>&1 &
  pids+=($!)
done
secret=$(head -c 32 /dev/urandom | base64)
QUERYGATE_KEYS="bench:$secret" SQLITE_DIR="$work/sqlite" HOST=127.0.0.1 PORT=$PORT \
  RATE_LIMIT_MAX_REQUESTS=0 SCHEMA_CACHE_TTL_SECS=0 RUST_LOG=warn \
  timeout 600 "$BIN" >"$work/server.log" 2>&1 &
pids+=($!)
# A second instance with the same keys and no shared store: cancels go there.
QUERYGATE_KEYS="bench:$secret" SQLITE_DIR="$work/sqlite2" HOST=127.0.0.1 PORT=$((PORT + 1)) \
  RATE_LIMIT_MAX_REQUESTS=0 RUST_LOG=warn \
  timeout 600 "$BIN" >"$work/server2.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/api/health" >/dev/null &&
    curl -fs "http://127.0.0.1:$((PORT + 1))/api/health" >/dev/null &&
    grep -q ready "$work"/proxy-*.log 2>/dev/null && break
  sleep 0.1
done

rtt=$((DELAY * 2))
echo "### Latency with the database ${rtt} ms away, $(date -u +%Y-%m-%d)"
echo
echo "Command: \`bash scripts/bench-latency.sh $DELAY\`. Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr); PostgreSQL $(psql -h 127.0.0.1 -U postgres -Atc 'SHOW server_version' | cut -d' ' -f1), MariaDB $(mariadb -h127.0.0.1 -uroot -Nse 'SELECT VERSION()' | cut -d- -f1); querygate release build; a delay proxy adding ${DELAY} ms each way."
echo
timeout 600 python3 scripts/bench_latency.py "http://127.0.0.1:$PORT" "$PG_PROXY" "$MY_PROXY" "$rtt" \
  "http://127.0.0.1:$((PORT + 1))"
