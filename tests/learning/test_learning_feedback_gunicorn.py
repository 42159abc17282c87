"""Acceptance under real gunicorn with real retrain processes: an analyst marks 200 false
alarms of a labeled upload as false positives, a retrain learns from them and the promoted
model flags fewer of them while the gate's figures hold; a flood of attack rows marked false
positive is refused by the gate."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests

from tests.helpers.kdd_data import kdd_bytes
from tests.helpers.models import SMALL_K_TEXT, copy_model
from tests.helpers.servers import Gunicorn
from tests.helpers.waiting import poll
from utils.registry import SQLiteRegistry

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ADMIN = "feedback-admin-token"
ANALYST = "feedback-analyst-token"
TIMEOUT = (5, 120)
MARKED = 200


def start(root: Path, model: Path, train_file: Path, share: str) -> tuple[Gunicorn, Path]:
    data_dir = root / "data"
    server = Gunicorn(root, {
        "ANOMALYZE_MODEL_DIR": str(copy_model(model, root / "model")),
        "ANOMALYZE_DATA_DIR": str(data_dir), "ANOMALYZE_MODEL_CHECK_INTERVAL": "0.2",
        "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4", "ANOMALYZE_RETRAIN_THRESHOLD": "0",
        "ANOMALYZE_RETRAIN_K": SMALL_K_TEXT, "ANOMALYZE_RETRAIN_TRAIN_FILE": str(train_file),
        # The test model's training file has 3,000 rows (about 1,270 normal fit rows), so
        # the default share (5%) would admit 63 verdicts; a production file has 67,343.
        "ANOMALYZE_RETRAIN_FEEDBACK_SHARE": share,
        "ANOMALYZE_ADMIN_TOKEN": ADMIN, "ANOMALYZE_ANALYST_TOKEN": ANALYST})
    return server, data_dir


def predict(server: Gunicorn, data: bytes) -> dict:
    response = requests.post(f"{server.url}/api/predict?limit=100000",
                             files={"file": ("labeled.txt", data)}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def flagged_normal_rows(body: dict) -> list[int]:
    return sorted(a["index"] for a in body["anomalies"] if a["label"] == "normal")


def mark(server: Gunicorn, sha256: str, rows: list[int]) -> None:
    response = requests.post(f"{server.url}/api/feedback", timeout=TIMEOUT, json={
        "sha256": sha256, "records": rows, "verdict": "false_positive",
        "note": "known good"}, headers={"Authorization": f"Bearer {ANALYST}"})
    assert response.status_code == 201, response.text


def retrain(server: Gunicorn, data_dir: Path) -> dict:
    registry = SQLiteRegistry(data_dir)
    response = requests.post(f"{server.url}/api/retrain", timeout=TIMEOUT,
                             headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 202, response.text
    return poll(lambda: next((r for r in registry.runs(5) if r["outcome"] != "running"),
                             None), "the retrain to finish", 300.0, interval=0.2)


def test_two_hundred_false_positives_teach_the_promoted_model(trained, fresh_lines, tmp_path,
                                                              capsys):
    base, model = trained
    server, data_dir = start(tmp_path, model, base, share="0.2")
    try:
        data = kdd_bytes(fresh_lines[:12000])
        sha256 = hashlib.sha256(data).hexdigest()
        before = predict(server, data)
        false_alarms = flagged_normal_rows(before)
        assert len(false_alarms) >= MARKED, len(false_alarms)
        marked = false_alarms[:MARKED]
        mark(server, sha256, marked)
        status = requests.get(f"{server.url}/api/retrain/status", timeout=TIMEOUT).json()
        assert status["feedback"]["false_positive_waiting"] == MARKED

        run = retrain(server, data_dir)
        assert run["outcome"] == "promoted", run["reason"]
        assert "false_positive_rate" in run["reason"]
        assert run["metrics_after"]["feedback_rows"] == MARKED
        fpr_before = run["metrics_before"]["false_positive_rate"]
        fpr_after = run["metrics_after"]["false_positive_rate"]
        poll(lambda: requests.get(f"{server.url}/health", timeout=TIMEOUT).json()[
            "model_version"] == run["version"], "the new model served", 30.0)
        after = predict(server, data)
        still = set(flagged_normal_rows(after)) & set(marked)
        assert len(still) < MARKED
        status = requests.get(f"{server.url}/api/retrain/status", timeout=TIMEOUT).json()
        assert status["feedback"]["false_positive_trained"] == MARKED
        with capsys.disabled():
            print(f"\n[feedback acceptance] {len(false_alarms)} false alarms in "
                  f"{len(fresh_lines[:12000])} rows; {MARKED} marked; still flagged after "
                  f"the retrain: {len(still)}; validation FPR {fpr_before:.4f} -> "
                  f"{fpr_after:.4f}; gate: {run['reason']}; anomalies "
                  f"{before['summary']['anomalies_detected']} -> "
                  f"{after['summary']['anomalies_detected']}")
    finally:
        server.stop()


def test_a_flood_of_attacks_marked_false_positive_is_refused_by_the_gate(
        trained, fresh_lines, tmp_path):
    base, model = trained
    server, data_dir = start(tmp_path, model, base, share="1")  # only the gate stands
    try:
        attacks = [line for line in fresh_lines if line.split(",")[41] != "normal"][:1500]
        data = kdd_bytes(attacks)
        before = predict(server, data)
        mark(server, hashlib.sha256(data).hexdigest(), list(range(len(attacks))))
        run = retrain(server, data_dir)
        assert run["outcome"] == "rejected", run["reason"]
        assert "worse" in run["reason"]
        assert run["metrics_after"]["feedback_rows"] > 1000
        health = requests.get(f"{server.url}/health", timeout=TIMEOUT).json()
        assert health["model_version"] == before["summary"]["model_version"]
    finally:
        server.stop()
