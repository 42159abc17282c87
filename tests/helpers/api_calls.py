"""The app under test and calls to it: the app as tests make it, uploads through its test
client, the documented error shape, and the JSON lines it logs."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from server import create_app

# docs/API.md, "Errors": every 4xx error_type an upload can get.
UPLOAD_ERROR_TYPES = {
    400: {"missing_file", "empty_file", "no_records", "field_count", "invalid_value",
          "binary_data", "encoding", "mixed_separators", "invalid_format", "invalid_json",
          "invalid_parameter"},
    413: {"too_large"},
}
# Request-targets that must never serve a file (uploads, models, sources): 404 JSON, all of them.
FORBIDDEN_TARGETS = [
    "/models/model.joblib", "/models/model_card.json", "/model.joblib", "/models/",
    "/data/anomalyze.sqlite3", "/data/uploaded_logs/", "/uploaded_logs/", "/uploads/",
    "/uploads/../models/model.joblib", "/static/../models/model.joblib",
    "/static/..%2fmodels%2fmodel.joblib", "/static/%2e%2e/%2e%2e/models/model.joblib",
    "/api/../models/model.joblib", "/api/predict/../../models/model.joblib",
    "//models/model.joblib", "/./models/model.joblib", "/%2e%2e/%2e%2e/etc/passwd",
    "/..%2f..%2f..%2fetc%2fpasswd", "/api_server.py", "/gunicorn.conf.py", "/.git/config",
    "/incoming/", "/retrain.log", "/static/", "/api/", "/api/uploads",
]
GENERIC_500 = {"success": False, "error": "internal server error",
               "error_type": "internal_error", "problems": []}


def make_app(model_dir: Path, data_dir: Path, **config):
    """The app on ``model_dir`` with its uploads and state in ``data_dir``, model reloads
    checked on every request, automatic retraining off; ``config`` overrides."""
    return create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": data_dir,
                       "MODEL_CHECK_INTERVAL": 0.0, "RETRAIN_THRESHOLD": 0, **config})


def upload(client, data: bytes, name: str = "traffic.txt", query: str = "", **kwargs):
    """POST ``data`` as the multipart field ``file`` to /api/predict."""
    return client.post(f"/api/predict{query}", data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data", **kwargs)


def assert_json_error(response, status: int, error_type: str | None = None) -> dict:
    """The documented error shape with this status (and error_type, if given)."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.is_json, response.headers.get("Content-Type")
    body = response.get_json()
    assert body["success"] is False
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["problems"], list)
    if error_type is not None:
        assert body["error_type"] == error_type, body
    return body


class LogLines(logging.Handler):
    """Collects the JSON lines the service logs."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))
