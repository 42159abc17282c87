"""The SQLite registry's tables, and bringing an older registry file up to date."""

from __future__ import annotations

import contextlib
import sqlite3

SCHEMA_VERSION = 4  # 3: the allow-list and analyst feedback; 4: baseline jobs (new tables)
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
CREATE TABLE IF NOT EXISTS baseline_jobs (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'reported', 'promoted', 'held', 'rejected',
                          'failed')),
    stage TEXT NOT NULL DEFAULT 'queued',
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    heartbeat_at TEXT,
    files TEXT NOT NULL,
    options TEXT NOT NULL,
    health TEXT,
    figures TEXT,
    version TEXT,
    reason TEXT,
    pid INTEGER,
    host TEXT
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


def create_schema(db: sqlite3.Connection) -> None:
    """Create the tables, or bring an older registry up to ``SCHEMA_VERSION``, in one
    transaction (the version is read inside it, so two processes never both migrate)."""
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


def _execute_script(db: sqlite3.Connection, script: str) -> None:
    """Statement by statement: ``executescript`` would commit the open transaction first."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)
