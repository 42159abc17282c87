"""The admin's baseline routes: forwarded to the API's /api/models/baseline with the server's
admin token (never the browser's), the uploads streamed on with the options, and the API's
answers and refusals passed to the page as the JSON it reads."""

from __future__ import annotations

import io
import json
from urllib.parse import urlparse

import pytest
import responses
from werkzeug.formparser import parse_form_data
from werkzeug.test import EnvironBuilder

from .fakes import API_URL, HEALTH_OK
from .test_admin_sign_in import ADMIN_PASSWORD, make_app
from .test_sign_in import META_TOKEN, sign_in

API_ADMIN_TOKEN = "api-admin-token-for-the-tests"
JOBS = f"{API_URL}/api/models/baseline"
HEALTH = {"period": {"start": "2026-11-20T00:00:00Z", "end": "2026-11-27T00:00:00Z",
                     "seconds": 604800.0},
          "rows": 4210, "hosts": {"sources": 12, "destinations": 340},
          "rejected_share": 0.04, "rejected_states": {"S0": 120, "REJ": 40},
          "top_talkers": [{"host": "10.0.0.9", "destinations": 300, "ports": 2,
                           "connections": 900}],
          "services": [{"service": "dns", "connections": 2000}], "labels": None,
          "warnings": [{"code": "scanner", "message": "10.0.0.9 contacted 300 destinations",
                        "hosts": ["10.0.0.9"]}]}
JOB = {"id": 7, "status": "queued", "stage": "queued", "created_at": "2026-11-30T06:00:00Z",
       "finished_at": None, "files": [{"sha256": "ab" * 32, "name": "week.conn.log",
                                       "rows": 4210}],
       "options": {"exclude_hosts": [], "exclude_ranges": [], "report_only": False},
       "health": None, "figures": None, "version": None, "reason": None}


@pytest.fixture
def admin():
    client = make_app(API_ADMIN_TOKEN=API_ADMIN_TOKEN).test_client()
    sign_in(client, ADMIN_PASSWORD)
    return client


def csrf(client) -> dict[str, str]:
    return {"X-CSRFToken": META_TOKEN.search(client.get("/").get_data(as_text=True)).group(1)}


def received(request):
    """The form fields and files the mocked API received in a multipart request."""
    environ = EnvironBuilder(method="POST", data=request.body,
                             content_type=request.headers["Content-Type"]).get_environ()
    _, form, files = parse_form_data(environ)
    return form, files


def api_calls(mock, path: str):
    return [call for call in mock.calls if urlparse(call.request.url).path == path]


def test_uploads_reach_the_api_with_the_options_and_the_servers_token(admin, mocked_api):
    mocked_api.get(f"{API_URL}/health", json=HEALTH_OK)
    mocked_api.post(JOBS, status=202, json={"success": True, "job": JOB})
    first, second = b"#fields\tts\n1\n", b"#fields\tts\n2\n"
    response = admin.post("/admin/baseline/jobs", headers=csrf(admin),
                          content_type="multipart/form-data", data={
                              "files": [(io.BytesIO(first), "mon.conn.log"),
                                        (io.BytesIO(second), "tue.conn.log")],
                              "exclude_hosts": "10.0.0.9\n10.1.0.0/16",
                              "exclude_ranges": "1700000000/1700003600",
                              "report_only": "true"})
    assert response.status_code == 202
    assert response.get_json() == {"success": True, "job": JOB}
    [call] = api_calls(mocked_api, "/api/models/baseline")
    assert call.request.headers["Authorization"] == f"Bearer {API_ADMIN_TOKEN}"
    form, files = received(call.request)
    assert [(f.filename, f.read()) for f in files.getlist("files")] == [
        ("mon.conn.log", first), ("tue.conn.log", second)]
    assert form.to_dict() == {"exclude_hosts": "10.0.0.9\n10.1.0.0/16",
                              "exclude_ranges": "1700000000/1700003600",
                              "report_only": "true"}


def test_an_unchecked_check_only_box_trains(admin, mocked_api):
    mocked_api.get(f"{API_URL}/health", json=HEALTH_OK)
    mocked_api.post(JOBS, status=202, json={"success": True, "job": JOB})
    admin.post("/admin/baseline/jobs", headers=csrf(admin), content_type="multipart/form-data",
               data={"files": [(io.BytesIO(b"x\n"), "a.log")]})
    form, _ = received(api_calls(mocked_api, "/api/models/baseline")[0].request)
    assert form["report_only"] == "false" and form["exclude_hosts"] == ""


def test_kept_uploads_can_train_again_as_json(admin, mocked_api):
    mocked_api.get(f"{API_URL}/health", json=HEALTH_OK)
    mocked_api.post(JOBS, status=202, json={"success": True, "job": {**JOB, "id": 8}})
    body = {"uploads": ["ab" * 32], "exclude_hosts": "10.0.0.9", "report_only": False}
    response = admin.post("/admin/baseline/jobs", headers=csrf(admin), json=body)
    assert response.status_code == 202 and response.get_json()["job"]["id"] == 8
    [call] = api_calls(mocked_api, "/api/models/baseline")
    assert json.loads(call.request.body) == body
    assert call.request.headers["Authorization"] == f"Bearer {API_ADMIN_TOKEN}"


@pytest.mark.parametrize("body", [{}, {"uploads": []}, {"uploads": "ab"}, [1, 2]])
def test_a_malformed_json_request_never_reaches_the_api(admin, mocked_api, body):
    response = admin.post("/admin/baseline/jobs", headers=csrf(admin), json=body)
    assert response.status_code == 400
    assert not mocked_api.calls


def test_no_file_is_refused_before_the_api(admin, mocked_api):
    response = admin.post("/admin/baseline/jobs", headers=csrf(admin),
                          content_type="multipart/form-data", data={"exclude_hosts": "x"})
    assert response.status_code == 400 and response.get_json()["error_type"] == "missing_file"
    assert not mocked_api.calls


def test_the_apis_refusal_reaches_the_page_with_its_message(admin, mocked_api):
    mocked_api.get(f"{API_URL}/health", json=HEALTH_OK)
    mocked_api.post(JOBS, status=400, json={
        "success": False, "error_type": "input_kind",
        "error": "KDDTest+.txt is not a Zeek conn.log (it holds KDD records)",
        "problems": [{"line": 1, "column": None, "message": "41 comma-separated values"}]})
    response = admin.post("/admin/baseline/jobs", headers=csrf(admin),
                          content_type="multipart/form-data",
                          data={"files": [(io.BytesIO(b"0,tcp\n"), "KDDTest+.txt")]})
    assert response.status_code == 400
    body = response.get_json()
    assert body["error_type"] == "input_kind" and "KDDTest+.txt" in body["error"]
    assert body["problems"][0]["line"] == 1


def test_a_job_is_read_and_a_held_one_promoted(admin, mocked_api):
    held = {**JOB, "status": "held", "health": HEALTH, "version": "20261130T060000Z-0a1b2c3d",
            "figures": {"false_alarm_rate": 0.012}, "reason": "the health report warns"}
    mocked_api.get(f"{JOBS}/7", json={"success": True, "job": held})
    mocked_api.post(f"{JOBS}/7/promote", json={"success": True, "input_kind": "zeek",
                                               "model_version": held["version"]})
    assert admin.get("/admin/baseline/jobs/7").get_json()["job"] == held
    promoted = admin.post("/admin/baseline/jobs/7/promote", headers=csrf(admin))
    assert promoted.status_code == 200
    assert promoted.get_json()["model_version"] == held["version"]
    for call in mocked_api.calls:
        assert call.request.headers["Authorization"] == f"Bearer {API_ADMIN_TOKEN}"


def test_a_job_or_a_list_without_an_envelope_is_put_in_one(admin, mocked_api):
    mocked_api.get(f"{JOBS}/7", json=JOB)
    mocked_api.get(JOBS, json=[JOB])
    assert admin.get("/admin/baseline/jobs/7").get_json() == {"success": True, "job": JOB}
    assert admin.get("/admin/baseline/jobs").get_json() == {"success": True, "jobs": [JOB]}


def test_a_promotion_the_api_refuses_says_why(admin, mocked_api):
    mocked_api.post(f"{JOBS}/7/promote", status=409, json={
        "success": False, "error_type": "not_held", "error": "job 7 is promoted, not held"})
    response = admin.post("/admin/baseline/jobs/7/promote", headers=csrf(admin))
    assert response.status_code == 409
    assert response.get_json()["error"] == "job 7 is promoted, not held"


def test_an_unknown_job_is_a_404_for_the_page(admin, mocked_api):
    mocked_api.get(f"{JOBS}/99", status=404, json={
        "success": False, "error_type": "not_found", "error": "no baseline job 99"})
    response = admin.get("/admin/baseline/jobs/99")
    assert response.status_code == 404 and response.get_json()["error"] == "no baseline job 99"


@pytest.mark.parametrize(("status", "error_type", "expected"), [
    (403, "forbidden", (502, "admin_token_refused")),
    (401, "unauthorized", (502, "admin_token_refused")),
    (404, "disabled", (503, "baselines_disabled")),
    (404, "not_found", (503, "baselines_disabled")),  # an API without the routes
    (500, "internal_error", (502, "bad_gateway")),
])
def test_setup_problems_are_not_shown_as_the_admins_fault(admin, mocked_api, status,
                                                          error_type, expected):
    mocked_api.get(JOBS, status=status, json={"success": False, "error_type": error_type,
                                              "error": "/srv/secret/path: boom"})
    response = admin.get("/admin/baseline/jobs")
    assert (response.status_code, response.get_json()["error_type"]) == expected
    assert "/srv/secret" not in response.get_data(as_text=True)


def test_without_the_api_admin_token_the_section_says_so(mocked_api):
    client = make_app().test_client()
    sign_in(client, ADMIN_PASSWORD)
    response = client.get("/admin/baseline/jobs")
    assert response.status_code == 503
    assert response.get_json()["error_type"] == "baselines_disabled"
    assert not mocked_api.calls


def test_the_admin_token_never_reaches_the_browser(admin, mocked_api):
    mocked_api.get(JOBS, json={"success": True, "jobs": [JOB]})
    for path in ("/", "/admin/baseline", "/admin/baseline/jobs", "/sign-in"):
        response = admin.get(path)
        assert API_ADMIN_TOKEN not in response.get_data(as_text=True)
        assert API_ADMIN_TOKEN not in str(response.headers)


def test_an_unreachable_api_is_a_readable_503(admin):
    with responses.RequestsMock():  # nothing answers
        response = admin.get("/admin/baseline/jobs")
    assert response.status_code == 503
    assert response.get_json()["error_type"] == "api_unreachable"
