"""Operator commands and the one-shot SQLite import, against real PostgreSQL and S3 servers."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.shared_models import card_version, fake_model
from utils.object_store import ObjectStore
from utils.pg_registry import PostgresRegistry
from utils.pg_schema import SCHEMA_VERSION
from utils.registry import SQLiteRegistry
from utils.shared_store import SharedModels, StoreFiles
from utils.sqlite_import import ImportRefused, import_sqlite

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]


def sqlite_registry(data_dir: Path) -> SQLiteRegistry:
    """A one-machine registry with 12 uploads, one promoted run, and 2 counted since."""
    registry = SQLiteRegistry(data_dir)
    incoming = data_dir / "incoming"
    incoming.mkdir(parents=True)
    for i in range(12):
        data = f"row {i}\n".encode()
        path = incoming / f"{i}.part"
        path.write_bytes(data)
        registry.register(path, sha256=hashlib.sha256(data).hexdigest(), original_name="a.txt",
                          rows=1, has_labels=False, input_kind="kdd", threshold=10)
        if i == 9:
            assert registry.take_request()
            run = registry.start_run(trigger="upload", previous_version="v1")
            registry.claim_pending(run, "kdd")
            registry.finish_run(run, "promoted", "fine", metrics_after={"auroc": 0.9},
                                version="v2")
    return registry


def admin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "registry_admin.py", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_upgrade_is_an_operator_command_and_runs_twice(pg_url):
    first = admin("upgrade", "--database-url", pg_url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"schema version 0 -> {SCHEMA_VERSION}"
    again = admin("upgrade", env={"ANOMALYZE_DATABASE_URL": pg_url})
    assert again.stdout.strip() == f"schema already at version {SCHEMA_VERSION}"


def test_an_unreachable_database_is_a_clear_error(postgres_server):
    url = f"postgresql://postgres@127.0.0.1:{postgres_server.port}/no_such_database"
    result = admin("upgrade", "--database-url", url)
    assert result.returncode == 1
    assert "no_such_database" in result.stderr and "Traceback" not in result.stderr


def test_a_sqlite_registry_moves_to_postgres_with_its_files_on_the_data_folder(pg_url, tmp_path):
    source = sqlite_registry(tmp_path / "data")
    result = admin("import-sqlite", "--data-dir", str(tmp_path / "data"),
                   env={"ANOMALYZE_DATABASE_URL": pg_url})
    assert result.returncode == 0, result.stderr
    assert "imported 12 upload(s) and 1 run(s); counter 2" in result.stdout
    target = PostgresRegistry(pg_url, tmp_path / "data")
    assert target.counts() == source.counts()
    assert target.state() == source.state()
    assert [u.to_dict() for u in target.uploads()] == [u.to_dict() for u in source.uploads()]
    [run] = target.runs()
    assert run["version"] == "v2" and run["metrics_after"] == {"auroc": 0.9}
    for upload in target.uploads():
        assert target.path_of(upload).read_bytes() == source.path_of(upload).read_bytes()
    new_run = target.start_run(trigger="cli")
    assert new_run == run["id"] + 1  # the id sequences continue after the imported rows
    again = admin("import-sqlite", "--data-dir", str(tmp_path / "data"),
                  env={"ANOMALYZE_DATABASE_URL": pg_url})
    assert again.returncode == 1 and "one-shot" in again.stderr


def test_a_sqlite_registry_moves_its_files_to_the_object_store(pg_url, store_url, tmp_path):
    source = sqlite_registry(tmp_path / "data")
    store = ObjectStore(store_url)
    target = PostgresRegistry(pg_url, tmp_path / "elsewhere",
                              files=StoreFiles(store, tmp_path / "cache"))
    copied = import_sqlite(tmp_path / "data", target, store)
    assert copied["uploads"] == 12
    for upload in target.uploads():
        assert upload.stored_path.startswith(f"{store_url}/uploads/")
        assert target.path_of(upload).read_bytes() == source.path_of(source.find(
            upload.sha256)).read_bytes()
    with pytest.raises(ImportRefused):
        import_sqlite(tmp_path / "data", target, store)


def test_status_names_each_input_kinds_current_model(pg_url, store_url, tmp_path):
    env = {"ANOMALYZE_DATABASE_URL": pg_url}
    empty = admin("status", env=env)
    assert empty.returncode == 0, empty.stderr
    assert f"schema version: {SCHEMA_VERSION}" in empty.stdout
    assert "model kdd: none" in empty.stdout and "model zeek: none" in empty.stdout
    models = SharedModels(PostgresRegistry(pg_url, tmp_path / "data"), ObjectStore(store_url))
    models.publish(fake_model(tmp_path / "k1", "k1"), "kdd")
    models.publish(fake_model(tmp_path / "z1", "z1", kind="zeek"), "zeek")
    models.publish(fake_model(tmp_path / "z2", "z2", kind="zeek"), "zeek")
    lines = admin("status", env=env).stdout.splitlines()
    [kdd] = [line for line in lines if line.startswith("model kdd: ")]
    [zeek] = [line for line in lines if line.startswith("model zeek: ")]
    assert kdd.startswith("model kdd: k1 (since ") and kdd.endswith("; before it none)")
    assert zeek.startswith("model zeek: z2 (since ") and zeek.endswith("; before it z1)")


def test_import_with_a_store_takes_every_kinds_kept_model_versions_along(
        pg_url, store_url, tmp_path):
    sqlite_registry(tmp_path / "data")
    model_dir = tmp_path / "models"  # one machine's: KDD k1 then k2, Zeek z1, all kept
    fake_model(model_dir, "k1", keep_version=True)
    fake_model(model_dir, "k2", keep_version=True, created="2026-01-02T00:00:00Z")
    fake_model(model_dir / "zeek", "z1", kind="zeek", keep_version=True)
    result = admin("import-sqlite", "--data-dir", str(tmp_path / "data"), "--model-dir",
                   str(model_dir), env={"ANOMALYZE_DATABASE_URL": pg_url,
                                        "ANOMALYZE_STORE_URL": store_url})
    assert result.returncode == 0, result.stderr
    assert "imported 12 upload(s)" in result.stdout
    assert "model kdd: 2 version(s) uploaded; current k2" in result.stdout
    assert "model zeek: 1 version(s) uploaded; current z1" in result.stdout
    models = SharedModels(PostgresRegistry(pg_url, tmp_path / "other"), ObjectStore(store_url))
    assert [v["version"] for v in models.versions("kdd")] == ["k1", "k2"]
    assert [v["version"] for v in models.versions("zeek")] == ["z1"]
    serving = tmp_path / "instance" / "models"
    assert models.sync(serving) == {"kdd": "k2", "zeek": "z1"}
    assert card_version(serving / "zeek") == "z1"
    assert models.rollback() == ("k2", "k1", [])  # the kept versions are the shared ones now
