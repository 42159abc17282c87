"""The registry of kept uploads, the retrain counter and the record of retrain runs (SQLite).

Every gunicorn worker, every request thread and the retrain process share one SQLite file
under the data folder (WAL mode, so readers never wait for the writer). Each write is one
``BEGIN IMMEDIATE`` transaction: it takes the write lock before reading, so a check-then-write
(is this SHA-256 known? does this upload cross the threshold?) can never interleave with
another process's. Lock waits use SQLite's busy timeout; a transaction that still finds the
database busy is retried until ``busy_timeout`` has passed.

Only one retrain runs at a time: ``RetrainLock`` is an ``flock`` on ``retrain.lock`` held by the
retraining process itself (released by the kernel if it is killed). This module needs only the
standard library, so a retrain process that finds the lock taken exits at once.

Upload life cycle (docs/LEARNING.md): ``pending`` (kept, waiting for a retrain run),
``archived`` (in the training data of a promoted model; the file moved to
``uploaded_logs/archived/``), ``used`` (considered by a run whose candidate was rejected; kept
where it was, not fed again unless requeued), ``quarantined`` (it trained a version that was
rolled back; never fed again unless an admin releases it). A failed or interrupted run
changes nothing.

Each upload records whether it came with the admin token (``trusted``) and the client address
it came from: anonymous labels are claims, and one client's influence and disk use are bounded
(``UploadQuota`` here, the row caps in utils/retraining.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from utils.allowlist import AllowEntry, DuplicateEntry, UnknownEntry, entry_from_row, match_key
from utils.feedback import Feedback
from utils.registry.interface import (
    DEFAULT_THRESHOLD,
    OUTCOMES,
    STATUSES,
    NotQuarantined,
    Registration,
    RegistryBusyError,
    RetrainBusy,
    UnknownUpload,
    Upload,
    UploadQuota,
)

DB_FILE = "anomalyze.sqlite3"
LOCK_FILE = "retrain.lock"
UPLOADS_DIR = "uploaded_logs"
ARCHIVE_DIR = "archived"

_KNOWN_EXTENSIONS = frozenset({"txt", "csv", "tsv", "log", "json", "gz"})
_GZIP_MAGIC = b"\x1f\x8b"
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_NAME = 255
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})

SCHEMA_VERSION = 3
_UPLOADS_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    original_name TEXT NOT NULL,
    stored_path TEXT NOT NULL,
    size INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    has_labels INTEGER NOT NULL,
    input_kind TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'used', 'archived', 'quarantined')),
    run_id INTEGER,
    trusted INTEGER NOT NULL DEFAULT 0,
    client TEXT
);
"""
_SCHEMA = _UPLOADS_TABLE.format(name="uploads") + """
CREATE INDEX IF NOT EXISTS uploads_by_status ON uploads (status, input_kind);
CREATE INDEX IF NOT EXISTS uploads_by_client ON uploads (client, received_at);
CREATE TABLE IF NOT EXISTS retrain_runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT NOT NULL DEFAULT 'running'
        CHECK (outcome IN ('running', 'promoted', 'rejected', 'failed')),
    reason TEXT,
    metrics_before TEXT,
    metrics_after TEXT,
    version TEXT,
    previous_version TEXT,
    triggered_by TEXT,
    pid INTEGER,
    uploads_used INTEGER
);
CREATE TABLE IF NOT EXISTS retrain_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    uploads_since_retrain INTEGER NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO retrain_state (id) VALUES (1);
CREATE TABLE IF NOT EXISTS allowlist (
    id INTEGER PRIMARY KEY,
    host TEXT,
    source TEXT,
    destination TEXT,
    port INTEGER,
    service TEXT,
    match_key TEXT NOT NULL UNIQUE,
    reason TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL,
    expires_at TEXT
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    record TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('false_positive', 'true_positive')),
    note TEXT,
    analyst TEXT NOT NULL,
    created_at TEXT NOT NULL,
    trained_version TEXT,
    UNIQUE (sha256, record)
);
"""
# Version 1 (no user_version) had no trusted/client columns and no 'quarantined' status. SQLite
# cannot change a CHECK constraint in place, so the table is copied (its rows are anonymous).
_MIGRATE_TO_2 = _UPLOADS_TABLE.format(name="uploads_v2") + """
INSERT INTO uploads_v2 (id, sha256, original_name, stored_path, size, rows, has_labels,
                        input_kind, received_at, status, run_id)
    SELECT id, sha256, original_name, stored_path, size, rows, has_labels, input_kind,
           received_at, status, run_id FROM uploads;
DROP TABLE uploads;
ALTER TABLE uploads_v2 RENAME TO uploads;
"""

T = TypeVar("T")


def _quota_refusal(quota: UploadQuota, db: sqlite3.Connection, size: int,
                   client: str | None) -> str | None:
    """``quota_total`` or ``quota_client`` if keeping ``size`` more bytes breaks a limit."""
    total = db.execute("SELECT COALESCE(SUM(size), 0) FROM uploads").fetchone()[0]
    since = utc_timestamp(time.time() - quota.client_window_seconds)
    recent = db.execute(
        "SELECT COALESCE(SUM(size), 0) FROM uploads WHERE client IS ? AND received_at >= ?",
        (client, since)).fetchone()[0]
    return quota.refusal(total, recent, size)


def sanitise_name(name: str | None) -> str:
    """The client's file name as metadata only: last path component, printable, bounded."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = _UNPRINTABLE.sub("", base).strip()
    if base in {"", ".", ".."}:
        return "upload"
    return base[:_MAX_NAME]


def utc_timestamp(when: float | None = None) -> str:
    """``when`` (default now, seconds since the epoch) as sortable UTC text (ms, "Z")."""
    moment = datetime.now(UTC) if when is None else datetime.fromtimestamp(when, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists (on this host)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class UploadRegistry:
    """The SQLite registry under ``data_dir``; safe to use from any thread or process.

    Every method opens its own short-lived connection, so instances can be shared between
    threads and survive a fork.
    """

    def __init__(self, data_dir: Path | str, *, busy_timeout: float = 30.0) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / DB_FILE
        self.uploads_dir = self.data_dir / UPLOADS_DIR
        self.archive_dir = self.uploads_dir / ARCHIVE_DIR
        self.busy_timeout = busy_timeout
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._retry(self._create_schema)

    # --- connections and transactions -------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=min(self.busy_timeout, 5.0),
                             isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    def _create_schema(self) -> None:
        """Create the tables, or bring an older registry up to ``SCHEMA_VERSION``, in one
        transaction (the version is read inside it, so two processes never both migrate)."""
        with self._connect() as db:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN IMMEDIATE")
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version < SCHEMA_VERSION:
                    columns = {row[1] for row in db.execute("PRAGMA table_info(uploads)")}
                    if columns and "trusted" not in columns:
                        _execute_script(db, _MIGRATE_TO_2)
                    _execute_script(db, _SCHEMA)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise

    def _retry(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` again while SQLite reports the database busy, up to the timeout."""
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.01
        while True:
            try:
                return operation()
            except sqlite3.OperationalError as exc:
                busy = getattr(exc, "sqlite_errorcode", None) in _BUSY_CODES or (
                    "locked" in str(exc) or "busy" in str(exc))
                if not busy:
                    raise
                if time.monotonic() >= deadline:
                    raise RegistryBusyError(
                        f"the upload registry stayed busy for {self.busy_timeout:g} s") from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _write(
        self,
        body: Callable[[sqlite3.Connection], T],
        undo: Callable[[], None] | None = None,
    ) -> T:
        """``body`` in one BEGIN IMMEDIATE transaction (retried as a whole while busy).

        ``undo`` reverts what ``body`` did outside the database when the transaction fails.
        """

        def attempt() -> T:
            with self._connect() as db:
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

        return self._retry(attempt)

    def _read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        return self._read_with(lambda db: db.execute(sql, params).fetchall())

    def _read_with(self, body: Callable[[sqlite3.Connection], T]) -> T:
        def attempt() -> T:
            with self._connect() as db:
                return body(db)

        return self._retry(attempt)

    # --- uploads ----------------------------------------------------------------------------
    def register(
        self,
        path: Path | str,
        *,
        sha256: str,
        original_name: str | None,
        rows: int,
        has_labels: bool,
        input_kind: str,
        threshold: int | None = None,
        trusted: bool = False,
        client: str | None = None,
        quota: UploadQuota | None = None,
    ) -> Registration:
        """Keep the valid upload at ``path`` (a temp file on the same file system) unless its
        content is already kept or it would break the ``quota``, and count it towards the
        next retrain.

        The file is renamed into ``uploaded_logs/`` inside the transaction that records it, so
        a row never names a missing file, two workers storing the same content cannot both
        keep it and concurrent uploads cannot overshoot the quota together. An upload not kept
        leaves ``path`` where it is (the caller deletes its temp file). ``threshold`` (default
        DEFAULT_THRESHOLD) 0 disables the automatic trigger. Crossing it queues a retrain unless
        one is queued already: requests coalesce, so any number of uploads waiting for a run
        in progress gives one more run, not one per batch.

        A trusted upload (admin token) of content already kept marks the kept one trusted.
        """
        path = Path(path)
        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        known = self.find(sha256)
        if known is not None:
            if trusted and not known.trusted:
                known = self._trust(sha256)
            return Registration(duplicate=True, stored=False, upload=known, retrain_due=False,
                                reason="duplicate")
        size = path.stat().st_size
        if quota is not None:  # answered before the fsync; checked again in the transaction
            reason = self._read_with(lambda db: _quota_refusal(quota, db, size, client))
            if reason is not None:
                return Registration(duplicate=False, stored=False, upload=None,
                                    retrain_due=False, reason=reason)
        _fsync_file(path)  # the content is durable before a row names it
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        name = stored_file_name(sha256, original_name, path)
        target = self.uploads_dir / name
        relative = f"{UPLOADS_DIR}/{name}"
        clean_name = sanitise_name(original_name)

        def body(db: sqlite3.Connection) -> Registration:
            row = db.execute("SELECT * FROM uploads WHERE sha256 = ?", (sha256,)).fetchone()
            if row is not None:
                if trusted and not row["trusted"]:
                    db.execute("UPDATE uploads SET trusted = 1 WHERE id = ?", (row["id"],))
                    row = db.execute("SELECT * FROM uploads WHERE id = ?",
                                     (row["id"],)).fetchone()
                return Registration(duplicate=True, stored=False, upload=_upload(row),
                                    retrain_due=False, reason="duplicate")
            refused = _quota_refusal(quota, db, size, client) if quota is not None else None
            if refused is not None:
                return Registration(duplicate=False, stored=False, upload=None,
                                    retrain_due=False, reason=refused)
            os.replace(path, target)
            cursor = db.execute(
                "INSERT INTO uploads (sha256, original_name, stored_path, size, rows, "
                "has_labels, input_kind, received_at, trusted, client) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sha256, clean_name, relative, target.stat().st_size, int(rows),
                 int(bool(has_labels)), input_kind, utc_timestamp(), int(bool(trusted)),
                 client))
            due = False
            if threshold > 0:
                count = db.execute(
                    "UPDATE retrain_state SET uploads_since_retrain = uploads_since_retrain"
                    " + 1 WHERE id = 1 RETURNING uploads_since_retrain").fetchall()[0][0]
                if count >= threshold:
                    due = True
                    db.execute("UPDATE retrain_state SET uploads_since_retrain = 0, "
                               "requests = 1 WHERE id = 1")  # at most one queued run
            else:
                db.execute("UPDATE retrain_state SET uploads_since_retrain = "
                           "uploads_since_retrain + 1 WHERE id = 1")
            row = db.execute("SELECT * FROM uploads WHERE id = ?",
                             (cursor.lastrowid,)).fetchone()
            return Registration(duplicate=False, stored=True, upload=_upload(row),
                                retrain_due=due)

        def undo() -> None:  # the transaction rolled back: so does the rename
            if target.exists() and not path.exists():
                os.replace(target, path)

        registration = self._write(body, undo)
        if registration.stored:
            _fsync_dir(self.uploads_dir)
        return registration

    def _trust(self, sha256: str) -> Upload:
        def body(db: sqlite3.Connection) -> Upload:
            db.execute("UPDATE uploads SET trusted = 1 WHERE sha256 = ?", (sha256,))
            return _upload(db.execute("SELECT * FROM uploads WHERE sha256 = ?",
                                      (sha256,)).fetchone())

        return self._write(body)

    def find(self, sha256: str) -> Upload | None:
        rows = self._read("SELECT * FROM uploads WHERE sha256 = ?", (sha256,))
        return _upload(rows[0]) if rows else None

    def uploads(self, status: str | None = None, input_kind: str | None = None) -> list[Upload]:
        """Kept uploads in the order they arrived, optionally of one status and input kind."""
        clauses, params = [], []
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if input_kind is not None:
            clauses.append("input_kind = ?")
            params.append(input_kind)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(f"SELECT * FROM uploads{where} ORDER BY id", tuple(params))
        return [_upload(row) for row in rows]

    def path_of(self, upload: Upload) -> Path:
        return self.data_dir / upload.stored_path

    def counts(self) -> dict[str, int]:
        """Number of uploads per status (every status present, 0 when none)."""
        found = dict(self._read("SELECT status, COUNT(*) FROM uploads GROUP BY status"))
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def requeue_used(self) -> int:
        """Put uploads a rejected run set aside back to pending; returns how many."""
        return self._write(lambda db: db.execute(
            "UPDATE uploads SET status = 'pending', run_id = NULL WHERE status = 'used'"
        ).rowcount)

    def quarantine(self, sha256s: Iterable[str]) -> list[str]:
        """Set these uploads aside for good (they trained a model that was rolled back);
        returns the SHA-256s that were not quarantined yet. Files stay where they are."""
        wanted = sorted(set(sha256s))

        def body(db: sqlite3.Connection) -> list[str]:
            changed = []
            for sha256 in wanted:
                if db.execute("UPDATE uploads SET status = 'quarantined' WHERE sha256 = ? "
                              "AND status != 'quarantined'", (sha256,)).rowcount:
                    changed.append(sha256)
            return changed

        return self._write(body) if wanted else []

    def release(self, sha256: str) -> Upload:
        """Let a quarantined upload train again: back to ``pending`` (its file back in
        ``uploaded_logs/``), used by the next run like a new upload.

        UnknownUpload if no upload has this SHA-256, NotQuarantined if it is not quarantined.
        """
        def body(db: sqlite3.Connection) -> Upload:
            row = db.execute("SELECT * FROM uploads WHERE sha256 = ?", (sha256,)).fetchone()
            if row is None:
                raise UnknownUpload(f"no kept upload has SHA-256 {sha256}")
            if row["status"] != "quarantined":
                raise NotQuarantined(f"upload {sha256[:16]} is {row['status']}, not quarantined")
            db.execute("UPDATE uploads SET status = 'pending', run_id = NULL, stored_path = ? "
                       "WHERE id = ?", (f"{UPLOADS_DIR}/{Path(row['stored_path']).name}",
                                        row["id"]))
            return _upload(db.execute("SELECT * FROM uploads WHERE id = ?",
                                      (row["id"],)).fetchone())

        upload = self._write(body)
        self.reconcile_files()
        return upload

    def reconcile_files(self) -> int:
        """Finish file moves that a crash interrupted; returns files moved.

        The database is updated before files move (it is the source of truth): an upload
        whose file is not where its row says, but in the other folder (``uploaded_logs/`` or
        ``uploaded_logs/archived/``), is moved there now.
        """
        moved = 0
        for upload in self.uploads():
            target = self.path_of(upload)
            other = self.archive_dir if target.parent == self.uploads_dir else self.uploads_dir
            source = other / target.name
            if not target.exists() and source.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
                moved += 1
        if moved:
            _fsync_dir(self.archive_dir)
            _fsync_dir(self.uploads_dir)
        return moved

    # --- the retrain counter and requests ---------------------------------------------------
    def request_retrain(self) -> None:
        """Queue a retrain (at most one request waits at a time, whatever queued it)."""
        self._write(lambda db: db.execute(
            "UPDATE retrain_state SET requests = MAX(requests, 1) WHERE id = 1"))

    def take_request(self) -> bool:
        """Consume one queued retrain request; False when none is queued."""
        def body(db: sqlite3.Connection) -> bool:
            rows = db.execute("UPDATE retrain_state SET requests = requests - 1 "
                              "WHERE id = 1 AND requests > 0 RETURNING requests").fetchall()
            return bool(rows)

        return self._write(body)

    def state(self) -> dict[str, int]:
        row = self._read("SELECT uploads_since_retrain, requests FROM retrain_state")[0]
        return {"uploads_since_retrain": int(row[0]), "requests": int(row[1])}

    # --- retrain runs -----------------------------------------------------------------------
    def start_run(self, *, trigger: str, pid: int | None = None,
                  previous_version: str | None = None) -> int:
        """Record a run as started; only call it while holding the retrain lock."""
        def body(db: sqlite3.Connection) -> int:
            return db.execute(
                "INSERT INTO retrain_runs (started_at, triggered_by, pid, previous_version) "
                "VALUES (?, ?, ?, ?)",
                (utc_timestamp(), trigger, os.getpid() if pid is None else pid,
                 previous_version)).lastrowid

        return self._write(body)

    def claim_pending(self, run_id: int, input_kind: str) -> list[Upload]:
        """Mark the pending uploads of ``input_kind`` as this run's (they stay pending)."""
        def body(db: sqlite3.Connection) -> list[Upload]:
            db.execute("UPDATE uploads SET run_id = ? WHERE status = 'pending' "
                       "AND input_kind = ?", (run_id, input_kind))
            rows = db.execute("SELECT * FROM uploads WHERE run_id = ? AND status = 'pending' "
                              "ORDER BY id", (run_id,)).fetchall()
            db.execute("UPDATE retrain_runs SET uploads_used = ? WHERE id = ?",
                       (len(rows), run_id))
            return [_upload(row) for row in rows]

        return self._write(body)

    def set_run_version(self, run_id: int, version: str) -> None:
        """Note the candidate's version before it is promoted, for recovery after a crash."""
        self._write(lambda db: db.execute(
            "UPDATE retrain_runs SET version = ? WHERE id = ?", (version, run_id)))

    def finish_run(
        self,
        run_id: int,
        outcome: str,
        reason: str,
        *,
        metrics_before: dict | None = None,
        metrics_after: dict | None = None,
        version: str | None = None,
    ) -> None:
        """Close a run and move its uploads on: promoted -> archived, rejected -> used.

        A failed run leaves its uploads pending. Files move after the commit
        (``reconcile_files``), so a crash in between is repaired by the next run.
        """
        if outcome not in OUTCOMES[1:]:
            raise ValueError(f"outcome must be one of {OUTCOMES[1:]}, got {outcome!r}")

        def body(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE retrain_runs SET finished_at = ?, outcome = ?, reason = ?, "
                "metrics_before = ?, metrics_after = ?, version = COALESCE(?, version) "
                "WHERE id = ?",
                (utc_timestamp(), outcome, reason, _json(metrics_before), _json(metrics_after),
                 version, run_id))
            if outcome == "promoted":
                db.execute(
                    "UPDATE uploads SET status = 'archived', stored_path = ? || "
                    "substr(stored_path, length(?) + 1) WHERE run_id = ? AND status = 'pending'",
                    (f"{UPLOADS_DIR}/{ARCHIVE_DIR}/", f"{UPLOADS_DIR}/", run_id))
            elif outcome == "rejected":
                db.execute("UPDATE uploads SET status = 'used' WHERE run_id = ? "
                           "AND status = 'pending'", (run_id,))

        self._write(body)
        if outcome == "promoted":
            self.reconcile_files()

    def interrupted_runs(self) -> list[dict[str, Any]]:
        """Runs recorded as running; with the retrain lock held, their process is gone."""
        rows = self._read("SELECT * FROM retrain_runs WHERE outcome = 'running' ORDER BY id")
        return [_run(row) for row in rows]

    def runs(self, limit: int = 10, before: int | None = None) -> list[dict[str, Any]]:
        """The most recent runs, newest first; ``before``: only runs with a smaller id (the
        next page). Every run is kept: the history is never trimmed."""
        if before is None:
            rows = self._read("SELECT * FROM retrain_runs ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._read("SELECT * FROM retrain_runs WHERE id < ? ORDER BY id DESC "
                              "LIMIT ?", (before, limit))
        return [_run(row) for row in rows]

    def run_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM retrain_runs")[0][0])

    def running_run(self) -> dict[str, Any] | None:
        """The run in progress, if its process is alive (a killed run stays 'running' in the
        table until the next run closes it)."""
        for run in reversed(self.interrupted_runs()):
            if pid_alive(run["pid"]):
                return run
        return None


# --- the retrain lock ----------------------------------------------------------------------


    # --- allow-list and analyst feedback ------------------------------------------------------
    def add_allow_entry(self, entry: AllowEntry) -> AllowEntry:
        """Keep a new entry (its id set); DuplicateEntry if an equal one is in force (an
        equal expired one is replaced)."""
        def body(db: sqlite3.Connection) -> AllowEntry:
            key = match_key(entry)
            db.execute("DELETE FROM allowlist WHERE match_key = ? AND expires_at IS NOT NULL "
                       "AND expires_at <= ?", (key, utc_timestamp()))
            existing = db.execute("SELECT id FROM allowlist WHERE match_key = ?",
                                  (key,)).fetchone()
            if existing is not None:
                raise DuplicateEntry(int(existing[0]))
            new_id = db.execute(
                "INSERT INTO allowlist (host, source, destination, port, service, match_key, "
                "reason, added_by, added_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.host, entry.source, entry.destination, entry.port, entry.service, key,
                 entry.reason, entry.added_by, entry.added_at, entry.expires_at)).lastrowid
            return replace(entry, id=int(new_id))

        return self._write(body)

    def allow_entries(self, include_expired: bool = False) -> list[AllowEntry]:
        """The entries, oldest first; expired ones only when asked for."""
        entries = [entry_from_row(row)
                   for row in self._read("SELECT * FROM allowlist ORDER BY id")]
        return entries if include_expired else [e for e in entries if not e.expired()]

    def delete_allow_entry(self, entry_id: int) -> AllowEntry:
        """Remove an entry and return it; UnknownEntry if there is none with this id."""
        def body(db: sqlite3.Connection) -> AllowEntry:
            row = db.execute("SELECT * FROM allowlist WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                raise UnknownEntry(f"no allow-list entry has id {entry_id}")
            db.execute("DELETE FROM allowlist WHERE id = ?", (entry_id,))
            return entry_from_row(row)

        return self._write(body)

    def add_feedback(self, sha256: str, records: Iterable[str], verdict: str,
                     note: str | None, analyst: str) -> list[Feedback]:
        """Keep a verdict on each record of the upload ``sha256`` (a newer verdict on a
        record replaces the older one, and waits for the next retrain again)."""
        def body(db: sqlite3.Connection) -> list[Feedback]:
            now = utc_timestamp()
            kept = []
            for record in records:
                db.execute(
                    "INSERT INTO feedback (sha256, record, verdict, note, analyst, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sha256, record) DO UPDATE SET "
                    "verdict = excluded.verdict, note = excluded.note, "
                    "analyst = excluded.analyst, created_at = excluded.created_at, "
                    "trained_version = NULL", (sha256, record, verdict, note, analyst, now))
                kept.append(_feedback(db.execute(
                    "SELECT * FROM feedback WHERE sha256 = ? AND record = ?",
                    (sha256, record)).fetchone()))
            return kept

        return self._write(body)

    def feedback(self, verdict: str | None = None, limit: int | None = None,
                 before: int | None = None) -> list[Feedback]:
        """Verdicts, newest first; ``before``: only smaller ids (the next page)."""
        sql, params = "SELECT * FROM feedback WHERE 1 = 1", []
        if verdict is not None:
            sql, params = sql + " AND verdict = ?", [*params, verdict]
        if before is not None:
            sql, params = sql + " AND id < ?", [*params, before]
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql, params = sql + " LIMIT ?", [*params, limit]
        return [_feedback(row) for row in self._read(sql, tuple(params))]

    def feedback_counts(self) -> dict[str, int]:
        """``false_positive_waiting`` (not yet in a promoted model), ``false_positive_trained``
        and ``true_positive``."""
        row = self._read(
            "SELECT COALESCE(SUM(verdict = 'false_positive' AND trained_version IS NULL), 0), "
            "COALESCE(SUM(verdict = 'false_positive' AND trained_version IS NOT NULL), 0), "
            "COALESCE(SUM(verdict = 'true_positive'), 0) FROM feedback")[0]
        return {"false_positive_waiting": int(row[0]), "false_positive_trained": int(row[1]),
                "true_positive": int(row[2])}

    def mark_feedback_trained(self, ids: Iterable[int], version: str) -> None:
        """Note the promoted version that first learned from these verdicts."""
        ids = list(ids)
        if not ids:
            return
        self._write(lambda db: db.executemany(
            "UPDATE feedback SET trained_version = ? WHERE id = ? AND trained_version IS NULL",
            [(version, i) for i in ids]))


class RetrainLock:
    """An exclusive ``flock`` on ``<data_dir>/retrain.lock``, held by the process that retrains.

    The kernel drops it when the holder exits or is killed, so a crashed run never blocks the
    next one. The descriptor is close-on-exec: a child of the holder does not inherit it.
    """

    def __init__(self, data_dir: Path | str) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait: float = 0.0) -> bool:
        """Take the lock, polling for up to ``wait`` seconds; False if another process has it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.05)
                continue
            self._fd = fd
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())  # for people; the flock is what counts
            return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor releases the flock

    def __del__(self) -> None:
        self.release()

    def __enter__(self) -> RetrainLock:
        if not self.acquire():
            raise RetrainBusy("a retrain or rollback is already in progress")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def stored_file_name(sha256: str, original_name: str | None, content: Path) -> str:
    """``<UTC timestamp>-<sha256[:16]>.<ext>``: never the client's name, so never a path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = Path(sanitise_name(original_name)).suffix.lower().lstrip(".")
    if suffix not in _KNOWN_EXTENSIONS:
        with open(content, "rb") as handle:
            suffix = "gz" if handle.read(2) == _GZIP_MAGIC else "txt"
    return f"{stamp}-{sha256[:16]}.{suffix}"


def _feedback(row: Any) -> Feedback:
    return Feedback(id=int(row["id"]), sha256=row["sha256"], record=row["record"],
                    verdict=row["verdict"], note=row["note"], analyst=row["analyst"],
                    created_at=row["created_at"], trained_version=row["trained_version"])


def _upload(row: sqlite3.Row) -> Upload:
    return Upload(
        id=row["id"], sha256=row["sha256"], original_name=row["original_name"],
        stored_path=row["stored_path"], size=row["size"], rows=row["rows"],
        has_labels=bool(row["has_labels"]), input_kind=row["input_kind"],
        received_at=row["received_at"], status=row["status"], run_id=row["run_id"],
        trusted=bool(row["trusted"]), client=row["client"])


def _run(row: sqlite3.Row) -> dict[str, Any]:
    run = dict(row)
    for key in ("metrics_before", "metrics_after"):
        run[key] = json.loads(run[key]) if run[key] else None
    return run


def _json(value: dict | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _execute_script(db: sqlite3.Connection, script: str) -> None:
    """Statement by statement: ``executescript`` would commit the open transaction first."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
