import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from utils.metrics import auroc_score, evaluate


def test_hand_counted_confusion_matrix_and_rates():
    labels = pd.Series(["normal", "normal", "neptune", "guess_passwd", "normal", "smurf"])
    flagged = np.array([False, True, True, False, False, True])
    scores = np.array([0.1, 0.9, 0.8, 0.3, 0.2, 0.95])
    m = evaluate(labels, flagged, scores)
    assert m["confusion_matrix"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 2}
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["detection_rate_by_category"]["DoS"] == {"total": 2, "detected": 2, "rate": 1.0}
    assert m["detection_rate_by_category"]["R2L"]["rate"] == 0.0
    assert m["auroc"] == pytest.approx(7 / 9)  # 7 of 9 (attack, normal) pairs ordered right


def test_unknown_labels_are_left_out_of_every_figure():
    labels = pd.Series(["normal", pd.NA, "neptune"], dtype=object)
    m = evaluate(labels, np.array([False, True, True]), np.array([0.1, 0.5, 0.9]))
    assert m["labeled_samples"] == 2
    assert m["accuracy"] == 1.0


def test_single_class_has_no_auroc():
    m = evaluate(pd.Series(["normal", "normal"]), np.array([False, False]), np.array([1.0, 2.0]))
    assert m["auroc"] is None and m["recall"] == 0.0


def test_unknown_attack_names_count_as_attacks_in_an_unknown_category():
    m = evaluate(pd.Series(["normal", "cc"]), np.array([False, True]), np.array([0.0, 1.0]))
    assert m["detection_rate_by_category"]["Unknown"]["detected"] == 1
    assert m["recall"] == 1.0


def test_only_categories_present_are_reported_and_no_known_label_gives_empty_figures():
    m = evaluate(pd.Series(["normal", "ipsweep", "ipsweep"]), np.array([False, True, False]),
                 np.array([0.0, 1.0, 0.5]))
    assert m["detection_rate_by_category"] == {
        "Probe": {"total": 2, "detected": 1, "rate": 0.5}}
    empty = evaluate(pd.Series([pd.NA, pd.NA], dtype=object), np.array([True, False]),
                     np.array([1.0, 0.0]))
    assert empty["labeled_samples"] == 0 and empty["detection_rate_by_category"] == {}
    assert empty["auroc"] is None


def test_auroc_is_the_area_sklearn_computes_also_with_ties():
    rng = np.random.default_rng(7)
    for rounding in (None, 2):  # continuous scores, then many ties within and across classes
        scores = rng.random(5_000)
        if rounding is not None:
            scores = np.round(scores, rounding)
        attack = rng.random(5_000) < scores * 0.8  # informative but imperfect
        labels = pd.Series(np.where(attack, "neptune", "normal"), dtype=object)
        m = evaluate(labels, scores > 0.5, scores)
        assert m["auroc"] == pytest.approx(roc_auc_score(attack, scores), abs=1e-12)


def test_categorical_labels_give_the_same_figures():
    labels = pd.Series(["normal", "neptune", None, "normal", "cc", "neptune"], dtype=object)
    flagged = np.array([False, True, True, True, False, False])
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.2, 0.9])
    as_category = labels.astype(pd.CategoricalDtype(["smurf", "neptune", "normal", "cc"]))
    assert evaluate(as_category, flagged, scores) == evaluate(labels, flagged, scores)


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=2, max_size=60))
def test_auroc_is_scikit_learns_including_ties(pairs):
    y = np.array([label for label, _ in pairs])
    scores = np.array([score / 3 for _, score in pairs])  # few values: many ties
    if y.all() or not y.any():
        return
    assert auroc_score(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
