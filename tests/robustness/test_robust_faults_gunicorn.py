"""Faults under the real server (gunicorn.conf.py, two workers) on 127.0.0.1: a worker killed
mid-request, a model file corrupted under a running server, a server started on a corrupt one."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from robust_helpers import (
    Gunicorn,
    children,
    connection_owner,
    leftover_temp_files,
    read_http_response,
    stored_files,
    synthetic_kdd,
    time_limit,
)

from tests.conftest import poll
from utils.model_store import MODEL_FILE, load_model
from utils.registry import SQLiteRegistry as UploadRegistry

pytestmark = pytest.mark.e2e

TIMEOUT = (5, 60)  # connect, read (seconds)
WAIT = 30.0  # bound of every poll


def wait_for(condition, what: str, deadline: float = WAIT):
    return poll(condition, what, deadline, interval=0.05)




def fresh_get(server: Gunicorn, path: str) -> requests.Response:
    """On a new connection, so either worker may answer."""
    with requests.Session() as session:
        return session.get(f"{server.url}{path}", timeout=TIMEOUT)


def fresh_upload(server: Gunicorn, data: bytes, name: str = "t.txt") -> requests.Response:
    with requests.Session() as session:
        return session.post(f"{server.url}/api/predict", files={"file": (name, data)},
                            timeout=TIMEOUT)


@pytest.fixture
def server(model_dir, tmp_path) -> Iterator[Gunicorn]:
    shutil.copytree(model_dir, tmp_path / "model")
    server = Gunicorn(tmp_path, {
        "ANOMALYZE_MODEL_DIR": str(tmp_path / "model"),
        "ANOMALYZE_DATA_DIR": str(tmp_path / "data"), "ANOMALYZE_MODEL_CHECK_INTERVAL": "0.2"})
    server.model_dir = tmp_path / "model"
    server.data_dir = tmp_path / "data"
    try:
        yield server
    finally:
        server.stop()


class SlowUpload:
    """An upload whose body is held back after its first bytes: a request in flight in one
    worker for as long as the test wants."""

    def __init__(self, server: Gunicorn, data: bytes) -> None:
        boundary = "slow-upload-boundary"
        self.body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                     f"filename=\"slow.txt\"\r\nContent-Type: text/plain\r\n\r\n").encode()
        self.body += data + f"\r\n--{boundary}--\r\n".encode()
        self.sent = len(self.body) // 3
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        self.sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          + f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                            f"Content-Length: {len(self.body)}\r\n\r\n".encode()
                          + self.body[: self.sent])
        workers = server.worker_pids()
        port = self.sock.getsockname()[1]
        self.worker = wait_for(lambda: connection_owner(server.port, port, workers),
                           "the worker holding the slow upload")

    def finish(self) -> tuple[int, bytes]:
        self.sock.sendall(self.body[self.sent:])
        status, _, body = read_http_response(self.sock)
        return status, body

    def close(self) -> None:
        self.sock.close()


def test_killing_the_worker_of_a_request_in_flight_leaves_the_service_serving(server, capsys):
    data = synthetic_kdd(200, 50, seed=31)
    before = server.worker_pids()
    slow = SlowUpload(server, data)
    try:
        os.kill(slow.worker, signal.SIGKILL)
        with time_limit(60, "the killed request"):
            try:
                status, _ = slow.finish()
            except (ConnectionError, OSError, IndexError, ValueError):
                status = None  # the connection died with its worker: the client sees that
        assert status is None or status >= 500
    finally:
        slow.close()
    assert server.process.poll() is None, "the gunicorn master died"
    answered = [fresh_upload(server, synthetic_kdd(20, 5, seed=i)).status_code
                for i in range(20)]
    assert answered == [200] * 20
    after = wait_for(lambda: len(server.worker_pids()) == 2 and server.worker_pids(),
                 "the master to replace the killed worker")
    assert slow.worker not in after and len(set(after) - set(before)) == 1
    # The killed request's partial upload may stay in incoming/ (its process is gone; stale
    # temp files are removed at the next start), but it is neither registered nor kept.
    leftovers = leftover_temp_files(server.data_dir)
    assert len(leftovers) <= 1
    assert len(stored_files(server.data_dir)) == 20
    assert hashlib.sha256(data).hexdigest() not in {
        u.sha256 for u in UploadRegistry(server.data_dir).uploads()}
    with capsys.disabled():
        print(f"\n[robustness] worker {slow.worker} SIGKILLed mid-upload: client saw "
              f"{status or 'a dropped connection'}; next 20 uploads {set(answered)}; "
              f"workers {before} -> {after}; partial temp files left: {len(leftovers)}")


def test_killing_another_worker_does_not_disturb_a_request_in_flight(server):
    data = synthetic_kdd(200, 50, seed=32)
    slow = SlowUpload(server, data)
    try:
        other = next(pid for pid in server.worker_pids() if pid != slow.worker)
        os.kill(other, signal.SIGKILL)
        wait_for(lambda: other not in children(server.process.pid), "the killed worker to go")
        with time_limit(60, "the request in flight"):
            status, body = slow.finish()
    finally:
        slow.close()
    assert status == 200, body[:300]
    assert b'"total_samples":250' in body
    assert fresh_get(server, "/health").status_code == 200


def corrupt(path: Path, kind: str) -> None:
    """Replace the model file atomically (as a deploy or a retrain would) with a bad one."""
    good = path.read_bytes()
    bad = {"truncated": good[: len(good) // 2], "empty": b"",
           "garbage": b"not a joblib file at all\n" * 100,
           "flipped bytes": good[:200] + bytes(b ^ 0xFF for b in good[200:400]) + good[400:]}
    tmp = path.with_name(f".{path.name}.incoming")
    tmp.write_bytes(bad[kind])
    os.replace(tmp, path)


def test_corrupt_model_under_a_running_server_keeps_the_old_one_serving(server):
    version = load_model(server.model_dir).version
    good = (server.model_dir / MODEL_FILE).read_bytes()
    corrupt(server.model_dir / MODEL_FILE, "truncated")

    def every_worker_degraded():
        bodies = [fresh_get(server, "/health") for _ in range(8)]
        return all(r.status_code == 200 and r.json()["status"] == "degraded" for r in bodies)

    wait_for(every_worker_degraded, "both workers to notice the corrupt file")
    health = fresh_get(server, "/health").json()
    assert health["model_version"] == version
    assert "corrupt" in health["model_error"] and str(server.model_dir) not in health["model_error"]
    for i in range(8):
        response = fresh_upload(server, synthetic_kdd(20, 5, seed=40 + i))
        assert response.status_code == 200
        assert response.json()["summary"]["model_version"] == version

    tmp = server.model_dir / ".restore"
    tmp.write_bytes(good)
    os.replace(tmp, server.model_dir / MODEL_FILE)
    wait_for(lambda: all(fresh_get(server, "/health").json()["status"] == "ok" for _ in range(8)),
         "both workers to recover once the file is good again")


def test_server_started_on_a_truncated_model_refuses_to_predict_and_says_why(model_dir,
                                                                            tmp_path):
    shutil.copytree(model_dir, tmp_path / "model")
    corrupt(tmp_path / "model" / MODEL_FILE, "truncated")
    server = Gunicorn(tmp_path, {"ANOMALYZE_MODEL_DIR": str(tmp_path / "model"),
                                 "ANOMALYZE_DATA_DIR": str(tmp_path / "data")},
                      ready_status=503)
    try:
        for _ in range(4):
            health = fresh_get(server, "/health")
            assert health.status_code == 503
            body = health.json()
            assert (body["status"], body["model_version"]) == ("unavailable", None)
            assert "model.joblib" in body["model_error"] and "corrupt" in body["model_error"]
            assert str(tmp_path) not in health.text
        predicted = fresh_upload(server, synthetic_kdd(10, 2))
        assert predicted.status_code == 503
        assert predicted.json()["error_type"] == "model_unavailable"
        assert "corrupt" in predicted.json()["error"] and str(tmp_path) not in predicted.text
        assert not (tmp_path / "data" / "uploaded_logs").exists()
        info = fresh_get(server, "/api/model-info")
        assert info.status_code == 503 and info.json()["error_type"] == "model_unavailable"
    finally:
        server.stop()
