"""POST /download.csv streams the API's per-record CSV for the same file back to the browser."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlparse

import pytest

from api.analysis import results_filename

from .fakes import API_URL

CSV = "index,is_anomaly,severity,anomaly_score,confidence,label\n" + "".join(
    f"{i},{str(i % 2 == 0).lower()},High,{i / 10:.2f},0.9,neptune\n" for i in range(2000))


def post_csv(client, data: bytes = b"0,tcp,http,SF\n", name: str = "KDDTest+.txt"):
    return client.post("/download.csv", data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_csv_is_proxied_with_an_attachment_name(client, awake_api):
    awake_api.post(f"{API_URL}/api/predict", body=CSV, content_type="text/csv")
    response = post_csv(client)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.get_data(as_text=True) == CSV
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="KDDTest-results.csv"')
    predict = [c for c in awake_api.calls if urlparse(c.request.url).path == "/api/predict"]
    assert parse_qs(urlparse(predict[0].request.url).query) == {"format": ["csv"]}
    assert b"0,tcp,http,SF" in predict[0].request.body


def test_csv_response_is_streamed_not_buffered(client, awake_api):
    awake_api.post(f"{API_URL}/api/predict", body=CSV, content_type="text/csv")
    response = post_csv(client)
    assert response.is_streamed


def test_csv_error_is_json_with_a_readable_message(client, awake_api):
    awake_api.post(f"{API_URL}/api/predict", status=400, json={
        "success": False, "error": "line 2: expected 41 features, got 4",
        "error_type": "field_count"})
    response = post_csv(client)
    assert response.status_code == 400
    assert response.get_json()["error"] == "line 2: expected 41 features, got 4"


@pytest.mark.parametrize(("uploaded", "expected"), [
    ("KDDTest+.txt", "KDDTest-results.csv"),
    ('a"b\r\n.txt', "a_b-results.csv"),
    ("../../etc/passwd", "passwd-results.csv"),
    ("", "anomalyze-results.csv"),
    (None, "anomalyze-results.csv"),
])
def test_download_name_is_header_safe(uploaded, expected):
    assert results_filename(uploaded) == expected
