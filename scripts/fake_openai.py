#!/usr/bin/env python3
"""A tiny OpenAI-compatible model server for tests, on loopback only.

    python3 scripts/fake_openai.py [--port PORT] [--sql SQL] [--port-file FILE]
                                   [--dns-port-file FILE]

Answers `POST /v1/chat/completions` (any body) with a chat completion whose message
content is one fixed, harmless statement (`SELECT 1 AS one` unless --sql says
otherwise), and every other request with a 404 JSON error in OpenAI's shape. It
listens on 127.0.0.1 (port 0, the default, picks a free one), prints
`listening on 127.0.0.1:PORT` once ready (and writes PORT to --port-file when
given), and runs until killed. Standard library only.

With --dns-port-file it also answers DNS on a free UDP port of 127.0.0.1 (written
to that file), with NXDOMAIN for every name. Point querygate's DB_DNS_SERVERS at
it and a fuzzer's made-up database host names fail at once, on loopback, instead
of going to the machine's resolver (or waiting for a resolver that is not there).
"""

import argparse
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMPLETIONS = "/v1/chat/completions"
# Bodies larger than this are not read (the connection is closed instead).
MAX_BODY = 8 * 1024 * 1024


def completion(sql, model):
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": sql},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def nxdomain(query):
    """The NXDOMAIN answer to a DNS query: same id and question, no records."""
    if len(query) < 12:
        return None
    flags = int.from_bytes(query[2:4], "big")
    if flags & 0x8000:
        return None  # an answer, not a query
    opcode = flags & 0x7800
    rd = flags & 0x0100
    # QR, the query's opcode and RD, RA; RCODE 3 (name error).
    answer_flags = 0x8000 | opcode | rd | 0x0080 | 0x0003
    question_count = int.from_bytes(query[4:6], "big")
    end = 12
    if question_count >= 1:
        # Keep the first question: labels up to the root, then type and class.
        while end < len(query) and query[end] != 0:
            end += 1 + query[end]
        end += 5
        if end > len(query):
            return None
        question_count = 1
    header = query[0:2] + answer_flags.to_bytes(2, "big") + question_count.to_bytes(2, "big")
    return header + bytes(6) + query[12:end]


def serve_dns(sock):
    while True:
        try:
            query, peer = sock.recvfrom(4096)
        except OSError:
            return
        answer = nxdomain(query)
        if answer is not None:
            try:
                sock.sendto(answer, peer)
            except OSError:
                pass


def write_atomically(path, text):
    # Renamed into place, so a reader never sees a half-written file.
    with open(path + ".tmp", "w") as out:
        out.write(text)
    os.replace(path + ".tmp", path)


def make_handler(sql):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fake-openai/1"

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

        def send_json(self, status, payload):
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def read_body(self):
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = 0
            if length > MAX_BODY:
                self.close_connection = True
                return None
            return self.rfile.read(length) if length > 0 else b""

        def not_found(self):
            self.send_json(
                404,
                {
                    "error": {
                        "message": f"Unknown request URL: {self.command} {self.path}",
                        "type": "invalid_request_error",
                        "code": "unknown_url",
                    }
                },
            )

        def do_POST(self):  # noqa: N802 - the base class's name
            body = self.read_body()
            if body is None:
                return
            if self.path.split("?", 1)[0] != COMPLETIONS:
                self.not_found()
                return
            try:
                model = json.loads(body or b"{}").get("model") or "fake"
            except (ValueError, AttributeError):
                model = "fake"
            self.send_json(200, completion(sql, str(model)))

        def do_GET(self):  # noqa: N802
            self.not_found()

        def do_HEAD(self):  # noqa: N802
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--sql", default="SELECT 1 AS one", help="the statement every answer holds")
    parser.add_argument("--port-file", help="write the port to this file once listening")
    parser.add_argument(
        "--dns-port-file",
        help="also answer DNS (NXDOMAIN for every name) on a free UDP port of 127.0.0.1, "
        "written to this file",
    )
    args = parser.parse_args()

    if args.dns_port_file:
        dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dns.bind(("127.0.0.1", 0))
        threading.Thread(target=serve_dns, args=(dns,), daemon=True).start()
        dns_port = dns.getsockname()[1]
        write_atomically(args.dns_port_file, f"{dns_port}\n")
        print(f"DNS (NXDOMAIN) on udp 127.0.0.1:{dns_port}", flush=True)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.sql))
    server.daemon_threads = True
    port = server.server_address[1]
    if args.port_file:
        write_atomically(args.port_file, f"{port}\n")
    print(f"listening on 127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
