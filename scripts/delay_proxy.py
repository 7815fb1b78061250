#!/usr/bin/env python3
"""A loopback TCP proxy that delays each direction, to put a database "far away".

    python3 scripts/delay_proxy.py LISTEN_PORT TARGET_HOST:TARGET_PORT DELAY_MS

Every chunk read from one side is written to the other DELAY_MS later, in order,
without holding back the chunks behind it (pipelined traffic stays pipelined), so
a round trip costs 2 x DELAY_MS. It listens on 127.0.0.1 only and connects only
to a loopback target. It prints "ready" when listening and runs until killed.
"""

import asyncio
import ipaddress
import socket
import sys
import time


async def pump(reader, writer, delay):
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            # The event loop's timers overshoot by up to a millisecond; sleep to
            # just before the due time, then yield until it, so that the delay is
            # what was asked for and not the timer's granularity.
            pause = due - time.monotonic() - 0.002
            if pause > 0:
                await asyncio.sleep(pause)
            while time.monotonic() < due:
                await asyncio.sleep(0)
            writer.write(data)
            await writer.drain()
        writer.close()

    delivering = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            queue.put_nowait((time.monotonic() + delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((0, None))
    try:
        await delivering
    except (ConnectionError, OSError):
        pass


async def main():
    listen_port = int(sys.argv[1])
    target_host, target_port = sys.argv[2].rsplit(":", 1)
    delay = float(sys.argv[3]) / 1000.0
    if not ipaddress.ip_address(socket.gethostbyname(target_host)).is_loopback:
        sys.exit("delay_proxy: the target must be a loopback address")

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(target_host, int(target_port))
        except OSError:
            client_writer.close()
            return
        for sock in (client_writer.get_extra_info("socket"), server_writer.get_extra_info("socket")):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(
            pump(client_reader, server_writer, delay),
            pump(server_reader, client_writer, delay),
        )

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
