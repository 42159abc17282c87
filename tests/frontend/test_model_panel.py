"""GET /model-panel: the model card plus the retraining status, which may not exist yet."""

from __future__ import annotations

from .fakes import API_URL

MODEL_INFO = {"success": True, "model_version": "v1", "created_at": "2026-11-25T12:00:00Z",
              "n_models": 5, "k_values": [8, 16, 32, 64, 128], "threshold": 1.0,
              "input_kind": "kdd"}
RETRAIN = {"success": True, "pending_uploads": 3, "threshold": 10, "running": False,
           "last_runs": []}


def test_panel_combines_model_info_and_retrain_status(client, mocked_api):
    mocked_api.get(f"{API_URL}/api/model-info", json=MODEL_INFO)
    mocked_api.get(f"{API_URL}/api/retrain/status", json=RETRAIN)
    body = client.get("/model-panel").get_json()
    assert body == {"success": True, "model": MODEL_INFO, "retrain": RETRAIN,
                    "retrain_available": True}


def test_panel_says_when_retraining_status_is_not_built(client, mocked_api):
    mocked_api.get(f"{API_URL}/api/model-info", json=MODEL_INFO)
    mocked_api.get(f"{API_URL}/api/retrain/status", status=404,
                   json={"success": False, "error": "not found", "error_type": "not_found"})
    response = client.get("/model-panel")
    assert response.status_code == 200
    assert response.get_json()["retrain"] is None
    assert response.get_json()["retrain_available"] is False


def test_panel_reports_an_unreachable_api_readably(client, mocked_api):
    response = client.get("/model-panel")
    assert response.status_code == 503
    assert response.get_json()["error_type"] == "api_unreachable"


def test_panel_passes_on_every_kinds_model_and_a_missing_one(client, mocked_api):
    """The page lists each kind's model from `models`; a kind without one is null, not an
    error (the page then links to the baseline section)."""
    info = {**MODEL_INFO, "models": {"kdd": MODEL_INFO, "zeek": None}}
    mocked_api.get(f"{API_URL}/api/model-info", json=info)
    mocked_api.get(f"{API_URL}/api/retrain/status", json=RETRAIN)
    response = client.get("/model-panel")
    assert response.status_code == 200
    assert response.get_json()["model"]["models"] == {"kdd": MODEL_INFO, "zeek": None}
