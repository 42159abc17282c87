"""The allow-list and analyst feedback tables of the PostgreSQL registry (schema version 2).

The same methods and answers as the SQLite registry's (utils/registry/sqlite_analyst.py); a
mix-in of utils.pg_registry.PostgresRegistry, run on its ``_rows`` and ``_transaction``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from utils.allowlist import AllowEntry, DuplicateEntry, UnknownEntry, entry_from_row, match_key
from utils.feedback import Feedback
from utils.registry.interface import utc_timestamp


class PostgresAnalystTables:
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
