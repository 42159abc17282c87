"""gunicorn's threaded worker with time limits on clients that send their request slowly.

gunicorn 27's ``gthread`` worker gives a connection to one of its threads once the first byte
of a request is there; the thread then blocks until the head and the body are in, with no
limit on how long that takes. Twelve clients sending one byte a second held the eight threads
of two workers, and every other request waited for minutes. ``GuardedThreadWorker`` keeps
gunicorn's worker (its poller, thread pool, keep-alive, parser, HTTP/1.1 handling) and changes
how long, and where, a request may be waited for:

- **The head is gathered without a thread.** The bytes that have arrived are read without
  blocking and the connection goes back to gunicorn's poller (the path gunicorn itself uses
  for connections that have sent nothing yet) until the head is complete. No more than
  ``read_timeout`` may pass between two reads of it, and all of it must arrive within
  ``header_timeout`` (from the connection's opening, or on a kept-alive connection from the
  request's first byte). Otherwise the client gets a JSON 408 and the connection is closed;
  a connection that sent nothing is closed after ``read_timeout``.
- **The body is read on the request's thread** (the app streams uploads to disk), but each
  read waits at most ``read_timeout`` and the whole body must arrive within ``body_timeout``
  after the head. Past either, the read raises ``ClientTimeout``, werkzeug's 408, which the
  Flask apps answer as their JSON error; the connection is closed after that answer.
- **A worker accepts only while it has a free thread**, so a worker busy with slow bodies
  leaves new connections to the others instead of queueing them behind its own.
- **Connections are closed on the request's thread.** gunicorn closes them on its poller
  thread, waiting up to 2 s for a client still sending: a few slow clients being closed
  stalled every other connection of the worker.

A slow body still holds a thread until it times out, so the servers run more threads than
they run analyses at once (gunicorn.conf.py). Against many slow clients, the answer is a
buffering reverse proxy in front (docs/CONFIG.md, "Slow clients and reverse proxies").
TLS and HTTP/2 connections (neither is configured here) are served by gthread unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gunicorn import util
from gunicorn.http.unreader import SocketUnreader
from gunicorn.http2 import negotiation
from gunicorn.workers import gthread
from werkzeug.exceptions import RequestTimeout

from contract.json_errors import JsonError

# A head longer than this is handed to gunicorn's parser on a thread (its limits then apply,
# and so do the time limits): 64 KiB bounds what one waiting connection buffers.
HEAD_BUFFER_LIMIT = 64 * 1024
_HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True)
class ClientLimits:
    """How long a client may take to send a request (seconds); the defaults are the settings
    table's (tests/test_settings.py keeps them equal)."""

    read_timeout: float = 10.0
    header_timeout: float = 20.0
    body_timeout: float = 300.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, float]) -> ClientLimits:
        """From the settings a gunicorn config loaded (``CLIENT_*_TIMEOUT``, settings/table.py)."""
        return cls(read_timeout=settings["CLIENT_READ_TIMEOUT"],
                   header_timeout=settings["CLIENT_HEADER_TIMEOUT"],
                   body_timeout=settings["CLIENT_BODY_TIMEOUT"])


class ClientTimeout(RequestTimeout):
    """The client took too long to send its request (a 408 through the apps' error handlers)."""

    description = "the request was not received in time: the client sent it too slowly"


def timeout_error(detail: str) -> JsonError:
    return JsonError(408, "request_timeout", f"the request was not received in time: {detail}")


def timeout_response(detail: str) -> bytes:
    """A complete HTTP/1.1 408 answer with the apps' JSON error body; the connection closes."""
    body = json.dumps(timeout_error(detail).to_dict()).encode()
    head = ("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class DeadlineUnreader(SocketUnreader):
    """gunicorn's socket reader, with every read bounded by ``read_timeout`` and ``deadline``.

    ``deadline`` (a ``time.monotonic()`` value, or None) is the end of the current phase: the
    rest of a long head, or the body. ``request`` is the request being read, told to close its
    connection once a read has timed out (where its next request starts is then unknown).
    """

    def __init__(self, sock: socket.socket, read_timeout: float) -> None:
        super().__init__(sock)
        self.read_timeout = read_timeout
        self.deadline: float | None = None
        self.request: Any = None

    def chunk(self, size_hint: int | None = None) -> bytes:
        timeout = self.read_timeout
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise self._expired()
            timeout = min(timeout, remaining)
        previous = self.sock.gettimeout()
        if previous is not None:  # gunicorn's own bound, e.g. while draining an unread body
            timeout = min(timeout, previous)
        self.sock.settimeout(timeout)
        try:
            return super().chunk(size_hint)
        except TimeoutError:
            raise self._expired() from None
        finally:
            self.sock.settimeout(previous)

    def _expired(self) -> ClientTimeout:
        if self.request is not None:
            self.request.must_close = True
        return ClientTimeout()


class GuardedThreadWorker(gthread.ThreadWorker):
    """gthread with the time limits of ``ClientLimits`` on reading requests (module docstring)."""

    # Set by the gunicorn config file in the master, before the workers fork (they inherit it);
    # the defaults serve a worker class used without it.
    limits: ClientLimits = ClientLimits()

    @classmethod
    def configure(cls, limits: ClientLimits) -> None:
        """The time limits of every worker this master starts from now on."""
        cls.limits = limits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.busy_threads = 0

    # -- accepting only with a free thread -----------------------------------------------------

    def enqueue_req(self, conn: gthread.TConn) -> None:
        self.busy_threads += 1
        super().enqueue_req(conn)
        if self.busy_threads >= self.cfg.threads:
            self.set_accept_enabled(False)

    def set_accept_enabled(self, enabled: bool) -> None:
        """gthread accepts while it has connections to spare, even with every thread busy (for
        instance on slow bodies): a new request then waits in this worker's queue while another
        worker sits idle. Accepting only with a free thread leaves it to the other workers."""
        super().set_accept_enabled(enabled and self.busy_threads < self.cfg.threads)

    # -- the head: gathered on the poller ----------------------------------------------------

    def handle(self, conn: gthread.TConn) -> Any:
        if not self._guards(conn):
            return super().handle(conn)
        result = self._handle_guarded(conn)
        if result is False:
            # gunicorn would close on its poller thread, lingering up to 2 s for a client that
            # is still sending: a few such clients would stall every connection of the worker.
            util.close_graceful(conn.sock)
            conn.closed_by_thread = True
        return result

    def _handle_guarded(self, conn: gthread.TConn) -> Any:
        now = time.monotonic()
        if getattr(conn, "head_started", None) is None:
            conn.head_started = now
        state = self._gather_head(conn)
        if state == "gone":
            return False
        deadline = conn.head_started + self.limits.header_timeout
        if state == "wait":
            if not self.alive:  # stopping: gunicorn keeps no waiting connection then
                return False
            if now < deadline:
                return gthread._DEFER
            self._refuse(conn.sock, conn.client, "the request head did not arrive in time")
            return False
        conn.head_started = None  # the next request on this connection starts afresh
        conn.parser.unreader.deadline = deadline
        conn.parser.unreader.request = None
        return super().handle(conn)

    def _guards(self, conn: gthread.TConn) -> bool:
        return not (self.cfg.is_ssl or conn.is_http2
                    or negotiation.prior_knowledge_allowed(self.cfg, conn.client)
                    or negotiation.upgrade_allowed(self.cfg, conn.client))

    def _gather_head(self, conn: gthread.TConn) -> str:
        """Read what has arrived without blocking: "ready" once the head is complete (or
        HEAD_BUFFER_LIMIT is reached, or the client closed after sending part of one), "wait"
        for more, "gone" if the client closed or reset without sending anything."""
        if conn.parser is None:
            conn.init()  # no TLS, no HTTP/2 (see _guards): only creates the parser
            conn.parser.unreader = DeadlineUnreader(conn.sock, self.limits.read_timeout)
        buffer = conn.parser.unreader.buf
        while True:
            held = buffer.getvalue()
            if _HEAD_END in held or len(held) >= HEAD_BUFFER_LIMIT:
                return "ready"
            try:
                data = conn.sock.recv(HEAD_BUFFER_LIMIT - len(held), socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return "wait"
            except OSError:
                return "gone"
            if not data:
                return "ready" if held else "gone"
            buffer.seek(0, os.SEEK_END)
            buffer.write(data)

    def finish_request(self, conn: gthread.TConn, fs: Any) -> None:
        self.busy_threads -= 1  # gunicorn's loop then accepts again if it had stopped
        if getattr(conn, "closed_by_thread", False):
            self.nr_conns -= 1
            return
        deferred = (self.alive and not fs.cancelled() and fs.exception() is None
                    and fs.result() is gthread._DEFER)
        super().finish_request(conn, fs)
        started = getattr(conn, "head_started", None)
        if deferred and started is not None:
            # gunicorn gives a waiting connection its keep-alive time; a head gets the
            # per-read time, and no more than what is left of its whole time.
            conn.timeout = min(time.monotonic() + self.limits.read_timeout,
                               started + self.limits.header_timeout)

    def murder_pending(self) -> None:
        """Close waiting connections whose time is up (408 if they had sent part of a head).

        Every entry is checked: the time limits above do not keep the queue in order.
        """
        now = time.monotonic()
        expired = [conn for conn in self.pending_conns if conn.timeout <= now]
        for conn in expired:
            self.pending_conns.remove(conn)
            with contextlib.suppress(OSError, KeyError, ValueError):
                self.poller.unregister(conn.sock)
            self.nr_conns -= 1
            if conn.parser is not None and conn.parser.unreader.buf.getvalue():
                self._refuse(conn.sock, conn.client, "the request head did not arrive in time")
            _close_without_waiting(conn.sock)

    # -- the body: read on the request's thread, within its time -----------------------------

    def handle_request(self, req: Any, conn: gthread.TConn) -> bool:
        unreader = conn.parser.unreader
        if isinstance(unreader, DeadlineUnreader):
            unreader.deadline = time.monotonic() + self.limits.body_timeout
            unreader.request = req
        return super().handle_request(req, conn)

    def _keepalive_after(self, conn: gthread.TConn, keepalive: bool) -> bool:
        try:
            return super()._keepalive_after(conn, keepalive)
        except ClientTimeout:  # the unread rest of a body did not come in time: close
            return False

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException
                     ) -> None:
        if isinstance(exc, ClientTimeout):  # the rest of a long head, read on the thread
            self._refuse(client, addr, "the request head did not arrive in time")
            return
        super().handle_error(req, client, addr, exc)

    def _refuse(self, sock: socket.socket, addr: Any, detail: str) -> None:
        """Answer 408 if the socket takes it at once (never wait on this client); the caller
        closes the connection."""
        self.log.info("408 to %s: %s", addr[0] if isinstance(addr, tuple) else addr, detail)
        with contextlib.suppress(OSError):
            sock.send(timeout_response(detail), socket.MSG_DONTWAIT)


def _close_without_waiting(sock: socket.socket) -> None:
    """Close from the poller thread without blocking on the client.

    What the client has sent is read off first and the write side shut down, so the close
    sends FIN after any 408 rather than a reset that could discard it; bytes the client sends
    after that are its own loss.
    """
    try:
        for _ in range(16):
            if not sock.recv(HEAD_BUFFER_LIMIT, socket.MSG_DONTWAIT):
                break
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    util.close(sock)
