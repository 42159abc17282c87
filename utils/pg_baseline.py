"""Baseline jobs in the PostgreSQL registry (schema version 3; rules in
utils/registry/baseline_jobs.py).

The same methods and answers as the SQLite registry's (utils/registry/sqlite_baseline.py); a
mix-in of utils.pg_registry.PostgresRegistry, run on its ``_rows`` and ``_transaction``. A
claim is one conditional UPDATE: the row lock makes a second claimer wait for the first,
re-read the row (READ COMMITTED) and find it no longer queued.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from psycopg.types.json import Jsonb

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


class PostgresBaselineJobs:
    """The baseline-job methods of PostgresRegistry (the contract of the SQLite registry's
    methods of the same names)."""

    def create_baseline_job(self, files: list[str], options: dict) -> int:
        wanted = list(files)
        if not wanted:
            raise ValueError("a baseline job needs at least one file")
        with self._transaction() as conn:
            rows = {row["sha256"]: row for row in conn.execute(
                "SELECT sha256, original_name, rows FROM uploads WHERE sha256 = ANY(%s)",
                (wanted,)).fetchall()}
            described = []
            for sha256 in wanted:
                if sha256 not in rows:
                    raise UnknownUpload(f"no kept upload has SHA-256 {sha256}")
                described.append({"sha256": sha256, "name": rows[sha256]["original_name"],
                                  "rows": int(rows[sha256]["rows"])})
            now = utc_timestamp()
            row = conn.execute(
                "INSERT INTO baseline_jobs (status, stage, created_at, heartbeat_at, files, "
                "options) VALUES ('queued', 'queued', %s, %s, %s, %s) RETURNING id",
                (now, now, Jsonb(described), Jsonb(json_safe(options)))).fetchone()
        return int(row["id"])

    def baseline_job(self, job_id: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM baseline_jobs WHERE id = %s", (job_id,))
        if not rows:
            return None
        job = _job(rows[0])
        return self._settle(job) if job["status"] in ACTIVE else job

    def baseline_jobs(self, limit: int = DEFAULT_LIST) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM baseline_jobs ORDER BY id DESC LIMIT %s", (limit,))
        return [self._settle(job) if job["status"] in ACTIVE else job
                for job in map(_job, rows)]

    def update_baseline_job(self, job_id: int, *, only_if: str | Iterable[str] | None = None,
                            **fields: Any) -> bool:
        check_update(fields)
        wanted = statuses(only_if)
        now = utc_timestamp()
        names, values = ["heartbeat_at = %s"], [now]
        for name, value in fields.items():
            names.append(f"{name} = %s")
            values.append(Jsonb(json_safe(value)) if name in JSON_FIELDS
                          and value is not None else value)
        if fields.get("status") in FINISHED:
            names.append("finished_at = %s")
            values.append(now)
        sql = f"UPDATE baseline_jobs SET {', '.join(names)} WHERE id = %s"
        values.append(job_id)
        if wanted is not None:
            sql += " AND status = ANY(%s)"
            values.append(list(wanted))
        with self._transaction() as conn:
            return conn.execute(sql, values).rowcount == 1

    def claim_baseline_job(self, job_id: int | None = None) -> dict[str, Any] | None:
        now = utc_timestamp()
        with self._transaction() as conn:
            if job_id is None:  # the oldest queued job no other claimer has locked
                row = conn.execute("SELECT id FROM baseline_jobs WHERE status = 'queued' "
                                   "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED").fetchone()
                if row is None:
                    return None
                job_id = int(row["id"])
            row = conn.execute(
                "UPDATE baseline_jobs SET status = 'running', stage = 'starting', pid = %s, "
                "host = %s, started_at = %s, heartbeat_at = %s WHERE id = %s "
                "AND status = 'queued' RETURNING *",
                (os.getpid(), HOST, now, now, job_id)).fetchone()
        return None if row is None else _job(row)

    def _settle(self, job: dict[str, Any]) -> dict[str, Any]:
        reason = dead_reason(job, alive=pid_alive)
        if reason is None:
            return job
        with self._transaction() as conn:
            conn.execute("UPDATE baseline_jobs SET status = 'failed', reason = %s, "
                         "finished_at = %s WHERE id = %s AND status = %s "
                         "AND heartbeat_at IS NOT DISTINCT FROM %s",
                         (reason, utc_timestamp(), job["id"], job["status"],
                          job["heartbeat_at"]))
            row = conn.execute("SELECT * FROM baseline_jobs WHERE id = %s",
                               (job["id"],)).fetchone()
        return _job(row)


def _job(row: dict[str, Any]) -> dict[str, Any]:
    job = dict(row)
    job["id"] = int(job["id"])
    return job
