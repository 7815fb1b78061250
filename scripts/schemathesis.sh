#!/usr/bin/env bash
# Checks the running server against openapi.yaml with Schemathesis.
#
#   bash scripts/schemathesis.sh [path/to/querygate [SCHEMATHESIS-RUN-OPTION…]]
#
# The binary defaults to target/debug/querygate, which `cargo test` builds; options
# after it are added to `schemathesis run` (e.g. `--report har`, `--include-path …`).
#
# What it does, all on 127.0.0.1:
#
# 1. Makes a virtualenv under target/schemathesis-venv (once) and installs a pinned
#    Schemathesis from PyPI into it.
# 2. Starts scripts/fake_openai.py: a model server that always answers
#    `SELECT 1 AS one`, and a DNS server that answers NXDOMAIN for every name.
# 3. Starts querygate on a free port with an empty environment except: a random key
#    version, DB_ALLOWED_HOSTS=127.0.0.1,localhost (the document's example hosts
#    such as 10.0.0.5 or db.example.com are never dialled), DB_DNS_SERVERS at the
#    fake DNS (made-up host names never reach the machine's resolver), the fake
#    model, rate limiting off, a temporary SQLITE_DIR. Waits for /api/health.
# 4. Connects to the local PostgreSQL (127.0.0.1:5432, user postgres trusted,
#    database test) for a token, sent with every request as a bearer token.
# 5. Runs `schemathesis run openapi.yaml` with the conformance checks (status code,
#    content type, response schema, response headers) and not_a_server_error
#    allowing 502/503/504, which the document lists with their codes
#    (db_connection_refused, overloaded, db_timeout, …). An undocumented status,
#    5xx included, fails status_code_conformance; a 500 always fails.
#
# Every process it starts is stopped on exit. The last line is a one-line summary;
# the exit status is non-zero on any failure.
#
# Environment:
#   ST_MAX_EXAMPLES  test cases per operation and phase (default 300: about 40 s)
#   ST_SEED          Hypothesis seed (default 1, so that a run gives the same verdict
#                    every time for the same server and document; `random` explores
#                    further; the seed is printed in the summary)
#   ST_TIMEOUT       seconds for the Schemathesis run itself (default 270)
#   ST_WORKERS       concurrent Schemathesis workers (default 1: on Python 3.11 before
#                    3.11.9, ast.parse in parallel threads fails at random, gh-106905)
#   ST_REPORT_DIR    where the JUnit report goes (default target/schemathesis-report)
#   ST_SCHEMA        the document to test (default openapi.yaml)
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5

root=$(cd "$(dirname "$0")/.." && pwd)
# Paths given relative to where the script was started from.
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
bin=$(absolute "${1:-$root/target/debug/querygate}")
shift || true
extra=("$@")
[ -x "$bin" ] || { echo "schemathesis: no executable at $bin (run cargo test or cargo build first)" >&2; exit 2; }
schema=$(absolute "${ST_SCHEMA:-$root/openapi.yaml}")
[ -f "$schema" ] || { echo "schemathesis: $schema is missing" >&2; exit 2; }
report_dir=$(absolute "${ST_REPORT_DIR:-$root/target/schemathesis-report}")
cd "$root"

max_examples=${ST_MAX_EXAMPLES:-300}
seed=${ST_SEED:-1}
if [ "$seed" = random ]; then seed=$(python3 -c 'import secrets; print(secrets.randbelow(2**31))'); fi
run_timeout=${ST_TIMEOUT:-270}
workers=${ST_WORKERS:-1}
venv="$root/target/schemathesis-venv"
started=$(date +%s)

summary() {
  echo "schemathesis: $1 in $(( $(date +%s) - started )) s (schemathesis $SCHEMATHESIS_VERSION, max-examples $max_examples, seed $seed)"
}

work=$(mktemp -d)
fake_pid=
server_pid=
run_pid=
cleanup() {
  local pid
  for pid in $run_pid $server_pid $fake_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'summary "INTERRUPTED"; exit 130' INT
trap 'summary "INTERRUPTED"; exit 143' TERM

# 1. Schemathesis, pinned.
st="$venv/bin/schemathesis"
if ! { [ -x "$st" ] && "$st" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION"; }; then
  echo "== installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION"
fi

# 2. The fake model server and DNS.
python3 "$root/scripts/fake_openai.py" --port-file "$work/model.port" \
  --dns-port-file "$work/dns.port" >"$work/fake.log" 2>&1 &
fake_pid=$!
for _ in $(seq 1 100); do
  [ -s "$work/model.port" ] && [ -s "$work/dns.port" ] && break
  kill -0 "$fake_pid" 2>/dev/null || break
  sleep 0.1
done
if ! [ -s "$work/model.port" ] || ! [ -s "$work/dns.port" ]; then
  echo "schemathesis: the fake model server did not start; its log:" >&2
  cat "$work/fake.log" >&2
  summary "FAILED (fake model server)"
  exit 1
fi
model_port=$(cat "$work/model.port")
dns_port=$(cat "$work/dns.port")

# 3. querygate.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
key=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
mkdir -p "$work/data" "$work/keys"
env -i PATH="$PATH" HOME="$work" RUST_LOG=warn \
  QUERYGATE_ENV=development HOST=127.0.0.1 PORT="$port" \
  QUERYGATE_KEYS="ci:$key" QUERYGATE_KEYS_DIR="$work/keys" \
  SQLITE_DIR="$work/data" \
  DB_ALLOWED_HOSTS=127.0.0.1,localhost \
  DB_DNS_SERVERS="127.0.0.1:$dns_port" \
  DB_CONNECT_TIMEOUT_MS=5000 \
  STATEMENT_TIMEOUT_MS=5000 \
  OPENAI_BASE_URL="http://127.0.0.1:$model_port/v1" OPENAI_API_KEY=test \
  OPENAI_TIMEOUT_MS=5000 \
  RATE_LIMIT_MAX_REQUESTS=0 \
  "$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
healthy=
for _ in $(seq 1 300); do
  if curl -fsS --max-time 1 "$url/api/health" >/dev/null 2>&1; then healthy=1; break; fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$healthy" ]; then
  echo "schemathesis: querygate did not answer /api/health; its log:" >&2
  cat "$work/server.log" >&2
  summary "FAILED (server did not start)"
  exit 1
fi

# 4. A token for the local PostgreSQL.
connect='{"dbType":"postgresql","host":"127.0.0.1","username":"postgres","database":"test","ssl":"disable"}'
answer=$(curl -sS --max-time 30 -H 'Content-Type: application/json' -d "$connect" \
  "$url/api/database/connect" || true)
token=$(printf '%s' "$answer" | python3 -c 'import json, sys
try:
    print(json.load(sys.stdin).get("token") or "")
except ValueError:
    print("")')
if [ -z "$token" ]; then
  echo "schemathesis: connect to the local PostgreSQL failed: $answer" >&2
  summary "FAILED (no token)"
  exit 1
fi

# 5. Schemathesis. The only setting without a flag: which 5xx are not server errors.
cat >"$work/schemathesis.toml" <<'EOF'
[checks.not_a_server_error]
expected-statuses = ["2XX", "3XX", "4XX", "502", "503", "504"]
EOF
mkdir -p "$report_dir"
command=(
  "$st" --config-file "$work/schemathesis.toml" run "$schema"
  --url "$url"
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
  --header "Authorization: Bearer $token"
  --max-examples "$max_examples"
  --seed "$seed"
  --workers "$workers"
  --request-timeout 20
  --generation-database none
  --suppress-health-check all
  --no-color
  --report junit --report-junit-path "$report_dir/junit.xml"
  ${extra[@]+"${extra[@]}"}
)
shown=$(printf '%q ' "${command[@]}")
echo "== ${shown//$token/<token>}"
# Run from the report folder: Schemathesis keeps its state (.schemathesis/,
# .hypothesis/) in the current folder, which must not be the work tree. For each
# failure it prints a curl line that reproduces it against a server started as in
# step 3.
# In the background, so that a signal to this script is acted on at once.
(cd "$report_dir" && exec timeout --kill-after=10 "$run_timeout" "${command[@]}") &
run_pid=$!
set +e
wait "$run_pid"
status=$?
set -e
run_pid=
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "schemathesis: querygate exited during the run; its log:" >&2
  cat "$work/server.log" >&2
  summary "FAILED (server exited)"
  exit 1
fi
# A 500 is logged by the server with its cause: show it next to the failure.
if grep -q 'internal_error\|panicked' "$work/server.log"; then
  echo "== querygate logged internal errors:" >&2
  grep 'internal_error\|panicked' "$work/server.log" | head -20 >&2
fi
case $status in
  0) summary "PASSED" ;;
  124 | 137) summary "FAILED (timed out after $run_timeout s)" ;;
  *) summary "FAILED (exit $status)" ;;
esac
exit "$status"
