"""A full data disk under the real server (gunicorn.conf.py, two workers): the data folder is a
small tmpfs (tests/conftest.py ``small_disk``) that the test fills up."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers.disk import fill_disk, leftover_temp_files, stored_files
from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.servers import Gunicorn, fresh_get, fresh_upload

pytestmark = pytest.mark.e2e

MB = 1 << 20
SMALL = synthetic_kdd(20, 5, seed=81)  # 2.7 kB: fits in the spool's write buffer
LARGE = synthetic_kdd(3000, 500, seed=82)  # 370 kB: written to disk as it arrives


def start(root: Path, model_dir: Path, data_dir: Path, min_free_mb: float) -> Gunicorn:
    return Gunicorn(root, {"ANOMALYZE_MODEL_DIR": str(model_dir),
                           "ANOMALYZE_DATA_DIR": str(data_dir),
                           "ANOMALYZE_MIN_FREE_MB": str(min_free_mb)})


@pytest.fixture
def disk(small_disk) -> Path:
    return small_disk("8m")


@pytest.fixture
def server(model_dir, tmp_path, disk) -> Iterator[Gunicorn]:
    server = start(tmp_path, model_dir, disk, min_free_mb=1)
    try:
        yield server
    finally:
        server.stop()  # before the tmpfs is unmounted


def assert_insufficient_storage(response: requests.Response) -> None:
    assert response.status_code == 507, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert (body["success"], body["error_type"]) == (False, "insufficient_storage")
    assert "Traceback" not in body["error"] and "/" not in body["error"]


def test_a_full_data_disk_answers_uploads_507_leaves_nothing_and_recovers(server, disk):
    filler = fill_disk(disk)
    answers = []
    for data in (SMALL, LARGE, SMALL + b"\n", LARGE + b"\n"):  # either worker may answer
        started = time.perf_counter()
        response = fresh_upload(server, data)
        answers.append(f"{len(data) // 1000} kB -> {response.status_code} "
                       f"{response.json().get('error_type')} "
                       f"in {(time.perf_counter() - started) * 1000:.0f} ms")
        assert_insufficient_storage(response)
    assert leftover_temp_files(disk) == []
    assert stored_files(disk) == []

    status = fresh_get(server, "/api/retrain/status")
    disk_state = fresh_get(server, "/health").json()["disk"]
    print(f"\n[robustness] full 8 MB tmpfs: {'; '.join(answers)}; temp files left: "
          f"{len(leftover_temp_files(disk))}; /api/retrain/status -> {status.status_code} "
          f"{status.json().get('error_type')}; /health disk {disk_state}")
    assert status.status_code != 500, status.text
    assert status.headers["Content-Type"].startswith("application/json")
    if status.status_code != 200:
        assert (status.status_code, status.json()["error_type"]) == (503, "storage_unavailable")

    health = fresh_get(server, "/health")
    assert health.status_code == 200
    assert health.json()["disk"]["low"] is True
    assert health.json()["disk"]["free_bytes"] < MB

    filler.unlink()  # an operator frees space: no restart needed
    health = fresh_get(server, "/health").json()["disk"]
    assert health["low"] is False and health["free_bytes"] > 6 * MB
    kept = fresh_upload(server, LARGE)
    print(f"[robustness] after freeing space: upload -> {kept.status_code}, "
          f"stored {kept.json()['summary']['stored']}")
    assert kept.status_code == 200, kept.text[:300]
    assert (kept.json()["summary"]["stored"], kept.json()["summary"]["total_samples"]) == (
        True, 3500)
    assert fresh_get(server, "/api/retrain/status").json()["pending_uploads"] == 1
    assert leftover_temp_files(disk) == []
    errors = [line for line in server.log_lines() if line.get("level") == "error"]
    assert any("out of space" in line["message"] for line in errors)
    assert "Socket error processing request" not in server.log_text()


def test_room_to_receive_but_not_to_keep_still_scores_with_stored_false(server, disk):
    """Under ANOMALYZE_MIN_FREE_MB (1 here) uploads are received and scored, not kept."""
    filler = fill_disk(disk, leave=MB // 2)
    response = fresh_upload(server, LARGE)
    assert response.status_code == 200, response.text[:300]
    summary = response.json()["summary"]
    assert (summary["stored"], summary["duplicate"], summary["total_samples"]) == (
        False, False, 3500)
    assert stored_files(disk) == [] and leftover_temp_files(disk) == []
    assert fresh_get(server, "/health").json()["disk"]["low"] is True
    messages = [line["message"] for line in server.log_lines() if line.get("level") == "error"]
    assert any("not kept" in message and "bytes free" in message for message in messages)

    filler.unlink()
    assert fresh_upload(server, LARGE).json()["summary"]["stored"] is True


def test_registry_write_failing_on_a_full_disk_still_scores_with_stored_false(
        model_dir, tmp_path, disk):
    """No floor (ANOMALYZE_MIN_FREE_MB=0): the upload takes the last free pages, then SQLite
    cannot grow its log to record it; the answer is the analysis with ``stored: false``."""
    server = start(tmp_path, model_dir, disk, min_free_mb=0)
    try:
        fill_disk(disk, leave=len(LARGE) + 4096)
        response = fresh_upload(server, LARGE)
        assert response.status_code == 200, response.text[:300]
        summary = response.json()["summary"]
        assert (summary["stored"], summary["duplicate"], summary["total_samples"]) == (
            False, False, 3500)
        assert leftover_temp_files(disk) == [] and stored_files(disk) == []
        status = fresh_get(server, "/api/retrain/status")
        assert status.status_code in (200, 503), status.text
        disk_state = fresh_get(server, "/health").json()["disk"]
        assert disk_state["free_bytes"] < MB and disk_state["low"] is False  # no floor set
    finally:
        server.stop()
    messages = [line["message"] for line in server.log_lines() if line.get("level") == "error"]
    assert any("not kept" in message for message in messages)
    assert "Socket error processing request" not in server.log_text()


def test_a_server_restarted_on_a_full_disk_starts_and_answers(model_dir, tmp_path, disk):
    first = start(tmp_path, model_dir, disk, min_free_mb=1)
    try:
        assert fresh_upload(first, SMALL).json()["summary"]["stored"] is True
    finally:
        first.stop()
    fill_disk(disk)
    second = start(tmp_path, model_dir, disk, min_free_mb=1)
    try:
        assert fresh_get(second, "/health").json()["disk"]["low"] is True
        assert_insufficient_storage(fresh_upload(second, LARGE))
        answer = fresh_get(second, "/api/retrain/status")
        assert answer.status_code in (200, 503)
        json.dumps(answer.json())
    finally:
        second.stop()
