"""The k rule: a baseline's k set scales with its fit rows, up to the KDD model's set."""

import itertools

import numpy as np
import pytest

from utils.baseline.k_rule import (
    K_MAX,
    K_MIN,
    MIN_FIT_ROWS,
    ROWS_PER_CLUSTER,
    baseline_k_values,
    k_rule_card,
)
from utils.detector import DEFAULT_N_CLUSTERS, KMeansEnsembleDetector


def test_a_large_baseline_gets_the_kdd_models_k_set():
    assert baseline_k_values(K_MAX * ROWS_PER_CLUSTER) == DEFAULT_N_CLUSTERS
    assert baseline_k_values(10_000_000) == DEFAULT_N_CLUSTERS


def test_a_small_baseline_gets_the_same_shape_scaled_down():
    ks = baseline_k_values(3000, rows_per_cluster=10)
    assert ks == (200, 225, 250, 275, 300)


@pytest.mark.parametrize("rows", [0, 1, MIN_FIT_ROWS, K_MIN * ROWS_PER_CLUSTER])
def test_the_smallest_set_still_has_five_distinct_k(rows):
    ks = baseline_k_values(rows)
    assert max(ks) == K_MIN
    assert len(set(ks)) == 5 and ks == tuple(sorted(ks))


def test_k_never_shrinks_as_the_baseline_grows():
    sets = [baseline_k_values(rows) for rows in range(0, 8000, 37)]
    assert all(a <= b for before, after in itertools.pairwise(sets)
               for a, b in zip(before, after, strict=True))


def test_the_detector_fits_the_smallest_set_on_the_fewest_rows():
    rows = np.random.default_rng(0).normal(size=(MIN_FIT_ROWS, 4))
    detector = KMeansEnsembleDetector(baseline_k_values(MIN_FIT_ROWS)).fit(rows)
    assert [e.n_clusters for e in detector.estimators_] == list(baseline_k_values(MIN_FIT_ROWS))


def test_rows_per_cluster_must_be_positive():
    with pytest.raises(ValueError, match="rows_per_cluster"):
        baseline_k_values(100, rows_per_cluster=0)


def test_the_card_records_the_rule_its_constants_and_its_result():
    card = k_rule_card(1234, baseline_k_values(1234))
    assert card["rows_per_cluster"] == ROWS_PER_CLUSTER
    assert card["n_fit_rows"] == 1234
    assert card["k_values"] == list(baseline_k_values(1234))
    assert card["k_min"] == K_MIN and card["k_max_cap"] == K_MAX
    assert "zeek_k_rule" in card["chosen_by"]
    assert k_rule_card(1234, (3, 4), explicit=True)["rule"] == "explicit k"
