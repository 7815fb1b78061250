#!/usr/bin/env python3
"""Slow request bodies against a default-config querygate, from outside.

    python3 scripts/slow_bodies.py [BINARY] [SECONDS]   (default target/release/querygate, 60)

Starts the binary with its defaults (only keys, a port and a SQLite folder are
given), opens 256 connections from 127.0.0.2 and 256 from 127.0.0.3 that each
announce a 1,000,000-byte body to `connect` and send one byte every 10 seconds
(reconnecting when cut off), and meanwhile asks `GET /api/database/status` from
127.0.0.4 every 100 ms. Prints the worst latency of the third address, how many
of its answers were not 200, and how the dribbled bodies ended. Loopback only;
bounded by SECONDS.
"""

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

BINARY = sys.argv[1] if len(sys.argv) > 1 else "target/release/querygate"
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
PORT = 18410
HEAD = (b"POST /api/database/connect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000\r\n\r\n{")


async def dribble(ip, stop, ends):
    """One slow client: connects, trickles, reconnects when the server answers."""
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", PORT, local_addr=(ip, 0))
            writer.write(HEAD)
            await writer.drain()
            while time.monotonic() < stop:
                try:
                    answer = await asyncio.wait_for(reader.read(200), timeout=10)
                except asyncio.TimeoutError:
                    writer.write(b" ")
                    await writer.drain()
                    continue
                status = answer.split(b" ")[1].decode() if answer.startswith(b"HTTP/") else "closed"
                ends[status] = ends.get(status, 0) + 1
                break
            writer.close()
        except OSError:
            ends["refused"] = ends.get("refused", 0) + 1
            await asyncio.sleep(1)


async def third_address(stop):
    worst, failures, count = 0.0, 0, 0
    while time.monotonic() < stop:
        started = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", PORT, local_addr=("127.0.0.4", 0))
            writer.write(b"GET /api/database/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(64), timeout=5)
            writer.close()
            ok = answer.startswith(b"HTTP/1.1 200")
        except (OSError, asyncio.TimeoutError):
            ok = False
        worst = max(worst, time.monotonic() - started)
        failures += 0 if ok else 1
        count += 1
        await asyncio.sleep(0.1)
    return worst, failures, count


async def main():
    stop = time.monotonic() + SECONDS
    ends = {}
    tasks = [asyncio.create_task(dribble(ip, stop, ends)) for ip in ["127.0.0.2", "127.0.0.3"] for _ in range(256)]
    worst, failures, count = await third_address(stop)
    await asyncio.gather(*tasks)
    return worst, failures, count, ends


def run():
    work = tempfile.mkdtemp()
    env = {"PATH": os.environ.get("PATH", ""), "QUERYGATE_KEYS": "slow:" + "A" * 43 + "=",
           "PORT": str(PORT), "HOST": "127.0.0.1", "SQLITE_DIR": work, "RUST_LOG": "warn"}
    server = subprocess.Popen([BINARY], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/api/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        worst, failures, count, ends = asyncio.run(main())
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"{SECONDS:.0f} s, 512 dribbling connections from 127.0.0.2 and 127.0.0.3 (1 byte / 10 s):")
    print(f"  127.0.0.4: {count} status requests, {failures} not 200 within 5 s, worst {worst * 1000:.0f} ms")
    print(f"  dribbled bodies ended: {dict(sorted(ends.items()))}")
    sys.exit(1 if failures or worst > 2 else 0)


if __name__ == "__main__":
    run()
