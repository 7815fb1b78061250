#!/usr/bin/env bash
# A large result: 500,000 rows from PostgreSQL as JSON, CSV and NDJSON through
# `execute`, beside psql's `COPY (…) TO STDOUT CSV` of the same rows in the same
# run. Reports wall time, bytes, and the server's peak RSS growth over its idle RSS
# (VmHWM, reset before each run through /proc/PID/clear_refs). Loopback only.
#
#   bash scripts/bench-large.sh [runs]   (default 3; the best run of each is shown)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
PORT=${BENCH_PORT:-18182}
ROWS=500000

bash scripts/setup-test-dbs.sh >/dev/null
# QUERYGATE_BIN names a binary to measure instead of building the release one.
BIN=${QUERYGATE_BIN:-./target/release/querygate}
[ -n "${QUERYGATE_BIN:-}" ] || cargo build --release --locked --quiet

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
secret=$(head -c 32 /dev/urandom | base64)
QUERYGATE_KEYS="bench:$secret" SQLITE_DIR="$work/sqlite" HOST=127.0.0.1 PORT=$PORT \
  RATE_LIMIT_MAX_REQUESTS=0 MAX_ROWS=1000000 MAX_RESULT_BYTES=1000000000 RUST_LOG=warn \
  "$BIN" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/api/health" >/dev/null && break; sleep 0.1; done

psql -q -h 127.0.0.1 -U postgres -d test <<SQL
DROP TABLE IF EXISTS qg_bench_large;
CREATE TABLE qg_bench_large AS
  SELECT g AS id, 'customer ' || g AS name, (g % 1000) * 1.25 AS amount,
         timestamptz '2026-01-01' + g * interval '1 minute' AS created, g % 7 = 0 AS flagged
  FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE qg_bench_large;
SQL
query="SELECT id, name, amount, created, flagged FROM qg_bench_large ORDER BY id"
token=$(curl -fs -X POST "http://127.0.0.1:$PORT/api/database/connect" -H 'content-type: application/json' \
  -d '{"dbType":"postgresql","host":"127.0.0.1","username":"postgres","database":"test","ssl":"disable"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
body=$(python3 -c 'import json,sys; print(json.dumps({"sql": sys.argv[1], "maxRows": 1000000}))' "$query")

kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$server/status"; }
# One warm-up request so that the idle RSS includes the pool and the code paths.
curl -fs -X POST "http://127.0.0.1:$PORT/api/database/execute" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d "$body" -o /dev/null

echo "| what | rows | bytes | best time of $RUNS | peak RSS growth |"
echo "|---|---|---|---|---|"
best=99999
for _ in $(seq 1 "$RUNS"); do
  start=$(date +%s.%N)
  psql -q -h 127.0.0.1 -U postgres -d test -c "COPY ($query) TO STDOUT CSV HEADER" >"$work/copy.csv"
  t=$(echo "$(date +%s.%N) - $start" | bc)
  if (( $(echo "$t < $best" | bc) )); then best=$t; fi
done
copy_best=$best
echo "| psql COPY … TO STDOUT CSV | $ROWS | $(stat -c %s "$work/copy.csv") | $(printf '%.2f' "$copy_best") s | – |"
for accept in application/json text/csv application/x-ndjson; do
  best=99999; growth=0
  for _ in $(seq 1 "$RUNS"); do
    echo 5 >"/proc/$server/clear_refs"
    idle=$(kib VmRSS)
    start=$(date +%s.%N)
    curl -fs -X POST "http://127.0.0.1:$PORT/api/database/execute" -H "authorization: Bearer $token" \
      -H 'content-type: application/json' -H "accept: $accept" -d "$body" -o "$work/out"
    t=$(echo "$(date +%s.%N) - $start" | bc)
    peak=$(kib VmHWM)
    g=$(( (peak - idle) / 1024 ))
    (( g > growth )) && growth=$g
    if (( $(echo "$t < $best" | bc) )); then best=$t; fi
  done
  rows=$(case $accept in
    application/json) python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert not d["truncated"] and "error" not in d; print(d["rowCount"])' "$work/out";;
    text/csv) echo "$(( $(wc -l <"$work/out") - 1 ))";;
    *) python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["rowCount"])' "$work/out";;
  esac)
  ratio=$(echo "scale=2; $best / $copy_best" | bc)
  echo "| querygate execute, $accept | $rows | $(stat -c %s "$work/out") | $(printf '%.2f' "$best") s (${ratio}× COPY) | ≤ $growth MiB (worst of $RUNS) |"
done
psql -q -h 127.0.0.1 -U postgres -d test -c 'DROP TABLE qg_bench_large'
