"""Acceptance under real gunicorn (2 workers) with real retrain processes on 127.0.0.1:
concurrent uploads count exactly, retrains never overlap, every worker serves a promoted model,
and a retrain killed half-way loses nothing."""

from __future__ import annotations

import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from learning_helpers import SMALL_K_TEXT, Gunicorn, copy_model, kdd_bytes

from tests.conftest import poll
from utils.model_store import load_model
from utils.registry import SQLiteRegistry as UploadRegistry
from utils.registry import pid_alive

pytestmark = pytest.mark.e2e

TOKEN = "gunicorn-admin-token"
WORKERS = 2
TIMEOUT = (5, 60)  # connect, read (seconds)
WAIT = 120.0  # bound of every poll: retrains are a few seconds each


def wait_for(condition, what: str, deadline: float = WAIT):
    return poll(condition, what, deadline, interval=0.1)




def start(root: Path, model: Path, train_file: Path) -> tuple[Gunicorn, UploadRegistry, Path]:
    model_dir = copy_model(model, root / "model")
    data_dir = root / "data"
    server = Gunicorn(root, {
        "ANOMALYZE_MODEL_DIR": str(model_dir), "ANOMALYZE_DATA_DIR": str(data_dir),
        "ANOMALYZE_MODEL_CHECK_INTERVAL": "0.2", "WEB_CONCURRENCY": str(WORKERS),
        "GUNICORN_THREADS": "4", "ANOMALYZE_RETRAIN_THRESHOLD": "10",
        "ANOMALYZE_RETRAIN_K": SMALL_K_TEXT, "ANOMALYZE_RETRAIN_TRAIN_FILE": str(train_file),
        # these tests are about the mechanics, not the gate
        "ANOMALYZE_RETRAIN_TOLERANCE": "1", "ANOMALYZE_RETRAIN_CATEGORY_TOLERANCE": "1",
        "ANOMALYZE_ADMIN_TOKEN": TOKEN})
    return server, UploadRegistry(data_dir), model_dir


def post(server: Gunicorn, data: bytes, name: str) -> dict:
    response = requests.post(f"{server.url}/api/predict", files={"file": (name, data)},
                             timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["X-Model-Version"] == body["summary"]["model_version"]
    return body["summary"]


def served_versions(server: Gunicorn, n: int = 40) -> set[str]:
    """Versions named by ``n`` requests on fresh connections (they spread over the workers)."""
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda _: requests.get(f"{server.url}/health", timeout=TIMEOUT,
                                   headers={"Connection": "close"}).json(), range(n)))
    return {answer["model_version"] for answer in answers}


def server_log_count(server: Gunicorn, message: str) -> int:
    """JSON log lines with this message. A worker logs "serving model <v>" once, when it
    switches to v, so one line per worker proves every worker switched."""
    return sum(json.loads(line).get("message") == message
               for line in server.log_path.read_text().splitlines() if line.startswith("{"))


def finished_runs(registry: UploadRegistry) -> list[dict]:
    return sorted((r for r in registry.runs(50) if r["outcome"] != "running"),
                  key=lambda r: r["id"])


def kill_leftovers(registry: UploadRegistry) -> None:
    for run in registry.interrupted_runs():
        if pid_alive(run["pid"]):
            os.kill(run["pid"], signal.SIGKILL)


def test_twenty_concurrent_uploads_give_coalesced_retrains_and_all_workers_switch(
        trained, fresh_lines, tmp_path):
    base, model = trained
    server, registry, model_dir = start(tmp_path, model, base)
    try:
        uploads = [kdd_bytes(fresh_lines[i * 50:(i + 1) * 50]) for i in range(20)]
        first_version = load_model(model_dir).version
        with ThreadPoolExecutor(20) as pool:  # every upload twice, all at once
            summaries = list(pool.map(lambda item: post(server, item[1], f"u{item[0]}.txt"),
                                      enumerate(uploads + uploads)))
        assert sum(s["stored"] for s in summaries) == 20
        assert sum(s["duplicate"] for s in summaries) == 20
        assert len(registry.uploads()) == 20

        runs = wait_for(lambda: not registry.state()["requests"]
                        and registry.running_run() is None
                        and registry.counts()["pending"] == 0 and finished_runs(registry),
                        "the retrains to finish")
        # two batches of 10: one run, or two when the second batch completed while the first
        # run was in progress (requests coalesce: never more than one waits)
        assert 1 <= len(runs) <= 2
        assert runs[0]["outcome"] == "promoted", runs[0]
        # the first run takes every upload pending when it starts; if that was all 20, a
        # second has nothing new to learn and keeps the model
        assert runs[-1]["outcome"] == "promoted" or (
            runs[-1]["outcome"] == "rejected" and "nothing new" in runs[-1]["reason"]), runs
        assert runs[0]["finished_at"] <= runs[-1]["started_at"] or len(runs) == 1
        assert registry.counts() == {"pending": 0, "used": 0, "archived": 20, "quarantined": 0}

        # duplicates of kept uploads add nothing, and trigger nothing
        for i in range(3):
            assert post(server, uploads[i], "again.txt")["duplicate"] is True
        assert len(registry.uploads()) == 20
        assert registry.state() == {"uploads_since_retrain": 0, "requests": 0}

        newest = load_model(model_dir).version
        assert newest != first_version
        assert newest in {run["version"] for run in runs}
        wait_for(lambda: served_versions(server) == {newest}
             and server_log_count(server, f"serving model {newest}") == WORKERS,
             "every worker to serve the new model", deadline=10)
        assert post(server, uploads[0], "check.txt")["model_version"] == newest
        status = requests.get(f"{server.url}/api/retrain/status", timeout=TIMEOUT).json()
        assert status["running"] is False
        assert [run["id"] for run in status["last_runs"]] == [r["id"] for r in runs[::-1]]
        assert status["last_runs"][-1]["metrics_after"]["balanced_f1"] > 0
    finally:
        kill_leftovers(registry)
        server.stop()


def test_a_retrain_killed_half_way_loses_nothing_and_the_next_trigger_retries(
        trained, fresh_lines, tmp_path):
    base, model = trained
    train_file = tmp_path / "train.txt"
    os.mkfifo(train_file)  # the retrain blocks reading it: killed half-way, deterministically
    server, registry, model_dir = start(tmp_path, model, train_file)
    try:
        old_version = load_model(model_dir).version
        for i in range(10):
            post(server, kdd_bytes(fresh_lines[i * 50:(i + 1) * 50]), f"u{i}.txt")
        run = wait_for(registry.running_run, "the triggered retrain to start")
        wait_for(lambda: all(u.run_id == run["id"] for u in registry.uploads()),
             "the run to claim the uploads")
        os.kill(run["pid"], signal.SIGKILL)
        wait_for(lambda: registry.running_run() is None, "the killed process to be gone")

        assert served_versions(server) == {old_version}
        assert registry.counts() == {"pending": 10, "used": 0, "archived": 0, "quarantined": 0}
        assert all(registry.path_of(u).is_file() for u in registry.uploads())
        status = requests.get(f"{server.url}/api/retrain/status", timeout=TIMEOUT).json()
        assert status["running"] is False and status["pending_uploads"] == 10

        train_file.unlink()
        train_file.write_bytes(base.read_bytes())
        response = requests.post(f"{server.url}/api/retrain", timeout=TIMEOUT,
                                 headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 202
        runs = wait_for(lambda: [r for r in finished_runs(registry) if r["outcome"] == "promoted"]
                    and finished_runs(registry), "the retried run")
        killed = next(r for r in runs if r["id"] == run["id"])
        assert killed["outcome"] == "failed" and "interrupted" in killed["reason"]
        assert registry.counts() == {"pending": 0, "used": 0, "archived": 10, "quarantined": 0}
        newest = load_model(model_dir).version
        assert newest != old_version
        wait_for(lambda: served_versions(server) == {newest}
             and server_log_count(server, f"serving model {newest}") == WORKERS,
             "every worker to serve the new model", deadline=10)
    finally:
        kill_leftovers(registry)
        server.stop()
