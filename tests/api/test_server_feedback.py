"""Analyst feedback over HTTP: verdicts on kept uploads, listed, and waiting in the status."""

from __future__ import annotations

import hashlib
import io

import pytest

from server import create_app

ANALYST = {"Authorization": "Bearer analyst-secret", "X-Analyst": "ana"}


@pytest.fixture
def app(model_dir, data_dir):
    return create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": data_dir,
                       "MODEL_CHECK_INTERVAL": 0.0, "ANALYST_TOKEN": "analyst-secret",
                       "ADMIN_TOKEN": "admin-secret"})


@pytest.fixture
def kept(client, zeek_upload) -> str:
    client.post("/api/predict", data={"file": (io.BytesIO(zeek_upload), "conn.log")},
                content_type="multipart/form-data")
    return hashlib.sha256(zeek_upload).hexdigest()


def send(client, headers=ANALYST, **body):
    return client.post("/api/feedback", json=body, headers=headers)


def test_feedback_needs_the_analyst_token(client, kept):
    body = {"sha256": kept, "records": [0], "verdict": "false_positive"}
    assert send(client, {}, **body).status_code == 401
    assert send(client, {"Authorization": "Bearer x"}, **body).status_code == 403
    assert client.get("/api/feedback").status_code == 401


def test_verdicts_are_kept_with_who_and_when_and_listed(client, kept):
    response = send(client, sha256=kept, records=[0, 3, "C1"], verdict="false_positive",
                    note="the lab scanner")
    assert response.status_code == 201
    body = response.get_json()
    assert body["recorded"] == 3
    assert body["waiting"]["false_positive_waiting"] == 3
    item = body["feedback"][0]
    assert item["analyst"] == "analyst:ana" and item["created_at"].endswith("Z")
    assert item["note"] == "the lab scanner" and item["trained_version"] is None
    send(client, sha256=kept, records=[6], verdict="true_positive")
    listed = client.get("/api/feedback?limit=2", headers=ANALYST).get_json()
    assert listed["counts"] == {"false_positive_waiting": 3, "false_positive_trained": 0,
                                "true_positive": 1}
    assert [i["record"] for i in listed["feedback"]] == ["6", "C1"]
    rest = client.get(f"/api/feedback?before={listed['next_before']}",
                      headers=ANALYST).get_json()
    assert [i["record"] for i in rest["feedback"]] == ["3", "0"]
    only = client.get("/api/feedback?verdict=true_positive", headers=ANALYST).get_json()
    assert [i["record"] for i in only["feedback"]] == ["6"]


def test_the_retrain_status_shows_feedback_waiting(client, kept):
    send(client, sha256=kept, records=[0, 3], verdict="false_positive")
    status = client.get("/api/retrain/status").get_json()
    assert status["feedback"]["false_positive_waiting"] == 2


@pytest.mark.parametrize(("body", "field"), [
    ({"sha256": "xyz", "records": [0], "verdict": "false_positive"}, "sha256"),
    ({"sha256": None, "records": [0], "verdict": "false_positive"}, "sha256"),
    ({"records": [], "verdict": "false_positive"}, "records"),
    ({"records": [-1], "verdict": "false_positive"}, "records[0]"),
    ({"records": [0, "bad uid!"], "verdict": "false_positive"}, "records[1]"),
    ({"records": [0], "verdict": "maybe"}, "verdict"),
    ({"records": [0], "verdict": "true_positive", "note": 5}, "note"),
    ({"records": [30], "verdict": "false_positive"}, "records[0]"),  # 30 rows: 0..29
])
def test_a_malformed_verdict_is_a_400_naming_the_field(client, kept, body, field):
    response = send(client, **{"sha256": kept, **body})
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["problems"][0]["field"] == field


def test_feedback_on_an_upload_the_server_did_not_keep_is_a_404(client):
    response = send(client, sha256="b" * 64, records=[0], verdict="false_positive")
    assert response.status_code == 404
    assert response.get_json()["error_type"] == "unknown_upload"
