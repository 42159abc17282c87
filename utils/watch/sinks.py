"""Where alerts go: an NDJSON file (rotated), stdout, an HTTP webhook, syslog (RFC 5424).

Each sink runs on its own thread (SinkRunner), reading committed alerts from the outbox from
its acknowledged offset on. A failed delivery is retried with exponential back-off and never
skipped, so a receiver that is down gets every alert once it is back, in order. Each alert
carries ``event.id`` (unique per watcher), so a receiver can tell a resend from a new alert
in the one case a resend can happen: a crash between the receiver's acceptance and the saved
acknowledgement (a stop by SIGTERM waits for the acknowledgement).

Syslog: the standard library's SysLogHandler writes RFC 3164 messages, so RFC 5424 is
formatted here (rfc5424_message) and sent over UDP (one message per datagram, RFC 5426) or
TCP (octet-counting framing, RFC 6587).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

from utils.watch.metrics import WatchMetrics
from utils.watch.outbox import Outbox

log = logging.getLogger("anomalyze.watch")


class Sink:
    """Delivers a batch of alert lines; raises when it could not (the batch is retried)."""

    name = "sink"

    def send(self, lines: list[bytes]) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """Saved with the acknowledgement (after each delivery)."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Undo whatever was written after the state saved with the last acknowledgement."""

    def close(self) -> None:
        pass


class FileSink(Sink):
    """Appends NDJSON to ``path``; past ``max_bytes`` the file becomes ``path.1`` (the older
    ones ``.2`` ... up to ``backups``, the oldest deleted), as logging's RotatingFileHandler
    does. Exactly once across restarts: the file's size is saved with each acknowledgement
    and whatever lies beyond it at start-up (written, not acknowledged) is cut off."""

    name = "file"

    def __init__(self, path: Path, max_bytes: int = 100 << 20, backups: int = 5) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.backups = backups

    def send(self, lines: list[bytes]) -> None:
        with open(self.path, "ab") as handle:
            handle.write(b"".join(lines))
            handle.flush()
            os.fsync(handle.fileno())

    def state(self) -> dict[str, Any]:
        size = self.path.stat().st_size if self.path.exists() else 0
        if size >= self.max_bytes:
            self._rotate()
            size = 0
        return {"size": size}

    def restore(self, state: dict[str, Any]) -> None:
        size = state.get("size")
        if size is not None and self.path.exists() and self.path.stat().st_size > size:
            with open(self.path, "r+b") as handle:
                handle.truncate(size)

    def _rotate(self) -> None:
        for number in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{number + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()


class StdoutSink(Sink):
    name = "stdout"

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout.buffer

    def send(self, lines: list[bytes]) -> None:
        self.stream.write(b"".join(lines))
        self.stream.flush()


class WebhookSink(Sink):
    """POSTs each batch as NDJSON (``application/x-ndjson``); any 2xx answer accepts it."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0, headers: dict | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Content-Type": "application/x-ndjson",
                                     "User-Agent": "anomalyze-watch", **(headers or {})})

    def send(self, lines: list[bytes]) -> None:
        response = self.session.post(self.url, data=b"".join(lines), timeout=self.timeout)
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"webhook answered {response.status_code}")

    def close(self) -> None:
        self.session.close()


SYSLOG_SEVERITY = {"Critical": 2, "High": 3, "Medium": 4, "Low": 5}  # crit, err, warning, notice
LOCAL0 = 16
_BOM = "\ufeff".encode()


def _header_token(text: str, limit: int) -> str:
    """An RFC 5424 header field: printable US-ASCII without spaces, or the nil value."""
    token = "".join(char for char in text if 33 <= ord(char) <= 126)[:limit]
    return token or "-"


def rfc5424_message(alert_line: bytes, *, hostname: str, app_name: str = "anomalyze",
                    procid: str = "-", facility: int = LOCAL0) -> bytes:
    """One RFC 5424 message carrying the alert as its MSG (UTF-8 with a BOM, as 6.4 asks).

    PRI from the alert's severity; TIMESTAMP the alert's ``event.created`` (RFC 3339, UTC);
    MSGID ``alert``; no structured data (everything is in the JSON).
    """
    alert = orjson.loads(alert_line)
    severity = SYSLOG_SEVERITY.get(alert.get("anomalyze", {}).get("severity"), 5)
    timestamp = alert.get("event", {}).get("created") or "-"
    header = (f"<{facility * 8 + severity}>1 {timestamp} {_header_token(hostname, 255)} "
              f"{_header_token(app_name, 48)} {_header_token(procid, 128)} alert -")
    return header.encode("ascii") + b" " + _BOM + alert_line.rstrip(b"\n")


class SyslogSink(Sink):
    """RFC 5424 to ``udp://host:port`` or ``tcp://host:port``."""

    name = "syslog"

    def __init__(self, address: str, facility: int = LOCAL0, timeout: float = 10.0) -> None:
        parts = urlsplit(address)
        if parts.scheme not in ("udp", "tcp") or not parts.hostname:
            raise ValueError(f"syslog address must be udp://host:port or tcp://host:port, "
                             f"got {address!r}")
        self.transport = parts.scheme
        self.target = (parts.hostname, parts.port or 514)
        self.facility = facility
        self.timeout = timeout
        self.hostname = socket.gethostname()
        self.procid = str(os.getpid())
        self._socket: socket.socket | None = None

    def send(self, lines: list[bytes]) -> None:
        messages = [rfc5424_message(line, hostname=self.hostname, procid=self.procid,
                                    facility=self.facility) for line in lines]
        if self.transport == "udp":
            if self._socket is None:
                self._socket = socket.socket(socket.AF_INET6 if ":" in self.target[0]
                                             else socket.AF_INET, socket.SOCK_DGRAM)
            for message in messages:
                self._socket.sendto(message, self.target)
            return
        try:
            if self._socket is None:
                self._socket = socket.create_connection(self.target, timeout=self.timeout)
            self._socket.sendall(b"".join(b"%d %s" % (len(m), m) for m in messages))
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None


class SinkRunner(threading.Thread):
    """Delivers the outbox to one sink, from its acknowledged offset, until stopped."""

    def __init__(self, sink: Sink, outbox: Outbox, metrics: WatchMetrics, *,
                 batch: int = 500, backoff_initial: float = 0.5, backoff_max: float = 30.0,
                 idle_wait: float = 0.5) -> None:
        super().__init__(name=f"sink-{sink.name}", daemon=True)
        self.sink = sink
        self.outbox = outbox
        self.metrics = metrics
        self.batch = batch
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.idle_wait = idle_wait
        self._stop_event = threading.Event()
        saved = outbox.load_ack(sink.name)
        if saved is None:  # a new sink starts with what comes next, from now on
            self.acked = outbox.committed
            outbox.save_ack(sink.name, self.acked, **sink.state())
        else:
            self.acked = int(saved["offset"])
            sink.restore(saved)

    def run(self) -> None:
        backoff = self.backoff_initial
        while not self._stop_event.is_set():
            lines, after = self.outbox.read(self.acked, self.batch)
            self.metrics.pending.labels(self.sink.name).set(
                self.outbox.pending_bytes(self.acked))
            if not lines:
                self.outbox.wait(self.acked, self.idle_wait)
                continue
            try:
                self.sink.send(lines)
            except Exception as exc:  # any failure: keep the alerts, try again later
                self.metrics.sink_errors.labels(self.sink.name).inc()
                log.warning("sink %s failed (%s: %s); retrying in %.1f s", self.sink.name,
                            type(exc).__name__, exc, backoff)
                self._stop_event.wait(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, self.backoff_max)
                continue
            backoff = self.backoff_initial
            self.outbox.save_ack(self.sink.name, after, **self.sink.state())
            self.acked = after
            self.metrics.sent.labels(self.sink.name).inc(len(lines))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the delivery under way (its acknowledgement saved)."""
        self._stop_event.set()
        self.outbox.wake()
        self.join(timeout)
        self.sink.close()


def sink_from_spec(kind: str, target: str | None) -> Sink:
    if kind == "file":
        return FileSink(Path(target))
    if kind == "stdout":
        return StdoutSink()
    if kind == "webhook":
        return WebhookSink(target)
    if kind == "syslog":
        return SyslogSink(target)
    raise ValueError(f"unknown sink {kind!r}")

