"""The learning endpoints and the upload path through the Flask app (no real processes: the
launcher is replaced by a recorder)."""

from __future__ import annotations

import io
import json
import sys
import time

import pytest

from server import create_app
from server.retrain import RetrainLauncher
from tests.helpers.kdd_data import kdd_bytes
from tests.helpers.models import SMALL_K, copy_model
from tests.helpers.zeek_logs import conn_rows, tsv_log
from utils.model_store import load_model
from utils.retraining import RetrainSettings, run_queued

TOKEN = "s3cret-admin-token"


@pytest.fixture
def app(trained, tmp_path, launches):
    _, model = trained
    return create_app({"TESTING": True, "MODEL_DIR": copy_model(model, tmp_path / "model"),
                       "DATA_DIR": tmp_path / "data", "MODEL_CHECK_INTERVAL": 0.0,
                       "ADMIN_TOKEN": TOKEN, "RETRAIN_THRESHOLD": 3})


@pytest.fixture
def client(app):
    return app.test_client()


def upload(client, data: bytes, name: str = "traffic.txt"):
    return client.post("/api/predict", data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def admin(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_uploads_are_registered_once_and_the_threshold_launches_one_retrain(
        client, fresh_lines, launches):
    bodies = [upload(client, kdd_bytes(fresh_lines[i * 50:(i + 1) * 50])).get_json()
              for i in range(4)]
    again = upload(client, kdd_bytes(fresh_lines[:50]), "renamed.txt").get_json()
    assert [b["summary"]["stored"] for b in bodies] == [True] * 4
    assert (again["summary"]["duplicate"], again["summary"]["stored"]) == (True, False)
    assert again["summary"]["total_samples"] == 50  # a duplicate is still analysed
    assert launches == ["upload"]
    status = client.get("/api/retrain/status").get_json()
    assert status["pending_uploads"] == 4
    assert status["threshold"] == 3
    assert status["uploads_since_retrain"] == 1
    assert status["queued_requests"] == 1
    assert status["running"] is False and status["last_runs"] == []


def test_zeek_uploads_are_kept_but_never_count_towards_a_retrain(client, launches):
    logs = [tsv_log(conn_rows(40, seed=seed)) for seed in range(4)]
    bodies = [upload(client, log, "conn.log").get_json() for log in logs]
    assert [b["summary"]["stored"] for b in bodies] == [True] * 4
    assert launches == []  # 4 uploads past a threshold of 3, none of them KDD records
    status = client.get("/api/retrain/status").get_json()
    assert status["uploads_since_retrain"] == 0


def settings_for(app, train_file) -> RetrainSettings:
    return RetrainSettings(model_dir=app.config["MODEL_DIR"], data_dir=app.config["DATA_DIR"],
                           train_file=train_file, n_clusters=SMALL_K, tolerance=1.0,
                           category_tolerance=1.0)


def test_status_lists_the_runs_with_their_outcome(app, client, fresh_lines, tmp_path):
    for i in range(3):
        upload(client, kdd_bytes(fresh_lines[i * 100:(i + 1) * 100]))
    (failed,) = run_queued(settings_for(app, tmp_path / "missing.txt"), get_registry(app))
    assert failed.outcome == "failed"
    status = client.get("/api/retrain/status").get_json()
    (run,) = status["last_runs"]
    assert run["outcome"] == "failed" and "missing.txt is missing" in run["reason"]
    assert set(run) >= {"started_at", "finished_at", "outcome", "reason", "metrics_before",
                        "metrics_after", "version"}
    assert status["pending_uploads"] == 3
    assert status["model_version"] == load_model(app.config["MODEL_DIR"]).version


@pytest.mark.parametrize("path", ["/api/retrain", "/api/models/rollback"])
@pytest.mark.parametrize(("configured", "headers", "status", "error_type"), [
    (None, admin(), 404, "disabled"),
    (TOKEN, {}, 401, "unauthorized"),
    (TOKEN, {"Authorization": "Basic abc"}, 401, "unauthorized"),
    (TOKEN, {"Authorization": "Bearer "}, 401, "unauthorized"),
    (TOKEN, admin("wrong"), 403, "forbidden"),
    (TOKEN, admin(TOKEN + "x"), 403, "forbidden"),
])
def test_admin_routes_need_the_token(app, client, launches, path, configured, headers, status,
                                     error_type):
    app.config["ADMIN_TOKEN"] = configured
    response = client.post(path, headers=headers)
    assert response.status_code == status
    body = response.get_json()
    assert (body["success"], body["error_type"]) == (False, error_type)
    assert launches == []


def test_manual_retrain_queues_a_request_and_launches_a_process(app, client, launches):
    response = client.post("/api/retrain", headers=admin())
    assert response.status_code == 202
    assert response.get_json() == {"success": True, "queued": True, "running": False}
    assert launches == ["api"]
    assert get_registry(app).state()["requests"] == 1


@pytest.mark.slow
def test_rollback_puts_the_previous_version_back_at_once(app, client, fresh_lines, trained):
    old = load_model(app.config["MODEL_DIR"]).version
    for i in range(3):
        upload(client, kdd_bytes(fresh_lines[i * 100:(i + 1) * 100]))
    (promoted,) = run_queued(settings_for(app, trained[0]), get_registry(app))
    assert promoted.outcome == "promoted"
    assert client.get("/health").get_json()["model_version"] == promoted.version

    response = client.post("/api/models/rollback", headers=admin())
    assert response.status_code == 200
    assert response.get_json() == {"success": True, "previous_version": promoted.version,
                                   "model_version": old,
                                   "quarantined": sorted(
                                       u.sha256 for u in get_registry(app).uploads())}
    assert client.get("/health").get_json()["model_version"] == old
    back = client.post("/api/models/rollback", headers=admin(),
                       data=json.dumps({"version": promoted.version}),
                       content_type="application/json")
    assert back.get_json()["model_version"] == promoted.version


@pytest.mark.parametrize(("body", "status", "error_type"), [
    (json.dumps({"version": "20990101T000000Z-00000000"}), 404, "not_found"),
    (json.dumps({"version": 5}), 400, "invalid_value"),
    ("not json", 400, "invalid_json"),
    ("", 409, "conflict"),  # no earlier version exists yet
])
def test_rollback_errors_are_json(client, body, status, error_type):
    response = client.post("/api/models/rollback", headers=admin(), data=body,
                           content_type="application/json")
    assert response.status_code == status
    assert response.get_json()["error_type"] == error_type


def test_the_launcher_runs_the_script_with_this_interpreter_and_no_shell(tmp_path):
    launcher = RetrainLauncher(tmp_path / "model", tmp_path / "data")
    command = launcher.command("upload")
    assert command[0] == sys.executable
    assert command[1].endswith("retrain_model.py")
    assert command[2:] == ["--model-dir", str(tmp_path / "model"), "--data-dir",
                           str(tmp_path / "data"), "--trigger", "upload", "--nice", "10"]


@pytest.mark.e2e
def test_the_launcher_starts_a_detached_process_and_logs_its_output(tmp_path):
    script = tmp_path / "fake_retrain.py"
    script.write_text("import os, sys\n"
                      "print('args', sys.argv[1:], 'own session', os.getsid(0) == os.getpid(),"
                      " flush=True)\n")
    launcher = RetrainLauncher(tmp_path / "model", tmp_path / "data", script=script)
    assert launcher.launch("api") > 0
    log = tmp_path / "data" / "retrain.log"
    end = time.monotonic() + 60
    while "own session" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < end, "the launched process wrote nothing"
        time.sleep(0.05)
    text = log.read_text()
    assert "'--trigger', 'api'" in text and "own session True" in text


def get_registry(app):
    return app.extensions["anomalyze.uploads"].registry
