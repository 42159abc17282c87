"""The defences against poisoning through the Flask app: the admin token makes an upload
trusted, quarantined uploads are listed and released by admins, the run history is paged,
kept uploads have a quota that never costs the client its analysis."""

from __future__ import annotations

import io

import pytest

from server import create_app
from server.config import load_config
from tests.helpers.kdd_data import kdd_bytes
from tests.helpers.models import copy_model
from utils.retraining import RetrainSettings, run_queued

TOKEN = "s3cret-admin-token"


def make_app(trained, tmp_path, **config):
    _, model = trained
    return create_app({"TESTING": True, "MODEL_DIR": copy_model(model, tmp_path / "model"),
                       "DATA_DIR": tmp_path / "data", "MODEL_CHECK_INTERVAL": 0.0,
                       "ADMIN_TOKEN": TOKEN, "RETRAIN_THRESHOLD": 10, **config})


@pytest.fixture
def app(trained, tmp_path, launches):
    return make_app(trained, tmp_path)


@pytest.fixture
def client(app):
    return app.test_client()


def registry(app):
    return app.extensions["anomalyze.uploads"].registry


def upload(client, data: bytes, name: str = "traffic.txt", headers=None, **environ):
    return client.post("/api/predict", data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data", headers=headers or {},
                       environ_base=environ)


def admin(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- trusted and anonymous uploads ---------------------------------------------------------


def test_an_upload_with_the_admin_token_is_kept_as_trusted_with_its_client(app, client,
                                                                           fresh_lines):
    body = upload(client, kdd_bytes(fresh_lines[:30]), headers=admin(),
                  REMOTE_ADDR="10.9.8.7").get_json()["summary"]
    assert (body["stored"], body["trusted"], body["store_reason"]) == (True, True, None)
    (kept,) = registry(app).uploads()
    assert (kept.trusted, kept.client) == (True, "10.9.8.7")


def test_an_upload_without_a_token_is_anonymous(app, client, fresh_lines):
    body = upload(client, kdd_bytes(fresh_lines[:30]), REMOTE_ADDR="10.1.2.3").get_json()
    assert body["summary"]["trusted"] is False
    (kept,) = registry(app).uploads()
    assert (kept.trusted, kept.client) == (False, "10.1.2.3")


@pytest.mark.parametrize(("headers", "status"), [
    (admin("wrong"), 403), (admin(TOKEN + "x"), 403), ({"Authorization": "Bearer "}, 401)])
def test_a_wrong_bearer_token_on_an_upload_is_refused_not_downgraded(app, client, fresh_lines,
                                                                      headers, status):
    response = upload(client, kdd_bytes(fresh_lines[:30]), headers=headers)
    assert response.status_code == status
    assert registry(app).uploads() == []


def test_without_a_configured_token_a_bearer_header_changes_nothing(app, client, fresh_lines):
    app.config["ADMIN_TOKEN"] = None
    body = upload(client, kdd_bytes(fresh_lines[:30]), headers=admin()).get_json()
    assert body["summary"]["trusted"] is False and body["summary"]["stored"] is True


# --- quarantine over HTTP ------------------------------------------------------------------


def promoted_then_rolled_back(app, client, trained, lines) -> list[str]:
    for i in range(3):
        upload(client, kdd_bytes(lines[i * 100:(i + 1) * 100]), headers=admin())
    settings = RetrainSettings(model_dir=app.config["MODEL_DIR"], data_dir=app.config["DATA_DIR"],
                               train_file=trained[0], n_clusters=(4, 6, 8, 10, 12),
                               tolerance=1.0, category_tolerance=1.0)
    (result,) = run_queued(settings, registry(app), force=True)
    assert result.outcome == "promoted"
    response = client.post("/api/models/rollback", headers=admin())
    assert response.status_code == 200
    return response.get_json()["quarantined"]


@pytest.mark.slow
def test_admins_list_and_release_quarantined_uploads(app, client, trained, fresh_lines):
    quarantined = promoted_then_rolled_back(app, client, trained, fresh_lines)
    assert sorted(quarantined) == sorted(u.sha256 for u in registry(app).uploads())
    assert client.get("/api/retrain/status").get_json()["uploads"]["quarantined"] == 3
    listed = client.get("/api/uploads/quarantined", headers=admin()).get_json()["uploads"]
    assert sorted(u["sha256"] for u in listed) == sorted(quarantined)
    assert {u["trusted"] for u in listed} == {True}

    released = client.post(f"/api/uploads/{quarantined[0]}/release", headers=admin())
    assert released.status_code == 200
    assert released.get_json() == {"success": True, "sha256": quarantined[0],
                                   "status": "pending"}
    again = client.post(f"/api/uploads/{quarantined[0]}/release", headers=admin())
    assert (again.status_code, again.get_json()["error_type"]) == (409, "conflict")
    assert registry(app).counts()["quarantined"] == 2


@pytest.mark.parametrize(("sha", "status", "error_type"), [
    ("0" * 64, 404, "not_found"), ("ABC", 400, "invalid_parameter"),
    ("g" * 64, 400, "invalid_parameter")])
def test_release_of_a_bad_name_is_a_json_error(client, sha, status, error_type):
    response = client.post(f"/api/uploads/{sha}/release", headers=admin())
    assert (response.status_code, response.get_json()["error_type"]) == (status, error_type)


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/api/uploads/" + "0" * 64 + "/release"), ("get", "/api/uploads/quarantined")])
@pytest.mark.parametrize(("configured", "headers", "status"), [
    (None, admin(), 404), (TOKEN, {}, 401), (TOKEN, admin("wrong"), 403)])
def test_quarantine_routes_need_the_admin_token(app, client, method, path, configured, headers,
                                                status):
    app.config["ADMIN_TOKEN"] = configured
    assert getattr(client, method)(path, headers=headers).status_code == status


# --- coalescing and the run history --------------------------------------------------------


@pytest.mark.slow
def test_a_hundred_one_row_uploads_leave_at_most_one_run_queued(app, client, fresh_lines,
                                                                launches):
    for i, line in enumerate(fresh_lines[:100]):
        assert upload(client, kdd_bytes([line]), f"r{i}.txt").status_code == 200
    status = client.get("/api/retrain/status").get_json()
    assert status["queued_requests"] == 1
    assert launches == ["upload"] * 10  # each batch wakes the process; it runs one at a time


def test_the_run_history_is_paged_in_full(app, client):
    reg = registry(app)
    for _ in range(25):
        reg.finish_run(reg.start_run(trigger="test"), "failed", "test")
    first = client.get("/api/retrain/runs?limit=10").get_json()
    assert first["total"] == 25 and len(first["runs"]) == 10
    second = client.get(f"/api/retrain/runs?limit=10&before={first['next_before']}").get_json()
    third = client.get(f"/api/retrain/runs?limit=10&before={second['next_before']}").get_json()
    assert third["next_before"] is None
    ids = [run["id"] for page in (first, second, third) for run in page["runs"]]
    assert ids == list(range(25, 0, -1))
    assert client.get("/api/retrain/runs").get_json()["runs"][0]["id"] == 25  # default 20
    assert client.get("/api/retrain/status").get_json()["runs_total"] == 25


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "limit=+5", "limit=1_0",
                                   "before=-1", "before=\u0663", "limit= 5"])
def test_bad_paging_parameters_are_a_400(client, query):
    response = client.get(f"/api/retrain/runs?{query}")
    assert (response.status_code, response.get_json()["error_type"]) == (
        400, "invalid_parameter")


# --- the quota -----------------------------------------------------------------------------


def test_over_quota_an_upload_is_analysed_but_not_kept(trained, tmp_path, launches,
                                                       fresh_lines):
    files = [kdd_bytes(fresh_lines[i * 200:(i + 1) * 200]) for i in range(4)]
    mb = max(map(len, files)) / (1 << 20)
    app = make_app(trained, tmp_path, UPLOAD_QUOTA_MB=3.5 * mb, UPLOAD_CLIENT_QUOTA_MB=2.5 * mb)
    client = app.test_client()
    answers = [upload(client, data, REMOTE_ADDR=addr) for data, addr in
               zip(files, ["10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2"], strict=True)]
    assert [a.status_code for a in answers] == [200] * 4
    summaries = [a.get_json()["summary"] for a in answers]
    assert [(s["stored"], s["store_reason"]) for s in summaries] == [
        (True, None), (True, None), (False, "quota_client"), (True, None)]
    assert all(s["total_samples"] == 200 for s in summaries)  # analysed all the same
    fifth = upload(client, kdd_bytes(fresh_lines[1000:1200]), REMOTE_ADDR="10.0.0.3")
    assert fifth.get_json()["summary"]["store_reason"] == "quota_total"
    assert len(registry(app).uploads()) == 3
    assert not list((tmp_path / "data" / "incoming").iterdir())


@pytest.mark.parametrize("variable", ["ANOMALYZE_UPLOAD_QUOTA_MB",
                                      "ANOMALYZE_UPLOAD_CLIENT_QUOTA_MB",
                                      "ANOMALYZE_UPLOAD_CLIENT_WINDOW_HOURS"])
@pytest.mark.parametrize("raw", ["0", "-5", "lots"])
def test_a_bad_quota_setting_stops_the_server_naming_it(variable, raw):
    with pytest.raises(ValueError, match=variable):
        load_config({variable: raw})


def test_quota_defaults_protect_a_small_disk():
    config = load_config({})
    assert (config["UPLOAD_QUOTA_MB"], config["UPLOAD_CLIENT_QUOTA_MB"],
            config["UPLOAD_CLIENT_WINDOW_HOURS"]) == (1024.0, 256.0, 24.0)


def test_a_bad_retrain_setting_stops_the_server_naming_it(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("ANOMALYZE_RETRAIN_MAX_ROWS_PER_CLIENT", "many")
    with pytest.raises(ValueError, match="ANOMALYZE_RETRAIN_MAX_ROWS_PER_CLIENT"):
        make_app(trained, tmp_path)

