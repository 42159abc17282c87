"""The service under real gunicorn (gunicorn.conf.py, two workers) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers.ecs_fields import alert_problems
from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.waiting import poll
from tests.helpers.zeek_logs import tsv_log
from utils.local_server import ServerProcess, ServerStartError, gunicorn_command
from utils.model_store import MODEL_FILE, load_model

pytestmark = pytest.mark.e2e

START_TIMEOUT = 60.0
TIMEOUT = (5, 60)  # connect, read (seconds)


class Server:
    def __init__(self, url: str, process: subprocess.Popen, log_path: Path,
                 model_dir: Path, data_dir: Path) -> None:
        self.url = url
        self.process = process
        self.log_path = log_path
        self.model_dir = model_dir
        self.data_dir = data_dir

    def log_lines(self) -> list[dict]:
        lines = []
        for text in self.log_path.read_text().splitlines():
            if text.startswith("{"):
                lines.append(json.loads(text))
        return lines

    def wait_for_log(self, predicate, deadline: float = 20.0) -> dict:
        def last_match() -> dict | None:
            found = [line for line in self.log_lines() if predicate(line)]
            return found[-1] if found else None

        try:
            return poll(last_match, "a log line", deadline)
        except AssertionError:
            raise AssertionError(
                f"no such log line in:\n{self.log_path.read_text()[-3000:]}") from None


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("gunicorn")
    served_model = root / "model"
    shutil.copytree(model_dir, served_model)
    data_dir = root / "data"
    env = {"ANOMALYZE_MODEL_DIR": str(served_model),
           "ANOMALYZE_DATA_DIR": str(data_dir), "ANOMALYZE_MAX_UPLOAD_MB": "1",
           "ANOMALYZE_MODEL_CHECK_INTERVAL": "0.2", "WEB_CONCURRENCY": "2",
           "GUNICORN_THREADS": "2"}
    process = ServerProcess(gunicorn_command(), log_path=root / "server.log", env=env,
                            start_timeout=START_TIMEOUT)
    try:
        process.start()
    except ServerStartError as exc:
        pytest.fail(str(exc))
    try:
        yield Server(process.url, process.process, process.log_path, served_model, data_dir)
    finally:
        process.stop()


def test_health_and_model_info_answer_under_gunicorn(server, model_dir):
    health = requests.get(f"{server.url}/health", timeout=TIMEOUT).json()
    assert health["status"] == "ok"
    assert health["models_loaded"] == 3
    info = requests.get(f"{server.url}/api/model-info", timeout=TIMEOUT).json()
    assert info["model_version"] == load_model(model_dir).version


def test_upload_is_scored_stored_and_logged_as_one_json_line(server):
    data = synthetic_kdd(30, 12, seed=21)
    response = requests.post(f"{server.url}/api/predict", files={"file": ("t.txt", data)},
                             timeout=TIMEOUT)
    assert response.status_code == 200
    body = response.json()
    assert body["summary"]["total_samples"] == 42
    assert body["summary"]["stored"] is True
    assert len(list((server.data_dir / "uploaded_logs").glob("*.txt"))) == 1
    line = server.wait_for_log(
        lambda entry: entry.get("path") == "/api/predict" and entry.get("status") == 200)
    assert line["method"] == "POST" and line["rows"] == 42 and line["ms"] >= 0


def test_file_over_the_limit_is_413_json(server):
    data = b"0" * (1024 * 1024 + 100)  # over the 1 MB file limit, under the body limit
    response = requests.post(f"{server.url}/api/predict", files={"file": ("big.txt", data)},
                             timeout=TIMEOUT)
    assert response.status_code == 413
    assert response.json()["error_type"] == "too_large"
    assert "1 MB" in response.json()["error"]


def test_body_over_the_limit_is_413_json_without_reading_it(server):
    """Content-Length alone decides: the answer comes while the body is still unsent."""
    length = 50 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])),
                                  timeout=30) as sock:
        sock.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            + f"Content-Length: {length}\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["error_type"] == "too_large"


def test_ecs_alerts_stream_as_ndjson_under_gunicorn(server):
    rows = [[f"{1700000000 + i * 0.01:.2f}", f"C{i}", f"192.0.2.{i % 200 + 1}", str(40000 + i),
             f"198.51.100.{i % 7 + 1}", str(80 if i % 4 else 4000 + i), "tcp",
             "http" if i % 4 else "-", "0.5", "300", "4000", "SF" if i % 4 else "S0", "-"]
            for i in range(3000)]
    data = tsv_log(rows, close=False)
    summary = requests.post(f"{server.url}/api/predict", files={"file": ("conn.log", data)},
                            timeout=TIMEOUT).json()["summary"]
    with requests.post(f"{server.url}/api/predict?format=ndjson",
                       files={"file": ("conn.log", data)}, stream=True,
                       timeout=TIMEOUT) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/x-ndjson")
        alerts = [json.loads(line) for line in response.iter_lines() if line]
    assert len(alerts) == summary["anomalies_detected"] > 0
    assert all(alert_problems(alert) == [] for alert in alerts)
    assert {alert["anomalyze"]["model_version"] for alert in alerts} == {
        summary["model_version"]}


def test_replaced_model_is_served_by_every_worker(server, other_model_dir):
    new_version = load_model(other_model_dir).version
    tmp = server.model_dir / f".{MODEL_FILE}.incoming"
    shutil.copyfile(other_model_dir / MODEL_FILE, tmp)
    os.replace(tmp, server.model_dir / MODEL_FILE)
    end = time.monotonic() + 30
    in_a_row = 0
    while in_a_row < 10:  # two workers, each reloading on its own: many answers must agree
        assert time.monotonic() < end, "the new model was not served by every worker"
        with requests.Session() as fresh:  # a new connection, so any worker may answer
            version = fresh.get(f"{server.url}/health", timeout=TIMEOUT).json()["model_version"]
        in_a_row = in_a_row + 1 if version == new_version else 0
        time.sleep(0.05)
