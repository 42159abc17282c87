"""The upload registry, retrain queue, run log and retrain lock on PostgreSQL, shared by instances.

The same methods and answers as the SQLite registry (utils/upload_registry.py), so the API and
the retrain code use either. What changes with several machines:

- Keep-once and the counter are one statement: ``INSERT ... ON CONFLICT (sha256) DO NOTHING``
  feeds the ``UPDATE`` of the counter in a CTE, so two instances keeping the same content at
  once insert one row and count it once (the second insert waits for the first on the unique
  index, then does nothing, and an update with no inserted row changes nothing). The counter
  row's lock orders concurrent updates; each re-reads the latest value (READ COMMITTED).
- The retrain lock is a session-level advisory lock held on a connection of its own by the
  retraining process (``PostgresRetrainLock``). If that process is killed, the kernel closes
  its socket, the server ends the session and the lock goes with it: no lease to expire.
- Kept files live where ``files`` puts them (``LocalFiles``: the data folder, as the SQLite
  registry; utils/shared_store.py: the object store), named in the row's ``stored_path``.
  Files never move: a status change is a row update only.

Database or network errors surface as ``RegistryUnavailable``; the API answers ``stored:
false`` and carries on scoring (docs/RELIABILITY.md).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from utils.allowlist import AllowEntry, DuplicateEntry, UnknownEntry, entry_from_row, match_key
from utils.backends import BackendUnavailable
from utils.feedback import Feedback
from utils.pg_schema import (
    LOCK_NAMESPACE,
    RETRAIN_LOCK,
    UPLOAD_QUOTA_LOCK,
    connect,
    upgrade,
)
from utils.registry.interface import (
    DEFAULT_THRESHOLD,
    OUTCOMES,
    STATUSES,
    NotQuarantined,
    Registration,
    RetrainBusy,
    UnknownUpload,
    Upload,
    UploadQuota,
)
from utils.upload_registry import UPLOADS_DIR, sanitise_name, stored_file_name, utc_timestamp

T = TypeVar("T")
HOST = socket.gethostname()


class RegistryUnavailable(BackendUnavailable):
    """PostgreSQL could not be reached, or dropped the connection mid-way."""

    reason = "registry_unavailable"


class KeptFiles(Protocol):
    """Where kept uploads go: ``keep`` a valid temp file (its location, as stored in the
    row), ``forget`` one whose row was not written, ``local_path`` to read one back."""

    def keep(self, path: Path, sha256: str, original_name: str | None) -> str: ...

    def forget(self, location: str, path: Path) -> None: ...

    def local_path(self, upload: Upload) -> Path: ...


class LocalFiles:
    """Kept uploads in ``<data_dir>/uploaded_logs/`` (one machine, several processes)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.uploads_dir = self.data_dir / UPLOADS_DIR

    def keep(self, path: Path, sha256: str, original_name: str | None) -> str:
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        # A name of its own per keep (a random part): processes racing to keep the same
        # content each write their own file, and the loser takes back only its own.
        stem, dot, suffix = stored_file_name(sha256, original_name, path).rpartition(".")
        name = f"{stem}-{secrets.token_hex(3)}{dot}{suffix}"
        os.replace(path, self.uploads_dir / name)
        return f"{UPLOADS_DIR}/{name}"

    def forget(self, location: str, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.data_dir / location, path)

    def local_path(self, upload: Upload) -> Path:
        return self.data_dir / upload.stored_path


def _check_lock_sql() -> str:
    return ("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            f"AND classid::bigint = {LOCK_NAMESPACE} AND objid::bigint = {RETRAIN_LOCK} "
            "AND objsubid = 2)")


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
    WHERE id = 1 AND EXISTS (SELECT 1 FROM new)
    RETURNING %(threshold)s > 0 AND uploads_since_retrain = 0 AS due
)
SELECT new.*, (SELECT due FROM counted) AS due FROM new
"""


class _AnalystTables:
    """The allow-list and feedback methods of PostgresRegistry (the contract of the SQLite
    registry's methods of the same names), on its ``_rows`` and ``_transaction``."""

    def add_allow_entry(self, entry: AllowEntry) -> AllowEntry:
        key = match_key(entry)
        with self._transaction() as conn:
            conn.execute("DELETE FROM allowlist WHERE match_key = %s AND expires_at IS NOT NULL "
                         "AND expires_at <= %s", (key, utc_timestamp()))
            row = conn.execute(
                "INSERT INTO allowlist (host, source, destination, port, service, match_key, "
                "reason, added_by, added_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s) ON CONFLICT (match_key) DO NOTHING RETURNING id",
                (entry.host, entry.source, entry.destination, entry.port, entry.service, key,
                 entry.reason, entry.added_by, entry.added_at, entry.expires_at)).fetchone()
            if row is None:
                existing = conn.execute("SELECT id FROM allowlist WHERE match_key = %s",
                                        (key,)).fetchone()
                raise DuplicateEntry(int(existing["id"]))
        return replace(entry, id=int(row["id"]))

    def allow_entries(self, include_expired: bool = False) -> list[AllowEntry]:
        entries = [entry_from_row(row)
                   for row in self._rows("SELECT * FROM allowlist ORDER BY id")]
        return entries if include_expired else [e for e in entries if not e.expired()]

    def delete_allow_entry(self, entry_id: int) -> AllowEntry:
        rows = self._rows("DELETE FROM allowlist WHERE id = %s RETURNING *", (entry_id,))
        if not rows:
            raise UnknownEntry(f"no allow-list entry has id {entry_id}")
        return entry_from_row(rows[0])

    def add_feedback(self, sha256: str, records: Iterable[str], verdict: str,
                     note: str | None, analyst: str) -> list[Feedback]:
        now = utc_timestamp()
        kept = []
        with self._transaction() as conn:
            for record in records:
                row = conn.execute(
                    "INSERT INTO feedback (sha256, record, verdict, note, analyst, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (sha256, record) DO UPDATE "
                    "SET verdict = excluded.verdict, note = excluded.note, "
                    "analyst = excluded.analyst, created_at = excluded.created_at, "
                    "trained_version = NULL RETURNING *",
                    (sha256, record, verdict, note, analyst, now)).fetchone()
                kept.append(_feedback(row))
        return kept

    def feedback(self, verdict: str | None = None, limit: int | None = None,
                 before: int | None = None) -> list[Feedback]:
        rows = self._rows(
            "SELECT * FROM feedback WHERE (%(verdict)s::text IS NULL OR verdict = %(verdict)s) "
            "AND (%(before)s::bigint IS NULL OR id < %(before)s) ORDER BY id DESC "
            "LIMIT %(limit)s", {"verdict": verdict, "before": before, "limit": limit})
        return [_feedback(row) for row in rows]

    def feedback_counts(self) -> dict[str, int]:
        row = self._rows(
            "SELECT count(*) FILTER (WHERE verdict = 'false_positive' AND trained_version IS "
            "NULL) AS false_positive_waiting, count(*) FILTER (WHERE verdict = "
            "'false_positive' AND trained_version IS NOT NULL) AS false_positive_trained, "
            "count(*) FILTER (WHERE verdict = 'true_positive') AS true_positive FROM feedback")[0]
        return {name: int(value) for name, value in row.items()}

    def mark_feedback_trained(self, ids: Iterable[int], version: str) -> None:
        ids = [int(i) for i in ids]
        if ids:
            self._rows("UPDATE feedback SET trained_version = %s WHERE id = ANY(%s) AND "
                       "trained_version IS NULL RETURNING id", (version, ids))


def _feedback(row: dict[str, Any]) -> Feedback:
    return Feedback(id=int(row["id"]), sha256=row["sha256"], record=row["record"],
                    verdict=row["verdict"], note=row["note"], analyst=row["analyst"],
                    created_at=row["created_at"], trained_version=row["trained_version"])


class PostgresRegistry(_AnalystTables):
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
                 quota: UploadQuota | None = None) -> Registration:
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
                  "threshold": threshold}
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
        """The newest run recorded as running while some session, on any instance, holds
        the retrain lock (a killed run's row stays 'running' until the next run closes it,
        but its lock is gone with its connection)."""
        rows = self._rows("SELECT * FROM retrain_runs WHERE outcome = 'running' AND "
                          f"({_check_lock_sql()}) ORDER BY id DESC LIMIT 1")
        return _run(rows[0]) if rows else None


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
