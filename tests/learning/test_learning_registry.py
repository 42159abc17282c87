"""The upload registry: what is kept and where, de-duplication, the counter under concurrency,
run records, the retrain lock."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from settings import load_settings
from utils.registry import (
    DEFAULT_THRESHOLD,
    RegistryBusyError,
    RetrainBusy,
    RetrainLock,
    sanitise_name,
)
from utils.registry import (
    SQLiteRegistry as UploadRegistry,
)

KDD_LINE = ("0,tcp,http,SF,{n},5000,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,5,5,0,0,0,0,1,0,0,"
            "255,255,1,0,0,0,0,0,0,0,normal,21")


def content(n: int) -> bytes:
    """A distinct valid KDD upload for each ``n``."""
    return (KDD_LINE.format(n=n) + "\n").encode()


def put(registry: UploadRegistry, data: bytes, name: str = "capture.txt", threshold: int = 10):
    """Register ``data`` from a temp file, as the server would (1 row, labeled, KDD)."""
    incoming = registry.data_dir / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    path = incoming / f".upload-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}.part"
    path.write_bytes(data)
    return path, registry.register(path, sha256=hashlib.sha256(data).hexdigest(),
                                   original_name=name, rows=1, has_labels=True,
                                   input_kind="kdd", threshold=threshold)


def test_register_keeps_the_file_under_a_time_and_hash_name(tmp_path):
    registry = UploadRegistry(tmp_path)
    data = content(1)
    temp, result = put(registry, data, name="../../etc/passwd.csv")
    assert (result.duplicate, result.stored) == (False, True)
    upload = result.upload
    assert re.fullmatch(rf"uploaded_logs/\d{{8}}T\d{{6}}Z-{upload.sha256[:16]}\.csv",
                        upload.stored_path)
    assert registry.path_of(upload).read_bytes() == data
    assert not temp.exists()
    assert upload.original_name == "passwd.csv"
    assert (upload.status, upload.rows, upload.has_labels, upload.input_kind) == (
        "pending", 1, True, "kdd")
    assert upload.received_at.endswith("Z")


def test_the_database_is_in_wal_mode(tmp_path):
    registry = UploadRegistry(tmp_path)
    with sqlite3.connect(registry.db_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(("name", "expected"), [
    ("capture.log", "capture.log"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\logs.txt", "logs.txt"),
    ("bad\x00\x1bname.txt", "badname.txt"),
    ("..", "upload"),
    ("", "upload"),
    (None, "upload"),
    ("x" * 300 + ".txt", "x" * 255),
])
def test_client_names_are_sanitised(name, expected):
    assert sanitise_name(name) == expected


def test_duplicate_content_is_neither_stored_nor_counted(tmp_path):
    registry = UploadRegistry(tmp_path)
    _, first = put(registry, content(1))
    temp, second = put(registry, content(1), name="other-name.txt")
    assert (second.duplicate, second.stored, second.retrain_due) == (True, False, False)
    assert second.upload.id == first.upload.id
    assert temp.exists()  # the caller's temp file: the registry leaves it alone
    assert registry.counts()["pending"] == 1
    assert registry.state()["uploads_since_retrain"] == 1
    assert len(list(registry.uploads_dir.glob("*.csv")) + list(
        registry.uploads_dir.glob("*.txt"))) == 1


def test_every_threshold_uploads_trigger_a_retrain_and_requests_coalesce(tmp_path):
    registry = UploadRegistry(tmp_path)
    due = [put(registry, content(i), threshold=3)[1].retrain_due for i in range(7)]
    assert due == [False, False, True, False, False, True, False]
    assert registry.state() == {"uploads_since_retrain": 1, "requests": 1}  # one run queued


def test_threshold_zero_never_queues_a_retrain(tmp_path):
    registry = UploadRegistry(tmp_path)
    for i in range(5):
        assert not put(registry, content(i), threshold=0)[1].retrain_due
    assert registry.state() == {"uploads_since_retrain": 5, "requests": 0}


def retrain_threshold(environ: dict[str, str]) -> int:
    return load_settings("api", environ)["RETRAIN_THRESHOLD"]


@pytest.mark.parametrize(("raw", "expected"), [("", 10), ("3", 3), ("0", 0)])
def test_threshold_comes_from_the_environment(raw, expected):
    assert retrain_threshold({"ANOMALYZE_RETRAIN_THRESHOLD": raw}) == expected


@pytest.mark.parametrize("raw", ["ten", "-1", "2.5"])
def test_a_bad_threshold_names_the_variable(raw):
    with pytest.raises(ValueError, match="ANOMALYZE_RETRAIN_THRESHOLD"):
        retrain_threshold({"ANOMALYZE_RETRAIN_THRESHOLD": raw})


def test_without_a_threshold_the_registry_uses_its_default_not_the_environment(
        tmp_path, monkeypatch):
    monkeypatch.setenv("ANOMALYZE_RETRAIN_THRESHOLD", "1")
    registry = UploadRegistry(tmp_path)
    due = [put(registry, content(i), threshold=None)[1].retrain_due
           for i in range(DEFAULT_THRESHOLD)]
    assert due == [False] * (DEFAULT_THRESHOLD - 1) + [True]


def _register_many(data_dir: str, numbers: list[int], start: multiprocessing.Event) -> None:
    registry = UploadRegistry(data_dir)
    start.wait(10)
    threads = [threading.Thread(target=put, args=(registry, content(n)),
                                kwargs={"threshold": 10}) for n in numbers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_processes_and_threads_lose_no_upload_and_no_trigger(tmp_path):
    """4 processes x 2 batches of threads register 40 distinct uploads, each sent twice."""
    UploadRegistry(tmp_path)
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    batches = [list(range(i, 40, 4)) for i in range(4)]
    processes = [context.Process(target=_register_many, args=(str(tmp_path), batch, start))
                 for batch in batches + batches[::-1]]  # every content from two processes
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    registry = UploadRegistry(tmp_path)
    uploads = registry.uploads()
    assert len(uploads) == 40
    assert {u.sha256 for u in uploads} == {hashlib.sha256(content(n)).hexdigest()
                                           for n in range(40)}
    assert registry.state() == {"uploads_since_retrain": 0, "requests": 1}  # coalesced
    kept = sorted(p.name for p in registry.uploads_dir.iterdir() if p.is_file())
    assert kept == sorted(Path(u.stored_path).name for u in uploads)


def test_a_failed_transaction_puts_the_file_back(tmp_path):
    registry = UploadRegistry(tmp_path)
    temp = tmp_path / "incoming.part"
    temp.write_bytes(content(1))
    with pytest.raises(sqlite3.IntegrityError):  # input_kind NOT NULL: fails after the rename
        registry.register(temp, sha256="ab" * 32, original_name="x.txt", rows=1,
                          has_labels=True, input_kind=None)
    assert temp.read_bytes() == content(1)
    assert not any(registry.uploads_dir.iterdir())
    assert registry.uploads() == []
    assert registry.state()["uploads_since_retrain"] == 0


def test_a_busy_database_is_waited_for(tmp_path):
    registry = UploadRegistry(tmp_path, busy_timeout=30)
    blocker = sqlite3.connect(registry.db_path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, blocker.execute, args=("COMMIT",))
    release.start()
    _, result = put(registry, content(1))
    release.join()
    blocker.close()
    assert result.stored


def test_a_database_busy_for_too_long_raises_a_clear_error(tmp_path):
    registry = UploadRegistry(tmp_path, busy_timeout=0.3)
    blocker = sqlite3.connect(registry.db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(RegistryBusyError, match="busy"):
            put(registry, content(1))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_requests_are_taken_one_at_a_time_and_manual_ones_do_not_pile_up(tmp_path):
    registry = UploadRegistry(tmp_path)
    for _ in range(3):
        registry.request_retrain()
    assert registry.state()["requests"] == 1
    assert registry.take_request()
    assert not registry.take_request()


def _pending_run(registry: UploadRegistry, n: int) -> tuple[int, list]:
    for i in range(n):
        put(registry, content(i))
    run_id = registry.start_run(trigger="test")
    return run_id, registry.claim_pending(run_id, "kdd")


def test_a_promoted_run_archives_its_uploads_and_moves_their_files(tmp_path):
    registry = UploadRegistry(tmp_path)
    run_id, claimed = _pending_run(registry, 3)
    put(registry, content(99))  # arrives during the run: not part of it
    registry.finish_run(run_id, "promoted", "better", metrics_before={"f1": 0.9},
                        metrics_after={"f1": 0.95}, version="v2")
    by_status = {u.sha256: u for u in registry.uploads()}
    for upload in claimed:
        archived = by_status[upload.sha256]
        assert archived.status == "archived"
        assert archived.stored_path.startswith("uploaded_logs/archived/")
        assert registry.path_of(archived).is_file()
        assert not registry.path_of(upload).exists()
    assert registry.counts() == {"pending": 1, "used": 0, "archived": 3, "quarantined": 0}
    (run,) = registry.runs()
    assert (run["outcome"], run["version"], run["metrics_after"]) == (
        "promoted", "v2", {"f1": 0.95})
    assert run["finished_at"] >= run["started_at"]


@pytest.mark.parametrize(("outcome", "status"), [("rejected", "used"), ("failed", "pending")])
def test_rejected_and_failed_runs_keep_the_files_where_they_are(tmp_path, outcome, status):
    registry = UploadRegistry(tmp_path)
    run_id, claimed = _pending_run(registry, 2)
    registry.finish_run(run_id, outcome, "why")
    for upload in registry.uploads():
        assert upload.status == status
        assert registry.path_of(upload).is_file()
        assert upload.stored_path == claimed[0].stored_path or upload.stored_path == (
            claimed[1].stored_path)
    assert registry.runs()[0]["reason"] == "why"


def test_requeue_puts_set_aside_uploads_back_in_the_queue(tmp_path):
    registry = UploadRegistry(tmp_path)
    run_id, _ = _pending_run(registry, 2)
    registry.finish_run(run_id, "rejected", "worse")
    assert registry.requeue_used() == 2
    assert registry.counts()["pending"] == 2


def test_reconcile_finishes_a_move_a_crash_interrupted(tmp_path):
    registry = UploadRegistry(tmp_path)
    run_id, claimed = _pending_run(registry, 1)
    registry.finish_run(run_id, "promoted", "ok")
    (archived,) = registry.uploads()
    os.replace(registry.path_of(archived), registry.path_of(claimed[0]))  # as if never moved
    assert registry.reconcile_files() == 1
    assert registry.path_of(archived).is_file()


def test_only_a_live_process_counts_as_a_running_retrain(tmp_path):
    registry = UploadRegistry(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    registry.start_run(trigger="test", pid=int(dead.stdout))
    assert registry.running_run() is None
    alive = registry.start_run(trigger="test")
    assert registry.running_run()["id"] == alive


HOLD_LOCK = """
import sys, time
from utils.registry import RetrainLock
lock = RetrainLock(sys.argv[1])
assert lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_the_retrain_lock_is_exclusive_and_dies_with_its_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = RetrainLock(tmp_path)
        assert not lock.acquire(wait=0.2)
        with pytest.raises(RetrainBusy):
            lock.__enter__()
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
        assert lock.acquire(wait=10)
        lock.release()
    finally:
        holder.kill()
        holder.wait(30)
