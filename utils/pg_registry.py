"""The upload registry, retrain queue, run log and retrain lock on PostgreSQL, shared by instances.

The same methods and answers as the SQLite registry (utils/registry/sqlite.py), so the API and
the retrain code use either. What changes with several machines:

- Keep-once and the counter are one statement: ``INSERT ... ON CONFLICT (sha256) DO NOTHING``
  feeds the ``UPDATE`` of the counter in a CTE, so two instances keeping the same content at
  once insert one row and count it once (the second insert waits for the first on the unique
  index, then does nothing, and an update with no inserted row changes nothing). The counter
  row's lock orders concurrent updates; each re-reads the latest value (READ COMMITTED).
- The retrain lock is a session-level advisory lock held on a connection of its own by the
  retraining process (utils/pg_lock.py).
- Kept files live where ``files`` puts them (utils/pg_files.py: the data folder, as the SQLite
  registry; utils/shared_store.py: the object store), named in the row's ``stored_path``.
  Files never move: a status change is a row update only.

Database or network errors surface as ``RegistryUnavailable``; the API answers ``stored:
false`` and carries on scoring (docs/RELIABILITY.md).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from utils.pg_analyst import PostgresAnalystTables
from utils.pg_baseline import PostgresBaselineJobs
from utils.pg_files import KeptFiles, LocalFiles
from utils.pg_lock import PostgresRetrainLock, lock_held_sql
from utils.pg_schema import LOCK_NAMESPACE, UPLOAD_QUOTA_LOCK, RegistryUnavailable, upgrade
from utils.registry.interface import (
    DEFAULT_THRESHOLD,
    OUTCOMES,
    STATUSES,
    NotQuarantined,
    Registration,
    UnknownUpload,
    Upload,
    UploadQuota,
)
from utils.registry.kept_files import sanitise_name
from utils.registry.sqlite import pid_alive, utc_timestamp

__all__ = ["HOST", "KeptFiles", "LocalFiles", "PostgresRegistry", "PostgresRetrainLock",
           "RegistryUnavailable"]

T = TypeVar("T")
HOST = socket.gethostname()


_KEEP_AND_COUNT = """
WITH new AS (
    INSERT INTO uploads (sha256, original_name, stored_path, size, rows, has_labels,
                         input_kind, received_at, trusted, client)
    VALUES (%(sha256)s, %(name)s, %(location)s, %(size)s, %(rows)s, %(has_labels)s,
            %(input_kind)s, %(received_at)s, %(trusted)s, %(client)s)
    ON CONFLICT (sha256) DO NOTHING
    RETURNING *
), counted AS (
    UPDATE retrain_state SET
        uploads_since_retrain = CASE WHEN %(threshold)s > 0
            AND uploads_since_retrain + 1 >= %(threshold)s THEN 0
            ELSE uploads_since_retrain + 1 END,
        requests = CASE WHEN %(threshold)s > 0
            AND uploads_since_retrain + 1 >= %(threshold)s THEN 1 ELSE requests END
    WHERE id = 1 AND %(counted)s AND EXISTS (SELECT 1 FROM new)
    RETURNING %(threshold)s > 0 AND uploads_since_retrain = 0 AS due
)
SELECT new.*, (SELECT due FROM counted) AS due FROM new
"""


class PostgresRegistry(PostgresAnalystTables, PostgresBaselineJobs):
    """The registry in the database at ``url``; kept files in ``files`` (default: the data
    folder). Safe from any thread; each process opens its own small pool on first use."""

    def __init__(self, url: str, data_dir: Path | str, *, files: KeptFiles | None = None,
                 pool_size: int = 4, timeout: float = 5.0, create_schema: bool = True) -> None:
        self.url = url
        self.data_dir = Path(data_dir)
        self.files = files or LocalFiles(self.data_dir)
        self.pool_size = pool_size
        self.timeout = timeout
        self._pool: ConnectionPool | None = None
        self._pool_pid: int | None = None
        self._pool_lock = threading.Lock()
        self._schema_ready = not create_schema
        if create_schema:
            with contextlib.suppress(RegistryUnavailable):  # tried again on first use
                self.upgrade_schema()

    def upgrade_schema(self) -> None:
        """Create or upgrade the schema (utils.pg_schema.upgrade: safe from many at once)."""
        try:
            upgrade(self.url)
        except psycopg.OperationalError as exc:
            raise RegistryUnavailable(f"PostgreSQL: {exc}") from exc
        self._schema_ready = True

    # --- connections -----------------------------------------------------------------------
    def _get_pool(self) -> ConnectionPool:
        """This process's pool (a pool must not cross a fork: gunicorn preloads the app)."""
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = ConnectionPool(
                    self.url, min_size=0, max_size=self.pool_size, open=True,
                    timeout=self.timeout, check=ConnectionPool.check_connection,
                    kwargs={"connect_timeout": max(1, int(self.timeout)),
                            "row_factory": dict_row},
                    name=f"anomalyze-{os.getpid()}")
                self._pool_pid = os.getpid()
            return self._pool

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        if not self._schema_ready:  # the database was away when this process started
            self.upgrade_schema()
        try:
            with self._get_pool().connection() as conn, conn.transaction():
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            raise RegistryUnavailable(f"PostgreSQL: {exc}") from exc

    def _rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        with self._transaction() as conn:
            return conn.execute(sql, params).fetchall()

    def reachable(self) -> bool:
        try:
            self._rows("SELECT 1")
        except RegistryUnavailable:
            return False
        return True

    def close(self) -> None:
        if self._pool is not None and self._pool_pid == os.getpid():
            self._pool.close()
        self._pool = None

    # --- uploads ---------------------------------------------------------------------------
    def register(self, path: Path | str, *, sha256: str, original_name: str | None, rows: int,
                 has_labels: bool, input_kind: str, threshold: int | None = None,
                 trusted: bool = False, client: str | None = None,
                 quota: UploadQuota | None = None, counted: bool = True) -> Registration:
        """Keep the upload once per content and count it (see the module docstring); the
        contract of ``UploadRegistry.register``. The file is kept before its row is written,
        so a row never names a missing file; a row not written forgets the file again."""
        path = Path(path)
        threshold = DEFAULT_THRESHOLD if threshold is None else int(threshold)
        known = self.find(sha256)
        if known is not None:
            return self._duplicate(known, trusted)
        size = path.stat().st_size
        if quota is not None:
            with self._transaction() as conn:
                reason = self._quota_refusal(conn, quota, size, client)
            if reason is not None:
                return Registration(False, False, None, False, reason)
        location = self.files.keep(path, sha256, original_name)
        params = {"sha256": sha256, "name": sanitise_name(original_name),
                  "location": location, "size": size, "rows": int(rows),
                  "has_labels": bool(has_labels), "input_kind": input_kind,
                  "received_at": utc_timestamp(), "trusted": bool(trusted), "client": client,
                  "threshold": threshold, "counted": bool(counted)}
        try:
            with self._transaction() as conn:
                if quota is not None:  # concurrent uploads must not overshoot it together
                    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                                 (LOCK_NAMESPACE, UPLOAD_QUOTA_LOCK))
                    reason = self._quota_refusal(conn, quota, size, client)
                    if reason is not None:
                        self.files.forget(location, path)
                        return Registration(False, False, None, False, reason)
                row = conn.execute(_KEEP_AND_COUNT, params).fetchone()
        except BaseException:
            with contextlib.suppress(OSError):
                self.files.forget(location, path)
            raise
        if row is None:  # another process kept the same content meanwhile
            self.files.forget(location, path)
            known = self.find(sha256)
            return self._duplicate(known, trusted)
        due = bool(row.pop("due"))
        return Registration(False, True, _upload(row), due)

    def _duplicate(self, known: Upload | None, trusted: bool) -> Registration:
        if known is not None and trusted and not known.trusted:
            rows = self._rows("UPDATE uploads SET trusted = true WHERE id = %s RETURNING *",
                              (known.id,))
            known = _upload(rows[0])
        return Registration(True, False, known, False, "duplicate")

    @staticmethod
    def _quota_refusal(conn: psycopg.Connection, quota: UploadQuota, size: int,
                       client: str | None) -> str | None:
        since = utc_timestamp(time.time() - quota.client_window_seconds)
        row = conn.execute(
            "SELECT COALESCE(SUM(size), 0) AS total, COALESCE(SUM(size) FILTER (WHERE client "
            "IS NOT DISTINCT FROM %s AND received_at >= %s), 0) AS recent FROM uploads",
            (client, since)).fetchone()
        return quota.refusal(int(row["total"]), int(row["recent"]), size)

    def find(self, sha256: str) -> Upload | None:
        rows = self._rows("SELECT * FROM uploads WHERE sha256 = %s", (sha256,))
        return _upload(rows[0]) if rows else None

    def uploads(self, status: str | None = None, input_kind: str | None = None) -> list[Upload]:
        rows = self._rows(
            "SELECT * FROM uploads WHERE (%(status)s::text IS NULL OR status = %(status)s) "
            "AND (%(kind)s::text IS NULL OR input_kind = %(kind)s) ORDER BY id",
            {"status": status, "kind": input_kind})
        return [_upload(row) for row in rows]

    def path_of(self, upload: Upload) -> Path:
        """A local file with the upload's bytes (fetched from the object store if need be)."""
        return self.files.local_path(upload)

    @contextlib.contextmanager
    def upload_file(self, upload: Upload) -> Iterator[Path]:
        """The upload's bytes as a local file while the context lasts."""
        yield self.path_of(upload)

    def retrain_lock(self) -> PostgresRetrainLock:
        return PostgresRetrainLock(self.url, connect_timeout=self.timeout)

    def counts(self) -> dict[str, int]:
        found = {row["status"]: row["n"] for row in self._rows(
            "SELECT status, COUNT(*) AS n FROM uploads GROUP BY status")}
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def requeue_used(self) -> int:
        with self._transaction() as conn:
            return conn.execute("UPDATE uploads SET status = 'pending', run_id = NULL "
                                "WHERE status = 'used'").rowcount

    def quarantine(self, sha256s: Iterable[str], conn: psycopg.Connection | None = None
                   ) -> list[str]:
        """Set these uploads aside for good; the SHA-256s not quarantined before. ``conn``:
        inside the caller's transaction (a rollback quarantines and moves the pointer at once)."""
        wanted = sorted(set(sha256s))
        if not wanted:
            return []
        if conn is None:
            with self._transaction() as own:
                return self.quarantine(wanted, own)
        rows = conn.execute("UPDATE uploads SET status = 'quarantined' WHERE sha256 = ANY(%s) "
                            "AND status != 'quarantined' RETURNING sha256", (wanted,)).fetchall()
        return sorted(row["sha256"] for row in rows)

    def release(self, sha256: str) -> Upload:
        with self._transaction() as conn:
            row = conn.execute("SELECT * FROM uploads WHERE sha256 = %s FOR UPDATE",
                               (sha256,)).fetchone()
            if row is None:
                raise UnknownUpload(f"no kept upload has SHA-256 {sha256}")
            if row["status"] != "quarantined":
                raise NotQuarantined(f"upload {sha256[:16]} is {row['status']}, "
                                     "not quarantined")
            row = conn.execute("UPDATE uploads SET status = 'pending', run_id = NULL "
                               "WHERE id = %s RETURNING *", (row["id"],)).fetchone()
        return _upload(row)

    def reconcile_files(self) -> int:
        """Nothing to finish: kept files never move in this registry."""
        return 0

    # --- the retrain counter and requests --------------------------------------------------
    def request_retrain(self) -> None:
        self._rows("UPDATE retrain_state SET requests = GREATEST(requests, 1) WHERE id = 1 "
                   "RETURNING requests")

    def take_request(self) -> bool:
        return bool(self._rows("UPDATE retrain_state SET requests = requests - 1 "
                               "WHERE id = 1 AND requests > 0 RETURNING requests"))

    def state(self) -> dict[str, int]:
        row = self._rows("SELECT uploads_since_retrain, requests FROM retrain_state")[0]
        return {"uploads_since_retrain": int(row["uploads_since_retrain"]),
                "requests": int(row["requests"])}

    # --- retrain runs ----------------------------------------------------------------------
    def start_run(self, *, trigger: str, pid: int | None = None,
                  previous_version: str | None = None) -> int:
        rows = self._rows(
            "INSERT INTO retrain_runs (started_at, triggered_by, pid, host, previous_version) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (utc_timestamp(), trigger, os.getpid() if pid is None else pid, HOST,
             previous_version))
        return int(rows[0]["id"])

    def claim_pending(self, run_id: int, input_kind: str) -> list[Upload]:
        with self._transaction() as conn:
            conn.execute("UPDATE uploads SET run_id = %s WHERE status = 'pending' "
                         "AND input_kind = %s", (run_id, input_kind))
            rows = conn.execute("SELECT * FROM uploads WHERE run_id = %s AND status = "
                                "'pending' ORDER BY id", (run_id,)).fetchall()
            conn.execute("UPDATE retrain_runs SET uploads_used = %s WHERE id = %s",
                         (len(rows), run_id))
        return [_upload(row) for row in rows]

    def set_run_version(self, run_id: int, version: str) -> None:
        self._rows("UPDATE retrain_runs SET version = %s WHERE id = %s RETURNING id",
                   (version, run_id))

    def finish_run(self, run_id: int, outcome: str, reason: str, *,
                   metrics_before: dict | None = None, metrics_after: dict | None = None,
                   version: str | None = None,
                   before_commit: Callable[[psycopg.Connection], None] | None = None) -> None:
        """Close a run: promoted -> its uploads archived, rejected -> used, failed -> left
        pending. ``before_commit`` runs in the same transaction (the shared model store moves
        the current-model pointer there, so the run and the promotion commit together)."""
        if outcome not in OUTCOMES[1:]:
            raise ValueError(f"outcome must be one of {OUTCOMES[1:]}, got {outcome!r}")
        from psycopg.types.json import Jsonb

        with self._transaction() as conn:
            conn.execute(
                "UPDATE retrain_runs SET finished_at = %s, outcome = %s, reason = %s, "
                "metrics_before = %s, metrics_after = %s, version = COALESCE(%s, version) "
                "WHERE id = %s",
                (utc_timestamp(), outcome, reason,
                 None if metrics_before is None else Jsonb(metrics_before),
                 None if metrics_after is None else Jsonb(metrics_after), version, run_id))
            if outcome == "promoted":
                conn.execute("UPDATE uploads SET status = 'archived' WHERE run_id = %s "
                             "AND status = 'pending'", (run_id,))
            elif outcome == "rejected":
                conn.execute("UPDATE uploads SET status = 'used' WHERE run_id = %s "
                             "AND status = 'pending'", (run_id,))
            if before_commit is not None:
                before_commit(conn)

    def interrupted_runs(self) -> list[dict[str, Any]]:
        """Runs recorded as running; with the retrain lock held, their process is gone."""
        return [_run(row) for row in self._rows(
            "SELECT * FROM retrain_runs WHERE outcome = 'running' ORDER BY id")]

    def runs(self, limit: int = 10, before: int | None = None) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM retrain_runs WHERE (%(before)s::bigint IS NULL OR "
                          "id < %(before)s) ORDER BY id DESC LIMIT %(limit)s",
                          {"before": before, "limit": limit})
        return [_run(row) for row in rows]

    def run_count(self) -> int:
        return int(self._rows("SELECT COUNT(*) AS n FROM retrain_runs")[0]["n"])

    def running_run(self) -> dict[str, Any] | None:
        """The newest run recorded as running whose process is alive: some session, on any
        instance, holds the retrain lock, or the run's process lives on this host. (A killed
        run's row stays 'running' until the next run closes it; its lock went with its
        connection.)"""
        rows = self._rows(f"SELECT *, {lock_held_sql()} AS locked FROM retrain_runs "
                          "WHERE outcome = 'running' ORDER BY id DESC")
        for row in rows:
            locked = row.pop("locked")
            if locked or (row["host"] == HOST and pid_alive(row["pid"])):
                return _run(row)
        return None


def _upload(row: dict[str, Any]) -> Upload:
    return Upload(
        id=int(row["id"]), sha256=row["sha256"], original_name=row["original_name"],
        stored_path=row["stored_path"], size=int(row["size"]), rows=int(row["rows"]),
        has_labels=bool(row["has_labels"]), input_kind=row["input_kind"],
        received_at=row["received_at"], status=row["status"],
        run_id=None if row["run_id"] is None else int(row["run_id"]),
        trusted=bool(row["trusted"]), client=row["client"])


def _run(row: dict[str, Any]) -> dict[str, Any]:
    run = dict(row)
    run["id"] = int(run["id"])
    return run
