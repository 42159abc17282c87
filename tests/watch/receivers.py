"""Receivers on 127.0.0.1 for the sinks' tests: an HTTP webhook and syslog over UDP or TCP."""

from __future__ import annotations

import contextlib
import re
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

# RFC 5424 section 6: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP
# STRUCTURED-DATA [SP MSG]; the MSG in UTF-8 starts with a BOM.
RFC5424 = re.compile(
    rb"<(?P<pri>[0-9]{1,3})>1 "
    rb"(?P<timestamp>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    rb"(Z|[+-][0-9]{2}:[0-9]{2})) "
    rb"(?P<hostname>[\x21-\x7e]{1,255}) (?P<app>[\x21-\x7e]{1,48}) "
    rb"(?P<procid>[\x21-\x7e]{1,128}) (?P<msgid>[\x21-\x7e]{1,32}) (?P<sd>-|\[.*?\]) "
    rb"\xef\xbb\xbf(?P<msg>.*)", re.DOTALL)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Webhook:
    """A real HTTP server collecting the alerts POSTed to it (NDJSON bodies)."""

    def __init__(self, port: int) -> None:
        self.alerts: list[dict] = []
        self.requests = 0
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.headers["Content-Type"] == "application/x-ndjson"
                received.alerts += [orjson.loads(line) for line in body.splitlines()]
                received.requests += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SyslogUdp:
    """Collects RFC 5424 datagrams."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while True:
            try:
                data, _ = self.socket.recvfrom(65536)
            except OSError:
                return
            self.messages.append(data)

    def close(self) -> None:
        self.socket.close()


class SyslogTcp:
    """Collects RFC 5424 messages framed by octet counting (RFC 6587)."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        received = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while True:
                    length = b""
                    while not length.endswith(b" "):
                        byte = self.rfile.read(1)
                        if not byte:
                            return
                        length += byte
                    received.messages.append(self.rfile.read(int(length)))

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
