#!/usr/bin/env bash
# A querygate cluster on one machine, on loopback only: a private Redis, three
# instances of the release binary and nginx in front, then six checks of what a
# cluster must do, printed as a small report.
#
#   bash scripts/cluster.sh
#
# Needs: target/release/querygate (QUERYGATE_BIN overrides), redis-server, curl,
# python3; nginx is installed with apt-get when missing (as root). Uses the ports
# CLUSTER_BASE_PORT (default 18300, nginx) and the three after it (the instances),
# plus a free port for Redis. Everything binds 127.0.0.1; the clients use other
# loopback addresses (curl --interface 127.0.x.y) so that each check has its own
# rate-limit key. Every wait and loop is bounded; the whole run takes well under
# two minutes. Exits non-zero when an expectation fails, and then keeps the logs
# (instances, nginx, Redis, the streams' records) and says where.
#
#   a. round robin: 9 GETs through nginx are served 3 times by each instance;
#   b. kill -9 of one instance under a steady stream of token-bearing GETs: no
#      failed request (nginx retries a GET on another instance), then it rejoins;
#   c. a rolling key rotation (add, then activate), each instance restarted with
#      SIGTERM in turn under the stream: no failed request, new tokens carry the
#      new kid and are served by all three;
#   d. the shared rate limit: 875 fast GETs from one address get at least 600 and
#      at most 600 + 2 x 75 answers (the bounded overshoot of limits decided
#      locally), the rest 429, across the three instances;
#   e. revocation: a token disconnected on qg-1 is refused (401 token_revoked) by
#      qg-2 and qg-3;
#   f. Redis killed under the stream: no failed request (fail-open, rate limits
#      counted by each instance), and a disconnect answers 503
#      revocation_unavailable.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${QUERYGATE_BIN:-$root/target/release/querygate}
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
base_port=${CLUSTER_BASE_PORT:-18300}
lb_port=$base_port
lb="http://127.0.0.1:$lb_port"
rate_max=600
stream_max_requests=5000 # per stream, whatever happens
stream_max_ms=60000      # per stream, whatever happens

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
t_start=$(now_ms)
since() { echo "$(($(now_ms) - $1))"; }

die() {
  echo "cluster: ERROR: $*" >&2
  exit 1
}
failed=0
# expect LABEL GOT WANT: prints one report line, counts a mismatch.
expect() {
  if [ "$2" = "$3" ]; then
    printf '   ok    %s: %s\n' "$1" "$2"
  else
    printf '   FAIL  %s: got %s, expected %s\n' "$1" "$2" "$3"
    failed=$((failed + 1))
  fi
}
# expect_le LABEL GOT MAX
expect_le() {
  if [ "$2" -le "$3" ]; then
    printf '   ok    %s: %s (at most %s allowed)\n' "$1" "$2" "$3"
  else
    printf '   FAIL  %s: %s, more than the %s allowed\n' "$1" "$2" "$3"
    failed=$((failed + 1))
  fi
}
note() { printf '         %s\n' "$*"; }

[ -x "$bin" ] || die "no executable at $bin (build it with cargo build --release)"
"$bin" --help 2>/dev/null | grep -q REDIS_URL ||
  die "$bin knows no REDIS_URL: it predates the shared store; rebuild it (cargo build --release)"
for tool in redis-server redis-cli curl python3 timeout; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

# --- nginx ----------------------------------------------------------------------
nginx_bin=$(command -v nginx || true)
[ -n "$nginx_bin" ] || { [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx; } || true
if [ -z "$nginx_bin" ]; then
  [ "$(id -u)" = 0 ] || die "nginx is missing; install it (apt-get install nginx) or run as root"
  command -v apt-get >/dev/null || die "nginx is missing and there is no apt-get"
  echo "cluster: installing nginx with apt-get"
  # The package must not start a system nginx (port 80 on every interface).
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt_log=$(mktemp)
  install_nginx() { DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q --no-install-recommends nginx >>"$apt_log" 2>&1; }
  if ! install_nginx; then
    timeout 300 apt-get update -q >>"$apt_log" 2>&1 || true
    install_nginx || { [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d; cat "$apt_log" >&2; die "apt-get install nginx failed"; }
  fi
  [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
  rm -f "$apt_log"
  nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
  [ -x "$nginx_bin" ] || die "nginx was installed but is not at $nginx_bin"
fi

# --- ports ----------------------------------------------------------------------
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$lb_port" $((base_port + 1)) $((base_port + 2)) $((base_port + 3)); do
  if port_in_use "$p"; then die "port $p is in use; set CLUSTER_BASE_PORT to a free range of four"; fi
done
redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# --- cleanup --------------------------------------------------------------------
work=$(mktemp -d /tmp/querygate-cluster.XXXXXX)
# Each service runs as a child of a small subshell that waits for it: *_pid is the
# process (signals go there), *_job the subshell (this script waits for it and
# gets the exit status), so that a process killed with SIGKILL is not announced
# as "Killed" on this script's stderr.
declare -a qg_pid=("" "" "" "") qg_job=("" "" "" "")
redis_pid= redis_job=
nginx_pid= nginx_job=
stream_pid=

# alive PID: the process exists and is not a zombie waiting to be reaped.
alive() {
  local state
  [ -r "/proc/$1/stat" ] || return 1
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}
# spawn DIR LOG CMD...: starts CMD in DIR, in the background, output to LOG; sets
# spawned_pid (the process) and spawned_job (the subshell waiting for it).
spawned_pid=
spawned_job=
spawn() {
  local dir=$1 log=$2 t0
  shift 2
  rm -f "$work/spawned.pid"
  (
    cd "$dir"
    "$@" >>"$log" 2>&1 &
    echo $! >"$work/spawned.pid.new"
    mv "$work/spawned.pid.new" "$work/spawned.pid"
    wait $! 2>/dev/null
  ) &
  spawned_job=$!
  t0=$(now_ms)
  while [ ! -s "$work/spawned.pid" ]; do
    [ "$(since "$t0")" -lt 5000 ] || die "could not start $1"
    sleep 0.01
  done
  spawned_pid=$(cat "$work/spawned.pid")
}
# stop PID JOB [SIGNAL]: signals the process, waits for its job (SIGKILL after 5 s).
stop() {
  local pid=$1 job=$2 deadline
  [ -n "$pid" ] || return 0
  kill "-${3:-TERM}" "$pid" 2>/dev/null || true
  deadline=$(($(now_ms) + 5000))
  while alive "$pid" && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.05; done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null
  if [ -n "$job" ]; then wait "$job" 2>/dev/null || true; fi
}
cleanup() {
  local rc=$?
  set +e
  if [ -n "$stream_pid" ]; then touch "$work/stop-stream"; stop "$stream_pid" "$stream_pid"; fi
  # nginx first: it closes its idle connections, so the instances exit at once.
  stop "$nginx_pid" "$nginx_job" QUIT
  for i in 1 2 3; do stop "${qg_pid[$i]}" "${qg_job[$i]}"; done
  stop "$redis_pid" "$redis_job"
  if [ "$rc" -eq 0 ]; then
    rm -rf "$work"
  else
    echo "cluster: logs kept in $work" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Redis ----------------------------------------------------------------------
spawn "$work" "$work/redis.out" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
  --appendonly no --dir "$work" --logfile "$work/redis.log" --daemonize no
redis_pid=$spawned_pid redis_job=$spawned_job
for _ in $(seq 1 100); do
  [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ] && break
  alive "$redis_pid" || die "redis-server exited at start: $(tail -5 "$work/redis.log")"
  sleep 0.05
done
[ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ] || die "redis-server did not answer PING within 5 s"

# --- querygate ------------------------------------------------------------------
keygen() { "$bin" keygen --print --kid "$1"; }
old_kid="cluster-v1"
new_kid="cluster-v2"
old_key=$(keygen "$old_kid")
new_key=$(keygen "$new_kid")

port_of() { echo $((base_port + $1)); }
# start_instance I KEYS
start_instance() {
  local i=$1 keys=$2
  mkdir -p "$work/qg-$i/data"
  spawn "$work/qg-$i" "$work/qg-$i/log" env -i PATH="$PATH" HOME="$work/qg-$i" \
    QUERYGATE_ENV=development LOG_FORMAT=json \
    HOST=127.0.0.1 PORT="$(port_of "$i")" QUERYGATE_INSTANCE="qg-$i" \
    QUERYGATE_KEYS="$keys" SQLITE_DIR="$work/qg-$i/data" \
    REDIS_URL="redis://127.0.0.1:$redis_port/" REDIS_KEY_PREFIX="cluster:" \
    TRUST_PROXY=true RATE_LIMIT_MAX_REQUESTS=$rate_max RATE_LIMIT_WINDOW_MS=86400000 \
    SHUTDOWN_GRACE_MS=10000 \
    "$bin" serve
  qg_pid[$i]=$spawned_pid qg_job[$i]=$spawned_job
}
# wait_ready I: /api/ready answers 200 within 15 s; prints the milliseconds taken.
wait_ready() {
  local i=$1 t0 code
  t0=$(now_ms)
  while [ "$(since "$t0")" -lt 15000 ]; do
    code=$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "http://127.0.0.1:$(port_of "$i")/api/ready" || true)
    [ "$code" = 200 ] && { since "$t0"; return 0; }
    alive "${qg_pid[$i]}" || { tail -5 "$work/qg-$i/log" >&2; die "qg-$i exited at start"; }
    sleep 0.05
  done
  tail -5 "$work/qg-$i/log" >&2
  die "qg-$i was not ready within 15 s"
}
# graceful_stop I: SIGTERM, then waits (15 s at most) for the exit; sets stop_ms
# and stop_rc (not in a subshell: only this shell can reap its child).
stop_ms=
stop_rc=
graceful_stop() {
  local i=$1 pid=${qg_pid[$1]} t0
  t0=$(now_ms)
  kill -TERM "$pid"
  while alive "$pid" && [ "$(since "$t0")" -lt 15000 ]; do sleep 0.02; done
  if alive "$pid"; then kill -KILL "$pid"; die "qg-$i did not exit within 15 s of SIGTERM"; fi
  stop_ms=$(since "$t0")
  stop_rc=0
  wait "${qg_job[$i]}" || stop_rc=$?
  qg_pid[$i]= qg_job[$i]=
}

for i in 1 2 3; do start_instance "$i" "$old_key"; done
for i in 1 2 3; do wait_ready "$i" >/dev/null; done

# --- nginx ----------------------------------------------------------------------
mkdir -p "$work/nginx/tmp"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  log_format upstreams '\$remote_addr "\$request" \$status up=[\$upstream_addr] st=[\$upstream_status]';
  access_log $work/nginx/access.log upstreams;
  client_body_temp_path $work/nginx/tmp/client;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;

  upstream querygate {
    server 127.0.0.1:$(port_of 1) max_fails=1 fail_timeout=2s;
    server 127.0.0.1:$(port_of 2) max_fails=1 fail_timeout=2s;
    server 127.0.0.1:$(port_of 3) max_fails=1 fail_timeout=2s;
    keepalive 16;
    # Below the instances' idle limit (HTTP_HEADER_TIMEOUT_MS, 10 s): nginx, not
    # the instance, closes an idle connection, so it never sends on one being closed.
    keepalive_timeout 4s;
  }
  server {
    listen 127.0.0.1:$lb_port;
    location / {
      proxy_pass http://querygate;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_connect_timeout 1s;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries 3;
      proxy_next_upstream_timeout 10s;
    }
  }
}
EOF
"$nginx_bin" -t -q -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" ||
  die "nginx rejected its configuration: $(tail -3 "$work/nginx/error.log")"
spawn "$work/nginx" "$work/nginx/out" "$nginx_bin" -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf"
nginx_pid=$spawned_pid nginx_job=$spawned_job
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "$lb/api/health" || true)" = 200 ] && break
  alive "$nginx_pid" || die "nginx exited at start: $(tail -3 "$work/nginx/error.log")"
  sleep 0.05
done
[ "$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "$lb/api/health" || true)" = 200 ] ||
  die "nginx did not answer 200 on $lb/api/health within 5 s: $(tail -3 "$work/nginx/error.log")"
# Those checks went to the instances; the report below starts from a known place.
: >"$work/nginx/access.log"

echo "run: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
echo "querygate cluster on loopback: nginx $lb → qg-1..3 on 127.0.0.1:$(port_of 1)-$(port_of 3), Redis 127.0.0.1:$redis_port"
echo "binary: $bin ($("$bin" --version)); nginx: $("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //'); $(redis-server --version | cut -d' ' -f1-3)"
echo "every instance: TRUST_PROXY=true RATE_LIMIT_MAX_REQUESTS=$rate_max RATE_LIMIT_WINDOW_MS=86400000 QUERYGATE_KEYS=$old_kid"

# --- helpers for the checks -----------------------------------------------------
# tally FILE: "qg-1=N qg-2=N qg-3=N" from lines holding the instance's name.
tally() {
  awk '{ n[$1]++ } END { printf "qg-1=%d qg-2=%d qg-3=%d", n["qg-1"], n["qg-2"], n["qg-3"] }' "$1"
}
token_of() { python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'; }
json_field() { python3 -c 'import json, sys; v = json.load(sys.stdin).get(sys.argv[1]); print(str(v).lower() if isinstance(v, bool) else v)' "$1"; }
kid_of() {
  python3 -c 'import base64, json, sys; h = sys.argv[1].split(".")[0]; h += "=" * (-len(h) % 4); print(json.loads(base64.urlsafe_b64decode(h))["kid"])' "$1"
}
# connect URL INTERFACE: a token for the demo database.
connect() {
  curl -s --interface "$2" --max-time 10 -H 'content-type: application/json' \
    -d '{"dbType":"sqlite","database":"demo"}' "$1/api/database/connect" | token_of
}
# status URL TOKEN: "CODE SERVED-BY BODY".
status() {
  curl -s --max-time 5 -H "Authorization: Bearer $2" -o "$work/body" \
    -w '%{http_code} %header{x-served-by}' "$1/api/database/status" || true
  printf ' %s\n' "$(cat "$work/body" 2>/dev/null)"
}
access_lines() { wc -l <"$work/nginx/access.log"; }
# retried FROM TO: requests nginx sent to more than one instance, in log lines FROM..TO.
retried() { sed -n "$1,$2p" "$work/nginx/access.log" | grep -c 'up=\[[^]]*,' || true; }

# The stream: token-bearing GET /api/database/status through nginx, one after
# another, each from the next of 100 loopback addresses NET.1..NET.100 (so that no
# address comes near the rate limit), one line per request: body, code, instance,
# seconds. It stops at the stop file, or after $stream_max_requests requests or
# $stream_max_ms ms, whichever comes first.
stream_loop() {
  local file=$1 net=$2 tok=$3 n=0 deadline
  deadline=$(($(now_ms) + stream_max_ms))
  local out
  while [ ! -e "$work/stop-stream" ] && [ "$n" -lt "$stream_max_requests" ] && [ "$(now_ms)" -lt "$deadline" ]; do
    out=$(curl -s --interface "$net.$((n % 100 + 1))" --connect-timeout 2 --max-time 5 \
      -H "Authorization: Bearer $tok" -w '\t%{http_code}\t%header{x-served-by}\t%{time_total}' \
      "$lb/api/database/status" 2>/dev/null || true)
    # One line per request, whatever the body (nginx's error pages span lines).
    printf '%s\n' "${out//$'\n'/ }" >>"$file"
    n=$((n + 1))
  done
}
stream_file=
stream_log_from=
stream_start() { # NAME NET TOKEN
  stream_file="$work/stream-$1.tsv"
  : >"$stream_file"
  rm -f "$work/stop-stream"
  stream_log_from=$(($(access_lines) + 1))
  stream_loop "$stream_file" "$2" "$3" &
  stream_pid=$!
}
stream_lines() { wc -l <"$stream_file"; }
# wait_in_rotation I FROM_LINE: until the stream has a request served by qg-I after
# line FROM_LINE (6 s at most: nginx's fail_timeout is 2 s); sets back_ms. A
# rolling restart must wait for this, not only for /api/ready: nginx learns of an
# instance only passively, and one restarted within fail_timeout of another is
# still marked failed — restart all three that fast and nginx has no live upstream.
back_ms=
wait_in_rotation() {
  local t0
  t0=$(now_ms)
  while ! tail -n +"$(($2 + 1))" "$stream_file" | grep -q $'\tqg-'"$1"$'\t'; do
    [ "$(since "$t0")" -lt 6000 ] || die "nginx sent qg-$1 no request of the stream within 6 s of its restart"
    sleep 0.02
  done
  back_ms=$(since "$t0")
}
# stream_wait N: until the stream has recorded N requests (10 s at most).
stream_wait() {
  local t0
  t0=$(now_ms)
  while [ "$(stream_lines)" -lt "$1" ]; do
    alive "$stream_pid" || die "the stream ended early (its bound was reached)"
    [ "$(since "$t0")" -lt 10000 ] || die "the stream recorded fewer than $1 requests in 10 s"
    sleep 0.02
  done
}
# stream_stop: ends the stream; fails when it had already stopped on its bound.
stream_stop() {
  alive "$stream_pid" || die "the stream ended on its bound before the check was over; raise stream_max_*"
  touch "$work/stop-stream"
  wait "$stream_pid" || true
  stream_pid=
}
# stream_summary FILE FROM TO: "TOTAL OK FAILED Q1 Q2 Q3 MEDIAN_MS MAX_MS CODES"
# over lines FROM..TO; a request is OK when it got 200 with "connected":true.
stream_summary() {
  sed -n "$2,$3p" "$1" | awk -F'\t' '
    {
      n++
      if ($2 == "200" && index($1, "\"connected\":true")) ok++; else { bad++; codes[$2 == "" ? "none" : $2]++ }
      by[$3]++
      t[n] = $4 + 0
    }
    END {
      c = ""; for (k in codes) c = c (c == "" ? "" : ",") k "x" codes[k]; if (c == "") c = "none"
      # Insertion sort is fine for a few thousand numbers.
      for (i = 2; i <= n; i++) { v = t[i]; for (j = i - 1; j > 0 && t[j] > v; j--) t[j + 1] = t[j]; t[j + 1] = v }
      med = n ? t[int((n + 1) / 2)] : 0; max = n ? t[n] : 0
      printf "%d %d %d %d %d %d %.1f %d %s\n", n, ok, bad, by["qg-1"], by["qg-2"], by["qg-3"], med * 1000, int(max * 1000 + 0.5), c
    }'
}
# report_stream LABEL ALLOWED_FAILURES [FROM_LINE [TO_LINE]]
report_stream() {
  local total ok bad q1 q2 q3 med max codes
  read -r total ok bad q1 q2 q3 med max codes <<<"$(stream_summary "$stream_file" "${3:-1}" "${4:-\$}")"
  note "$1: $total requests, $ok answered 200 connected:true"
  note "  served by qg-1=$q1 qg-2=$q2 qg-3=$q3; median ${med} ms, slowest ${max} ms; other answers: $codes"
  expect_le "failed requests, $1" "$bad" "$2"
}

# --- a. round robin -------------------------------------------------------------
echo
echo "== a. round robin: 9 x GET /api/health through nginx (from 127.0.0.10)"
args=()
for _ in $(seq 1 9); do args+=(-o /dev/null "$lb/api/health"); done
timeout 30 curl -s --interface 127.0.0.10 --max-time 5 -w '%header{x-served-by} %{http_code}\n' "${args[@]}" >"$work/a.txt" || true
expect "answers 200" "$(grep -c ' 200$' "$work/a.txt" || true)" 9
expect "X-Served-By tally" "$(tally "$work/a.txt")" "qg-1=3 qg-2=3 qg-3=3"

# --- b. kill -9 under a stream --------------------------------------------------
echo
echo "== b. kill -9 of qg-2 under a stream of GET /api/database/status with a token (from 127.0.1.1-100)"
token=$(connect "$lb" 127.0.0.20) || die "connect through nginx failed"
note "token from connect through nginx: kid $(kid_of "$token")"
stream_start b 127.0.1 "$token"
stream_wait 50
killed_at=$(stream_lines)
kill -KILL "${qg_pid[2]}"
wait "${qg_job[2]}" || true
qg_pid[2]= qg_job[2]=
t_kill=$(now_ms)
note "qg-2 killed (SIGKILL) after request $killed_at of the stream"
while [ "$(since "$t_kill")" -lt 2000 ]; do sleep 0.05; done
down_until=$(stream_lines)
start_instance 2 "$old_key"
ready_ms=$(wait_ready 2)
note "qg-2 started again, ready after ${ready_ms} ms; requests while it was down: $((down_until - killed_at))"
wait_in_rotation 2 "$(stream_lines)"
note "nginx sent qg-2 a request of the stream again ${back_ms} ms after it was ready"
stream_wait $(($(stream_lines) + 20))
stream_stop
report_stream "whole stream" 0
note "nginx sent $(retried "$stream_log_from" "$(access_lines)") stream request(s) on to another instance (upstream error)"

# --- c. rolling key rotation ----------------------------------------------------
echo
echo "== c. rolling key rotation under the stream (from 127.0.2.1-100), SIGTERM restarts one at a time"
note "each restart waits for /api/ready on the instance, then for nginx to send it a request"
note "of the stream again (nginx checks passively: a failed instance is skipped for fail_timeout=2s)"
stream_start c 127.0.2 "$token"
stream_wait 30
rotate() { # STEP KEYS KIDS
  local i ms rc ready
  for i in 1 2 3; do
    graceful_stop "$i"
    ms=$stop_ms rc=$stop_rc
    start_instance "$i" "$2"
    ready=$(wait_ready "$i")
    wait_in_rotation "$i" "$(stream_lines)"
    note "$1 qg-$i: SIGTERM -> exit $rc in ${ms} ms; restarted with QUERYGATE_KEYS=$3;"
    note "         /api/ready 200 after ${ready} ms; back in nginx's rotation ${back_ms} ms later"
    expect "qg-$i exit code after SIGTERM" "$rc" 0
  done
}
rotate "add     " "$old_key,$new_key" "$old_kid,$new_kid"
rotate "activate" "$new_key,$old_key" "$new_kid,$old_kid"
stream_wait $(($(stream_lines) + 30))
stream_stop
report_stream "stream with the old token ($old_kid) through 6 restarts" 0
note "nginx sent $(retried "$stream_log_from" "$(access_lines)") stream request(s) on to another instance"
token2=$(connect "$lb" 127.0.0.20) || die "connect through nginx after the rotation failed"
expect "kid of a token from connect after activation" "$(kid_of "$token2")" "$new_kid"
for i in 1 2 3; do
  read -r code by body <<<"$(status "http://127.0.0.1:$(port_of "$i")" "$token2")"
  expect "new token, status directly on qg-$i" "$code $by $(printf '%s' "$body" | json_field connected)" "200 qg-$i true"
done
note "drop (QUERYGATE_KEYS=$new_kid only) is not run: it must wait until every token signed"
note "with $old_kid has expired, i.e. TOKEN_MAX_LIFETIME (86400 s) + TOKEN_LEEWAY (30 s)"
note "after activation everywhere, then restart the instances the same way."

# --- d. shared rate limit -------------------------------------------------------
echo
# Each instance decides alone and exchanges its counts every 100 ms: the limit
# may be passed by at most (instances - 1) x an eighth of it.
overshoot=$((2 * (rate_max + 7) / 8))
sent=$((rate_max + overshoot + 100))
echo "== d. shared rate limit: $sent x GET /api/database/status through nginx from 127.0.0.50 (limit $rate_max per address)"
args=()
for _ in $(seq 1 "$sent"); do args+=(-o /dev/null "$lb/api/database/status"); done
t0=$(now_ms)
timeout 60 curl -s --interface 127.0.0.50 --max-time 5 -w '%header{x-served-by} %{http_code}\n' "${args[@]}" >"$work/d.txt" || true
note "sent in $(since "$t0") ms"
d200=$(grep -c ' 200$' "$work/d.txt" || true)
expect "at least the limit answered 200" "$([ "$d200" -ge "$rate_max" ] && echo yes || echo "no ($d200)")" yes
expect_le "answers 200" "$d200" "$((rate_max + overshoot))"
expect "the rest answered 429" "$(grep -c ' 429$' "$work/d.txt" || true)" "$((sent - d200))"
grep ' 200$' "$work/d.txt" >"$work/d200.txt" || true
d_tally=$(tally "$work/d200.txt")
note "X-Served-By of the 200s: $d_tally (each instance alone would have allowed all $sent)"
expect "every instance served some" "$(awk '{ n[$1]++ } END { print (n["qg-1"] > 0 && n["qg-2"] > 0 && n["qg-3"] > 0) ? "yes" : "no" }' "$work/d200.txt")" yes

# --- e. revocation --------------------------------------------------------------
echo
echo "== e. revocation: connect and disconnect on qg-1, then the token on qg-2 and qg-3 directly"
qg1="http://127.0.0.1:$(port_of 1)"
token3=$(connect "$qg1" 127.0.0.1) || die "connect on qg-1 failed"
read -r code by body <<<"$(status "$qg1" "$token3")"
expect "status on qg-1 before disconnect" "$code $by" "200 qg-1"
revoked=$(curl -s --max-time 5 -X POST -H "Authorization: Bearer $token3" "$qg1/api/database/disconnect" | json_field revoked)
expect "disconnect on qg-1 answers revoked" "$revoked" true
for i in 2 3; do
  # The revocation is pushed: it arrives within milliseconds (bounded at 2 s).
  t_revoked=$(now_ms)
  while :; do
    read -r code by body <<<"$(status "http://127.0.0.1:$(port_of "$i")" "$token3")"
    [ "$code" = 401 ] || [ "$(since "$t_revoked")" -ge 2000 ] && break
    sleep 0.01
  done
  note "qg-$i refused it $(since "$t_revoked") ms after the disconnect answered"
  expect "status on qg-$i" "$code $(printf '%s' "$body" | json_field code)" "401 token_revoked"
done

# --- f. Redis stopped -----------------------------------------------------------
echo
echo "== f. Redis killed under the stream (from 127.0.3.1-100)"
stream_start f 127.0.3 "$token2"
stream_wait 50
kill_line=$(stream_lines)
kill -KILL "$redis_pid"
wait "$redis_job" || true
redis_pid= redis_job=
t_kill=$(now_ms)
note "redis-server killed (SIGKILL) after request $kill_line of the stream; streaming on for 3 s"
while [ "$(since "$t_kill")" -lt 3000 ]; do sleep 0.05; done
token4=$(connect "$lb" 127.0.0.20) || die "connect through nginx without Redis failed"
curl -s --max-time 5 -X POST -H "Authorization: Bearer $token4" -D "$work/f-headers" -o "$work/f-body" \
  -w '%{http_code}' "$lb/api/database/disconnect" >"$work/f-code" || true
expect "disconnect without Redis" "$(cat "$work/f-code") $(json_field code <"$work/f-body")" "503 revocation_unavailable"
note "its Retry-After: $(grep -i '^retry-after:' "$work/f-headers" | tr -d '\r' | cut -d' ' -f2)"
stream_wait $(($(stream_lines) + 20))
stream_stop
report_stream "stream before the kill" 0 1 "$kill_line"
report_stream "stream after the kill" 0 "$((kill_line + 1))"
args=()
for _ in 1 2 3; do args+=(-o /dev/null "$lb/api/database/status"); done
timeout 30 curl -s --interface 127.0.0.50 --max-time 5 -w '%header{x-served-by} %{http_code}\n' "${args[@]}" >"$work/f-limit.txt" || true
# Each instance counted 127.0.0.50 all along: Redis going away hands out no
# fresh burst.
expect "127.0.0.50, refused in d, still refused without Redis: answers 200 of 3" "$(grep -c ' 200$' "$work/f-limit.txt" || true)" 0

echo
elapsed=$(since "$t_start")
if [ "$failed" -eq 0 ]; then
  printf 'cluster: all checks passed in %d.%d s\n' $((elapsed / 1000)) $((elapsed % 1000 / 100))
else
  printf 'cluster: %d check(s) FAILED (%d.%d s)\n' "$failed" $((elapsed / 1000)) $((elapsed % 1000 / 100))
  exit 1
fi
