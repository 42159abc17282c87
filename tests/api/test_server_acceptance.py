"""Acceptance: KDDTest+ through the API gives exactly the metrics computed in-process
(utils.metrics.evaluate over utils.scoring, as test_performance.py prints them)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from server import create_app
from server.responses import percent
from tests.helpers.api_calls import upload
from utils.metrics import evaluate
from utils.model_store import load_model
from utils.readers import read_records
from utils.scoring import score_records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kdd_test_bytes(kdd_test_path) -> bytes:
    return kdd_test_path.read_bytes()


@pytest.fixture
def repo_client(repo_model_dir, tmp_path):
    app = create_app({"TESTING": True, "MODEL_DIR": repo_model_dir,
                      "DATA_DIR": tmp_path / "data"})
    return app.test_client()


def test_kddtest_metrics_match_evaluate_in_process_exactly(repo_client, repo_model_dir,
                                                           kdd_test_bytes):
    response = upload(repo_client, kdd_test_bytes, name="KDDTest+.txt")
    assert response.status_code == 200
    body = response.get_json()

    model = load_model(repo_model_dir)
    records = read_records(kdd_test_bytes)
    scored = score_records(model, records)
    expected = evaluate(records.labels, scored.is_anomaly, scored.anomaly_score)

    metrics = body["metrics"]
    assert metrics["accuracy"] == percent(expected["accuracy"])
    assert metrics["precision"] == percent(expected["precision"])
    assert metrics["recall"] == percent(expected["recall"])
    assert metrics["f1_score"] == percent(expected["f1"])
    assert metrics["auroc"] == expected["auroc"]
    assert metrics["labeled_samples"] == expected["labeled_samples"] == 22544
    assert metrics["confusion_matrix"] == expected["confusion_matrix"]
    assert metrics["detection_rate_by_category"] == {
        name: {"total": e["total"], "detected": e["detected"], "rate": percent(e["rate"])}
        for name, e in expected["detection_rate_by_category"].items()}
    summary = body["summary"]
    assert summary["total_samples"] == 22544
    assert summary["anomalies_detected"] == int(scored.is_anomaly.sum())
    assert summary["model_version"] == model.version
    assert len(body["anomalies"]) == min(1000, summary["anomalies_detected"])


def test_kddtest_csv_verdicts_match_in_process_scoring(repo_client, repo_model_dir,
                                                       kdd_test_bytes):
    response = upload(repo_client, kdd_test_bytes, query="?format=csv")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    scored = score_records(load_model(repo_model_dir), read_records(kdd_test_bytes))
    assert len(rows) == len(scored)
    flagged = np.array([row["is_anomaly"] == "true" for row in rows])
    np.testing.assert_array_equal(flagged, scored.is_anomaly)
    np.testing.assert_array_equal([float(row["anomaly_score"]) for row in rows],
                                  scored.anomaly_score)
