"""Baseline jobs in the SQLite registry (schema version 4; rules in
utils/registry/baseline_jobs.py).

A mix-in of utils.registry.sqlite.SQLiteRegistry, run on its ``_db``
(utils/registry/sqlite_connection.py); the PostgreSQL registry's twin is utils/pg_baseline.py.
Each method is one transaction: BEGIN IMMEDIATE takes the write lock before the job is read,
so of two processes claiming the same job exactly one finds it queued.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from utils.registry.baseline_jobs import (
    ACTIVE,
    DEFAULT_LIST,
    FINISHED,
    JSON_FIELDS,
    check_update,
    dead_reason,
    json_safe,
    statuses,
)
from utils.registry.interface import UnknownUpload, utc_timestamp
from utils.registry.processes import HOST, pid_alive

if TYPE_CHECKING:
    from utils.registry.sqlite_connection import SQLiteDatabase


class SQLiteBaselineJobs:
    """The baseline-job methods of utils.registry.interface.Registry."""

    _db: SQLiteDatabase

    def create_baseline_job(self, files: list[str], options: dict) -> int:
        """Record a queued job on kept uploads (UnknownUpload if one is not kept); its id."""
        wanted = list(files)
        if not wanted:
            raise ValueError("a baseline job needs at least one file")

        def body(db: sqlite3.Connection) -> int:
            described = []
            for sha256 in wanted:
                row = db.execute("SELECT original_name, rows FROM uploads WHERE sha256 = ?",
                                 (sha256,)).fetchone()
                if row is None:
                    raise UnknownUpload(f"no kept upload has SHA-256 {sha256}")
                described.append({"sha256": sha256, "name": row["original_name"],
                                  "rows": int(row["rows"])})
            now = utc_timestamp()
            return int(db.execute(
                "INSERT INTO baseline_jobs (status, stage, created_at, heartbeat_at, files, "
                "options) VALUES ('queued', 'queued', ?, ?, ?, ?)",
                (now, now, json.dumps(described), json.dumps(json_safe(options), sort_keys=True))
            ).lastrowid)

        return self._db.write(body)

    def baseline_job(self, job_id: int) -> dict[str, Any] | None:
        """The job (None if there is none), a dead process's job marked failed first."""
        rows = self._db.read("SELECT * FROM baseline_jobs WHERE id = ?", (job_id,))
        if not rows:
            return None
        job = _job(rows[0])
        return self._settle(job) if job["status"] in ACTIVE else job

    def baseline_jobs(self, limit: int = DEFAULT_LIST) -> list[dict[str, Any]]:
        """The newest ``limit`` jobs, newest first (dead processes' jobs marked failed)."""
        rows = self._db.read("SELECT * FROM baseline_jobs ORDER BY id DESC LIMIT ?", (limit,))
        return [self._settle(job) if job["status"] in ACTIVE else job
                for job in map(_job, rows)]

    def update_baseline_job(self, job_id: int, *, only_if: str | Iterable[str] | None = None,
                            **fields: Any) -> bool:
        """Set ``fields`` (and the heartbeat; ``finished_at`` when the status ends the job),
        only while the job's status is one of ``only_if`` (None: any); whether it was set.
        No fields: a heartbeat."""
        check_update(fields)
        wanted = statuses(only_if)
        names, values = _assignments(fields)

        def body(db: sqlite3.Connection) -> bool:
            sql = f"UPDATE baseline_jobs SET {', '.join(names)} WHERE id = ?"
            params = [*values, job_id]
            if wanted is not None:
                sql += f" AND status IN ({', '.join('?' * len(wanted))})"
                params += wanted
            return db.execute(sql, params).rowcount == 1

        return self._db.write(body)

    def claim_baseline_job(self, job_id: int | None = None) -> dict[str, Any] | None:
        """Take a queued job (``job_id``, or the oldest queued) for this process: running,
        with its pid, host and heartbeat. None if it is not queued (another process took it,
        or it is over): only one process ever runs a job."""
        def body(db: sqlite3.Connection) -> dict[str, Any] | None:
            if job_id is None:
                row = db.execute("SELECT id FROM baseline_jobs WHERE status = 'queued' "
                                 "ORDER BY id LIMIT 1").fetchone()
                if row is None:
                    return None
                target = row["id"]
            else:
                target = job_id
            now = utc_timestamp()
            row = db.execute(
                "UPDATE baseline_jobs SET status = 'running', stage = 'starting', pid = ?, "
                "host = ?, started_at = ?, heartbeat_at = ? WHERE id = ? AND status = 'queued' "
                "RETURNING *", (os.getpid(), HOST, now, now, target)).fetchone()
            return None if row is None else _job(row)

        return self._db.write(body)

    def _settle(self, job: dict[str, Any]) -> dict[str, Any]:
        """Mark an active job failed if its process is gone (unless it moved on meanwhile)."""
        reason = dead_reason(job, alive=pid_alive)
        if reason is None:
            return job

        def body(db: sqlite3.Connection) -> sqlite3.Row | None:
            db.execute("UPDATE baseline_jobs SET status = 'failed', reason = ?, "
                       "finished_at = ? WHERE id = ? AND status = ? AND heartbeat_at IS ?",
                       (reason, utc_timestamp(), job["id"], job["status"],
                        job["heartbeat_at"]))
            return db.execute("SELECT * FROM baseline_jobs WHERE id = ?",
                              (job["id"],)).fetchone()

        return _job(self._db.write(body))


def _assignments(fields: dict[str, Any]) -> tuple[list[str], list[Any]]:
    now = utc_timestamp()
    names, values = ["heartbeat_at = ?"], [now]
    for name, value in fields.items():
        names.append(f"{name} = ?")
        values.append(json.dumps(json_safe(value), sort_keys=True) if name in JSON_FIELDS
                      and value is not None else value)
    if fields.get("status") in FINISHED:
        names.append("finished_at = ?")
        values.append(now)
    return names, values


def _job(row: sqlite3.Row) -> dict[str, Any]:
    job = dict(row)
    for name in JSON_FIELDS:
        job[name] = json.loads(job[name]) if job[name] else None
    return job
