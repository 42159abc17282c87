"""One-shot move of a SQLite registry (one machine) into an empty PostgreSQL registry.

Every upload row, run, allow-list entry and verdict, and the counter and queue are copied in
one PostgreSQL transaction with their ids kept (an upload's ``run_id`` still names its run); a
failure leaves the database as it was. With an object store, each kept file is uploaded first
(content-addressed, checked against its SHA-256) and its row names the object; without one, rows
keep naming files in the data folder, which the PostgreSQL registry reads the same way. The
SQLite file is only read.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from utils.object_store import ObjectStore, sha256_of
from utils.pg_registry import PostgresRegistry
from utils.registry import DB_FILE

_UPLOAD_COLUMNS = ("id", "sha256", "original_name", "stored_path", "size", "rows", "has_labels",
                   "input_kind", "received_at", "status", "run_id", "trusted", "client")
_RUN_COLUMNS = ("id", "started_at", "finished_at", "outcome", "reason", "metrics_before",
                "metrics_after", "version", "previous_version", "triggered_by", "pid",
                "uploads_used")


_ANALYST_TABLES = ("allowlist", "feedback")


class ImportRefused(RuntimeError):
    """The import cannot go ahead (the message says why); nothing was changed."""


def import_sqlite(data_dir: Path | str, registry: PostgresRegistry,
                  store: ObjectStore | None = None) -> dict[str, int]:
    """Copy ``<data_dir>/anomalyze.sqlite3`` into ``registry``; counts of what was copied."""
    data_dir = Path(data_dir)
    path = data_dir / DB_FILE
    if not path.is_file():
        raise ImportRefused(f"no SQLite registry {DB_FILE} in {data_dir}")
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    source.row_factory = sqlite3.Row
    try:
        uploads = [dict(row) for row in source.execute("SELECT * FROM uploads ORDER BY id")]
        runs = [dict(row) for row in source.execute("SELECT * FROM retrain_runs ORDER BY id")]
        state = dict(source.execute(
            "SELECT uploads_since_retrain, requests FROM retrain_state").fetchone())
        tables = {row[0] for row in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        analyst = {table: [dict(row) for row in source.execute(
            f"SELECT * FROM {table} ORDER BY id")] if table in tables else []
            for table in _ANALYST_TABLES}  # (a registry from before they existed has none)
    finally:
        source.close()
    if store is not None:
        for upload in uploads:
            local = data_dir / upload["stored_path"]
            if not local.is_file():
                raise ImportRefused(f"upload {upload['sha256'][:16]} has no file "
                                    f"({upload['stored_path']})")
            if sha256_of(local) != upload["sha256"]:
                raise ImportRefused(f"the file of upload {upload['sha256'][:16]} does not "
                                    "match its SHA-256")
            upload["stored_path"] = store.put_file("uploads", upload["sha256"], local)
    with registry._transaction() as conn:
        taken = conn.execute("SELECT (SELECT COUNT(*) FROM uploads) + "
                             "(SELECT COUNT(*) FROM retrain_runs) AS n").fetchone()["n"]
        if taken:
            raise ImportRefused("the PostgreSQL registry is not empty: the import is one-shot")
        for run in runs:
            values = {key: run.get(key) for key in _RUN_COLUMNS}
            for key in ("metrics_before", "metrics_after"):
                values[key] = Jsonb(json.loads(values[key])) if values[key] else None
            _insert(conn, "retrain_runs", values)
        for upload in uploads:
            values = {key: upload.get(key) for key in _UPLOAD_COLUMNS}
            values["has_labels"] = bool(values["has_labels"])
            values["trusted"] = bool(values["trusted"])
            _insert(conn, "uploads", values)
        for table, rows in analyst.items():
            for row in rows:
                _insert(conn, table, row)
        for table in ("uploads", "retrain_runs", *_ANALYST_TABLES):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                         f"GREATEST((SELECT MAX(id) FROM {table}), 1))")
        conn.execute("UPDATE retrain_state SET uploads_since_retrain = %s, requests = %s "
                     "WHERE id = 1", (state["uploads_since_retrain"], state["requests"]))
    return {"uploads": len(uploads), "runs": len(runs), **state,
            **{table: len(rows) for table, rows in analyst.items()}}


def _insert(conn: Any, table: str, values: dict[str, Any]) -> None:
    names = ", ".join(values)
    marks = ", ".join(f"%({name})s" for name in values)
    conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", values)
