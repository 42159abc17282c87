"""The allow-list and analyst feedback tables of the SQLite registry (schema version 3).

A mix-in of utils.registry.sqlite.SQLiteRegistry, run on its ``_db``
(utils/registry/sqlite_connection.py); the PostgreSQL registry's twin is utils/pg_analyst.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from utils.allowlist import AllowEntry, DuplicateEntry, UnknownEntry, entry_from_row, match_key
from utils.feedback import Feedback
from utils.registry.interface import utc_timestamp

if TYPE_CHECKING:
    from utils.registry.sqlite_connection import SQLiteDatabase


class SQLiteAnalystTables:
    """Allow-list entries and analysts' verdicts (utils.registry.interface.Registry)."""

    _db: SQLiteDatabase

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

        return self._db.write(body)

    def allow_entries(self, include_expired: bool = False) -> list[AllowEntry]:
        """The entries, oldest first; expired ones only when asked for."""
        entries = [entry_from_row(row)
                   for row in self._db.read("SELECT * FROM allowlist ORDER BY id")]
        return entries if include_expired else [e for e in entries if not e.expired()]

    def delete_allow_entry(self, entry_id: int) -> AllowEntry:
        """Remove an entry and return it; UnknownEntry if there is none with this id."""
        def body(db: sqlite3.Connection) -> AllowEntry:
            row = db.execute("SELECT * FROM allowlist WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                raise UnknownEntry(f"no allow-list entry has id {entry_id}")
            db.execute("DELETE FROM allowlist WHERE id = ?", (entry_id,))
            return entry_from_row(row)

        return self._db.write(body)

    def add_feedback(self, sha256: str, records: Iterable[str], verdict: str,
                     note: str | None, analyst: str) -> list[Feedback]:
        """Keep a verdict on each record of the upload ``sha256`` (a newer verdict on a
        record replaces the older one, and waits for the next retrain again)."""
        records = list(records)  # (a transaction retried while busy reads them again)

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
                kept.append(feedback_from_row(db.execute(
                    "SELECT * FROM feedback WHERE sha256 = ? AND record = ?",
                    (sha256, record)).fetchone()))
            return kept

        return self._db.write(body)

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
        return [feedback_from_row(row) for row in self._db.read(sql, tuple(params))]

    def feedback_counts(self) -> dict[str, int]:
        """``false_positive_waiting`` (not yet in a promoted model), ``false_positive_trained``
        and ``true_positive``."""
        row = self._db.read(
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
        self._db.write(lambda db: db.executemany(
            "UPDATE feedback SET trained_version = ? WHERE id = ? AND trained_version IS NULL",
            [(version, i) for i in ids]))


def feedback_from_row(row: Any) -> Feedback:
    return Feedback(id=int(row["id"]), sha256=row["sha256"], record=row["record"],
                    verdict=row["verdict"], note=row["note"], analyst=row["analyst"],
                    created_at=row["created_at"], trained_version=row["trained_version"])
