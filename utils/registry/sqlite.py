"""The embedded registry: SQLite under the data folder, kept uploads as local files.

Every gunicorn worker, every request thread and the retrain process share one SQLite file
(utils/registry/sqlite_connection.py: WAL, one BEGIN IMMEDIATE transaction per write, one
connection per thread and process). One retrain at a time: an ``flock``
(utils/registry/file_lock.py). Kept files: utils/registry/kept_files.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from utils.durable_files import fsync_dir, fsync_file
from utils.registry.file_lock import RetrainLock
from utils.registry.interface import (
    DEFAULT_THRESHOLD,
    OUTCOMES,
    STATUSES,
    NotQuarantined,
    Registration,
    UnknownUpload,
    Upload,
    UploadQuota,
    utc_timestamp,
)
from utils.registry.kept_files import (
    ARCHIVE_DIR,
    UPLOADS_DIR,
    pending_path,
    reconcile,
    sanitise_name,
    stored_file_name,
)
from utils.registry.processes import pid_alive
from utils.registry.sqlite_analyst import SQLiteAnalystTables
from utils.registry.sqlite_baseline import SQLiteBaselineJobs
from utils.registry.sqlite_connection import SQLiteDatabase
from utils.registry.sqlite_schema import create_schema

DB_FILE = "anomalyze.sqlite3"
__all__ = ["DB_FILE", "SQLiteRegistry", "pid_alive"]


def _quota_refusal(quota: UploadQuota, db: sqlite3.Connection, size: int,
                   client: str | None) -> str | None:
    total = db.execute("SELECT COALESCE(SUM(size), 0) FROM uploads").fetchone()[0]
    since = utc_timestamp(time.time() - quota.client_window_seconds)
    recent = db.execute(
        "SELECT COALESCE(SUM(size), 0) FROM uploads WHERE client IS ? AND received_at >= ?",
        (client, since)).fetchone()[0]
    return quota.refusal(total, recent, size)


class SQLiteRegistry(SQLiteAnalystTables, SQLiteBaselineJobs):
    """utils.registry.interface.Registry on ``<data_dir>/anomalyze.sqlite3`` and the kept
    files under ``<data_dir>/uploaded_logs/``; safe to share between threads and across a
    fork."""

    def __init__(self, data_dir: Path | str, *, busy_timeout: float = 30.0) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / DB_FILE
        self.uploads_dir = self.data_dir / UPLOADS_DIR
        self.archive_dir = self.uploads_dir / ARCHIVE_DIR
        self._db = SQLiteDatabase(self.db_path, busy_timeout)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._db.retry(create_schema)

    @property
    def busy_timeout(self) -> float:
        """Seconds a transaction keeps retrying while other processes hold the database."""
        return self._db.busy_timeout

    @busy_timeout.setter
    def busy_timeout(self, seconds: float) -> None:
        self._db.busy_timeout = seconds

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
        counted: bool = True,
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
            reason = self._db.retry(lambda db: _quota_refusal(quota, db, size, client))
            if reason is not None:
                return Registration(duplicate=False, stored=False, upload=None,
                                    retrain_due=False, reason=reason)
        fsync_file(path)  # the content is durable before a row names it
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
            if counted and threshold > 0:
                count = db.execute(
                    "UPDATE retrain_state SET uploads_since_retrain = uploads_since_retrain"
                    " + 1 WHERE id = 1 RETURNING uploads_since_retrain").fetchall()[0][0]
                if count >= threshold:
                    due = True
                    db.execute("UPDATE retrain_state SET uploads_since_retrain = 0, "
                               "requests = 1 WHERE id = 1")  # at most one queued run
            elif counted:
                db.execute("UPDATE retrain_state SET uploads_since_retrain = "
                           "uploads_since_retrain + 1 WHERE id = 1")
            row = db.execute("SELECT * FROM uploads WHERE id = ?",
                             (cursor.lastrowid,)).fetchone()
            return Registration(duplicate=False, stored=True, upload=_upload(row),
                                retrain_due=due)

        def undo() -> None:  # the transaction rolled back: so does the rename
            if target.exists() and not path.exists():
                os.replace(target, path)

        registration = self._db.write(body, undo)
        if registration.stored:
            fsync_dir(self.uploads_dir)
        return registration

    def _trust(self, sha256: str) -> Upload:
        def body(db: sqlite3.Connection) -> Upload:
            db.execute("UPDATE uploads SET trusted = 1 WHERE sha256 = ?", (sha256,))
            return _upload(db.execute("SELECT * FROM uploads WHERE sha256 = ?",
                                      (sha256,)).fetchone())

        return self._db.write(body)

    def find(self, sha256: str) -> Upload | None:
        rows = self._db.read("SELECT * FROM uploads WHERE sha256 = ?", (sha256,))
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
        rows = self._db.read(f"SELECT * FROM uploads{where} ORDER BY id", tuple(params))
        return [_upload(row) for row in rows]

    def path_of(self, upload: Upload) -> Path:
        return self.data_dir / upload.stored_path

    @contextlib.contextmanager
    def upload_file(self, upload: Upload) -> Iterator[Path]:
        """The kept file itself (moved back first if a crash left it in the other folder)."""
        path = self.path_of(upload)
        if not path.is_file():
            self.reconcile_files()
        if not path.is_file():
            raise FileNotFoundError(f"upload {upload.id} ({upload.sha256[:16]}) has no file")
        yield path

    def counts(self) -> dict[str, int]:
        """Number of uploads per status (every status present, 0 when none)."""
        found = dict(self._db.read("SELECT status, COUNT(*) FROM uploads GROUP BY status"))
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def requeue_used(self) -> int:
        """Put uploads a rejected run set aside back to pending; returns how many."""
        return self._db.write(lambda db: db.execute(
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

        return self._db.write(body) if wanted else []

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
                       "WHERE id = ?", (pending_path(row["stored_path"]), row["id"]))
            return _upload(db.execute("SELECT * FROM uploads WHERE id = ?",
                                      (row["id"],)).fetchone())

        upload = self._db.write(body)
        self.reconcile_files()
        return upload

    def reconcile_files(self) -> int:
        """Finish file moves that a crash interrupted; returns files moved.

        The database is updated before files move (it is the source of truth): an upload
        whose file is not where its row says, but in the other folder (``uploaded_logs/`` or
        ``uploaded_logs/archived/``), is moved there now.
        """
        return reconcile(self.data_dir, [u.stored_path for u in self.uploads()])

    # --- the retrain counter and requests ---------------------------------------------------
    def request_retrain(self) -> None:
        """Queue a retrain (at most one request waits at a time, whatever queued it)."""
        self._db.write(lambda db: db.execute(
            "UPDATE retrain_state SET requests = MAX(requests, 1) WHERE id = 1"))

    def take_request(self) -> bool:
        """Consume one queued retrain request; False when none is queued."""
        def body(db: sqlite3.Connection) -> bool:
            rows = db.execute("UPDATE retrain_state SET requests = requests - 1 "
                              "WHERE id = 1 AND requests > 0 RETURNING requests").fetchall()
            return bool(rows)

        return self._db.write(body)

    def retrain_lock(self) -> RetrainLock:
        return RetrainLock(self.data_dir)

    def state(self) -> dict[str, int]:
        row = self._db.read("SELECT uploads_since_retrain, requests FROM retrain_state")[0]
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

        return self._db.write(body)

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

        return self._db.write(body)

    def set_run_version(self, run_id: int, version: str) -> None:
        """Note the candidate's version before it is promoted, for recovery after a crash."""
        self._db.write(lambda db: db.execute(
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

        self._db.write(body)
        if outcome == "promoted":
            self.reconcile_files()

    def interrupted_runs(self) -> list[dict[str, Any]]:
        """Runs recorded as running; with the retrain lock held, their process is gone."""
        rows = self._db.read("SELECT * FROM retrain_runs WHERE outcome = 'running' ORDER BY id")
        return [_run(row) for row in rows]

    def runs(self, limit: int = 10, before: int | None = None) -> list[dict[str, Any]]:
        """The most recent runs, newest first; ``before``: only runs with a smaller id (the
        next page). Every run is kept: the history is never trimmed."""
        if before is None:
            rows = self._db.read("SELECT * FROM retrain_runs ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._db.read("SELECT * FROM retrain_runs WHERE id < ? ORDER BY id DESC "
                              "LIMIT ?", (before, limit))
        return [_run(row) for row in rows]

    def run_count(self) -> int:
        return int(self._db.read("SELECT COUNT(*) FROM retrain_runs")[0][0])

    def running_run(self) -> dict[str, Any] | None:
        """The run in progress, if its process is alive (a killed run stays 'running' in the
        table until the next run closes it)."""
        for run in reversed(self.interrupted_runs()):
            if pid_alive(run["pid"]):
                return run
        return None


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
