"""Faults inside the app (Flask test client): corrupt model files, a full disk while an upload
is kept, a locked upload registry. The analysis a client asked for is never lost to a fault in
keeping its upload."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import sqlite3
import threading
import time

import joblib
import pytest
from robust_helpers import (
    assert_json_error,
    leftover_temp_files,
    make_app,
    stored_files,
    synthetic_kdd,
    upload,
)

from tests.conftest import fill_disk
from utils.model_store import MODEL_FILE, load_model
from utils.registry import SQLiteRegistry as UploadRegistry

CORRUPTIONS = ["truncated", "empty", "garbage", "flipped bytes", "pickle of something else"]


def corrupt_bytes(good: bytes, kind: str) -> bytes:
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "empty":
        return b""
    if kind == "garbage":
        return b"not a joblib file at all\n" * 100
    if kind == "flipped bytes":
        return good[:200] + bytes(b ^ 0xFF for b in good[200:400]) + good[400:]
    buffer = io.BytesIO()  # a valid joblib file, but not an Anomalyze model
    joblib.dump({"format": "something-else/1", "data": [1, 2, 3]}, buffer)
    return buffer.getvalue()


@pytest.fixture
def model_copy(model_dir, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_fresh_start_on_a_bad_model_file_says_why_and_refuses_to_predict(model_copy, tmp_path,
                                                                         kind):
    path = model_copy / MODEL_FILE
    path.write_bytes(corrupt_bytes(path.read_bytes(), kind))
    client = make_app(model_copy, tmp_path / "data").test_client()
    health = client.get("/health")
    assert health.status_code == 503
    body = health.get_json()
    assert (body["status"], body["model_version"], body["models_loaded"]) == (
        "unavailable", None, 0)
    assert "model.joblib" in body["model_error"]
    assert "corrupt" in body["model_error"] or "not an Anomalyze model" in body["model_error"]
    assert str(tmp_path) not in json.dumps(body)
    body = assert_json_error(upload(client, synthetic_kdd(10, 2)), 503, "model_unavailable")
    assert str(tmp_path) not in body["error"]
    assert stored_files(tmp_path / "data") == []


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_running_app_keeps_its_model_when_the_file_goes_bad(model_copy, tmp_path, kind):
    client = make_app(model_copy, tmp_path / "data").test_client()
    version = load_model(model_copy).version
    path = model_copy / MODEL_FILE
    tmp = model_copy / ".incoming"
    tmp.write_bytes(corrupt_bytes(path.read_bytes(), kind))
    os.replace(tmp, path)
    health = client.get("/health")
    assert health.status_code == 200
    assert health.get_json()["status"] == "degraded" and health.get_json()["model_error"]
    response = upload(client, synthetic_kdd(20, 5))
    assert response.status_code == 200
    assert response.get_json()["summary"]["model_version"] == version


# --- a full disk while the upload is kept -----------------------------------------------------


def enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def sqlite_full(*_args, **_kwargs):
    raise sqlite3.OperationalError("database or disk is full")


@pytest.mark.parametrize(("target", "fault"), [
    ("utils.registry.sqlite.fsync_file", enospc),  # flushing the upload to disk
    ("utils.registry.sqlite.os.replace", enospc),  # moving it into uploaded_logs/
    ("utils.registry.sqlite.stored_file_name", enospc),  # reading its first bytes
    ("utils.registry.sqlite.SQLiteRegistry.find", sqlite_full),  # SQLite: the lookup
    ("utils.registry.sqlite.utc_timestamp", sqlite_full),  # SQLite: inside the insert
], ids=["fsync", "rename", "name", "sqlite lookup", "sqlite insert"])
def test_full_disk_while_keeping_an_upload_still_returns_the_analysis(
        client, data_dir, monkeypatch, target, fault, log_lines):
    data = synthetic_kdd(40, 20, seed=51)
    expected = upload(client, data).get_json()  # stored normally
    monkeypatch.setattr(target, fault)
    response = upload(client, data + b"\n")  # other content: not a duplicate
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["summary"]["stored"] is False
    assert body["summary"]["duplicate"] is False
    assert body["summary"]["total_samples"] == 60
    assert body["anomalies"] == expected["anomalies"]
    assert stored_files(data_dir) == [stored_files(data_dir)[0]]  # only the first upload
    assert leftover_temp_files(data_dir) == []
    monkeypatch.undo()
    assert len(UploadRegistry(data_dir).uploads()) == 1
    errors = [line for line in log_lines if line["level"] == "error"]
    assert errors and "not kept" in errors[0]["message"], log_lines


def test_full_disk_while_receiving_an_upload_is_a_json_error_without_a_partial_file(
        client, data_dir, monkeypatch):
    """The upload is written to a temp file as it arrives; with no room for it there is
    nothing to analyse: a JSON 507 (no traceback, no path), and the partial file is gone."""
    from server import uploads

    real_write = uploads.HashingSpool.write

    def write_until_full(self, data):
        if self.size + len(data) > 1000:
            enospc()
        return real_write(self, data)

    monkeypatch.setattr(uploads.HashingSpool, "write", write_until_full)
    response = upload(client, synthetic_kdd(400, 100, seed=52))
    body = assert_json_error(response, 507, "insufficient_storage")
    assert "Traceback" not in body["error"] and str(data_dir) not in body["error"]
    assert leftover_temp_files(data_dir) == []
    assert stored_files(data_dir) == []


@pytest.mark.parametrize("rows", [25, 3500], ids=["in the write buffer", "written to disk"])
def test_upload_to_a_full_data_disk_is_507_and_leaves_no_temp_file(model_dir, small_disk, rows):
    """A real full disk (a tmpfs): small uploads fail when the spool is flushed, large ones
    while it is written; either way a JSON 507, no exception out of the request's cleanup."""
    disk = small_disk("2m")
    client = make_app(model_dir, disk, MIN_FREE_MB=0.5).test_client()
    filler = fill_disk(disk)
    data = synthetic_kdd(rows * 4 // 5, rows // 5, seed=53)
    assert_json_error(upload(client, data), 507, "insufficient_storage")
    assert leftover_temp_files(disk) == [] and stored_files(disk) == []
    status = client.get("/api/retrain/status")
    assert status.status_code in (200, 503), status.get_data(as_text=True)
    if status.status_code == 503:
        assert_json_error(status, 503, "storage_unavailable")
    assert client.get("/health").get_json()["disk"]["low"] is True
    filler.unlink()
    assert upload(client, data).get_json()["summary"]["stored"] is True


def test_registry_unreadable_on_a_full_disk_is_a_503_json_on_the_status_route(client,
                                                                            monkeypatch):
    def disk_io_error(*_args, **_kwargs):
        error = sqlite3.OperationalError("disk I/O error")
        error.sqlite_errorcode = 4874  # SQLITE_IOERR_SHMSIZE: WAL's index cannot grow
        raise error

    monkeypatch.setattr(UploadRegistry, "counts", disk_io_error)
    assert_json_error(client.get("/api/retrain/status"), 503, "storage_unavailable")


def test_sqlite_full_outside_keeping_an_upload_is_a_507_json(model_dir, data_dir, monkeypatch):
    client = make_app(model_dir, data_dir, ADMIN_TOKEN="s3cret").test_client()
    monkeypatch.setattr(UploadRegistry, "request_retrain", sqlite_full)
    response = client.post("/api/retrain", headers={"Authorization": "Bearer s3cret"})
    assert_json_error(response, 507, "insufficient_storage")


def test_uploads_are_not_kept_under_the_free_space_floor_but_still_scored(model_dir, data_dir,
                                                                          log_lines):
    client = make_app(model_dir, data_dir, MIN_FREE_MB=1e9).test_client()  # 1 PB: always low
    response = upload(client, synthetic_kdd(40, 20, seed=54))
    assert response.status_code == 200
    summary = response.get_json()["summary"]
    assert (summary["stored"], summary["duplicate"], summary["total_samples"]) == (
        False, False, 60)
    assert stored_files(data_dir) == [] and leftover_temp_files(data_dir) == []
    health = client.get("/health").get_json()
    assert health["status"] == "ok" and health["disk"]["low"] is True
    assert health["disk"]["min_free_bytes"] == int(1e9 * (1 << 20))
    assert [line["message"] for line in log_lines if "not kept" in line["message"]]


# --- a locked upload registry ----------------------------------------------------------------


def test_uploads_wait_for_a_briefly_locked_registry_and_are_all_kept(app, client, data_dir):
    """Another connection holds SQLite's write lock for 1.5 s while five uploads arrive."""
    registry = app.extensions["anomalyze.uploads"].registry
    blocker = sqlite3.connect(registry.db_path, isolation_level=None,
                              check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(1.5, blocker.execute, args=("COMMIT",))
    started = time.monotonic()
    release.start()
    try:
        summaries = [upload(client, synthetic_kdd(20, 5, seed=60 + i)).get_json()["summary"]
                     for i in range(5)]
    finally:
        release.join()
        blocker.close()
    waited = time.monotonic() - started
    assert [s["stored"] for s in summaries] == [True] * 5
    assert len(stored_files(data_dir)) == 5 == len(UploadRegistry(data_dir).uploads())
    assert waited >= 1.0  # they did wait for the lock (not a latency bound)


def test_registry_locked_past_its_retry_budget_still_returns_the_analysis(app, client,
                                                                          data_dir, log_lines):
    registry = app.extensions["anomalyze.uploads"].registry
    registry.busy_timeout = 0.5
    blocker = sqlite3.connect(registry.db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        response = upload(client, synthetic_kdd(20, 5, seed=70))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert response.status_code == 200, response.get_data(as_text=True)
    summary = response.get_json()["summary"]
    assert (summary["stored"], summary["total_samples"]) == (False, 25)
    assert stored_files(data_dir) == [] and leftover_temp_files(data_dir) == []
    errors = [line["message"] for line in log_lines if line["level"] == "error"]
    assert errors and "not kept" in errors[0] and "busy" in errors[0], log_lines
    again = upload(client, synthetic_kdd(20, 5, seed=70)).get_json()["summary"]
    assert (again["stored"], again["duplicate"]) == (True, False)  # kept once the lock is gone
