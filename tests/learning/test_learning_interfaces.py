"""The registry and model-store contracts, checked on every backend this build has.

Each test takes its backend from a fixture parametrized by backend name; a new backend adds a
name and a factory to ``REGISTRIES`` / ``STORES`` and must pass the same tests.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from utils.durable_files import atomic_write, atomic_write_bytes
from utils.model_store import LocalModelStore, ModelLoadError, ModelStore, open_model_store
from utils.registry import Registry, RetrainBusy, RunLock, SQLiteRegistry, open_registry


def _postgres(request, data_dir: Path, *, s3: bool = False) -> Registry:
    """The PostgreSQL registry on a fresh database of the session's real server (and, with
    ``s3``, its kept files on a fresh bucket of the session's real SeaweedFS)."""
    from utils.object_store import ObjectStore
    from utils.pg_registry import PostgresRegistry
    from utils.shared_store import StoreFiles

    url = request.getfixturevalue("postgres_server").create_database(
        f"contract_{uuid.uuid4().hex[:12]}")
    files = None
    if s3:
        server = request.getfixturevalue("s3_server")
        store = ObjectStore(f"s3://c-{uuid.uuid4().hex[:12]}/kept", client_options={
            "endpoint_url": server.endpoint_url, "region_name": server.region,
            "aws_access_key_id": server.access_key, "aws_secret_access_key": server.secret_key})
        files = StoreFiles(store, data_dir / "cache")
    return PostgresRegistry(url, data_dir, files=files)


REGISTRIES: dict[str, Callable[..., Registry]] = {
    "sqlite": lambda request, path: SQLiteRegistry(path),
    "postgresql": _postgres,
    "postgresql+s3": lambda request, path: _postgres(request, path, s3=True),
}
STORES: dict[str, Callable[[Path], ModelStore]] = {"local": LocalModelStore}


# The shared backends start real PostgreSQL and SeaweedFS servers: end-to-end tests.
@pytest.fixture(params=[name if name == "sqlite" else pytest.param(name, marks=pytest.mark.e2e)
                        for name in sorted(REGISTRIES)])
def registry(request, tmp_path) -> Registry:
    return REGISTRIES[request.param](request, tmp_path / "data")


@pytest.fixture(params=sorted(STORES))
def store(request, tmp_path) -> ModelStore:
    return STORES[request.param](tmp_path / "models")


def keep(registry: Registry, folder: Path, content: bytes, threshold: int = 100,
         **kwargs):
    folder.mkdir(parents=True, exist_ok=True)
    spool = folder / f"spool-{hashlib.sha256(content).hexdigest()[:12]}-{threading.get_ident()}"
    spool.write_bytes(content)
    result = registry.register(spool, sha256=hashlib.sha256(content).hexdigest(),
                               original_name="u.txt", rows=1, has_labels=False,
                               input_kind="kdd", threshold=threshold, **kwargs)
    if not result.stored:
        spool.unlink()
    return result


def model(version: str, created_at: str) -> tuple[Pipeline, dict]:
    return Pipeline([("scale", StandardScaler())]), {"model_version": version,
                                                      "created_at": created_at}


# --- the registry --------------------------------------------------------------------------


def test_the_factory_defaults_to_the_embedded_backends(tmp_path):
    assert isinstance(open_registry(tmp_path / "data"), SQLiteRegistry)
    assert isinstance(open_model_store(tmp_path / "models"), LocalModelStore)
    with pytest.raises(ValueError, match="no registry backend"):
        open_registry(tmp_path / "data", "nosuch://db")


def test_a_registry_and_its_lock_implement_the_protocols(registry):
    assert isinstance(registry, Registry)
    assert isinstance(registry.retrain_lock(), RunLock)


def test_concurrent_duplicates_are_kept_once_and_counted_once(registry, tmp_path):
    contents = [b"same content\n"] * 8 + [f"distinct {i}\n".encode() for i in range(8)]
    results = []
    threads = [threading.Thread(target=lambda c=c: results.append(keep(registry, tmp_path /
                                                                       "in", c)))
               for c in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.stored for r in results) == 9
    assert sum(r.duplicate for r in results) == 7
    assert len(registry.uploads()) == 9
    assert registry.state()["uploads_since_retrain"] == 9


def test_crossing_the_threshold_queues_one_request_and_requests_coalesce(registry, tmp_path):
    due = [keep(registry, tmp_path / "in", f"u{i}\n".encode(), threshold=3).retrain_due
           for i in range(7)]
    assert due == [False, False, True, False, False, True, False]
    assert registry.state() == {"uploads_since_retrain": 1, "requests": 1}
    assert registry.take_request() is True
    assert registry.take_request() is False
    registry.request_retrain()
    registry.request_retrain()
    assert registry.state()["requests"] == 1


def test_an_upload_kept_but_not_counted_neither_moves_the_counter_nor_queues_a_retrain(
        registry, tmp_path):
    due = [keep(registry, tmp_path / "in", f"u{i}\n".encode(), threshold=2,
                counted=i % 3 != 0).retrain_due for i in range(6)]
    # counted: u1, u2 (due), u4, u5 (due); u0 and u3 are kept all the same
    assert due == [False, False, True, False, False, True]
    assert len(registry.uploads()) == 6
    assert registry.state()["uploads_since_retrain"] == 0
    keep(registry, tmp_path / "in", b"u6\n", threshold=2, counted=False)
    assert registry.state()["uploads_since_retrain"] == 0


def test_a_kept_upload_is_read_back_byte_for_byte(registry, tmp_path):
    upload = keep(registry, tmp_path / "in", b"0,tcp,http\n" * 50).upload
    with registry.upload_file(upload) as path:
        assert path.read_bytes() == b"0,tcp,http\n" * 50


def test_the_run_log_records_a_run_and_moves_its_uploads_on(registry, tmp_path):
    for i in range(3):
        keep(registry, tmp_path / "in", f"u{i}\n".encode())
    run_id = registry.start_run(trigger="test", previous_version="v0")
    assert registry.running_run()["id"] == run_id
    assert len(registry.claim_pending(run_id, "kdd")) == 3
    registry.set_run_version(run_id, "v1")
    registry.finish_run(run_id, "promoted", "better", metrics_after={"auroc": 0.9})
    (run,) = registry.runs()
    assert (run["outcome"], run["version"], run["uploads_used"]) == ("promoted", "v1", 3)
    assert run["metrics_after"] == {"auroc": 0.9}
    assert registry.counts()["archived"] == 3 and registry.running_run() is None
    kept = set()
    for upload in registry.uploads():
        with registry.upload_file(upload) as path:
            kept.add(path.read_bytes())
    assert kept == {b"u0\n", b"u1\n", b"u2\n"}


def test_one_holder_of_the_retrain_lock_at_a_time(registry):
    first, second = registry.retrain_lock(), registry.retrain_lock()
    assert first.acquire() and first.held
    assert second.acquire(wait=0.1) is False
    with pytest.raises(RetrainBusy):
        second.__enter__()
    first.release()
    assert second.acquire()
    second.release()


def _keep_in_child(registry: Registry, folder: Path) -> None:
    keep(registry, folder, b"kept by the forked child\n")


def test_a_registry_used_before_a_fork_works_in_the_child_and_after_it(registry, tmp_path):
    """Each process opens its own connection: a child never uses its parent's."""
    keep(registry, tmp_path / "in", b"kept before the fork\n")
    child = multiprocessing.get_context("fork").Process(target=_keep_in_child,
                                                        args=(registry, tmp_path / "in"))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    keep(registry, tmp_path / "in", b"kept after the fork\n")
    assert len(registry.uploads()) == 3
    assert registry.state()["uploads_since_retrain"] == 3


# --- the model store -----------------------------------------------------------------------


def test_a_store_implements_the_protocol(store):
    assert isinstance(store, ModelStore)


def test_without_a_current_model_there_is_no_stamp_and_current_says_why(store):
    assert store.stamp() is None
    with pytest.raises(ModelLoadError):
        store.current()


def test_promote_makes_a_kept_version_current_and_keeps_the_one_it_replaces(store):
    assert store.keep(*model("v1", "2026-01-01T00:00:00Z")) == "v1"
    store.promote("v1")
    first = store.stamp()
    assert store.current().version == "v1"
    store.keep(*model("v2", "2026-01-02T00:00:00Z"))
    assert store.current().version == "v1"  # kept, not yet current
    store.promote("v2")
    assert store.current().version == "v2" and store.stamp() != first
    assert [v["version"] for v in store.versions()] == ["v1", "v2"]
    store.promote("v1")  # a rollback is a promotion of an earlier version
    assert store.current().version == "v1"
    assert store.load_version("v2").version == "v2"


def test_promoting_a_version_never_kept_changes_nothing(store):
    store.keep(*model("v1", "2026-01-01T00:00:00Z"))
    store.promote("v1")
    stamp = store.stamp()
    for name in ("v9", "../v1", ""):
        with pytest.raises(ModelLoadError):
            store.promote(name)
    assert store.stamp() == stamp and store.current().version == "v1"


# --- the atomic write ----------------------------------------------------------------------


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "report.json"
    atomic_write_bytes(target, b"old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    assert oct(target.stat().st_mode & 0o777) == "0o644"
