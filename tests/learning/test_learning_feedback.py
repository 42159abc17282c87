"""Analysts' verdicts in retraining: false positives train as normal rows (capped), confirmed
attacks never train, a flood of attacks marked false positive is refused by the gate, and
allow-listed attack rows do not judge a candidate."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from tests.helpers.kdd_data import kdd_bytes
from tests.helpers.registry import register
from utils.allowlist import AllowEntry
from utils.model_store import MODEL_FILE, VERSIONS_DIR, load_model
from utils.readers import read_records
from utils.retraining import retrain_once
from utils.scoring import score_records
from utils.training import train

pytestmark = pytest.mark.slow  # every test runs a retrain on NSL-KDD rows


def keys(features: pd.DataFrame) -> set[int]:
    return set(pd.util.hash_pandas_object(features, index=False).tolist())


def spy_trainer(seen: dict):
    def spy(*args, **kwargs):
        seen["extra"] = kwargs["extra_normal"]
        seen["source"] = kwargs["source"]
        return train(*args, **kwargs)
    return spy


def attack_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.split(",")[41] != "normal"]


def keep(setup, data: bytes, **kwargs) -> str:
    register(setup.registry, data, threshold=0, **kwargs)
    return hashlib.sha256(data).hexdigest()


def test_false_positives_train_as_normal_whatever_their_label_and_true_positives_never(
        setup, fresh_lines):
    attacks = attack_lines(fresh_lines)[:100]
    data = kdd_bytes(attacks)  # anonymous, labeled as attacks: on their own, nothing trains
    sha = keep(setup, data)
    setup.registry.add_feedback(sha, [str(i) for i in range(10)], "false_positive", None, "t")
    setup.registry.add_feedback(sha, [str(i) for i in range(10, 20)], "true_positive", None, "t")
    setup.settings.feedback_share = 1.0
    seen: dict = {}
    retrain_once(setup.settings, setup.registry, trainer=spy_trainer(seen))
    features = read_records(data).features
    fitted = keys(seen["extra"])
    assert keys(features.iloc[:10]) <= fitted
    assert not keys(features.iloc[10:20]) & fitted
    uploads = seen["source"]["uploads"]
    assert uploads["feedback_rows"] == 10
    assert uploads["feedback_false_positive"] == 10
    assert uploads["feedback_true_positive"] == 10


def test_a_confirmed_attack_is_kept_out_even_where_the_model_calls_it_normal(
        setup, fresh_lines):
    normal = [line for line in fresh_lines if line.split(",")[41] == "normal"][:200]
    data = kdd_bytes(normal, labels=False)
    sha = keep(setup, data)
    scored = score_records(load_model(setup.model_dir), read_records(data))
    calm = np.flatnonzero((scored.severity == "Normal") & (
        scored.confidence >= setup.settings.min_confidence))[:5].tolist()
    setup.registry.add_feedback(sha, [str(i) for i in calm], "true_positive", None, "t")
    seen: dict = {}
    retrain_once(setup.settings, setup.registry, trainer=spy_trainer(seen))
    assert not keys(read_records(data).features.iloc[calm]) & keys(seen["extra"])
    assert seen["source"]["uploads"]["true_positive_kept_out"] == len(calm)


def test_false_positive_rows_are_capped_at_a_share_of_the_normal_fit_rows(setup, fresh_lines):
    data = kdd_bytes(attack_lines(fresh_lines)[:400])
    sha = keep(setup, data)
    setup.registry.add_feedback(sha, [str(i) for i in range(400)], "false_positive", None, "t")
    setup.settings.feedback_share = 0.02
    seen: dict = {}
    retrain_once(setup.settings, setup.registry, trainer=spy_trainer(seen))
    base = read_records(setup.base.read_bytes())
    normal_fit = int((base.labels == "normal").sum() * 0.8)  # 20% held out
    uploads = seen["source"]["uploads"]
    assert abs(uploads["feedback_rows"] - int(0.02 * normal_fit)) <= 1
    assert uploads["feedback_capped"] == 400 - uploads["feedback_rows"]


def test_a_flood_of_attacks_marked_false_positive_is_rejected_by_the_gate(setup, fresh_lines):
    """An analyst token in the wrong hands: every attack row of an upload marked false
    positive, with the cap lifted. The gate sees the candidate misses attacks."""
    before = (setup.model_dir / MODEL_FILE).read_bytes()
    data = kdd_bytes(attack_lines(fresh_lines)[:1500])
    sha = keep(setup, data)
    setup.registry.add_feedback(sha, [str(i) for i in range(1500)], "false_positive", None,
                                "mallory")
    setup.settings.feedback_share = 1.0
    result = retrain_once(setup.settings, setup.registry)
    assert result.outcome == "rejected", result.reason
    fitted = result.metrics_after["feedback_rows"]
    assert fitted > 1000  # all the file's normal fit rows' worth (share 1.0)
    assert "worse" in result.reason and f"{fitted} feedback row(s)" in result.reason
    assert result.metrics_after["detection_rate_by_category"]["DoS"]["rate"] < (
        result.metrics_before["detection_rate_by_category"]["DoS"]["rate"] - 0.02)
    assert (setup.model_dir / MODEL_FILE).read_bytes() == before
    assert not (setup.model_dir / VERSIONS_DIR).exists()
    assert setup.registry.feedback_counts()["false_positive_trained"] == 0


def test_promotion_marks_the_feedback_it_learned_from(setup, fresh_lines):
    normal = [line for line in fresh_lines if line.split(",")[41] == "normal"]
    data = kdd_bytes(normal[:300])
    sha = keep(setup, data, trusted=True)
    setup.registry.add_feedback(sha, ["1", "2"], "false_positive", "fine", "t")
    setup.settings.tolerance = setup.settings.category_tolerance = 1.0
    result = retrain_once(setup.settings, setup.registry)
    assert result.outcome == "promoted", result.reason
    assert "false_positive_rate" in result.reason
    assert setup.registry.feedback_counts() == {"false_positive_waiting": 0,
                                                "false_positive_trained": 2,
                                                "true_positive": 0}
    assert {f.trained_version for f in setup.registry.feedback()} == {result.version}


def test_allowlisted_attack_rows_of_a_trusted_upload_do_not_judge_the_candidate(
        setup, fresh_lines):
    attacks = attack_lines(fresh_lines)[:200]
    normal = [line for line in fresh_lines if line.split(",")[41] == "normal"][:100]
    keep(setup, kdd_bytes(normal), trusted=True)  # something to learn: the trainer runs
    data = kdd_bytes(attacks)
    keep(setup, data, trusted=True)
    services = read_records(data).features["service"]
    common = services.value_counts().index[0]
    setup.registry.add_allow_entry(AllowEntry(service=common, reason="lab", added_by="t",
                                              added_at="2026-01-01T00:00:00Z"))
    seen: dict = {}
    retrain_once(setup.settings, setup.registry, trainer=spy_trainer(seen))
    uploads = seen["source"]["uploads"]
    assert uploads["allowlisted_attack_ignored"] == int((services == common).sum())
    assert uploads["validation_attack"] == 200 - uploads["allowlisted_attack_ignored"]
