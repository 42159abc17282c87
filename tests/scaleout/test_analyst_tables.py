"""The allow-list and feedback tables behave alike on both registry backends (SQLite and
PostgreSQL), and a PostgreSQL database at the previous schema is upgraded in place."""

from __future__ import annotations

import pytest

from utils.allowlist import AllowEntry, DuplicateEntry, UnknownEntry
from utils.pg_registry import PostgresRegistry
from utils.pg_schema import MIGRATIONS, SCHEMA_TABLE, connect, upgrade
from utils.registry import SQLiteRegistry

SHA = "a" * 64


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.e2e)])
def registry(request, tmp_path):
    if request.param == "sqlite":
        return SQLiteRegistry(tmp_path / "data")
    return PostgresRegistry(request.getfixturevalue("pg_url"), tmp_path / "data")


def entry(**fields) -> AllowEntry:
    return AllowEntry(**fields, reason="r", added_by="t", added_at="2026-01-01T00:00:00Z")


def test_entries_are_kept_listed_and_removed(registry):
    first = registry.add_allow_entry(entry(host="10.0.0.0/8"))
    second = registry.add_allow_entry(entry(source="10.0.0.1", destination="10.0.0.2",
                                            service="dns", port=53))
    assert second.id > first.id > 0
    assert registry.allow_entries() == [first, second]
    assert registry.delete_allow_entry(first.id) == first
    assert registry.allow_entries() == [second]
    with pytest.raises(UnknownEntry):
        registry.delete_allow_entry(first.id)


def test_a_duplicate_names_the_existing_entry_and_an_expired_one_is_replaced(registry):
    kept = registry.add_allow_entry(entry(port=53))
    with pytest.raises(DuplicateEntry) as info:
        registry.add_allow_entry(entry(port=53))
    assert info.value.existing_id == kept.id
    old = registry.add_allow_entry(AllowEntry(service="ntp", reason="r", added_by="t",
                                              added_at="2000-01-01T00:00:00Z",
                                              expires_at="2000-01-02T00:00:00Z"))
    assert registry.allow_entries() == [kept]
    assert registry.allow_entries(include_expired=True) == [kept, old]
    fresh = registry.add_allow_entry(entry(service="ntp"))
    assert registry.allow_entries(include_expired=True) == [kept, fresh]


def test_feedback_is_kept_replaced_by_a_newer_verdict_and_marked_trained(registry):
    kept = registry.add_feedback(SHA, ["1", "2", "Cuid"], "false_positive", "note", "ana")
    assert [item.record for item in kept] == ["1", "2", "Cuid"]
    assert kept[0].row == 1 and kept[2].row is None
    registry.add_feedback(SHA, ["2"], "true_positive", None, "bob")
    assert registry.feedback_counts() == {"false_positive_waiting": 2,
                                          "false_positive_trained": 0, "true_positive": 1}
    registry.mark_feedback_trained([kept[0].id, kept[2].id], "v2")
    assert registry.feedback_counts() == {"false_positive_waiting": 0,
                                          "false_positive_trained": 2, "true_positive": 1}
    (replaced,) = [item for item in registry.feedback() if item.record == "2"]
    assert (replaced.id, replaced.analyst, replaced.verdict) == (kept[1].id, "bob",
                                                                "true_positive")
    newest = registry.feedback(limit=1)
    assert [item.record for item in newest] == ["Cuid"]
    assert [i.record for i in registry.feedback(verdict="false_positive")] == ["Cuid", "1"]
    assert len(registry.feedback(before=newest[0].id)) == 2


@pytest.mark.e2e
def test_a_database_at_the_previous_schema_is_upgraded_with_its_rows(pg_url):
    with connect(pg_url) as conn, conn.transaction():
        conn.execute(f"CREATE TABLE {SCHEMA_TABLE} (version INTEGER NOT NULL)")
        conn.execute(MIGRATIONS[0])
        conn.execute(f"INSERT INTO {SCHEMA_TABLE} (version) VALUES (1)")
        conn.execute("INSERT INTO retrain_runs (started_at) VALUES ('then')")
    assert upgrade(pg_url) == (1, len(MIGRATIONS))
    with connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM retrain_runs").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM allowlist").fetchone()[0] == 0
