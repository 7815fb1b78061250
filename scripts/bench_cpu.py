#!/usr/bin/env python3
"""Throughput and CPU per request of one or more querygate builds, in one run.

    python3 scripts/bench_cpu.py [--seconds N] [--rounds N] [--clients N] NAME=BINARY ...

For every build (started side by side, each on its own port, pools of --clients
connections) and every workload — `GET /api/health`, `GET /api/database/status`
with a token, `execute SELECT 1` on PostgreSQL and on MariaDB — wrk runs with
--clients connections for --seconds, and the CPU time of the querygate process
(user and system apart, from /proc/PID/stat) and of the database server (every
`postgres` process, or `mariadbd`) is read before and after. Builds take turns
within each round, so that a drift of the machine falls on all of them alike; the
table gives the median of the rounds. pgbench runs the same read-only envelope,
pipelined, with the same number of clients, for the ratio of the two.

Loopback only; every run is bounded by --seconds. The rate limiter stays on as
deployed, with a limit no run reaches.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

TICKS = os.sysconf("SC_CLK_TCK")
PG = {"dbType": "postgresql", "host": "127.0.0.1", "username": "postgres", "database": "test", "ssl": "disable"}
MY = {"dbType": "mysql", "host": "127.0.0.1", "username": "root", "database": "test", "ssl": "disable"}


def cpu_of(pids):
    """User and system CPU seconds of `pids` and of their children that ended
    (a PostgreSQL backend that exits is added to the postmaster's), summed; a
    vanished pid counts 0."""
    user = system = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) + int(fields[13])
        system += int(fields[12]) + int(fields[14])
    return user / TICKS, system / TICKS


def pids_named(name):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as comm:
                    if comm.read().strip() == name:
                        found.append(int(entry))
            except OSError:
                pass
    return found


def post(url, body, token=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


class Build:
    def __init__(self, name, binary, port, clients, work):
        self.name, self.port = name, port
        env = {
            "PATH": os.environ.get("PATH", ""),
            "QUERYGATE_KEYS": "bench:" + "A" * 43 + "=",
            "SQLITE_DIR": os.path.join(work, name),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "POOL_MAX_CONNECTIONS": str(clients),
            "RATE_LIMIT_MAX_REQUESTS": "1000000000",
            "RUST_LOG": "warn",
        }
        if "TOKIO_WORKER_THREADS" in os.environ:
            env["TOKIO_WORKER_THREADS"] = os.environ["TOKIO_WORKER_THREADS"]
        self.log = open(os.path.join(work, name + ".log"), "w")
        self.process = subprocess.Popen([binary], env=env, stdout=self.log, stderr=self.log)
        self.url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(self.url + "/api/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
        else:
            sys.exit(f"{name} did not start; see {self.log.name}")
        self.tokens = {
            "pg": post(self.url + "/api/database/connect", PG)["token"],
            "my": post(self.url + "/api/database/connect", MY)["token"],
        }

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def wrk_script(work, name, method, body, token):
    path = os.path.join(work, name + ".lua")
    with open(path, "w") as script:
        script.write(f'wrk.method = "{method}"\n')
        if body:
            script.write(f"wrk.body = '{json.dumps(body)}'\n")
            script.write('wrk.headers["Content-Type"] = "application/json"\n')
        if token:
            script.write(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
    return path


def run_wrk(url, script, clients, seconds):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "-s", script, url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    if "Non-2xx" in out:
        sys.exit("wrk saw errors:\n" + out)
    requests = int(next(line.split()[0] for line in out.splitlines() if "requests in" in line))
    return requests


def measure(build, workload, database, clients, seconds, work):
    method, path, body, token = workload
    script = wrk_script(work, f"{build.name}-{path.strip('/').replace('/', '-')}", method, body, token)
    db_pids = pids_named(database) if database else []
    qg_before, db_before = cpu_of([build.process.pid]), cpu_of(db_pids)
    started = time.monotonic()
    requests = run_wrk(build.url + path, script, clients, seconds)
    elapsed = time.monotonic() - started
    qg_after, db_after = cpu_of([build.process.pid]), cpu_of(db_pids)
    per = lambda before, after, i: (after[i] - before[i]) / requests * 1e6
    return {
        "rps": requests / elapsed,
        "user": per(qg_before, qg_after, 0),
        "sys": per(qg_before, qg_after, 1),
        "db": (per(db_before, db_after, 0) + per(db_before, db_after, 1)) if database else None,
    }


def pgbench(clients, seconds, work):
    script = os.path.join(work, "pipelined.sql")
    with open(script, "w") as out:
        # querygate's own envelope for `execute`, in one flight.
        out.write("\\startpipeline\nBEGIN READ ONLY;\nSELECT 1;\nROLLBACK;\nDISCARD ALL;\n\\endpipeline\n")
    before = cpu_of(pids_named("postgres"))
    out = subprocess.run(
        ["pgbench", "-n", "-M", "extended", "-h", "127.0.0.1", "-U", "postgres", "-c", str(clients),
         "-j", "2", "-T", str(seconds), "-f", script, "test"],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout
    after = cpu_of(pids_named("postgres"))
    transactions = int(next(line.split(":")[1] for line in out.splitlines()
                            if "number of transactions actually processed" in line).split("/")[0])
    tps = float(next(line.split("=")[1].split()[0] for line in out.splitlines() if line.startswith("tps")))
    return {"rps": tps, "db": (sum(after) - sum(before)) / transactions * 1e6}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--only", default="health,status,execute-pg,execute-my")
    parser.add_argument("builds", nargs="+")
    args = parser.parse_args()
    if not shutil.which("wrk") or not shutil.which("pgbench"):
        sys.exit("wrk and pgbench are needed (apt-get install wrk postgresql-client)")
    work = tempfile.mkdtemp()
    builds = []
    try:
        for index, entry in enumerate(args.builds):
            name, binary = entry.split("=", 1)
            builds.append(Build(name, binary, 18300 + index, args.clients, work))
        workloads = {
            "health": (lambda b: ("GET", "/api/health", None, None), None),
            "status": (lambda b: ("GET", "/api/database/status", None, b.tokens["pg"]), None),
            "execute-pg": (lambda b: ("POST", "/api/database/execute", {"sql": "SELECT 1"}, b.tokens["pg"]), "postgres"),
            "execute-my": (lambda b: ("POST", "/api/database/execute", {"sql": "SELECT 1"}, b.tokens["my"]), "mariadbd"),
        }
        chosen = [w for w in args.only.split(",") if w]
        # Warm every pool to its full size.
        for build in builds:
            for name in chosen:
                workload, database = workloads[name]
                measure(build, workload(build), database, args.clients, 2, work)
        results = {}
        envelope = []
        for _ in range(args.rounds):
            for name in chosen:
                workload, database = workloads[name]
                for build in builds:
                    results.setdefault((name, build.name), []).append(
                        measure(build, workload(build), database, args.clients, args.seconds, work))
            envelope.append(pgbench(args.clients, args.seconds, work))
    finally:
        for build in builds:
            build.stop()
    median = lambda runs, key: statistics.median(run[key] for run in runs)
    pipelined = median(envelope, "rps")
    print(f"Command: `python3 scripts/bench_cpu.py --seconds {args.seconds} --rounds {args.rounds} "
          f"--clients {args.clients} {' '.join(args.builds)}`, medians of {args.rounds} rounds. "
          f"Machine: {os.cpu_count()} cores, {os.uname().release}; wrk -t2 -c{args.clients}, pools of "
          f"{args.clients}, pgbench -c{args.clients} -j2; everything shares the cores.")
    print()
    print("| workload | build | requests/s | querygate user µs/req | querygate sys µs/req | "
          "querygate total µs/req | database µs/req | of pgbench's pipelined envelope |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, build), runs in results.items():
        rps, user, system = median(runs, "rps"), median(runs, "user"), median(runs, "sys")
        db = median(runs, "db") if runs[0]["db"] is not None else None
        ratio = f"{rps / pipelined:.2f}" if name == "execute-pg" else "–"
        db_text = f"{db:.1f}" if db is not None else "–"
        print(f"| {name} | {build} | {rps:,.0f} | {user:.1f} | {system:.1f} | {user + system:.1f} | "
              f"{db_text} | {ratio} |")
    print(f"| pgbench envelope, pipelined | – | {pipelined:,.0f} | – | – | – | "
          f"{median(envelope, 'db'):.1f} | 1 |")


if __name__ == "__main__":
    main()
