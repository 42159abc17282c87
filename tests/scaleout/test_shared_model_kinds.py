"""One current model per input kind on the shared backends, against a real PostgreSQL and a
real S3 server (SeaweedFS): a pointer and versions per kind, a Zeek model published on one
instance reaching another instance's ``zeek`` folder, a rollback of one kind leaving the other,
a publish killed before its transaction commits, and the upgrade of a database from before
kinds."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.helpers.shared_models import card_version, fake_model
from tests.helpers.waiting import poll
from utils.backends import open_backends
from utils.model_store import CARD_FILE, MODEL_FILE, kind_model_dir
from utils.object_store import ObjectStore, sha256_of
from utils.pg_lock import PostgresRetrainLock
from utils.pg_schema import MODEL_KINDS_VERSION, SCHEMA_VERSION, schema_version, upgrade
from utils.registry.interface import RetrainBusy
from utils.retraining import UnknownVersion
from utils.shared_store import SharedStoreRegistry

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]


def instance(pg_url: str, store_url: str, folder: Path) -> SharedStoreRegistry:
    """One instance's view of the shared backends: its own data and work folders."""
    return SharedStoreRegistry(pg_url, folder / "data", ObjectStore(store_url), folder / "work")


def keep(registry: SharedStoreRegistry, data: bytes, kind: str) -> str:
    path = registry.data_dir / f"incoming-{hashlib.sha256(data).hexdigest()[:8]}"
    registry.data_dir.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    assert registry.register(path, sha256=sha256, original_name="u.log", rows=1,
                             has_labels=False, input_kind=kind, threshold=10).stored
    return sha256


def test_each_kind_has_its_own_pointer_and_versions_seeded_from_its_folder(
        pg_url, store_url, tmp_path):
    models = instance(pg_url, store_url, tmp_path / "a").models
    local = fake_model(tmp_path / "local", "k1")  # a card from before kinds: KDD's
    fake_model(kind_model_dir(local, "zeek"), "z1", kind="zeek")
    assert models.seed(local) == ["kdd", "zeek"]
    assert models.seed(local) == []
    assert models.current("kdd")["version"] == "k1"
    assert models.current("zeek")["version"] == "z1"
    assert [v["version"] for v in models.versions()] == ["k1"]
    assert [v["version"] for v in models.versions("zeek")] == ["z1"]
    serving = tmp_path / "b" / "models"  # another instance's empty model folder
    assert models.sync(serving) == {"kdd": "k1", "zeek": "z1"}
    assert card_version(serving) == "k1" and card_version(serving / "zeek") == "z1"
    assert models.sync(serving) == {}
    with pytest.raises(ValueError, match="unknown input kind"):
        models.current("snort")


def test_a_zeek_model_published_on_one_instance_reaches_the_zeek_folder_of_another(
        pg_url, store_url, tmp_path):
    first = instance(pg_url, store_url, tmp_path / "a")
    first.models.seed(fake_model(tmp_path / "a" / "models", "k1"))
    second = open_backends(tmp_path / "b" / "data", tmp_path / "b" / "models",
                           database_url=pg_url, store_url=store_url, sqlite=False)
    from server.backends import BackendWatch

    watch = BackendWatch(second, 1.0)  # the API worker's sync, on the second instance
    assert watch.sync_model() == {"kdd": "k1"}
    serving = second.model_dir
    kdd_before = (serving / MODEL_FILE).stat()
    assert not (serving / "zeek").exists()

    work = fake_model(tmp_path / "a" / "baseline-work", "z1", kind="zeek")
    published = first.models.publish(work, "zeek")
    assert (published.kind, published.version) == ("zeek", "z1")
    assert watch.sync_model() == {"zeek": "z1"}
    assert (serving / "zeek" / MODEL_FILE).read_bytes() == (work / MODEL_FILE).read_bytes()
    assert json.loads((serving / "zeek" / CARD_FILE).read_text())["input_kind"] == "zeek"
    kdd_after = (serving / MODEL_FILE).stat()  # the KDD model was not touched
    assert (kdd_after.st_ino, kdd_after.st_mtime_ns) == (kdd_before.st_ino, kdd_before.st_mtime_ns)
    assert card_version(serving) == "k1"

    first.models.publish(fake_model(tmp_path / "a" / "baseline-2", "z2", kind="zeek",
                                    created="2026-01-02T00:00:00Z"), "zeek")
    assert watch.sync_model() == {"zeek": "z2"}
    assert first.models.pointers()["zeek"]["previous_version"] == "z1"
    assert [v["version"] for v in second.models.versions("zeek")] == ["z1", "z2"]
    assert [v["version"] for v in second.models.versions("kdd")] == ["k1"]


def test_a_model_of_another_kind_is_never_published_under_this_one(pg_url, store_url, tmp_path):
    models = instance(pg_url, store_url, tmp_path / "a").models
    kdd_model = fake_model(tmp_path / "kdd-work", "k1")  # no input_kind: a KDD card
    with pytest.raises(ValueError, match="kdd input, not zeek"):
        models.publish(kdd_model, "zeek")
    zeek_model = fake_model(tmp_path / "zeek-work", "z1", kind="zeek")
    with pytest.raises(ValueError, match="zeek input, not kdd"):
        models.publish(zeek_model, "kdd")
    with pytest.raises(ValueError, match="unknown input kind"):
        models.publish(zeek_model, "snort")
    assert models.pointers() == {}
    assert models.versions("kdd") == [] and models.versions("zeek") == []


def test_rolling_back_one_kind_leaves_the_other_and_quarantines_only_its_uploads(
        pg_url, store_url, tmp_path):
    registry = instance(pg_url, store_url, tmp_path / "a")
    models = registry.models
    kdd_upload = keep(registry, b"kdd rows\n", "kdd")
    zeek_upload = keep(registry, b"zeek baseline\n", "zeek")
    later = "2026-01-02T00:00:00Z"
    work = tmp_path / "work"
    models.seed(fake_model(tmp_path / "models", "k1"))
    models.publish(fake_model(work / "k2", "k2", uploads=[kdd_upload], previous="k1",
                              created=later), "kdd")
    models.publish(fake_model(work / "z1", "z1", kind="zeek"), "zeek")
    models.publish(fake_model(work / "z2", "z2", kind="zeek", uploads=[zeek_upload],
                              created=later), "zeek")
    serving = tmp_path / "b" / "models"
    assert models.sync(serving) == {"kdd": "k2", "zeek": "z2"}

    # a retrain holds the lock: the Zeek rollback does not wait for it, the KDD one does
    retrain = PostgresRetrainLock(pg_url)
    assert retrain.acquire()
    try:
        assert models.rollback(kind="zeek") == ("z2", "z1", [zeek_upload])
        with pytest.raises(RetrainBusy):
            models.rollback(kind="kdd", lock_wait=0)
    finally:
        retrain.release()
    assert models.current("kdd")["version"] == "k2"
    assert registry.find(zeek_upload).status == "quarantined"
    assert registry.find(kdd_upload).status == "pending"
    assert models.sync(serving) == {"zeek": "z1"}
    assert card_version(serving) == "k2"

    with pytest.raises(UnknownVersion):
        models.rollback("k1", kind="zeek")  # a KDD version is no Zeek version
    assert models.rollback(kind="kdd") == ("k2", "k1", [kdd_upload])
    assert models.current("zeek")["version"] == "z1"
    assert models.sync(serving) == {"kdd": "k1"}
    assert card_version(serving / "zeek") == "z1"
    assert models.rollback("z2", kind="zeek") == ("z1", "z2", [])  # forward again, by name


def test_a_publish_killed_before_its_transaction_commits_leaves_the_previous_pointer(
        pg_url, store_url, tmp_path):
    models = instance(pg_url, store_url, tmp_path / "a").models
    models.publish(fake_model(tmp_path / "z1", "z1", kind="zeek"), "zeek")
    serving = tmp_path / "b" / "models"
    assert models.sync(serving) == {"zeek": "z1"}
    candidate = fake_model(tmp_path / "z2", "z2", kind="zeek", created="2026-01-02T00:00:00Z")
    inside = tmp_path / "inside-the-transaction"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from utils.object_store import ObjectStore
        from utils.shared_store import SharedModels, SharedStoreRegistry

        registry = SharedStoreRegistry({pg_url!r}, Path({str(tmp_path / "c")!r}),
                                       ObjectStore({store_url!r}), Path({str(tmp_path / "w")!r}))
        point = SharedModels.point

        def point_then_stall(conn, published, **options):
            point(conn, published, **options)  # the rows are written, not committed
            Path({str(inside)!r}).write_text("in")
            time.sleep(120)

        SharedModels.point = staticmethod(point_then_stall)
        registry.models.publish(Path({str(candidate)!r}), "zeek")
    """)
    publisher = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT)
    try:
        assert poll(inside.exists, "the publisher inside its transaction", deadline=60)
        os.kill(publisher.pid, signal.SIGKILL)
        publisher.wait(timeout=10)
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
    assert models.current("zeek")["version"] == "z1"
    assert [v["version"] for v in models.versions("zeek")] == ["z1"]
    assert models.sync(serving) == {}
    assert card_version(serving / "zeek") == "z1"
    models.publish(candidate, "zeek")  # the killed session's row lock went with it
    assert models.sync(serving) == {"zeek": "z2"}


def test_a_database_from_before_kinds_upgrades_with_its_model_as_the_kdd_one(
        pg_url, store_url, tmp_path):
    previous = MODEL_KINDS_VERSION - 1
    assert upgrade(pg_url, previous) == (0, previous)
    # what the release before kinds left: two versions on the store, the pointer on the second
    store = ObjectStore(store_url)
    with psycopg.connect(pg_url) as conn:
        for version, created in (("v1", "2026-01-01T00:00:00Z"), ("v2", "2026-01-02T00:00:00Z")):
            folder = fake_model(tmp_path / version, version, created=created)
            sha256 = sha256_of(folder / MODEL_FILE)
            location = store.put_file("models", sha256, folder / MODEL_FILE, ".joblib")
            conn.execute(
                "INSERT INTO model_versions (version, sha256, size, location, card, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (version, sha256, (folder / MODEL_FILE).stat().st_size, location,
                 Jsonb(json.loads((folder / CARD_FILE).read_text())), created))
        conn.execute("INSERT INTO model_pointer (id, version, previous_version) "
                     "VALUES (1, 'v2', 'v1')")

    models = instance(pg_url, store_url, tmp_path / "a").models  # upgrades at start
    with psycopg.connect(pg_url) as conn:
        assert schema_version(conn) == SCHEMA_VERSION
        assert conn.execute("SELECT DISTINCT kind FROM model_versions").fetchall() == [("kdd",)]
    assert models.current("kdd")["version"] == "v2"
    assert models.pointers()["kdd"]["previous_version"] == "v1"
    assert models.current("zeek") is None
    assert [v["version"] for v in models.versions("kdd")] == ["v1", "v2"]
    serving = tmp_path / "b" / "models"
    assert models.sync(serving) == {"kdd": "v2"}
    models.publish(fake_model(tmp_path / "z1", "z1", kind="zeek"), "zeek")
    assert models.sync(serving) == {"zeek": "z1"}
    assert models.rollback() == ("v2", "v1", [])  # the pointer's history survived
    assert models.current("zeek")["version"] == "z1"
