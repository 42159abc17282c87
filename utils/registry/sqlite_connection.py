"""Transactions on one SQLite file shared by every worker, thread and the retrain process.

WAL mode, so readers never wait for the writer. Each write is one ``BEGIN IMMEDIATE``
transaction: it takes the write lock before reading, so a check-then-write (is this SHA-256
known? does this upload cross the threshold?) never interleaves with another process's. Lock
waits use SQLite's busy timeout; a transaction that still finds the database busy is retried
as a whole until ``busy_timeout`` has passed (then RegistryBusyError).

Connections are kept, one per thread and process: opening one costs more than most of the
statements run on it. A connection is never used in a process other than the one that opened
it (SQLite forbids carrying one across ``fork``): a forked child opens its own, and leaves the
inherited one unclosed, since closing it there could disturb the parent's locks. A connection
that failed with anything but "busy" is closed, and the next call opens a fresh one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from utils.registry.interface import RegistryBusyError

T = TypeVar("T")

_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_CONNECT_TIMEOUT = 5.0  # SQLite's own wait per attempt; the retry loop covers the rest
_INHERITED: list[sqlite3.Connection] = []  # opened before a fork: kept, never closed here


def is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _BUSY_CODES or (
        "locked" in str(exc) or "busy" in str(exc))


class SQLiteDatabase:
    """Short transactions on ``path``, each on this thread's connection, retried while busy."""

    def __init__(self, path: Path, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection in this process (opened on first use)."""
        local = self._local
        pid = os.getpid()
        db = getattr(local, "db", None)
        if db is not None and local.pid != pid:
            _INHERITED.append(db)
            db = None
        if db is None:
            db = sqlite3.connect(self.path, timeout=min(self.busy_timeout, _CONNECT_TIMEOUT),
                                 isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            local.db, local.pid, local.timeout = db, pid, self.busy_timeout
        elif local.timeout != self.busy_timeout:  # changed since the connection was opened
            timeout = min(self.busy_timeout, _CONNECT_TIMEOUT)
            db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            local.timeout = self.busy_timeout
        return db

    def _discard(self) -> None:
        """Close this thread's connection after a failure; the next call opens a new one."""
        db = getattr(self._local, "db", None)
        self._local.db = None
        if db is not None and self._local.pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def retry(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """``operation(connection)`` again while SQLite reports the database busy, up to the
        timeout; a connection that failed otherwise is replaced."""
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.01
        while True:
            try:
                return operation(self.connection())
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    self._discard()
                    raise
                if time.monotonic() >= deadline:
                    raise RegistryBusyError(
                        f"the upload registry stayed busy for {self.busy_timeout:g} s") from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            except sqlite3.Error:
                self._discard()
                raise

    def write(self, body: Callable[[sqlite3.Connection], T],
              undo: Callable[[], None] | None = None) -> T:
        """``body`` in one BEGIN IMMEDIATE transaction (retried as a whole while busy).

        ``undo`` reverts what ``body`` did outside the database when the transaction fails.
        """

        def attempt(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = body(db)
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                if undo is not None:
                    undo()
                raise
            return result

        return self.retry(attempt)

    def read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        return self.retry(lambda db: db.execute(sql, params).fetchall())
