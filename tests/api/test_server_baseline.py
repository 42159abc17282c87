"""The baseline endpoints through Flask's test client: only admins, only Zeek conn.logs (a bad
file is named with its line and column, and nothing of the request is kept), the job queued
and its process started (202), the jobs listed, a held job promoted."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import sys

import pytest

from server.baseline import BaselineLauncher
from tests.helpers.api_calls import make_app
from tests.helpers.baseline_fakes import Fakes
from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.zeek_logs import conn_rows, tsv_log
from utils.baseline.jobs import run_baseline_job
from utils.model_store import open_model_store
from utils.registry.baseline_jobs import JOB_FIELDS

TOKEN = "baseline-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ROUTES = [("post", "/api/models/baseline"), ("get", "/api/models/baseline"),
          ("get", "/api/models/baseline/1"), ("post", "/api/models/baseline/1/promote")]


@pytest.fixture
def launches(monkeypatch) -> list[int]:
    """The jobs whose process the app would have started (none is): the pid given is this
    test's, so the job counts as alive."""
    started: list[int] = []
    monkeypatch.setattr(BaselineLauncher, "launch",
                        lambda self, job_id: started.append(job_id) or os.getpid())
    return started


@pytest.fixture
def app(model_dir, data_dir, launches):
    return make_app(model_dir, data_dir, ADMIN_TOKEN=TOKEN)


def zeek_log(seed: int = 1, rows: int = 40) -> bytes:
    return tsv_log(conn_rows(rows, seed=seed))


def send(client, *files: tuple[str, bytes], headers=ADMIN, **form):
    data = {"files": [(_stream(content), name) for name, content in files], **form}
    return client.post("/api/models/baseline", data=data, headers=headers,
                       content_type="multipart/form-data")


def _stream(content: bytes) -> io.BytesIO:
    return io.BytesIO(content)


def get_registry(app):
    return app.extensions["anomalyze.uploads"].registry


def kept(app) -> list:
    return get_registry(app).uploads()


# --- who may ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_without_a_configured_token_the_routes_are_disabled(model_dir, data_dir, method, path):
    client = make_app(model_dir, data_dir).test_client()
    response = getattr(client, method)(path, headers=ADMIN)
    assert response.status_code == 404
    assert response.get_json()["error_type"] == "disabled"


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"Authorization": "Bearer no"},
                                                             403)])
def test_without_the_admin_token_nothing_is_read_or_kept(app, client, method, path, headers,
                                                         status):
    response = getattr(client, method)(path, headers=headers)
    assert response.status_code == status
    assert kept(app) == []


# --- what is accepted ---------------------------------------------------------------------


def test_zeek_logs_are_kept_trusted_and_a_job_is_queued_and_started(app, client, launches):
    first, second = zeek_log(1), zeek_log(2, rows=25)
    packed = gzip.compress(second, mtime=0)  # gzip stamps the time: the same bytes twice
    response = send(client, ("mon.log", first), ("tue.log.gz", packed),
                    report_only="false")
    assert response.status_code == 202
    body = response.get_json()
    assert body["success"] is True
    job = body["job"]
    assert list(job) == list(JOB_FIELDS)
    assert (job["status"], job["stage"], job["finished_at"]) == ("queued", "queued", None)
    assert job["files"] == [
        {"sha256": hashlib.sha256(first).hexdigest(), "name": "mon.log", "rows": 40},
        {"sha256": hashlib.sha256(packed).hexdigest(), "name": "tue.log.gz",
         "rows": 25}]
    assert job["options"] == {"exclude_hosts": [], "exclude_ranges": [], "report_only": False}
    assert launches == [job["id"]]
    uploads = kept(app)
    assert [(u.input_kind, u.trusted, u.status) for u in uploads] == [("zeek", True,
                                                                        "pending")] * 2
    assert get_registry(app).state()["requests"] == 0  # baseline files queue no retrain
    assert get_registry(app).baseline_job(job["id"])["pid"] == os.getpid()


def test_a_report_only_job_and_a_job_on_kept_uploads_by_sha256(app, client, launches):
    data = zeek_log(3)
    send(client, ("week.log", data))
    response = client.post("/api/models/baseline", headers=ADMIN, json={
        "uploads": [hashlib.sha256(data).hexdigest()], "report_only": True})
    assert response.status_code == 202
    job = response.get_json()["job"]
    assert job["options"]["report_only"] is True
    assert job["files"][0]["name"] == "week.log"
    assert len(kept(app)) == 1
    assert launches == [job["id"] - 1, job["id"]]


def test_the_same_file_sent_again_is_kept_once(app, client):
    data = zeek_log(4)
    assert send(client, ("a.log", data)).status_code == 202
    response = send(client, ("a-again.log", data), ("a-twice.log", data))
    assert response.status_code == 202
    assert len(response.get_json()["job"]["files"]) == 1
    assert len(kept(app)) == 1


# --- what is refused, and then nothing is kept ---------------------------------------------


def test_a_kdd_file_is_refused_naming_it_and_nothing_is_kept(app, client, launches):
    response = send(client, ("good.log", zeek_log(5)), ("week.txt", synthetic_kdd(20, 5)))
    assert response.status_code == 400
    body = response.get_json()
    assert body["error_type"] == "input_kind"
    assert body["error"].startswith("week.txt holds KDD records")
    assert kept(app) == [] and launches == []
    assert get_registry(app).baseline_jobs() == []
    assert list((app.config["DATA_DIR"] / "incoming").iterdir()) == []  # no temp file left


def test_more_files_than_a_baseline_takes_are_refused_and_none_is_left_behind(app, client,
                                                                              launches):
    many = [(f"{i}.log", zeek_log(i, rows=5)) for i in range(21)]
    response = send(client, *many)
    assert response.status_code == 400
    assert "at most 20 files" in response.get_json()["error"]
    assert kept(app) == [] and launches == []
    assert list((app.config["DATA_DIR"] / "incoming").iterdir()) == []


def test_a_file_name_is_kept_as_metadata_only(app, client):
    response = send(client, ("../../etc/passwd", zeek_log(1)))
    assert response.status_code == 202
    assert response.get_json()["job"]["files"][0]["name"] == "passwd"
    stored = [path.name for path in (app.config["DATA_DIR"] / "uploaded_logs").iterdir()]
    assert len(stored) == 1 and re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{16}\.txt", stored[0])


def test_a_broken_zeek_log_is_refused_with_its_file_line_and_column(app, client, launches):
    rows = conn_rows(30, seed=6)
    rows[6][8] = "abc"  # duration
    data = tsv_log(rows)
    line = next(i for i, text in enumerate(data.decode().splitlines(), 1) if "\tabc\t" in text)
    response = send(client, ("good.log", zeek_log(6)), ("broken.log", data))
    assert response.status_code == 400
    body = response.get_json()
    assert body["error_type"] == "invalid_value"
    assert body["error"].startswith(f"broken.log: line {line}, column duration:")
    assert body["problems"] == [{"file": "broken.log", "line": line, "column": "duration",
                                 "message": "'abc' is not a non-negative number"}]
    assert kept(app) == [] and launches == []


def test_a_file_past_the_decompressed_limit_is_refused_naming_it(model_dir, data_dir,
                                                                 launches):
    app = make_app(model_dir, data_dir, ADMIN_TOKEN=TOKEN, MAX_DECOMPRESSED_MB=0.01)
    response = send(app.test_client(), ("big.log.gz", gzip.compress(zeek_log(7, rows=400))))
    assert response.status_code == 413
    assert response.get_json()["error_type"] == "too_large"
    assert response.get_json()["error"].startswith("big.log.gz: ")
    assert kept(app) == [] and launches == []


def test_a_file_past_the_upload_limit_is_refused(model_dir, data_dir, launches):
    app = make_app(model_dir, data_dir, ADMIN_TOKEN=TOKEN, MAX_UPLOAD_MB=0.01)
    response = send(app.test_client(), ("big.log", zeek_log(8, rows=400)))
    assert response.status_code == 413
    assert kept(app) == [] and launches == []


def test_with_the_data_folder_low_on_space_nothing_is_kept(model_dir, data_dir, launches):
    app = make_app(model_dir, data_dir, ADMIN_TOKEN=TOKEN, MIN_FREE_MB=10**9)
    response = send(app.test_client(), ("week.log", zeek_log(9)))
    assert response.status_code == 507
    assert response.get_json()["error_type"] == "insufficient_storage"
    assert kept(app) == [] and launches == []


@pytest.mark.parametrize(("body", "status", "error_type"), [
    ({"uploads": []}, 400, "invalid_value"),
    ({"uploads": "abc"}, 400, "invalid_value"),
    ({"uploads": ["abc"]}, 400, "invalid_value"),
    ({"uploads": ["0" * 64]}, 404, "not_found"),
    ({"uploads": ["0" * 64], "report_only": "maybe"}, 400, "invalid_value"),
    ({"uploads": ["0" * 64], "exclude_hosts": 5}, 400, "invalid_value"),
    ([1, 2], 400, "invalid_json"),
])
def test_bad_json_bodies_are_refused(client, launches, body, status, error_type):
    response = client.post("/api/models/baseline", headers=ADMIN, json=body)
    assert (response.status_code, response.get_json()["error_type"]) == (status, error_type)
    assert launches == []


def test_a_kept_kdd_upload_named_by_sha256_is_refused_naming_it(app, client, launches):
    data = synthetic_kdd(20, 5)
    assert client.post("/api/predict", data={"file": (_stream(data), "kdd.txt")},
                       headers=ADMIN).status_code == 200
    response = client.post("/api/models/baseline", headers=ADMIN,
                           json={"uploads": [hashlib.sha256(data).hexdigest()]})
    assert response.status_code == 400
    assert response.get_json()["error_type"] == "input_kind"
    assert response.get_json()["error"].startswith("kdd.txt holds KDD records")


def test_no_files_and_files_in_another_field_are_refused(client, launches):
    response = client.post("/api/models/baseline", headers=ADMIN, data={"report_only": "1"},
                           content_type="multipart/form-data")
    assert response.get_json()["error_type"] == "missing_file"
    response = client.post("/api/models/baseline", headers=ADMIN, data={
        "files": (_stream(zeek_log(1)), "a.log"), "file": (_stream(zeek_log(2)), "b.log")},
        content_type="multipart/form-data")
    assert response.status_code == 400
    assert launches == []


def test_a_process_that_cannot_start_fails_the_job_at_once(app, client, monkeypatch):
    monkeypatch.setattr(BaselineLauncher, "launch", lambda self, job_id: None)
    response = send(client, ("week.log", zeek_log(1)))
    assert response.status_code == 503
    job = get_registry(app).baseline_jobs()[0]
    assert (job["status"], job["reason"]) == ("failed", "the server could not start the "
                                                        "training process; see its log")


def test_the_launcher_runs_train_model_with_this_interpreter_and_no_shell(tmp_path):
    launcher = BaselineLauncher(tmp_path / "models", tmp_path / "data")
    assert launcher.command(7) == [sys.executable, str(launcher.script), "--job", "7",
                                   "--model-dir", str(tmp_path / "models"), "--data-dir",
                                   str(tmp_path / "data")]
    assert launcher.script.name == "train_model.py"


# --- reading and promoting jobs ------------------------------------------------------------


def test_jobs_are_listed_newest_first_and_shown_one_by_one(client):
    ids = [send(client, (f"{i}.log", zeek_log(10 + i))).get_json()["job"]["id"]
           for i in range(3)]
    listed = client.get("/api/models/baseline", headers=ADMIN).get_json()
    assert [job["id"] for job in listed["jobs"]] == ids[::-1]
    shown = client.get(f"/api/models/baseline/{ids[1]}", headers=ADMIN).get_json()
    assert shown["job"] == listed["jobs"][1]
    missing = client.get("/api/models/baseline/999", headers=ADMIN)
    assert (missing.status_code, missing.get_json()["error_type"]) == (404, "not_found")


def test_a_held_job_is_promoted_by_an_admin_and_only_once(app, client, tmp_path):
    model_dir = tmp_path / "models"  # a copy: the promotion writes a zeek folder into it
    shutil.copytree(app.config["MODEL_DIR"], model_dir)
    app.config["MODEL_DIR"] = model_dir
    job_id = send(client, ("week.log", zeek_log(20))).get_json()["job"]["id"]
    queued = client.post(f"/api/models/baseline/{job_id}/promote", headers=ADMIN)
    assert (queued.status_code, queued.get_json()["error_type"]) == (409, "conflict")
    fakes = Fakes(version="zeek-held-1", warnings=[{"code": "scanner", "message": "…",
                                                   "hosts": ["10.1.0.3"]}])
    job = run_baseline_job(job_id, registry=get_registry(app), model_dir=model_dir,
                           data_dir=app.config["DATA_DIR"], trainer=fakes.trainer,
                           reporter=fakes.reporter, gate=fakes.gate,
                           contamination=fakes.contamination, heartbeat_seconds=0.05)
    assert job["status"] == "held"
    response = client.post(f"/api/models/baseline/{job_id}/promote", headers=ADMIN)
    assert response.status_code == 200
    assert response.get_json() == {"success": True, "model_version": "zeek-held-1",
                                   "input_kind": "zeek"}
    assert open_model_store(model_dir, kind="zeek").current().version == "zeek-held-1"
    shown = client.get(f"/api/models/baseline/{job_id}", headers=ADMIN).get_json()["job"]
    assert shown["status"] == "promoted"
    again = client.post(f"/api/models/baseline/{job_id}/promote", headers=ADMIN)
    assert (again.status_code, again.get_json()["error_type"]) == (409, "conflict")
    unknown = client.post("/api/models/baseline/999/promote", headers=ADMIN)
    assert unknown.status_code == 404
