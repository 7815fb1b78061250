#!/usr/bin/env python3
"""Latency of querygate's requests against databases put far away by
scripts/delay_proxy.py, in milliseconds and in round trips to the database.

    python3 scripts/bench_latency.py BASE_URL PG_PORT MYSQL_PORT RTT_MS [OTHER_URL]

With OTHER_URL (another instance with the same keys), cancels are sent there.

One client, requests one after another on a kept-alive HTTP connection, so the
figures are the latency a user sees. Prints a Markdown table.
"""

import http.client
import json
import statistics
import sys
import threading
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


def cancel_latencies(url, other, token, sleep_sql, samples):
    """Starts a long statement with a queryId on `url`, cancels it through
    `other` as soon as it runs, and times cancel-sent to answer-received."""
    results = []
    for i in range(samples):
        query_id = f"bench-{time.time_ns()}-{i}"
        answered = {}

        def run():
            conn = http.client.HTTPConnection(url.hostname, url.port)
            body = json.dumps({"sql": sleep_sql, "queryId": query_id})
            conn.request("POST", "/api/database/execute", body=body,
                         headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
            response = conn.getresponse()
            response.read()
            answered["at"] = time.perf_counter()
            answered["status"] = response.status

        worker = threading.Thread(target=run)
        worker.start()
        conn = http.client.HTTPConnection(other.hostname, other.port)
        sent = None
        for _ in range(500):
            started = time.perf_counter()
            conn.request("POST", "/api/database/cancel", body=json.dumps({"queryId": query_id}),
                         headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                sent = started
                break
            time.sleep(0.01)
        worker.join(timeout=40)
        if sent is None or answered.get("status") != 409:
            sys.exit(f"cancel sample {i}: cancel sent={sent is not None}, execute answered {answered}")
        results.append((answered["at"] - sent) * 1000.0)
    return results


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main():
    base, pg_port, my_port, rtt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    url = urllib.parse.urlparse(base)
    other = urllib.parse.urlparse(sys.argv[5]) if len(sys.argv) > 5 else url
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
        three = {"statements": [{"sql": "SELECT 1 AS a"}, {"sql": "SELECT 2 AS b"}, {"sql": "SELECT 3 AS c"}]}
        batches = [request(conn, "POST", "/api/database/batch", three, token)[0] for _ in range(200)]
        sleep_sql = "SELECT pg_sleep(30)" if body["dbType"] == "postgresql" else "SELECT SLEEP(30)"
        cancels = cancel_latencies(url, other, token, sleep_sql, 10)
        for what, values in [("execute SELECT 1", executes), ("batch of three", batches),
                             ("schema (no-cache)", schemas), ("connect (fresh pool)", connects),
                             ("cancel through the other instance → cancelled answer", cancels)]:
            p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
            rows.append(f"| {name} | {what} | {len(values)} | {p50:.1f} ms | {p99:.1f} ms | "
                        f"{p50 / rtt:.1f} | {statistics.mean(values):.1f} ms |")
    print(f"| engine | request | n | p50 | p99 | p50 in round trips ({rtt:g} ms) | mean |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
