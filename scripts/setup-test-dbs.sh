#!/usr/bin/env bash
# Prepares this machine's PostgreSQL, MariaDB and Redis for querygate's tests.
# Idempotent. Run as root (CI does, through .ci/run). It:
#   - starts PostgreSQL, MariaDB and Redis (127.0.0.1:6379, for the shared-state
#     tests) when they are down, and waits for them;
#   - creates the role qg_secret, which must authenticate with a password even though
#     the cluster otherwise trusts loopback (a pg_hba.conf line, then a reload), so
#     that wrong-password tests fail for real;
#   - creates the same user in MariaDB;
#   - raises MariaDB's global max_allowed_packet to 1 GiB (until the server restarts)
#     and keeps one 300 MB LONGBLOB row in qg_big_fx.big, for the test that a value
#     larger than the server's row limit cannot take querygate's memory (written
#     once, about 3 s);
#   - creates the database `test` on either server when it is missing.
set -euo pipefail

PASSWORD='qg-right-password'

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
my_up() { mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -uroot ping >/dev/null 2>&1; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }

wait_for() { # name, check
  for _ in $(seq 1 60); do "$2" && return 0; sleep 0.5; done
  echo "setup-test-dbs: $1 did not come up" >&2
  return 1
}

if ! pg_up; then
  echo "setup-test-dbs: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
fi
wait_for PostgreSQL pg_up

if ! my_up; then
  echo "setup-test-dbs: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
wait_for MariaDB my_up

if ! redis_up; then
  echo "setup-test-dbs: starting Redis"
  command -v redis-server >/dev/null || apt-get install -y -qq redis-server >/dev/null
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no >/dev/null
fi
wait_for Redis redis_up

psql -q -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 ||
  psql -q -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test'

hba=$(psql -h 127.0.0.1 -U postgres -d postgres -Atc 'SHOW hba_file')
changed=0
for net in 127.0.0.1/32 ::1/128; do
  line="host all qg_secret $net scram-sha-256"
  if ! grep -qxF "$line" "$hba"; then
    # First matching line wins in pg_hba.conf: put ours above the trust lines.
    sed -i "1i $line" "$hba"
    changed=1
  fi
done

psql -q -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 <<SQL
SET password_encryption = 'scram-sha-256';
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'qg_secret') THEN CREATE ROLE qg_secret LOGIN; END IF;
END \$\$;
ALTER ROLE qg_secret LOGIN PASSWORD '$PASSWORD';
GRANT CONNECT ON DATABASE test TO qg_secret;
SQL
if [ "$changed" = 1 ]; then
  psql -q -h 127.0.0.1 -U postgres -d postgres -Atc 'SELECT pg_reload_conf()' >/dev/null
fi

mariadb --protocol=tcp -h 127.0.0.1 -P 3306 -uroot <<SQL
CREATE DATABASE IF NOT EXISTS test;
SET GLOBAL max_allowed_packet = 1073741824;
CREATE USER IF NOT EXISTS 'qg_secret'@'127.0.0.1' IDENTIFIED BY '$PASSWORD';
CREATE USER IF NOT EXISTS 'qg_secret'@'localhost' IDENTIFIED BY '$PASSWORD';
ALTER USER 'qg_secret'@'127.0.0.1' IDENTIFIED BY '$PASSWORD';
ALTER USER 'qg_secret'@'localhost' IDENTIFIED BY '$PASSWORD';
GRANT SELECT, SHOW VIEW ON test.* TO 'qg_secret'@'127.0.0.1';
GRANT SELECT, SHOW VIEW ON test.* TO 'qg_secret'@'localhost';
SQL

# A new session sees the raised max_allowed_packet; the row is written once.
mariadb --protocol=tcp -h 127.0.0.1 -P 3306 -uroot <<SQL
CREATE DATABASE IF NOT EXISTS qg_big_fx;
CREATE TABLE IF NOT EXISTS qg_big_fx.big (id INT PRIMARY KEY, b LONGBLOB) ENGINE=InnoDB;
INSERT IGNORE INTO qg_big_fx.big SELECT 1, REPEAT('x', 300000000) FROM DUAL
  WHERE NOT EXISTS (SELECT 1 FROM qg_big_fx.big WHERE id = 1);
SQL

# Prove the password is really required now.
if PGPASSWORD=not-the-password psql -h 127.0.0.1 -U qg_secret -d test -Atc 'select 1' >/dev/null 2>&1; then
  echo "setup-test-dbs: qg_secret logs in with a wrong password; pg_hba.conf is not in effect" >&2
  exit 1
fi
echo "setup-test-dbs: PostgreSQL, MariaDB and Redis ready"
