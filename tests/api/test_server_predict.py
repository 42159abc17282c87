"""POST /api/predict: the JSON answer, the per-record CSV, what is kept of an upload, and the
refusals (each one JSON with the documented error_type)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re

import numpy as np
import pandas as pd
import pytest

from server import analysis as analysis_module
from server import responses
from tests.helpers.api_calls import upload
from tests.helpers.disk import leftover_temp_files, stored_files
from tests.helpers.kdd_data import kdd_line, normal_values, synthetic_kdd
from utils.metrics import evaluate
from utils.model_store import load_model
from utils.readers import dispatch, read_records
from utils.schema import FEATURE_NAMES, SEVERITIES
from utils.scoring import ScoredRecords, iter_scored_chunks, score_records

STORED_NAME = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{16}\.(txt|csv|log|tsv|json|gz)$")


# --- the JSON answer --------------------------------------------------------------------------


def test_summary_counts_agree_with_scoring_the_same_file_in_process(client, labeled_upload,
                                                                    model_dir):
    response = upload(client, labeled_upload)
    assert response.status_code == 200
    body = response.get_json()
    model = load_model(model_dir)
    scored = score_records(model, read_records(labeled_upload))
    summary = body["summary"]
    assert body["success"] is True and body["has_labels"] is True
    assert summary["total_samples"] == len(scored)
    assert summary["anomalies_detected"] == int(scored.is_anomaly.sum())
    assert summary["severity_counts"] == {
        name: int((scored.severity == name).sum()) for name in SEVERITIES}
    assert summary["model_version"] == model.version
    assert response.headers["X-Model-Version"] == model.version
    assert summary["threshold"] == model.detector.threshold_
    assert summary["input_kind"] == "kdd"
    assert summary["sha256"] == hashlib.sha256(labeled_upload).hexdigest()
    assert summary["processing_time"] >= 0
    assert sum(body["score_histogram"]["counts"]) == len(scored)


def test_anomalies_are_the_flagged_rows_highest_score_first(client, labeled_upload, model_dir):
    body = upload(client, labeled_upload).get_json()
    scored = score_records(load_model(model_dir), read_records(labeled_upload))
    flagged = np.flatnonzero(scored.is_anomaly)
    expected = flagged[np.lexsort((flagged, -scored.anomaly_score[flagged]))]
    anomalies = body["anomalies"]
    assert [a["index"] for a in anomalies] == expected.tolist()
    assert body["summary"]["anomalies_returned"] == len(anomalies) == len(flagged)
    for entry in anomalies:
        i = entry["index"]
        assert entry["anomaly_score"] == scored.anomaly_score[i]
        assert entry["severity"] == scored.severity[i] != "Normal"
        assert entry["model_votes"] == scored.votes[i].astype(int).tolist()
        assert entry["votes"] == sum(entry["model_votes"])
        assert 0 <= entry["confidence"] <= 1


def test_anomaly_records_carry_the_documented_fields(client, labeled_upload):
    entry = upload(client, labeled_upload).get_json()["anomalies"][0]
    assert list(entry) == ["index", "severity", "anomaly_score", "confidence",
                           "allowlisted", "allowlist_entry", "votes", "model_votes",
                           "protocol_type", "service", "flag", "src_bytes", "dst_bytes",
                           "label", "top_features"]
    assert entry["label"] == "neptune"
    assert entry["service"] == "private" and isinstance(entry["src_bytes"], int)
    assert entry["top_features"] and {"feature", "value", "contribution"} <= set(
        entry["top_features"][0])


@pytest.mark.parametrize("limit", [0, 1, 5])
def test_limit_caps_the_anomalies_returned_but_not_the_counts(client, labeled_upload, limit):
    everything = upload(client, labeled_upload).get_json()
    body = upload(client, labeled_upload, query=f"?limit={limit}").get_json()
    assert body["summary"]["anomalies_returned"] == len(body["anomalies"]) == limit
    assert body["anomalies"] == everything["anomalies"][:limit]
    assert body["summary"]["anomalies_detected"] == everything["summary"]["anomalies_detected"]


def test_explanations_are_computed_only_for_the_returned_rows(client, labeled_upload,
                                                               monkeypatch):
    explained = []
    real_explain = responses.explain

    def spy(model, features, *args, **kwargs):
        explained.append(len(features))
        return real_explain(model, features, *args, **kwargs)

    monkeypatch.setattr(responses, "explain", spy)
    upload(client, labeled_upload, query="?limit=3")
    assert explained == [3]


def test_metrics_are_evaluate_in_percent_with_auroc_as_a_fraction(client, labeled_upload,
                                                                  model_dir):
    metrics = upload(client, labeled_upload).get_json()["metrics"]
    records = read_records(labeled_upload)
    scored = score_records(load_model(model_dir), records)
    expected = evaluate(records.labels, scored.is_anomaly, scored.anomaly_score)
    assert metrics["accuracy"] == 100 * expected["accuracy"]
    assert metrics["precision"] == 100 * expected["precision"]
    assert metrics["recall"] == 100 * expected["recall"]
    assert metrics["f1_score"] == 100 * expected["f1"]
    assert metrics["auroc"] == expected["auroc"]
    assert metrics["labeled_samples"] == expected["labeled_samples"] == 60
    assert metrics["confusion_matrix"] == expected["confusion_matrix"]
    dos = expected["detection_rate_by_category"]["DoS"]
    assert metrics["detection_rate_by_category"]["DoS"] == {
        "total": dos["total"], "detected": dos["detected"], "rate": 100 * dos["rate"]}


def test_unlabeled_file_has_no_metrics_and_no_label_field(client):
    body = upload(client, synthetic_kdd(30, 10, labels=False)).get_json()
    assert body["has_labels"] is False
    assert body["metrics"] is None
    assert body["anomalies"] and all("label" not in a for a in body["anomalies"])


def test_file_whose_labels_are_all_unknown_has_no_metrics(client):
    rng = np.random.default_rng(3)
    data = "\n".join(kdd_line(normal_values(rng), "?") for _ in range(5)).encode()
    body = upload(client, data).get_json()
    assert body["has_labels"] is True and body["metrics"] is None


def test_gzip_upload_is_read_like_the_plain_file(client, labeled_upload):
    plain = upload(client, labeled_upload).get_json()
    zipped = upload(client, gzip.compress(labeled_upload), name="traffic.txt.gz").get_json()
    assert zipped["anomalies"] == plain["anomalies"]
    assert zipped["metrics"] == plain["metrics"]


# The names of the OpenML / datahub copy of KDD Cup 1999 (and of fetch_kddcup99 CSVs).
L_PREFIXED = ("num_compromised", "root_shell", "su_attempted", "num_root", "num_file_creations",
              "num_shells", "num_access_files", "num_outbound_cmds")


def test_a_csv_with_fetch_kddcup99_column_names_is_scored_like_a_headerless_file(client):
    lines = synthetic_kdd(40, 10).decode().splitlines()
    headerless = [line.rsplit(",", 1)[0] for line in lines]  # KDD Cup 1999: no difficulty
    header = [f"l{name}" if name in L_PREFIXED else name for name in FEATURE_NAMES]
    with_header = [",".join([*header, "labels"]), *(line + "." for line in headerless)]

    named = upload(client, ("\n".join(with_header) + "\n").encode(), name="kdd.csv")
    plain = upload(client, ("\n".join(headerless) + "\n").encode()).get_json()

    assert named.status_code == 200, named.get_json()
    assert named.get_json()["has_labels"] is True
    assert named.get_json()["anomalies"] == plain["anomalies"]
    assert named.get_json()["metrics"] == plain["metrics"]


def test_zeek_anomalies_carry_the_connection_identity(client, zeek_upload):
    body = upload(client, zeek_upload, name="conn.log").get_json()
    assert body["summary"]["input_kind"] == "zeek"
    assert body["anomalies"]
    entry = body["anomalies"][0]
    for name in ("uid", "ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"):
        assert name in entry
    assert entry["uid"].startswith("=cmd")  # JSON is not a spreadsheet: values stay as sent
    assert isinstance(entry["id.resp_p"], int)


def test_chunked_analysis_keeps_the_same_top_rows_as_one_chunk(model_dir, tmp_path):
    path = tmp_path / "upload.txt"
    path.write_bytes(synthetic_kdd(80, 45, seed=11))
    model = load_model(model_dir)
    whole = analysis_module.analyse_file(model, path, limit=10)
    chunked = analysis_module.analyse_file(model, path, limit=10, chunk_rows=7)
    assert chunked.top_index.tolist() == whole.top_index.tolist()
    assert len(chunked.top_index) == 10
    assert chunked.top_features.equals(whole.top_features)
    np.testing.assert_array_equal(chunked.is_anomaly, whole.is_anomaly)
    np.testing.assert_allclose(chunked.anomaly_score, whole.anomaly_score, rtol=1e-6)


# --- query parameters -------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["?limit=abc", "?limit=-1", "?limit=100001", "?limit=1.5",
                                   "?format=xml"])
def test_bad_query_parameters_are_refused_before_reading_the_upload(client, labeled_upload,
                                                                    data_dir, query):
    response = upload(client, labeled_upload, query=query)
    assert response.status_code == 400
    body = response.get_json()
    assert body["success"] is False and body["error_type"] == "invalid_parameter"
    assert stored_files(data_dir) == []


@pytest.mark.parametrize("raw", [
    "1_000", "+5", " 1 ", "1 ", "\u0661\u0660", "\u0665", "\uff15", "\u00b2", "0x10", "1e3",
    "-0", "9" * 5000,
], ids=["underscore", "plus", "spaces", "trailing space", "arabic-indic 10", "arabic-indic 5",
        "full-width 5", "superscript 2", "hex", "exponent", "minus zero", "5000 digits"])
@pytest.mark.parametrize("route", ["/api/predict", "/api/predict-json"])
def test_limit_is_plain_ascii_digits_only(client, labeled_upload, route, raw):
    if route == "/api/predict":
        response = client.post(route, query_string={"limit": raw},
                               data={"file": (io.BytesIO(labeled_upload), "t.txt")},
                               content_type="multipart/form-data")
    else:
        response = client.post(route, query_string={"limit": raw},
                               json={"records": [[0, "tcp", "http", "SF"] + [0] * 37]})
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error_type"] == "invalid_parameter"
    assert "limit" in body["error"] and "plain digits" in body["error"]


@pytest.mark.parametrize(("raw", "expected"), [("0", 0), ("7", 7), ("007", 7), ("100000", 100000)])
def test_limit_in_plain_digits_is_accepted(client, labeled_upload, raw, expected):
    response = upload(client, labeled_upload, query=f"?limit={raw}")
    assert response.status_code == 200
    assert response.get_json()["summary"]["anomalies_returned"] == min(
        expected, response.get_json()["summary"]["anomalies_detected"])


# --- the CSV answer ---------------------------------------------------------------------------


def test_csv_has_one_row_per_record_matching_the_json(client, labeled_upload):
    json_body = upload(client, labeled_upload, query="?limit=100000").get_json()
    response = upload(client, labeled_upload, query="?format=csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.is_streamed
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert list(rows[0]) == ["index", "is_anomaly", "severity", "anomaly_score", "confidence",
                             "label", "allowlisted", "allowlist_entry"]
    assert [int(r["index"]) for r in rows] == list(range(60))
    flagged = {a["index"]: a for a in json_body["anomalies"]}
    assert {int(r["index"]) for r in rows if r["is_anomaly"] == "true"} == set(flagged)
    for row in rows:
        if int(row["index"]) in flagged:
            entry = flagged[int(row["index"])]
            assert float(row["anomaly_score"]) == entry["anomaly_score"]
            assert row["severity"] == entry["severity"]
        else:
            assert row["is_anomaly"] == "false" and row["severity"] == "Normal"
    assert {r["label"] for r in rows} == {"normal", "neptune"}


def test_csv_neutralises_text_that_a_spreadsheet_would_run(client):
    rng = np.random.default_rng(5)
    labels = ["=HYPERLINK(x)", "+1", "-cmd", "@SUM(A1)", "normal"]
    data = "\n".join(kdd_line(normal_values(rng), label) for label in labels).encode()
    response = upload(client, data, query="?format=csv")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["label"] for r in rows] == ["'=hyperlink(x)", "'+1", "'-cmd", "'@sum(a1)",
                                          "normal"]


@pytest.mark.parametrize(("value", "cell"), [
    ("=1+2", "'=1+2"), ("+x", "'+x"), ("-x", "'-x"), ("@x", "'@x"), ("\tx", "'\tx"),
    ("\rx", "'\rx"), ("plain", "plain"), (-3, -3), (-2.5, -2.5), (7.0, 7), (None, ""),
])
def test_csv_cell_prefixes_only_formula_like_text(value, cell):
    assert responses.csv_cell(value) == cell


def test_zeek_csv_carries_the_identity_columns_neutralised(client, zeek_upload):
    response = upload(client, zeek_upload, name="conn.log", query="?format=csv")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert list(rows[0])[-8:] == ["uid", "ts", "id.orig_h", "id.orig_p", "id.resp_h",
                                  "id.resp_p", "allowlisted", "allowlist_entry"]
    assert rows[0]["uid"] == "'=cmd0"
    assert rows[1]["uid"] == "C1"
    assert rows[1]["id.resp_p"] == "80"


# --- what is kept of an upload ----------------------------------------------------------------


def test_valid_upload_is_stored_once_under_a_name_made_from_its_hash(client, labeled_upload,
                                                                     data_dir):
    first = upload(client, labeled_upload, name="../../etc/evil name.txt").get_json()
    assert (first["summary"]["duplicate"], first["summary"]["stored"]) == (False, True)
    names = stored_files(data_dir)
    assert len(names) == 1 and STORED_NAME.match(names[0])
    sha = hashlib.sha256(labeled_upload).hexdigest()
    assert names[0].endswith(f"-{sha[:16]}.txt")
    assert (data_dir / "uploaded_logs" / names[0]).read_bytes() == labeled_upload

    again = upload(client, labeled_upload, name="other.csv").get_json()
    assert (again["summary"]["duplicate"], again["summary"]["stored"]) == (True, False)
    assert stored_files(data_dir) == names
    assert leftover_temp_files(data_dir) == []


def test_csv_request_stores_the_upload_too(client, labeled_upload, data_dir):
    upload(client, labeled_upload, query="?format=csv").get_data()
    assert len(stored_files(data_dir)) == 1


# --- refusals ---------------------------------------------------------------------------------


def test_request_without_a_file_field_is_missing_file(client, data_dir):
    response = client.post("/api/predict", data={"other": "x"},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    assert response.get_json()["error_type"] == "missing_file"
    assert client.post("/api/predict").get_json()["error_type"] == "missing_file"


def bad_value_file() -> bytes:
    rng = np.random.default_rng(1)
    lines = [kdd_line(normal_values(rng)) for _ in range(3)]
    fields = lines[1].split(",")
    fields[4] = "abc"  # src_bytes
    lines[1] = ",".join(fields)
    return "\n".join(lines).encode()


@pytest.mark.parametrize(("data", "error_type", "line", "column"), [
    (b"", "empty_file", None, None),
    (b"\n\n", "empty_file", None, None),
    (b"0,tcp,http,SF\n", "field_count", 1, None),
    (bad_value_file(), "invalid_value", 2, "src_bytes"),
    (b"\x00\x01\x02binary\xff" * 20, "binary_data", 1, None),
])
def test_invalid_files_are_refused_with_line_and_column_and_never_stored(
        client, data_dir, data, error_type, line, column):
    response = upload(client, data)
    assert response.status_code == 400
    body = response.get_json()
    assert body["success"] is False
    assert body["error_type"] == error_type
    assert body["error"]
    if line is not None:
        assert body["problems"][0]["line"] == line
        assert body["problems"][0]["column"] == column
    assert stored_files(data_dir) == []
    assert leftover_temp_files(data_dir) == []


def test_upload_over_the_file_limit_is_413_json_and_not_kept(model_dir, data_dir):
    from server import create_app

    app = create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": data_dir,
                      "MAX_UPLOAD_MB": 0.001})  # 1048 bytes; the body limit has 1 MB slack
    response = upload(app.test_client(), synthetic_kdd(30, 0))
    assert response.status_code == 413
    body = response.get_json()
    assert body["error_type"] == "too_large"
    assert "0.001 MB" in body["error"]
    assert stored_files(data_dir) == []
    assert leftover_temp_files(data_dir) == []


class UnreadableBody(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        UnreadableBody.reads += 1
        raise AssertionError("the body of an oversized request was read")


def test_oversized_request_is_refused_from_its_length_without_reading_the_body(app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = app.test_client().post(
        "/api/predict", content_type="multipart/form-data; boundary=x",
        environ_overrides={"wsgi.input": UnreadableBody(), "CONTENT_LENGTH": str(limit + 1)})
    assert response.status_code == 413
    assert response.get_json()["error_type"] == "too_large"
    assert "200 MB" in response.get_json()["error"]
    assert UnreadableBody.reads == 0


def test_server_fault_is_500_without_traceback_or_path(client, labeled_upload, monkeypatch,
                                                       log_lines):
    def broken(*args, **kwargs):
        raise RuntimeError("disk trouble in /srv/anomalyze/secret/place")

    monkeypatch.setattr("server.predict.analyse_file", broken)
    response = upload(client, labeled_upload)
    assert response.status_code == 500
    body = response.get_json()
    assert body == {"success": False, "error": "internal server error",
                    "error_type": "internal_error", "problems": []}
    text = response.get_data(as_text=True)
    assert "/srv" not in text and "Traceback" not in text
    logged = [line for line in log_lines if "traceback" in line]
    assert logged and "RuntimeError" in logged[0]["traceback"]


def test_no_model_means_503_model_unavailable_before_the_upload_is_read(tmp_path,
                                                                        labeled_upload):
    from server import create_app

    app = create_app({"TESTING": True, "MODEL_DIR": tmp_path / "empty",
                      "DATA_DIR": tmp_path / "data"})
    response = upload(app.test_client(), labeled_upload)
    assert response.status_code == 503
    body = response.get_json()
    assert body["error_type"] == "model_unavailable"
    assert "model.joblib" in body["error"] and str(tmp_path) not in body["error"]
    assert not (tmp_path / "data" / "uploaded_logs").exists()


def test_each_request_logs_one_json_line(client, labeled_upload, log_lines):
    response = upload(client, labeled_upload)
    response.close()
    requests = [line for line in log_lines if line["logger"] == "anomalyze.requests"]
    assert len(requests) == 1
    line = requests[0]
    assert (line["method"], line["path"], line["status"], line["rows"]) == (
        "POST", "/api/predict", 200, 60)
    assert line["ms"] >= 0
    assert line["model_version"] == response.get_json()["summary"]["model_version"]


def test_scoring_on_several_threads_matches_one_thread(model_dir, monkeypatch):
    monkeypatch.setattr(dispatch, "_MIN_PIECE_BYTES", 1)  # cut even this small file
    data = synthetic_kdd(700, 300, seed=12)
    model = load_model(model_dir)
    runs = {threads: list(iter_scored_chunks(model, data, chunk_rows=400, threads=threads))
            for threads in (1, 3)}
    assert len(runs[1]) == 3 and len(runs[3]) == 9  # every chunk cut into three pieces
    one, three = ([records for records, _ in runs[t]] for t in (1, 3))
    pd.testing.assert_frame_equal(pd.concat([r.features for r in three]),
                                  pd.concat([r.features for r in one]))
    pd.testing.assert_series_equal(pd.concat([r.labels for r in three]),
                                   pd.concat([r.labels for r in one]))
    one, three = (ScoredRecords.concat([scored for _, scored in runs[t]]) for t in (1, 3))
    np.testing.assert_array_equal(three.is_anomaly, one.is_anomaly)
    np.testing.assert_allclose(three.anomaly_score, one.anomaly_score, rtol=1e-6)
