"""Learning still works behind the defences: trusted uploads (sent with the admin token) of
honest normal traffic teach the committed model, retrained on the full KDDTrain+ with its own
k values, to raise fewer false alarms on traffic like them, and attack detection holds.

KDDTest+ rows stand in for a site's own traffic here: its normal rows are split in two, one
half uploaded (ten files), the other half only measured. Nothing is chosen on them.
"""

from __future__ import annotations

import json
import random
import shutil

import pytest
from learning_helpers import kdd_bytes, register
from poison_helpers import measure_model
from threadpoolctl import threadpool_limits

from tests.conftest import REPO_ROOT
from utils.model_store import load_model
from utils.preprocessing import read_records
from utils.registry import SQLiteRegistry as UploadRegistry
from utils.retraining import RetrainSettings, run_queued

pytestmark = pytest.mark.slow


def test_trusted_normal_uploads_cut_false_alarms_and_detection_holds(kdd_test_path,
                                                                     kdd_train_path, tmp_path):
    lines = kdd_test_path.read_text().splitlines()
    normal = [line for line in lines if line.split(",")[41] == "normal"]
    attacks = [line for line in lines if line.split(",")[41] != "normal"]
    random.Random(7).shuffle(normal)
    taught, unseen = normal[: len(normal) // 2], normal[len(normal) // 2:]
    model_dir = shutil.copytree(REPO_ROOT / "models", tmp_path / "model")
    registry = UploadRegistry(tmp_path / "data")
    check = read_records(kdd_bytes(unseen + attacks))
    before = measure_model(model_dir, check)

    n = len(taught)
    for i in range(10):
        register(registry, kdd_bytes(taught[i * n // 10:(i + 1) * n // 10]), f"site{i}.txt",
                 trusted=True, client="10.0.0.1")
    settings = RetrainSettings(model_dir=model_dir, data_dir=tmp_path / "data",
                               train_file=kdd_train_path)
    with threadpool_limits(limits=1):  # as the server's retrain runs (gunicorn.conf.py)
        (result,) = run_queued(settings, registry)
    after = measure_model(model_dir, check)
    print(json.dumps({"outcome": result.outcome, "reason": result.reason,
                      "before": before.as_points(), "after": after.as_points()}))

    assert result.outcome == "promoted", result.reason
    assert load_model(model_dir).card["training_data"]["uploads"]["labeled_normal_fit"] > 3000
    assert after.false_positive_rate < before.false_positive_rate - 0.02  # 2 points fewer
    for name, rate in before.detection.items():
        assert after.detection[name] >= rate - 0.02, name
    assert after.recall >= before.recall - 0.005  # attack detection holds
