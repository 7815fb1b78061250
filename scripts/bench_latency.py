#!/usr/bin/env python3
"""Latency of querygate's requests against databases put far away by
scripts/delay_proxy.py, in milliseconds and in round trips to the database.

    python3 scripts/bench_latency.py BASE_URL PG_PORT MYSQL_PORT RTT_MS

One client, requests one after another on a kept-alive HTTP connection, so the
figures are the latency a user sees. Prints a Markdown table.
"""

import http.client
import json
import statistics
import sys
import time
import urllib.parse


def request(conn, method, path, body=None, token=None, headers=None):
    all_headers = {"Content-Type": "application/json"}
    if token:
        all_headers["Authorization"] = "Bearer " + token
    all_headers.update(headers or {})
    started = time.perf_counter()
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=all_headers)
    response = conn.getresponse()
    data = response.read()
    elapsed = (time.perf_counter() - started) * 1000.0
    if response.status != 200:
        sys.exit(f"{method} {path} answered {response.status}: {data[:300]!r}")
    return elapsed, json.loads(data) if data else None


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main():
    base, pg_port, my_port, rtt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    url = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    engines = {
        "PostgreSQL": {"dbType": "postgresql", "host": "127.0.0.1", "port": pg_port, "username": "postgres",
                       "database": "test", "ssl": "disable"},
        "MariaDB": {"dbType": "mysql", "host": "127.0.0.1", "port": my_port, "username": "root",
                    "database": "test", "ssl": "disable"},
    }
    rows = []
    for name, body in engines.items():
        connects = []
        for _ in range(20):
            elapsed, answer = request(conn, "POST", "/api/database/connect", body)
            connects.append(elapsed)
            # A disconnect drops the pool, so that the next connect is a fresh one.
            request(conn, "POST", "/api/database/disconnect", token=answer["token"])
        _, answer = request(conn, "POST", "/api/database/connect", body)
        token = answer["token"]
        for _ in range(5):
            request(conn, "POST", "/api/database/execute", {"sql": "SELECT 1"}, token)
        executes = [request(conn, "POST", "/api/database/execute", {"sql": "SELECT 1"}, token)[0]
                    for _ in range(200)]
        schemas = [request(conn, "GET", "/api/database/schema", token=token,
                           headers={"Cache-Control": "no-cache"})[0] for _ in range(50)]
        for what, values in [("execute SELECT 1", executes), ("schema (no-cache)", schemas),
                             ("connect (fresh pool)", connects)]:
            p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
            rows.append(f"| {name} | {what} | {len(values)} | {p50:.1f} ms | {p99:.1f} ms | "
                        f"{p50 / rtt:.1f} | {statistics.mean(values):.1f} ms |")
    print(f"| engine | request | n | p50 | p99 | p50 in round trips ({rtt:g} ms) | mean |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
