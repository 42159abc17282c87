"""Zeek conn.log through the whole product: API upload, metrics, identity, own-traffic training."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from server import create_app
from tests.helpers.repo import REPO_ROOT, require_file

ZEEK_SAMPLES = REPO_ROOT.parent / "shared" / "data" / "zeek"
IDENTITY = ("uid", "ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")


def sample(name: str) -> Path:
    return require_file(ZEEK_SAMPLES / name, "../shared/data/zeek beside the repository")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = create_app({"DATA_DIR": tmp_path_factory.mktemp("data"), "TESTING": True})
    return app.test_client()


@pytest.mark.slow
@pytest.mark.parametrize(("name", "rows", "labeled"), [
    ("scenario-malicious.conn.log.labeled", 992, 253),  # 739 Background rows are unknown
    ("ctu-botnet-4.conn.log.labeled", 22913, 22913),
])
def test_api_scores_a_real_conn_log_with_metrics_and_identity(client, name, rows, labeled):
    data = sample(name).read_bytes()
    response = client.post("/api/predict?limit=50", data={"file": (io.BytesIO(data), name)})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["summary"]["input_kind"] == "zeek"
    assert body["summary"]["total_samples"] == rows
    assert body["has_labels"] is True
    assert body["metrics"]["labeled_samples"] == labeled
    assert body["anomalies"]
    for anomaly in body["anomalies"]:
        assert all(key in anomaly for key in IDENTITY)
        assert anomaly["uid"].startswith("C")


def test_csv_rows_carry_the_zeek_identity(client):
    data = sample("scenario-malicious.conn.log.labeled").read_bytes()
    response = client.post("/api/predict?format=csv",
                           data={"file": (io.BytesIO(data), "conn.log")})
    assert response.status_code == 200
    lines = response.get_data(as_text=True).splitlines()
    assert len(lines) == 992 + 1
    assert all(column in lines[0].split(",") for column in IDENTITY)


def test_a_zeek_log_without_the_needed_fields_is_a_clear_400(client):
    log = b"#separator \\x09\n#fields\tts\tuid\n#types\ttime\tstring\n1.0\tCabc\n"
    response = client.post("/api/predict", data={"file": (io.BytesIO(log), "conn.log")})
    assert response.status_code == 400
    body = response.get_json()
    assert body["success"] is False
    assert "proto" in body["error"] or "conn_state" in body["error"]


@pytest.mark.slow
def test_train_model_learns_own_traffic_from_a_conn_log(tmp_path):
    """`train_model.py --train conn.log`: a baseline in the Zeek model's folder, malicious
    rows left out of the fit, the KDD model's place untouched."""
    path = sample("ctu-botnet-4.conn.log.labeled")
    done = subprocess.run(
        [sys.executable, "train_model.py", "--train", str(path), "--model-dir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "WARNING [possible_scanner]" in done.stdout
    assert not (tmp_path / "model_card.json").exists()
    card = json.loads((tmp_path / "zeek" / "model_card.json").read_text())
    assert card["input_kind"] == "zeek"
    data = card["training_data"]
    assert data["normal_rows"] == 19460 and data["malicious_rows"] == 3453
    # fitted on the benign rows of the oldest 60% only: never more rows than that
    assert data["fit_rows"] <= round(22913 * 0.6)


@pytest.mark.slow
def test_answers_for_a_log_read_in_chunks_equal_those_for_one_chunk(client, monkeypatch):
    """JSON and CSV, row for row, whether the API reads the log whole or in small chunks."""
    import functools

    import server.predict as predict
    from server import analysis
    from tests.helpers.zeek_logs import conn_rows, tsv_log

    data = tsv_log(conn_rows(1_200, seed=8, rate=300, long_seconds=2))

    def answers() -> tuple[dict, str]:
        body = client.post("/api/predict?limit=100",
                           data={"file": (io.BytesIO(data), "conn.log")}).get_json()
        for key in ("processing_time", "duplicate", "stored", "store_reason"):
            body["summary"].pop(key)
        csv = client.post("/api/predict?format=csv",
                          data={"file": (io.BytesIO(data), "conn.log")})
        return body, csv.get_data(as_text=True)

    whole = answers()
    monkeypatch.setattr(predict, "analyse_file",
                        functools.partial(analysis.analyse_file, chunk_rows=150))
    monkeypatch.setattr(predict, "iter_identity",
                        functools.partial(predict.iter_identity, chunk_rows=97))
    chunked = answers()
    assert chunked[0] == whole[0]
    assert chunked[1] == whole[1]
    assert len(whole[1].splitlines()) == 1_200 + 1
    assert whole[0]["anomalies"] and whole[0]["metrics"]["labeled_samples"] == 1_200


def test_a_log_too_far_out_of_time_order_is_a_413_json_error(client, monkeypatch):
    import functools

    import server.predict as predict
    from server import analysis
    from tests.helpers.zeek_logs import FIELDS, conn_rows, tsv_log
    from utils.readers import zeek_stream

    monkeypatch.setattr(zeek_stream, "MAX_HELD_ROWS", 700)
    monkeypatch.setattr(predict, "analyse_file",
                        functools.partial(analysis.analyse_file, chunk_rows=100))
    rows = conn_rows(1_000, seed=2, rate=100, long_share=0.0)
    early = list(rows[0])
    early[FIELDS.index("ts")] = f"{float(rows[0][0]) - 3600:.3f}"  # logged an hour late
    response = client.post("/api/predict",
                           data={"file": (io.BytesIO(tsv_log([*rows, early])), "conn.log")})
    assert response.status_code == 413
    body = response.get_json()
    assert body["success"] is False and body["error_type"] == "too_large"
    assert "out of time order" in body["error"] and "sort it by ts" in body["error"]
