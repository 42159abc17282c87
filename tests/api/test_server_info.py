"""GET /health and GET /api/model-info, with a good, a missing and a corrupt model."""

from __future__ import annotations

import json
import shutil

import pytest

from server import create_app
from utils.model_store import MODEL_FILE, load_model


def make_app(model_dir, tmp_path):
    return create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": tmp_path / "data",
                       "MODEL_CHECK_INTERVAL": 0.0})


def test_health_reports_the_loaded_model(client, model_dir):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["models_loaded"] == 3
    assert body["model_version"] == load_model(model_dir).version
    assert body["uptime"] >= 0
    assert body["model_error"] is None


def test_server_starts_without_a_model_and_health_says_why(tmp_path):
    client = make_app(tmp_path / "no-model", tmp_path).test_client()
    response = client.get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert (body["status"], body["models_loaded"], body["model_version"]) == (
        "unavailable", 0, None)
    assert "model.joblib" in body["model_error"]
    info = client.get("/api/model-info")
    assert info.status_code == 503
    assert info.get_json()["error_type"] == "model_unavailable"


def test_server_starts_with_a_corrupt_model_and_reports_it(tmp_path):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / MODEL_FILE).write_bytes(b"definitely not a joblib file")
    body = make_app(folder, tmp_path).test_client().get("/health").get_json()
    assert body["status"] == "unavailable"
    assert "corrupt" in body["model_error"]
    assert str(tmp_path) not in json.dumps(body)


def test_corrupt_replacement_keeps_serving_the_old_model_as_degraded(tmp_path, model_dir,
                                                                     labeled_upload):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    client = make_app(folder, tmp_path).test_client()
    version = client.get("/health").get_json()["model_version"]

    (folder / MODEL_FILE).write_bytes(b"truncated")
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["model_version"] == version
    assert "corrupt" in body["model_error"]
    predicted = client.post("/api/predict-json", json={"records": [[0, "tcp", "http", "SF"]
                                                                   + [0] * 37]})
    assert predicted.status_code == 200
    assert predicted.get_json()["summary"]["model_version"] == version


def test_model_info_passes_the_model_card_through(client, model_dir):
    card = json.loads((model_dir / "model_card.json").read_text())
    response = client.get("/api/model-info")
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True
    for key in ("model_version", "created_at", "k_values", "feature_names", "training_data",
                "validation_metrics", "library_versions", "input_kind"):
        assert body[key] == card[key], key
    assert body["n_models"] == 3 == len(body["k_values"])
    assert body["model_weights"] == pytest.approx(card["model_weights"])
    assert sum(body["model_weights"]) == pytest.approx(1.0)
    assert body["threshold"] == pytest.approx(card["threshold"])
    assert 0 <= body["validation_metrics"]["accuracy"] <= 1  # fractions, as stored
    assert response.headers["X-Model-Version"] == card["model_version"]


@pytest.mark.parametrize(("method", "path", "status", "error_type"), [
    ("get", "/no/such/page", 404, "not_found"),
    ("post", "/health", 405, "method_not_allowed"),
    ("get", "/api/predict", 405, "method_not_allowed"),
    ("delete", "/api/model-info", 405, "method_not_allowed"),
])
def test_unknown_routes_and_methods_answer_in_the_error_shape(client, method, path, status,
                                                              error_type):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.is_json
    body = response.get_json()
    assert body["success"] is False
    assert body["error_type"] == error_type
    assert body["problems"] == []
    if status == 405:
        assert "Allow" in response.headers


def test_health_reports_free_space_in_the_data_folder(model_dir, data_dir):
    app = create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": data_dir,
                      "MIN_FREE_MB": 0.5})
    disk = app.test_client().get("/health").get_json()["disk"]
    free = shutil.disk_usage(data_dir).free
    assert abs(disk["free_bytes"] - free) < 64 * 1024 * 1024  # other jobs write meanwhile
    assert disk["min_free_bytes"] == 512 * 1024
    assert disk["low"] is (disk["free_bytes"] < disk["min_free_bytes"])
