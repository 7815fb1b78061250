#!/usr/bin/env python3
"""Two regions on loopback: what a second region costs, and what it shares.

    python3 scripts/regions.py [BINARY]   (default target/release/querygate)

Sets up, all on 127.0.0.1:
- a private redis-server (plain port, and a TLS port with a test CA made here);
- "near" (Oregon): querygate with REDIS_URL on the plain port, no delay;
- "far" (Frankfurt): querygate with REDIS_URL=rediss://… through a delay proxy
  adding 75 ms each way (Redis 150 ms away), with default Redis settings and the
  test CA in SSL_CERT_FILE;
- "alone": querygate without REDIS_URL, the ideal;
- PostgreSQL behind a delay proxy of 5 ms each way (10 ms away) for far and alone.
Then measures: execute and status latency (far vs alone, one client), Redis
commands per request, logout on near seen by far (20 times), a shared limit of 40
over two instances (fresh, over a Redis restart, over a flush), a fresh
fail-closed instance, and a store that flaps. Prints Markdown. Bounded in count
and time; loopback only.
"""

import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

BINARY = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/querygate")
HERE = os.path.dirname(os.path.abspath(__file__))
REDIS_DELAY_MS = 75
DB_DELAY_MS = 5
KEYS = "regions:QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=15, log=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    detail = open(log).read()[-2000:] if log and os.path.exists(log) else ""
    sys.exit(f"nothing listens on {port}\n{detail}")


class Processes:
    def __init__(self):
        self.all = []

    def start(self, args, env=None, log=None):
        process = subprocess.Popen(args, env=env, stdout=log or subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT if log else subprocess.DEVNULL)
        self.all.append(process)
        return process

    def stop_all(self):
        for process in self.all:
            if process.poll() is None:
                process.kill()
                process.wait()


def make_ca(work):
    run = lambda *a: subprocess.run(a, cwd=work, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=querygate regions test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")
    with open(os.path.join(work, "ext"), "w") as ext:
        ext.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "1", "-extfile", "ext")


class Redis:
    def __init__(self, procs, work):
        self.procs, self.work = procs, work
        self.port, self.tls_port = free_port(), free_port()
        self.process = None
        self.start()

    def start(self):
        self.process = self.procs.start([
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--tls-port", str(self.tls_port),
            "--tls-cert-file", os.path.join(self.work, "server.pem"),
            "--tls-key-file", os.path.join(self.work, "server.key"),
            "--tls-ca-cert-file", os.path.join(self.work, "ca.pem"), "--tls-auth-clients", "no",
            "--save", "", "--appendonly", "no"])
        wait_port(self.port)

    def stop(self):
        self.process.kill()
        self.process.wait()

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True,
                              timeout=10).stdout

    def command_calls(self):
        calls = {}
        for line in self.cli("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, stats = line[len("cmdstat_"):].split(":", 1)
                calls[name] = int(dict(kv.split("=") for kv in stats.split(","))["calls"])
        return calls


class Instance:
    def __init__(self, procs, work, name, extra):
        self.port = free_port()
        env = {"PATH": os.environ.get("PATH", ""), "QUERYGATE_KEYS": KEYS, "HOST": "127.0.0.1",
               "PORT": str(self.port), "SQLITE_DIR": os.path.join(work, name), "RUST_LOG": "warn",
               "QUERYGATE_INSTANCE": name, "RATE_LIMIT_MAX_REQUESTS": "1000000"}
        env.update(extra)
        log = os.path.join(work, name + ".log")
        self.process = procs.start([BINARY], env=env, log=open(log, "w"))
        wait_port(self.port, log=log)
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, method, path, body=None, token=None):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        payload = json.dumps(body) if body is not None else None
        started = time.perf_counter()
        try:
            self.connection.request(method, path, body=payload, headers=headers)
            response = self.connection.getresponse()
        except (OSError, http.client.HTTPException):
            # The server closed an idle kept-alive connection: a new one.
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            started = time.perf_counter()
            self.connection.request(method, path, body=payload, headers=headers)
            response = self.connection.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        return response.status, (json.loads(data) if data else None), elapsed

    def token(self, body):
        status, answer, _ = self.request("POST", "/api/database/connect", body)
        if status != 200:
            sys.exit(f"connect answered {status}: {answer}")
        return answer["token"]

    def ready(self, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.request("GET", "/api/ready")[0] == 200:
                return True
            time.sleep(0.02)
        return False

    def stop(self):
        self.process.kill()
        self.process.wait()


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def latency(instance, token, n=300):
    rows = {}
    for label, method, path, body in [("execute SELECT 1", "POST", "/api/database/execute", {"sql": "SELECT 1"}),
                                      ("status with a token", "GET", "/api/database/status", None)]:
        for _ in range(20):
            instance.request(method, path, body, token)
        times = [instance.request(method, path, body, token)[2] for _ in range(n)]
        rows[label] = (statistics.median(times), percentile(times, 0.99))
    return rows


def logout_seen(near, far, sqlite_body, tries=20):
    delays = []
    for _ in range(tries):
        token = near.token(sqlite_body)
        assert far.request("GET", "/api/database/status", token=token)[0] == 200
        status, answer, _ = near.request("POST", "/api/database/disconnect", token=token)
        assert status == 200 and answer["revoked"], answer
        started = time.monotonic()
        while far.request("GET", "/api/database/status", token=token)[0] != 401:
            if time.monotonic() - started > 5:
                break
        delays.append((time.monotonic() - started) * 1000)
    return delays


def hammer(instances, seconds):
    admitted = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run(instance):
        connection = http.client.HTTPConnection("127.0.0.1", instance.port, timeout=10)
        while time.monotonic() < stop:
            connection.request("GET", "/api/database/status")
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                with lock:
                    admitted[0] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return admitted[0]


def main():
    if not shutil.which("redis-server") or not shutil.which("openssl"):
        sys.exit("redis-server and openssl are needed")
    work = tempfile.mkdtemp()
    procs = Processes()
    try:
        make_ca(work)
        redis = Redis(procs, work)
        redis_proxy, db_proxy = free_port(), free_port()
        for listen, target, delay in [(redis_proxy, redis.tls_port, REDIS_DELAY_MS), (db_proxy, 5432, DB_DELAY_MS)]:
            procs.start([sys.executable, os.path.join(HERE, "delay_proxy.py"), str(listen),
                         f"127.0.0.1:{target}", str(delay)])
            wait_port(listen)
        near_env = {"REDIS_URL": f"redis://127.0.0.1:{redis.port}"}
        # Default Redis settings on purpose: the far store must work with them.
        far_env = {"REDIS_URL": f"rediss://localhost:{redis_proxy}", "SSL_CERT_FILE": os.path.join(work, "ca.pem")}
        near = Instance(procs, work, "near", near_env)
        far = Instance(procs, work, "far", far_env)
        alone = Instance(procs, work, "alone", {})
        pg = {"dbType": "postgresql", "host": "127.0.0.1", "port": db_proxy, "username": "postgres",
              "database": "test", "ssl": "disable"}
        sqlite = {"dbType": "sqlite", "database": "demo"}
        far_connected = far.ready()
        out = []
        out.append(f"Command: `python3 scripts/regions.py`. Machine: {os.cpu_count()} cores, {os.uname().release}; "
                   f"release build; Redis {REDIS_DELAY_MS * 2} ms away from `far` (delay proxy, rediss:// with "
                   f"default settings), PostgreSQL {DB_DELAY_MS * 2} ms away; one client, kept-alive connections.")
        out.append("")
        out.append(f"- `far` connected to Redis over TLS across {REDIS_DELAY_MS * 2} ms with default settings and "
                   f"became ready: **{'yes' if far_connected else 'NO'}**.")

        # 1. Latency, far with REDIS_URL against alone without it.
        far_token, alone_token = far.token(pg), alone.token(pg)
        before = redis.command_calls()
        far_rows = latency(far, far_token)
        after = redis.command_calls()
        alone_rows = latency(alone, alone_token)
        requests = 2 * (300 + 20)
        out.append("")
        out.append("| request | without `REDIS_URL` p50 / p99 | with `REDIS_URL` 150 ms away p50 / p99 |")
        out.append("|---|---|---|")
        for label in far_rows:
            a, f = alone_rows[label], far_rows[label]
            out.append(f"| {label} | {a[0]:.1f} / {a[1]:.1f} ms | {f[0]:.1f} / {f[1]:.1f} ms |")
        delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
        used = {name: calls for name, calls in sorted(delta.items()) if calls}
        out.append("")
        out.append(f"Redis commands while `far` served {requests} requests (all instances' background work "
                   f"included): {used or 'none'} — {sum(used.values()) / requests:.3f} per request.")

        # 2. A logout on near, refused by far.
        delays = logout_seen(near, far, sqlite)
        out.append("")
        out.append(f"Logout on `near` refused by `far`, 20 tries: p50 {statistics.median(delays):.0f} ms, "
                   f"max {max(delays):.0f} ms.")

        # 3. A shared limit of 40 over two instances.
        # Keys of their own: every instance of one deployment shares one limit.
        limit_env = {"RATE_LIMIT_MAX_REQUESTS": "40", "RATE_LIMIT_WINDOW_MS": "3600000",
                     "REDIS_KEY_PREFIX": "limits:"}
        a = Instance(procs, work, "limit-a", {**near_env, **limit_env})
        b = Instance(procs, work, "limit-b", {**far_env, **limit_env})
        a.ready(), b.ready()
        fresh = hammer([a, b], 3)
        redis.stop()
        redis.start()
        after_restart = hammer([a, b], 3)
        redis.cli("FLUSHALL")
        after_flush = hammer([a, b], 3)
        out.append("")
        out.append(f"Shared limit of 40 over `near`+`far`-like instances, both as fast as they can: {fresh} admitted "
                   f"from a fresh start; {after_restart} more over a Redis restart; {after_flush} more over a "
                   f"flush — {fresh + after_restart + after_flush} in all.")
        a.stop()
        b.stop()

        # 4. A fresh fail-closed instance across the ocean.
        closed = Instance(procs, work, "closed", {**far_env, "REVOCATION_FAIL_MODE": "closed"})
        started = time.monotonic()
        ready = closed.ready()
        ready_ms = (time.monotonic() - started) * 1000
        token = closed.token(sqlite)
        refused = sum(1 for _ in range(200)
                      if closed.request("GET", "/api/database/status", token=token)[0] == 503)
        out.append("")
        out.append(f"A fresh `REVOCATION_FAIL_MODE=closed` instance 150 ms from Redis: ready after "
                   f"{ready_ms:.0f} ms ({'yes' if ready else 'NO'}); then {refused} of 200 token requests "
                   f"refused with 503.")
        closed.stop()

        # 5. A store that flaps: down 1.5 s, up 1.5 s.
        returns = []
        for _ in range(4):
            redis.stop()
            time.sleep(1.5)
            redis.start()
            up = time.monotonic()
            token = near.token(sqlite)
            while near.request("POST", "/api/database/disconnect", token=token)[0] != 200:
                if time.monotonic() - up > 10:
                    break
            while far.request("GET", "/api/database/status", token=token)[0] != 401:
                if time.monotonic() - up > 10:
                    break
            returns.append((time.monotonic() - up) * 1000)
            time.sleep(max(0.0, 1.5 - (time.monotonic() - up)))
        out.append("")
        out.append("Redis down 1.5 s / up 1.5 s, four times: a logout on `near` refused by `far` "
                   f"{', '.join(f'{r:.0f}' for r in returns)} ms after each return.")

        # 6. A logout while the store is unreachable says so.
        redis.stop()
        token = far.token(sqlite)
        status, answer, _ = far.request("POST", "/api/database/disconnect", token=token)
        out.append("")
        out.append(f"A logout with Redis down answers {status} `{answer.get('code')}`.")
        print("\n".join(out))
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
