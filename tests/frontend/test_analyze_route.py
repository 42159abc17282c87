"""POST /analyze: the upload reaches the API once, and every failure becomes a readable
message with the right status."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from werkzeug.formparser import parse_form_data
from werkzeug.test import EnvironBuilder

from .fakes import API_URL, HEALTH_OK

KDD_LINES = (
    b"0,tcp,private,S0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,120,9,1.00,1.00,0.00,0.00,0.07,"
    b"0.06,0.00,255,9,0.04,0.06,0.00,0.00,1.00,1.00,0.00,0.00,neptune,20\n"
) * 3


def upload(client, data: bytes = KDD_LINES, name: str = "traffic.txt", path: str = "/analyze"):
    return client.post(path, data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def multipart_file(request):
    """The file part of a request the mocked API received."""
    environ = EnvironBuilder(method="POST", data=request.body,
                             content_type=request.headers["Content-Type"]).get_environ()
    _, _, files = parse_form_data(environ)
    return files["file"]


def predict_calls(mock):
    return [c for c in mock.calls if urlparse(c.request.url).path == "/api/predict"]


def test_upload_is_forwarded_to_the_api_with_its_bytes(client, awake_api, prediction):
    awake_api.post(f"{API_URL}/api/predict", json=prediction)
    response = upload(client)
    assert response.status_code == 200
    assert response.get_json() == prediction
    [call] = predict_calls(awake_api)
    sent = multipart_file(call.request)
    assert sent.filename == "traffic.txt"
    assert sent.read() == KDD_LINES
    assert parse_qs(urlparse(call.request.url).query) == {"limit": ["5000"]}


def test_health_is_checked_before_the_upload(client, awake_api, prediction):
    awake_api.post(f"{API_URL}/api/predict", json=prediction)
    upload(client)
    paths = [urlparse(c.request.url).path for c in awake_api.calls]
    assert paths == ["/health", "/api/predict"]


def test_sleeping_api_is_woken_with_back_off_then_sent_the_file_once(
        client, mocked_api, fake_time, prediction):
    for _ in range(3):
        mocked_api.get(f"{API_URL}/health", body=requests.ConnectionError("refused"))
    mocked_api.get(f"{API_URL}/health", json=HEALTH_OK)
    mocked_api.post(f"{API_URL}/api/predict", json=prediction)
    response = upload(client)
    assert response.status_code == 200
    assert fake_time.sleeps == [1.0, 2.0, 4.0]
    assert len(predict_calls(mocked_api)) == 1


def test_unreachable_api_gives_a_clear_error_after_the_bounded_wait(
        client, mocked_api, fake_time):
    response = upload(client)  # nothing registered: every request fails to connect
    assert response.status_code == 503
    body = response.get_json()
    assert body["success"] is False
    assert body["error_type"] == "api_unreachable"
    assert "did not respond within 30 seconds" in body["error"]
    assert sum(fake_time.sleeps) == pytest.approx(30.0)
    assert fake_time.sleeps[:4] == [1.0, 2.0, 4.0, 8.0]
    assert len(predict_calls(mocked_api)) == 0


def test_connection_lost_during_upload_is_not_retried(client, awake_api):
    awake_api.post(f"{API_URL}/api/predict", body=requests.ConnectionError("reset"))
    response = upload(client)
    assert response.status_code == 503
    assert response.get_json()["error_type"] == "api_unreachable"
    assert len(predict_calls(awake_api)) == 1


def test_slow_analysis_times_out_with_a_readable_message(client, awake_api):
    awake_api.post(f"{API_URL}/api/predict", body=requests.ReadTimeout("slow"))
    response = upload(client)
    assert response.status_code == 504
    assert "did not answer within 300 seconds" in response.get_json()["error"]


def test_format_error_keeps_line_and_column(client, awake_api):
    problems = [{"line": 17, "column": "src_bytes", "message": "'abc' is not a number"},
                {"line": 18, "column": "flag", "message": "missing value"}]
    awake_api.post(f"{API_URL}/api/predict", status=400, json={
        "success": False, "error": "line 17, column src_bytes: 'abc' is not a number",
        "error_type": "invalid_value", "problems": problems})
    response = upload(client)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "line 17, column src_bytes: 'abc' is not a number"
    assert body["error_type"] == "invalid_value"
    assert body["problems"] == problems


def test_api_413_is_relayed_with_its_message(client, awake_api):
    awake_api.post(f"{API_URL}/api/predict", status=413, json={
        "success": False, "error": "the upload is larger than 200 MB",
        "error_type": "too_large"})
    response = upload(client)
    assert response.status_code == 413
    assert response.get_json()["error"] == "the upload is larger than 200 MB"


def test_upload_over_the_frontend_limit_is_refused_before_the_api(fake_time, mocked_api):
    from api.app_vercel import create_app

    small = create_app({"TESTING": True, "API_URL": API_URL, "MAX_UPLOAD_MB": 0.5,
                        "SLEEP": fake_time.sleep, "CLOCK": fake_time.monotonic})
    response = upload(small.test_client(), data=b"x" * (2 * 1024 * 1024))
    assert response.status_code == 413
    body = response.get_json()
    assert body["error_type"] == "too_large"
    assert "0.5 MB" in body["error"]
    assert len(mocked_api.calls) == 0


@pytest.mark.parametrize("status", [500, 502])
def test_api_crash_page_becomes_a_readable_502(client, awake_api, status):
    awake_api.post(f"{API_URL}/api/predict", status=status,
                   body="<html><body>Traceback (most recent call last)</body></html>")
    response = upload(client)
    assert response.status_code == 502
    body = response.get_json()
    assert body["error_type"] == "bad_gateway"
    assert "<html>" not in body["error"]
    assert "Traceback" not in body["error"]


UPSTREAM_TEXT = "worker crashed at /srv/anomalyze/models/model.joblib <script>alert(1)</script>"


@pytest.mark.parametrize("status", [500, 502, 504, 599])
def test_api_server_error_text_is_logged_not_shown(client, awake_api, status, caplog):
    awake_api.post(f"{API_URL}/api/predict", status=status, json={
        "success": False, "error": UPSTREAM_TEXT, "error_type": "internal_error"})
    with caplog.at_level("WARNING", logger="anomalyze.frontend"):
        response = upload(client)
    assert response.status_code == 502
    body = response.get_json()
    assert body["error_type"] == "bad_gateway"
    assert "/srv" not in body["error"] and "script" not in body["error"]
    assert "worker crashed" not in response.get_data(as_text=True)
    assert f"HTTP {status}" in body["error"]
    assert any(UPSTREAM_TEXT in record.getMessage() for record in caplog.records)


def test_api_out_of_space_is_a_507_with_our_own_message(client, awake_api):
    awake_api.post(f"{API_URL}/api/predict", status=507, json={
        "success": False, "error": UPSTREAM_TEXT, "error_type": "insufficient_storage"})
    response = upload(client)
    assert response.status_code == 507
    body = response.get_json()
    assert body["error_type"] == "insufficient_storage"
    assert "no room" in body["error"] and "/srv" not in body["error"]


def test_model_unavailable_is_relayed_as_503(client, awake_api):
    awake_api.post(f"{API_URL}/api/predict", status=503, json={
        "success": False, "error": "no model is loaded", "error_type": "model_unavailable"})
    response = upload(client)
    assert response.status_code == 503
    assert "no model is loaded" in response.get_json()["error"]


def test_unreadable_success_body_is_a_502(client, awake_api):
    awake_api.post(f"{API_URL}/api/predict", body="not json")
    response = upload(client)
    assert response.status_code == 502
    assert response.get_json()["success"] is False


def test_missing_file_is_a_400_without_calling_the_api(client, mocked_api):
    response = client.post("/analyze", data={}, content_type="multipart/form-data")
    assert response.status_code == 400
    assert response.get_json()["error_type"] == "missing_file"
    assert len(mocked_api.calls) == 0


def test_wrong_method_is_json_for_scripts(client):
    response = client.get("/analyze", headers={"Accept": "application/json"})
    assert response.status_code == 405
    assert response.get_json()["error_type"] == "method_not_allowed"
