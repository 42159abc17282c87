"""format=ndjson: one ECS alert per anomaly from /api/predict and /api/predict-json."""

from __future__ import annotations

import json
import zlib

import pytest

from server import alerts as alerts_module
from server.alerts import AlertSpool, alerts_from_file
from tests.helpers.api_calls import upload
from tests.helpers.disk import stored_files
from tests.helpers.ecs_fields import alert_problems
from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.zeek_logs import zeek_sample
from utils.model_store import load_model

NDJSON = "application/x-ndjson"


def alert_lines(response) -> list[dict]:
    body = response.get_data()
    assert body == b"" or body.endswith(b"\n")
    return [json.loads(line) for line in body.splitlines()]


def test_zeek_upload_gives_one_valid_ecs_alert_per_anomaly_in_input_order(client, zeek_upload):
    summary = upload(client, zeek_upload, name="conn.log", query="?limit=100000").get_json()
    response = upload(client, zeek_upload, name="conn.log", query="?format=ndjson")
    assert response.status_code == 200
    assert response.mimetype == NDJSON
    assert response.headers["X-Model-Version"] == summary["summary"]["model_version"]
    alerts = alert_lines(response)
    assert len(alerts) == summary["summary"]["anomalies_detected"] > 0
    rows = [alert["anomalyze"]["row"] for alert in alerts]
    assert rows == sorted(rows)
    by_row = {entry["index"]: entry for entry in summary["anomalies"]}
    assert set(rows) == set(by_row)
    for alert in alerts:
        assert alert_problems(alert) == [], alert
        entry = by_row[alert["anomalyze"]["row"]]
        assert alert["zeek"]["uid"] == entry["uid"]  # "=cmd0" stays as sent: JSON is no sheet
        assert alert["source"]["ip"] == entry["id.orig_h"]
        assert alert["destination"]["port"] == entry["id.resp_p"]
        assert alert["anomalyze"]["score"] == pytest.approx(entry["anomaly_score"])
        assert alert["anomalyze"]["severity"] == entry["severity"]
        assert alert["network"]["transport"] == "tcp"
        assert "community_id" in alert["network"]


def test_zeek_service_names_the_protocol_in_alerts_but_not_the_kdd_service_in_json(
        client, zeek_upload):
    entries = upload(client, zeek_upload, name="conn.log",
                     query="?limit=100000").get_json()["anomalies"]
    # the JSON keeps "service" for the KDD service the model scored, never Zeek's
    assert all(isinstance(entry["service"], str) for entry in entries)
    alerts = alert_lines(upload(client, zeek_upload, name="conn.log", query="?format=ndjson"))
    protocols = {alert["anomalyze"]["row"]: alert["network"].get("protocol") for alert in alerts}
    # zeek_sample: every third row has no service ("-"), the others "http"
    assert all(protocol == (None if row % 3 == 0 else "http")
               for row, protocol in protocols.items())


def test_kdd_upload_alerts_have_no_invented_hosts(client, labeled_upload):
    summary = upload(client, labeled_upload).get_json()["summary"]
    alerts = alert_lines(upload(client, labeled_upload, query="?format=ndjson"))
    assert len(alerts) == summary["anomalies_detected"] > 0
    for alert in alerts:
        assert alert_problems(alert) == [], alert
        assert not {"source", "destination", "related", "zeek"} & alert.keys()
        assert alert["@timestamp"] == alert["event"]["created"]
        assert alert["anomalyze"]["input_kind"] == "kdd"
        assert alert["network"]["transport"] == "tcp"


def test_ndjson_streams_every_anomaly_whatever_the_limit(client, labeled_upload):
    everything = alert_lines(upload(client, labeled_upload, query="?format=ndjson"))
    limited = alert_lines(upload(client, labeled_upload, query="?format=ndjson&limit=1"))
    assert len(limited) == len(everything) > 1


def test_ndjson_of_traffic_without_anomalies_is_empty(client):
    data = b"".join(synthetic_kdd(30, 0, seed=11).splitlines(keepends=True)[:1])
    summary = upload(client, data).get_json()["summary"]
    if summary["anomalies_detected"]:
        pytest.skip("the small test model flags this normal row")
    response = upload(client, data, query="?format=ndjson")
    assert response.status_code == 200 and response.get_data() == b""


def test_ndjson_request_keeps_the_upload_like_any_other(client, labeled_upload, data_dir):
    upload(client, labeled_upload, query="?format=ndjson").get_data()
    assert len(stored_files(data_dir)) == 1
    incoming = data_dir / "incoming"
    assert not incoming.exists() or list(incoming.iterdir()) == []


def test_a_bad_line_gives_the_json_error_not_half_an_ndjson_body(client, labeled_upload):
    lines = labeled_upload.decode().splitlines()
    lines[40] = lines[40].replace("tcp", "tcp,extra", 1)
    response = upload(client, ("\n".join(lines) + "\n").encode(), query="?format=ndjson")
    assert response.status_code == 400
    body = response.get_json()
    assert body["error_type"] == "field_count"
    assert body["problems"][0]["line"] == 41


def test_predict_json_shares_the_ndjson_format(client):
    records = [line.split(",")[:41] for line in synthetic_kdd(8, 4, seed=2).decode().split()]
    expected = client.post("/api/predict-json",
                           json={"records": records}).get_json()["summary"]
    response = client.post("/api/predict-json?format=ndjson", json={"records": records})
    assert response.status_code == 200 and response.mimetype == NDJSON
    alerts = alert_lines(response)
    assert len(alerts) == expected["anomalies_detected"] > 0
    assert all(alert_problems(alert) == [] for alert in alerts)


def test_unknown_format_is_refused_naming_ndjson(client, labeled_upload):
    response = upload(client, labeled_upload, query="?format=xml")
    assert response.status_code == 400
    assert "ndjson" in response.get_json()["error"]


# --- the spool behind the answer ------------------------------------------------------------


def test_alerts_spill_to_disk_compressed_and_stream_back_unchanged(monkeypatch, tmp_path,
                                                                   model_dir):
    monkeypatch.setattr(alerts_module, "SPOOL_MEMORY_BYTES", 1024)
    path = tmp_path / "conn.log"
    path.write_bytes(zeek_sample())
    model = load_model(model_dir)
    analysis, spool = alerts_from_file(model, path, spool_dir=tmp_path / "spool", chunk_rows=7)
    assert spool.alerts > 0 and len(analysis) == 30
    assert spool._file._rolled  # on disk, not in memory
    body = b"".join(spool.stream())
    assert spool._file.closed
    assert body.count(b"\n") == spool.alerts
    rows = [json.loads(line)["anomalyze"]["row"] for line in body.splitlines()]
    assert rows == sorted(rows)  # chunks of 7 rows, in input order
    assert len(zlib.compress(body, 1)) < len(body) / 4


def test_a_spool_closed_before_streaming_leaves_nothing(tmp_path):
    spool = AlertSpool(tmp_path)
    spool.write([{"a": 1}])
    spool.finish()
    spool.close()
    assert list(tmp_path.iterdir()) == []
