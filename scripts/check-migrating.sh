#!/usr/bin/env bash
# Applies docs/migrating.md, exactly as it is written, to a checkout of the replaced
# single page app (saurabhdahariya/text-to-query-ai at f449709) and drives the
# result in Chromium against the local PostgreSQL and MariaDB:
#
#   bash scripts/check-migrating.sh /path/to/text-to-query-ai [path/to/querygate]
#
# The app is not part of this repository: give a checkout (with or without its
# node_modules; without, `npm ci` installs them). Nothing of it is written back.
# Steps: copy the checkout to a temporary folder; copy clients/js/querygate.js to
# src/services/querygate.js; apply every ```diff block of docs/migrating.md with
# `patch -p1`; `CI=true` build twice (same origin, and REACT_APP_API_URL pointing at
# querygate for another origin); serve the first with nginx using the ```nginx
# block of the page (its listen line, root and upstream port replaced); create the
# fixture database spa_check on both servers (role qg_secret of
# scripts/setup-test-dbs.sh); run tests/e2e/spa.check.mjs. Needs node, nginx,
# chromium, python3, psql and mysql.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
spa=${1:?usage: bash scripts/check-migrating.sh /path/to/text-to-query-ai [path/to/querygate]}
[ -f "$spa/src/components/ModernConnectPage.js" ] || { echo "check-migrating: $spa is not a checkout of text-to-query-ai" >&2; exit 2; }
if [ $# -ge 2 ]; then
  bin=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
else
  bin="$root/target/debug/querygate"
  release="$root/target/release/querygate"
  if [ -x "$release" ] && { [ ! -x "$bin" ] || [ "$release" -nt "$bin" ]; }; then bin=$release; fi
fi
[ -x "$bin" ] || { echo "check-migrating: no querygate at $bin (cargo build)" >&2; exit 2; }
for tool in node nginx chromium python3 psql mysql patch; do
  command -v "$tool" >/dev/null || { echo "check-migrating: $tool is missing" >&2; exit 2; }
done

work=$(mktemp -d)
chmod 755 "$work" # nginx workers run as another user
nginx_pid=
cleanup() {
  if [ -n "${KEEP_WORK:-}" ]; then echo "check-migrating: kept $work"; [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null; return; fi
  if [ -n "$nginx_pid" ]; then kill "$nginx_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
qg_port=$(free_port)
web_port=$(free_port)

echo "== the app, changed as docs/migrating.md says"
mkdir -p "$work/app"
(cd "$spa" && tar --exclude=./node_modules --exclude=./build --exclude=./.git -cf - .) | (cd "$work/app" && tar -xf -)
if [ -d "$spa/node_modules" ]; then
  ln -s "$spa/node_modules" "$work/app/node_modules"
else
  (cd "$work/app" && npm ci --no-audit --no-fund)
fi
cp "$root/clients/js/querygate.js" "$work/app/src/services/querygate.js"
awk '/^```diff[[:space:]]*$/ { inside = 1; next } inside && /^```[[:space:]]*$/ { inside = 0; next } inside' \
  "$root/docs/migrating.md" >"$work/migrating.diff"
echo "$(grep -c '^+++ ' "$work/migrating.diff") files changed by the page's diffs"
(cd "$work/app" && patch -p1 --forward <"$work/migrating.diff")

echo "== two CI=true builds"
(cd "$work/app" && CI=true npx react-scripts build >"$work/build-same.log" 2>&1) ||
  { cat "$work/build-same.log" >&2; exit 1; }
mv "$work/app/build" "$work/build-same"
(cd "$work/app" && CI=true REACT_APP_API_URL="http://127.0.0.1:$qg_port/api" npx react-scripts build >"$work/build-cross.log" 2>&1) ||
  { cat "$work/build-cross.log" >&2; exit 1; }
mv "$work/app/build" "$work/build-cross"

echo "== nginx, as section 5 of the page configures it"
awk '/^```nginx[[:space:]]*$/ { inside = 1; next } inside && /^```[[:space:]]*$/ { inside = 0; next } inside' \
  "$root/docs/migrating.md" |
  sed -e "s#listen 443 ssl;#listen 127.0.0.1:$web_port;#" \
      -e "s#root /srv/text-to-query-ai/build;#root $work/build-same;#" \
      -e "s#proxy_pass http://127.0.0.1:8080;#proxy_pass http://127.0.0.1:$qg_port;#" >"$work/server.conf"
grep -q "listen 127.0.0.1:$web_port;" "$work/server.conf" && grep -q "root $work/build-same;" "$work/server.conf" ||
  { echo "check-migrating: the page's nginx block changed shape" >&2; cat "$work/server.conf" >&2; exit 1; }
mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<CONF
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events {}
http {
    include /etc/nginx/mime.types;
    access_log $work/nginx/access.log;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    include $work/server.conf;
}
CONF
nginx -t -c "$work/nginx.conf" -p "$work/nginx" 2>&1 | tail -1
nginx -c "$work/nginx.conf" -p "$work/nginx" &
nginx_pid=$!

echo "== fixtures: spa_check on PostgreSQL and MariaDB, readable by qg_secret"
psql -q -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'spa_check'" | grep -q 1 ||
  psql -q -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE spa_check'
psql -q -h 127.0.0.1 -U postgres -d spa_check -v ON_ERROR_STOP=1 <<'SQL'
DROP VIEW IF EXISTS french;
DROP TABLE IF EXISTS customers;
CREATE TABLE customers (customer_number int PRIMARY KEY, customer_name text NOT NULL,
  country text NOT NULL, credit_limit numeric(10,2), visits bigint);
INSERT INTO customers VALUES (103, 'Atelier graphique', 'France', 21000.00, 9007199254740993),
  (112, 'Signal Gift Stores', 'USA', 71800.00, 3), (119, 'La Rochelle Gifts', 'France', 118200.00, 7);
CREATE VIEW french AS SELECT * FROM customers WHERE country = 'France';
GRANT CONNECT ON DATABASE spa_check TO qg_secret;
GRANT SELECT ON customers, french TO qg_secret;
SQL
mysql -h 127.0.0.1 -uroot <<'SQL'
CREATE DATABASE IF NOT EXISTS spa_check;
DROP VIEW IF EXISTS spa_check.french;
DROP TABLE IF EXISTS spa_check.customers;
CREATE TABLE spa_check.customers (customer_number INT PRIMARY KEY, customer_name VARCHAR(50) NOT NULL,
  country VARCHAR(50) NOT NULL, credit_limit DECIMAL(10,2), visits BIGINT);
INSERT INTO spa_check.customers VALUES (103, 'Atelier graphique', 'France', 21000.00, 9007199254740993),
  (112, 'Signal Gift Stores', 'USA', 71800.00, 3), (119, 'La Rochelle Gifts', 'France', 118200.00, 7);
CREATE VIEW spa_check.french AS SELECT * FROM spa_check.customers WHERE country = 'France';
GRANT SELECT, SHOW VIEW ON spa_check.* TO 'qg_secret'@'127.0.0.1';
GRANT SELECT, SHOW VIEW ON spa_check.* TO 'qg_secret'@'localhost';
SQL

echo "== Chromium"
cd "$root/tests/e2e"
[ -d node_modules ] || npm ci --no-audit --no-fund
QUERYGATE_BIN="$bin" QG_PORT="$qg_port" SAME_ORIGIN="http://127.0.0.1:$web_port" \
  CROSS_BUILD="$work/build-cross" node spa.check.mjs
