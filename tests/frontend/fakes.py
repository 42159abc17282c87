"""Stand-ins shared by the frontend tests: the fake API's address and answers, a fake clock."""

from __future__ import annotations

from typing import Any

API_URL = "http://api.test"


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


HEALTH_OK: dict[str, Any] = {"status": "ok", "models_loaded": 5,
                             "model_version": "20261125T120000Z-1a2b3c4d", "uptime": 12.3,
                             "model_error": None}

PREDICTION: dict[str, Any] = {
    "success": True,
    "has_labels": True,
    "summary": {
        "total_samples": 4, "anomalies_detected": 2, "anomalies_returned": 2,
        "severity_counts": {"Normal": 2, "Low": 0, "Medium": 1, "High": 1, "Critical": 0},
        "processing_time": 0.012, "model_version": "20261125T120000Z-1a2b3c4d",
        "threshold": 1.0, "input_kind": "kdd", "sha256": "ab" * 32, "duplicate": False,
        "stored": True,
    },
    "score_histogram": {"bin_edges": [0.0, 1.0, 2.0, 3.0], "counts": [2, 1, 1],
                        "threshold": 1.0},
    "anomalies": [
        {"index": 1, "severity": "High", "anomaly_score": 2.5, "confidence": 0.9, "votes": 5,
         "model_votes": [1, 1, 1, 1, 1], "protocol_type": "tcp", "service": "private",
         "flag": "S0", "src_bytes": 0, "dst_bytes": 0, "label": "neptune",
         "top_features": [{"feature": "serror_rate", "value": 1.0, "contribution": 0.4}]},
        {"index": 3, "severity": "Medium", "anomaly_score": 1.4, "confidence": 0.6,
         "votes": 3, "model_votes": [1, 1, 1, 0, 0], "protocol_type": "udp",
         "service": "domain_u", "flag": "SF", "src_bytes": 44, "dst_bytes": 0,
         "label": "normal", "top_features": []},
    ],
    "metrics": {
        "accuracy": 75.0, "precision": 50.0, "recall": 100.0, "f1_score": 66.7, "auroc": 0.75,
        "labeled_samples": 4, "confusion_matrix": {"tn": 2, "fp": 1, "fn": 0, "tp": 1},
        "detection_rate_by_category": {"DoS": {"total": 1, "detected": 1, "rate": 100.0}},
    },
}
