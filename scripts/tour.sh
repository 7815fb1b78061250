#!/usr/bin/env bash
# Runs docs/tour.md word for word against a fresh querygate.
#
#   bash scripts/tour.sh [path/to/querygate]
#
# Without an argument it runs the binary the last build made: the newer of
# target/release/querygate (the README's `cargo run --release`) and
# target/debug/querygate (`cargo build`, `cargo test`).
#
# Starts the binary in development mode with an empty environment, a temporary
# SQLITE_DIR and keys folder, on 127.0.0.1:8080 when that port is free (else on a free
# port, and the tour's http://127.0.0.1:8080 is rewritten to it), waits for
# /api/health, then runs every ```bash block of docs/tour.md, in order, in ONE bash
# process with `set -euo pipefail`, so shell variables carry from block to block.
# Every curl is bounded by a curlrc (connect 5 s, whole request 30 s) and the whole
# tour by TOUR_TIMEOUT seconds (default 300). Exits non-zero, naming the block and
# its line in docs/tour.md, when a block fails.
#
# The tour's PostgreSQL and MariaDB blocks need the local servers of the README's
# test prerequisites (127.0.0.1:5432 trusting `postgres`, 127.0.0.1:3306 `root`
# without a password, each with a database `test`).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
doc="$root/docs/tour.md"
if [ $# -ge 1 ]; then
  bin=$1
  case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
else
  release="$root/target/release/querygate" debug="$root/target/debug/querygate"
  if [ -x "$release" ] && { [ ! -x "$debug" ] || [ "$release" -nt "$debug" ]; }; then
    bin=$release
  else
    bin=$debug
  fi
fi
[ -x "$bin" ] || { echo "tour: no executable at $bin (build one: cargo build, or cargo run --release)" >&2; exit 2; }
[ -f "$doc" ] || { echo "tour: $doc is missing" >&2; exit 2; }
tour_timeout=${TOUR_TIMEOUT:-300}

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_free 8080; then
  port=8080
else
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
url="http://127.0.0.1:$port"

mkdir -p "$work/data" "$work/keys" "$work/run" "$work/curl"
# An empty environment: nothing from the caller's shell (OPENAI_API_KEY, REDIS_URL,
# FRONTEND_URL, …) changes what the tour sees.
env -i PATH="$PATH" HOME="$work" RUST_LOG=warn \
  QUERYGATE_ENV=development SQLITE_DIR="$work/data" QUERYGATE_KEYS_DIR="$work/keys" \
  "$bin" serve --port "$port" >"$work/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 1 300); do
  if curl -fsS --max-time 1 "$url/api/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "tour: querygate exited before answering; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  sleep 0.1
done
curl -fsS --max-time 1 "$url/api/health" >/dev/null || {
  echo "tour: no answer from $url/api/health within 30 s; the server's log:" >&2
  cat "$work/server.log" >&2
  exit 1
}
echo "tour: $bin is serving on $url"

# Every curl of the tour gets these bounds, without changing the commands.
printf 'connect-timeout = 5\nmax-time = 30\n' >"$work/curl/.curlrc"

# The tour as one script: each block preceded by its number and line, URL rewritten.
awk -v url="$url" '
  /^```bash[[:space:]]*$/ { inside = 1; n++; printf "TOUR_BLOCK=%d; TOUR_LINE=%d\nprintf \"\\n== block %d (docs/tour.md line %d)\\n\"\n", n, NR + 1, n, NR + 1; next }
  inside && /^```[[:space:]]*$/ { inside = 0; print "printf \"\\n\""; next }
  inside { gsub("http://127\\.0\\.0\\.1:8080", url); print }
  END { if (inside) { print "echo \"tour: an unterminated bash block\" >&2; exit 2" } ; printf "TOUR_BLOCKS=%d\n", n }
' "$doc" >"$work/blocks.sh"
blocks=$(grep -c '^TOUR_BLOCK=' "$work/blocks.sh" || true)
[ "$blocks" -gt 0 ] || { echo "tour: no \`\`\`bash blocks in $doc" >&2; exit 2; }

cat >"$work/tour.sh" <<'HEAD'
set -euo pipefail
TOUR_BLOCK=0; TOUR_LINE=0
trap 'status=$?; if [ "$status" -ne 0 ]; then echo "tour: block $TOUR_BLOCK (docs/tour.md line $TOUR_LINE) failed with exit status $status" >&2; fi' EXIT
HEAD
cat "$work/blocks.sh" >>"$work/tour.sh"

set +e
(cd "$work/run" && CURL_HOME="$work/curl" timeout --kill-after=5 "$tour_timeout" bash "$work/tour.sh")
status=$?
set -e
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "tour: stopped after $tour_timeout s" >&2
fi
if [ "$status" -ne 0 ]; then
  echo "tour: FAILED (exit $status); the server's log:" >&2
  tail -n 40 "$work/server.log" >&2
  exit 1
fi
echo "tour: all $blocks blocks of docs/tour.md passed"
