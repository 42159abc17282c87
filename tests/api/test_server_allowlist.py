"""The allow-list over HTTP: managing entries, and every scoring answer applying them."""

from __future__ import annotations

import io
import json

import pytest

from server import create_app

ANALYST = {"Authorization": "Bearer analyst-secret", "X-Analyst": "ana"}
ADMIN = {"Authorization": "Bearer admin-secret"}


@pytest.fixture
def app(model_dir, data_dir):
    return create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": data_dir,
                       "MODEL_CHECK_INTERVAL": 0.0, "ANALYST_TOKEN": "analyst-secret",
                       "ADMIN_TOKEN": "admin-secret"})


def add(client, headers=ANALYST, **body):
    return client.post("/api/allowlist", json={"reason": "known scanner", **body},
                       headers=headers)


def predict(client, data: bytes, fmt: str = "json"):
    return client.post(f"/api/predict?format={fmt}",
                       data={"file": (io.BytesIO(data), "conn.log")},
                       content_type="multipart/form-data")


def test_entries_need_the_analyst_or_admin_token(client):
    assert client.get("/api/allowlist").status_code == 401
    assert client.get("/api/allowlist",
                      headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get("/api/allowlist", headers=ANALYST).status_code == 200
    assert client.get("/api/allowlist", headers=ADMIN).status_code == 200


def test_without_any_token_configured_the_routes_are_disabled(model_dir, data_dir):
    client = create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": data_dir,
                         "ANALYST_TOKEN": None, "ADMIN_TOKEN": None}).test_client()
    response = client.get("/api/allowlist", headers=ANALYST)
    assert response.status_code == 404
    assert response.get_json()["error_type"] == "disabled"


def test_an_entry_is_kept_with_who_when_and_kind_and_listed(client):
    response = add(client, host="10.0.0.0/24", expires_at="2999-01-01T00:00:00Z")
    assert response.status_code == 201
    entry = response.get_json()["entry"]
    assert entry["kind"] == "cidr" and entry["host"] == "10.0.0.0/24"
    assert entry["added_by"] == "analyst:ana" and entry["added_at"].endswith("Z")
    assert entry["expires_at"] == "2999-01-01T00:00:00Z"
    listed = client.get("/api/allowlist", headers=ANALYST).get_json()
    assert [e["id"] for e in listed["entries"]] == [entry["id"]]
    assert add(client, source="10.0.0.9", destination="10.0.0.2",
               service="http").get_json()["entry"]["kind"] == "combination"
    assert add(client, port=53).get_json()["entry"]["kind"] == "port"
    assert add(client, host="10.0.0.7").get_json()["entry"]["kind"] == "host"
    assert add(client, service="DNS").get_json()["entry"]["service"] == "dns"


@pytest.mark.parametrize(("body", "field"), [
    ({"host": "10.0.0.300"}, "host"),
    ({"host": "10.0.0.1/8"}, "host"),  # host bits set: refused, not widened
    ({"source": "fe80::1/200"}, "source"),
    ({"destination": 17}, "destination"),
    ({"port": 70000}, "port"),
    ({"port": "eighty"}, "port"),
    ({"port": True}, "port"),
    ({"service": "dns; drop"}, "service"),
    ({"host": "10.0.0.1", "expires_at": "next tuesday"}, "expires_at"),
    ({"host": "10.0.0.1", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({}, "host"),
    ({"host": "10.0.0.1", "colour": "red"}, "colour"),
])
def test_a_malformed_entry_is_a_400_naming_the_field(client, body, field):
    response = add(client, **body)
    assert response.status_code == 400
    error = response.get_json()
    assert error["error_type"] == "invalid_entry"
    assert error["problems"][0]["field"] == field


def test_an_entry_without_a_reason_is_refused(client):
    response = client.post("/api/allowlist", json={"host": "10.0.0.1"}, headers=ANALYST)
    assert response.status_code == 400
    assert response.get_json()["problems"][0]["field"] == "reason"


def test_a_duplicate_is_refused_with_the_existing_entry_id(client):
    first = add(client, host="10.0.0.0/24").get_json()["entry"]
    again = add(client, host="10.0.0.0/24", reason="other words")
    assert again.status_code == 409
    assert again.get_json()["problems"][0]["existing_id"] == first["id"]
    assert str(first["id"]) in again.get_json()["error"]


def test_an_entry_is_deleted_by_id_and_an_unknown_id_is_a_404(client):
    entry = add(client, port=53).get_json()["entry"]
    assert client.delete(f"/api/allowlist/{entry['id']}", headers=ANALYST).status_code == 200
    assert client.get("/api/allowlist", headers=ANALYST).get_json()["entries"] == []
    assert client.delete(f"/api/allowlist/{entry['id']}", headers=ANALYST).status_code == 404
    again = add(client, port=53).get_json()["entry"]
    assert client.delete(f"/api/allowlist?id={again['id']}", headers=ANALYST).status_code == 200


def test_a_matching_anomaly_is_reported_allowlisted_and_not_counted_as_an_alert(
        client, zeek_upload):
    before = predict(client, zeek_upload).get_json()
    flagged = [a for a in before["anomalies"] if a["id.orig_h"] == "10.0.0.9"]
    assert flagged and before["summary"]["allowlisted"] == 0
    assert before["summary"]["alerts"] == before["summary"]["anomalies_detected"]
    entry = add(client, host="10.0.0.9").get_json()["entry"]
    after = predict(client, zeek_upload).get_json()
    summary = after["summary"]
    assert summary["anomalies_detected"] == before["summary"]["anomalies_detected"]
    assert summary["allowlisted"] == len(flagged) >= 1
    assert summary["alerts"] == summary["anomalies_detected"] - summary["allowlisted"]
    for anomaly in after["anomalies"]:
        allowed = anomaly["id.orig_h"] == "10.0.0.9"
        assert anomaly["allowlisted"] is allowed
        assert anomaly["allowlist_entry"] == (entry["id"] if allowed else None)


def test_an_expired_entry_no_longer_applies(client, app, zeek_upload):
    from utils.allowlist import AllowEntry
    registry = app.extensions["anomalyze.uploads"].registry
    registry.add_allow_entry(AllowEntry(host="10.0.0.9", reason="r", added_by="t",
                                        added_at="2000-01-01T00:00:00Z",
                                        expires_at="2000-01-02T00:00:00Z"))
    assert predict(client, zeek_upload).get_json()["summary"]["allowlisted"] == 0
    listed = client.get("/api/allowlist?expired=1", headers=ANALYST).get_json()
    assert listed["total"] == 1
    assert client.get("/api/allowlist", headers=ANALYST).get_json()["total"] == 0
    # an equal entry replaces the expired one instead of being refused as a duplicate
    assert add(client, host="10.0.0.9").status_code == 201


def test_allowlisted_anomalies_are_not_sent_as_ndjson_alerts(client, zeek_upload):
    all_alerts = predict(client, zeek_upload, "ndjson").get_data(as_text=True).splitlines()
    add(client, source="10.0.0.9", destination="10.0.0.2")
    alerts = [json.loads(line) for line in
              predict(client, zeek_upload, "ndjson").get_data(as_text=True).splitlines()]
    assert len(alerts) < len(all_alerts)
    assert all(alert["source"]["ip"] != "10.0.0.9" for alert in alerts)


def test_the_csv_answer_marks_allowlisted_rows(client, zeek_upload):
    entry = add(client, host="10.0.0.9").get_json()["entry"]
    lines = predict(client, zeek_upload, "csv").get_data(as_text=True).splitlines()
    header = lines[0].split(",")
    assert header[-2:] == ["allowlisted", "allowlist_entry"]
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    for row in rows:
        allowed = row["is_anomaly"] == "true" and row["id.orig_h"] == "10.0.0.9"
        assert row["allowlisted"] == ("true" if allowed else "false")
        assert row["allowlist_entry"] == (str(entry["id"]) if allowed else "")
    assert any(row["allowlisted"] == "true" for row in rows)


def test_a_service_entry_matches_kdd_records(client, labeled_upload):
    before = predict(client, labeled_upload).get_json()["summary"]
    service = predict(client, labeled_upload).get_json()["anomalies"][0]["service"]
    add(client, service=service)
    after = predict(client, labeled_upload).get_json()["summary"]
    assert after["allowlisted"] > 0
    assert after["alerts"] == before["alerts"] - after["allowlisted"]


def test_apply_reapplies_a_changed_list_to_a_scored_csv_and_ndjson(client, zeek_upload):
    scored_csv = predict(client, zeek_upload, "csv").get_data()
    alerts = predict(client, zeek_upload, "ndjson").get_data()
    entry = add(client, host="10.0.0.9").get_json()["entry"]

    def apply(data: bytes):
        return client.post("/api/allowlist/apply", headers=ANALYST,
                           data={"file": (io.BytesIO(data), "scored")},
                           content_type="multipart/form-data")

    response = apply(scored_csv)
    assert response.status_code == 200
    lines = response.get_data(as_text=True).splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    allowed = [r for r in rows if r["allowlisted"] == "true"]
    assert allowed and all(r["allowlist_entry"] == str(entry["id"]) for r in allowed)
    assert int(response.headers["X-Anomalyze-Allowlisted"]) == len(allowed)
    response = apply(alerts)
    kept = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert all(alert["source"]["ip"] != "10.0.0.9" for alert in kept)
    assert len(kept) == len(alerts.splitlines()) - int(
        response.headers["X-Anomalyze-Allowlisted"])
    # an entry removed: the re-applied CSV has its rows back as alerts
    client.delete(f"/api/allowlist/{entry['id']}", headers=ANALYST)
    again = apply(scored_csv)
    assert again.headers["X-Anomalyze-Allowlisted"] == "0"


def test_apply_refuses_a_file_that_is_not_a_scored_result(client):
    response = client.post("/api/allowlist/apply", headers=ANALYST,
                           data={"file": (io.BytesIO(b'{"a": 1}\n{oops\n'), "x.ndjson")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    assert response.get_json()["problems"][0]["line"] == 2
    response = client.post("/api/allowlist/apply", headers=ANALYST,
                           data={"file": (io.BytesIO(b"a,b\n1,2\n"), "x.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    assert "is_anomaly" in response.get_json()["error"]
