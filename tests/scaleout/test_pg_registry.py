"""The PostgreSQL registry against a real server: keep-once and the exact counter under
concurrency, the retrain lock across processes (and its release when the holder is killed),
schema versions and concurrent start-ups."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from tests.conftest import poll
from utils.pg_registry import PostgresRegistry, PostgresRetrainLock, RegistryUnavailable
from utils.pg_schema import SCHEMA_VERSION, SchemaTooNew, schema_version, upgrade

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]


def temp_upload(folder: Path, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".upload-{hashlib.sha256(data).hexdigest()[:8]}-{os.urandom(4).hex()}.part"
    path.write_bytes(data)
    return path


def keep(registry: PostgresRegistry, data: bytes, threshold: int = 10, **kwargs):
    path = temp_upload(registry.data_dir / "incoming", data)
    return registry.register(path, sha256=hashlib.sha256(data).hexdigest(),
                             original_name="x.txt", rows=1, has_labels=False,
                             input_kind="kdd", threshold=threshold, **kwargs)


def test_concurrent_duplicates_from_two_registries_are_kept_once_and_counted_once(
        pg_url, tmp_path):
    first = PostgresRegistry(pg_url, tmp_path / "a")
    second = PostgresRegistry(pg_url, tmp_path / "b")  # another instance: its own data folder
    contents = [f"upload {i}\n".encode() for i in range(30)]
    jobs = [(registry, data) for data in contents for registry in (first, second, first)]
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda job: keep(*job), jobs))
    assert sum(r.stored for r in results) == 30
    assert sum(r.duplicate for r in results) == 60
    assert sum(r.retrain_due for r in results) == 3  # 30 new uploads, a threshold of 10
    assert len(first.uploads()) == 30
    assert first.state() == {"uploads_since_retrain": 0, "requests": 1}  # requests coalesce
    kept = sorted(p.name for p in (tmp_path / "a" / "uploaded_logs").iterdir()) + sorted(
        p.name for p in (tmp_path / "b" / "uploaded_logs").iterdir())
    assert len(kept) == 30  # the loser of each race gave its file back


def test_the_counter_is_exact_below_the_threshold(pg_url, tmp_path):
    registry = PostgresRegistry(pg_url, tmp_path)
    for i in range(7):
        keep(registry, f"row {i}\n".encode())
    keep(registry, b"row 0\n")
    assert registry.state() == {"uploads_since_retrain": 7, "requests": 0}
    assert registry.counts()["pending"] == 7


def test_a_trusted_copy_marks_the_kept_upload_trusted(pg_url, tmp_path):
    registry = PostgresRegistry(pg_url, tmp_path)
    keep(registry, b"same\n")
    again = keep(registry, b"same\n", trusted=True)
    assert again.duplicate and again.upload.trusted


def test_the_run_log_queue_and_statuses_follow_a_run(pg_url, tmp_path):
    registry = PostgresRegistry(pg_url, tmp_path)
    for i in range(3):
        keep(registry, f"u{i}\n".encode(), threshold=3)
    assert registry.take_request() and not registry.take_request()
    run = registry.start_run(trigger="upload", previous_version="v1")
    claimed = registry.claim_pending(run, "kdd")
    assert len(claimed) == 3
    registry.finish_run(run, "promoted", "fine", metrics_before={"auroc": 0.9},
                        metrics_after={"auroc": 0.91}, version="v2")
    assert registry.counts()["archived"] == 3
    [logged] = registry.runs()
    assert logged["outcome"] == "promoted" and logged["metrics_after"] == {"auroc": 0.91}
    assert logged["host"] and logged["uploads_used"] == 3
    assert registry.quarantine([u.sha256 for u in claimed[:2]]) == sorted(
        u.sha256 for u in claimed[:2])
    released = registry.release(claimed[0].sha256)
    assert released.status == "pending"
    assert registry.path_of(released).read_bytes() == b"u0\n"


def test_the_retrain_lock_is_one_at_a_time_across_sessions(pg_url):
    PostgresRegistry(pg_url, "/nonexistent-unused", create_schema=True)
    first, second = PostgresRetrainLock(pg_url), PostgresRetrainLock(pg_url)
    assert first.acquire()
    assert not second.acquire(wait=0.3)
    first.release()
    assert second.acquire()
    second.release()


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from utils.pg_registry import PostgresRetrainLock
    lock = PostgresRetrainLock(sys.argv[1])
    assert lock.acquire()
    print("held", flush=True)
    time.sleep(600)
""")


def test_a_killed_holder_releases_the_retrain_lock(pg_url, tmp_path):
    registry = PostgresRegistry(pg_url, tmp_path)
    run = registry.start_run(trigger="test")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, pg_url], cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert registry.running_run()["id"] == run  # the lock is held: the run is live
        assert not PostgresRetrainLock(pg_url).acquire()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        lock = PostgresRetrainLock(pg_url)
        assert poll(lambda: lock.acquire(), "the lock of a killed holder", deadline=10)
        lock.release()
        assert registry.running_run() is None  # its row still says running; nobody holds it
    finally:
        holder.kill()
        holder.wait()


def test_instances_starting_together_create_the_schema_once(pg_url):
    barrier = threading.Barrier(6)

    def start() -> tuple[int, int]:
        barrier.wait()
        return upgrade(pg_url)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: start(), range(6)))
    assert sorted(before for before, _ in results) == [0] + [SCHEMA_VERSION] * 5
    with psycopg.connect(pg_url) as conn:
        assert schema_version(conn) == SCHEMA_VERSION
        assert conn.execute("SELECT COUNT(*) FROM retrain_state").fetchone()[0] == 1


def test_a_database_from_a_newer_release_is_refused(pg_url):
    upgrade(pg_url)
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE anomalyze_schema SET version = version + 1")
    with pytest.raises(SchemaTooNew):
        upgrade(pg_url)


def test_a_stopped_database_is_reported_unavailable_and_recovers(postgres_server, tmp_path):
    url = postgres_server.create_database("t_unavailable")
    registry = PostgresRegistry(url, tmp_path, timeout=2)
    keep(registry, b"before\n")
    with postgres_server.stopped():
        assert not registry.reachable()
        with pytest.raises(RegistryUnavailable):
            keep(registry, b"during\n")
        assert not list((tmp_path / "uploaded_logs").glob("*during*"))
    assert poll(registry.reachable, "the registry back")
    assert keep(registry, b"during\n").stored
    assert registry.state()["uploads_since_retrain"] == 2
