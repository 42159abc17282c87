"""One retrain (or rollback) at a time across every instance: a PostgreSQL session-level
advisory lock on a connection of its own, held by the retraining process itself.

If that process is killed, even with SIGKILL, the kernel closes its socket, PostgreSQL ends the
session and the lock goes with it: no lease to expire, no stale lock on some machine.
"""

from __future__ import annotations

import contextlib
import time

import psycopg

from utils.pg_schema import LOCK_NAMESPACE, RETRAIN_LOCK, RegistryUnavailable, connect
from utils.registry.interface import RetrainBusy


def lock_held_sql() -> str:
    """A boolean SQL expression: whether any session holds the retrain lock now."""
    return ("EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            f"AND classid::bigint = {LOCK_NAMESPACE} AND objid::bigint = {RETRAIN_LOCK} "
            "AND objsubid = 2)")


class PostgresRetrainLock:
    """One retrain (or rollback) at a time across every instance: a session-level advisory
    lock on a connection opened for it alone, held by the retraining process itself.

    The same methods as the flock ``RetrainLock``. The connection is close-on-exec (libpq
    sets it), so a child does not inherit the lock.
    """

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def acquire(self, wait: float = 0.0) -> bool:
        """Take the lock, polling for up to ``wait`` seconds; False if another session holds
        it. RegistryUnavailable if the database cannot be reached."""
        if self._conn is not None:
            return True
        try:
            conn = connect(self.url, connect_timeout=self.connect_timeout, autocommit=True,
                           application_name="anomalyze-retrain-lock")
        except psycopg.OperationalError as exc:
            raise RegistryUnavailable(f"PostgreSQL: {exc}") from exc
        deadline = time.monotonic() + wait
        try:
            while True:
                taken = conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                     (LOCK_NAMESPACE, RETRAIN_LOCK)).fetchone()[0]
                if taken:
                    self._conn = conn
                    return True
                if time.monotonic() >= deadline:
                    conn.close()
                    return False
                time.sleep(0.1)
        except psycopg.OperationalError as exc:
            conn.close()
            raise RegistryUnavailable(f"PostgreSQL: {exc}") from exc

    def release(self) -> None:
        """Unlock (answered once the lock is free), then close the session, which would
        release it anyway, a moment later."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s, %s)",
                             (LOCK_NAMESPACE, RETRAIN_LOCK))
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def __del__(self) -> None:
        self.release()

    def __enter__(self) -> PostgresRetrainLock:
        if not self.acquire():
            raise RetrainBusy("a retrain or rollback is already in progress")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
