import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from tests.helpers.repo import REPO_ROOT
from utils.detector import (
    _BLOCK_ROWS,
    SEVERITY_LEVELS,
    KMeansEnsembleDetector,
    _pattern_blocks,
)
from utils.model_store import load_model
from utils.readers import read_records


def blobs(n: int = 3000, seed: int = 0) -> np.ndarray:
    centers = np.random.RandomState(0).uniform(-5, 5, size=(6, 4))  # one shared "normal"
    rng = np.random.RandomState(seed)
    return centers[rng.randint(0, 6, size=n)] + rng.normal(0, 0.3, size=(n, 4))


@pytest.fixture(scope="module")
def fitted() -> KMeansEnsembleDetector:
    return KMeansEnsembleDetector(n_clusters=(4, 6, 8, 10, 12), random_state=0).fit(blobs())


def test_outlier_contract_signs_agree(fitted):
    X = np.vstack([blobs(200, seed=1), np.full((5, 4), 40.0)])
    score = fitted.score_samples(X)
    np.testing.assert_allclose(score, -fitted.anomaly_score(X))
    np.testing.assert_allclose(fitted.decision_function(X), score - fitted.offset_)
    pred = fitted.predict(X)
    assert set(np.unique(pred)) <= {-1, 1}
    assert np.array_equal(pred == -1, fitted.decision_function(X) < 0)
    assert (pred[-5:] == -1).all()


def test_detects_generated_outliers_well():
    """Minimum-quality floor on data with known outliers (as PyOD's tests do)."""
    inliers = blobs(600, seed=2)
    outliers = np.random.RandomState(3).uniform(-12, 12, size=(60, 4))
    det = KMeansEnsembleDetector(n_clusters=(4, 6, 8, 10, 12), random_state=0).fit(blobs())
    X = np.vstack([inliers, outliers])
    y = np.r_[np.zeros(600), np.ones(60)]
    assert roc_auc_score(y, det.anomaly_score(X)) >= 0.95


def test_same_data_and_seed_give_the_same_model():
    a = KMeansEnsembleDetector(n_clusters=(3, 5), random_state=7).fit(blobs())
    b = KMeansEnsembleDetector(n_clusters=(3, 5), random_state=7).fit(blobs())
    for ea, eb in zip(a.estimators_, b.estimators_, strict=True):
        np.testing.assert_array_equal(ea.cluster_centers_, eb.cluster_centers_)
    assert a.threshold_ == b.threshold_


def test_confidence_is_a_fraction_and_grows_away_from_the_threshold(fitted):
    t = fitted.threshold_
    scores = np.array([t * 0.01, t * 0.5, t * 0.99, t * 1.01, t * 2, t * 100])
    conf = fitted.confidence(scores)
    assert ((conf >= 0) & (conf <= 1)).all()
    assert conf[0] >= conf[1] >= conf[2]  # normal side: surer the further below
    assert conf[3] <= conf[4] <= conf[5]  # anomaly side: surer the further above
    assert conf[5] > 0.95  # capped by the calibration size: 1 - (1/(n+1)) / p(threshold)


def test_severity_is_normal_below_threshold_and_ordered_above(fitted):
    t = fitted.threshold_
    scores = np.sort(np.r_[t * 0.5, np.geomspace(t * 1.001, t * 1000, 50)])
    levels = [SEVERITY_LEVELS.index(s) for s in fitted.severity(scores)]
    assert levels[0] == 0
    assert min(levels[1:]) >= 1
    assert levels == sorted(levels)
    assert levels[-1] == SEVERITY_LEVELS.index("Critical")


def test_analyse_gives_votes_per_model(fitted):
    X = np.vstack([blobs(10, seed=4), np.full((2, 4), 40.0)])
    result = fitted.analyse(X)
    assert result["votes"].shape == (12, 5)
    assert result["votes"][-2:].all()
    np.testing.assert_array_equal(result["is_anomaly"], fitted.predict(X) == -1)


def test_analyse_without_input_checks_gives_the_same_and_still_refuses_a_wrong_width(fitted):
    X = np.vstack([blobs(10, seed=4), np.full((2, 4), 40.0)]).astype(np.float32)
    checked, unchecked = fitted.analyse(X), fitted.analyse(X, check_input=False)
    for key, values in checked.items():
        np.testing.assert_array_equal(unchecked[key], values)
    with pytest.raises(ValueError, match="4 columns"):
        fitted.analyse(X[:, :3], check_input=False)


def test_set_threshold_moves_offset(fitted):
    det = KMeansEnsembleDetector(n_clusters=(3,), random_state=0).fit(blobs())
    det.set_threshold(2.5)
    assert det.offset_ == -2.5 and det.threshold_ == 2.5


def test_too_few_rows_for_k_is_a_clear_error():
    with pytest.raises(ValueError, match="need more than"):
        KMeansEnsembleDetector(n_clusters=(50,)).fit(blobs(40))


def test_wrong_feature_count_is_refused(fitted):
    with pytest.raises(ValueError, match="3 features, but KMeansEnsembleDetector is expecting 4"):
        fitted.anomaly_score(np.zeros((2, 3)))


def test_finer_models_weigh_more_in_proportion_to_k_squared(fitted):
    k = np.array([4, 6, 8, 10, 12], dtype=float)
    np.testing.assert_allclose(fitted.model_weights_, k**2 / np.sum(k**2))
    X = blobs(30, seed=5)
    ratios = fitted._model_distances(X) / fitted.scales_
    np.testing.assert_allclose(fitted.anomaly_score(X),
                               np.exp(np.log(ratios + 1e-12) @ fitted.model_weights_))


def test_weight_power_zero_is_the_plain_geometric_mean():
    det = KMeansEnsembleDetector(n_clusters=(3, 5), weight_power=0.0, random_state=0).fit(blobs())
    X = blobs(20, seed=6)
    ratios = det._model_distances(X) / det.scales_
    np.testing.assert_allclose(det.anomaly_score(X), np.exp(np.log(ratios + 1e-12).mean(axis=1)))


def test_a_model_saved_before_weights_existed_loads_and_scores_as_it_was_calibrated(fitted):
    """Such a file has neither weight_power nor model_weights_: plain geometric mean."""
    state = fitted.__getstate__()
    del state["weight_power"], state["model_weights_"]
    old = KMeansEnsembleDetector.__new__(KMeansEnsembleDetector)
    old.__setstate__(state)
    assert old.get_params()["weight_power"] == 0.0
    X = blobs(20, seed=7)
    ratios = old._model_distances(X) / old.scales_
    np.testing.assert_allclose(old.anomaly_score(X), np.exp(np.log(ratios + 1e-12).mean(axis=1)))


# Scores are computed in float32 (for speed); BLAS may round a row differently depending on
# the batch it is in, at the 1e-7 level, which this exact-equality check does not allow.
@parametrize_with_checks([KMeansEnsembleDetector(n_clusters=(2, 3))])
def test_scikit_learn_estimator_contract(estimator, check):
    check(estimator)


def one_hot_data(n: int, seed: int) -> np.ndarray:
    """Four dense columns followed by two one-hot blocks (3 and 4 values), weight 2."""
    rng = np.random.RandomState(seed)
    dense = rng.normal(0, 1, size=(n, 4))
    a = np.eye(3)[rng.randint(0, 3, size=n)] * 2
    b = np.eye(4)[rng.randint(0, 4, size=n)] * 2
    return np.hstack([dense, a, b])


def brute_force_distances(det: KMeansEnsembleDetector, X: np.ndarray) -> np.ndarray:
    return np.stack([
        np.sqrt(((X[:, None, :] - e.cluster_centers_[None].astype(np.float64)) ** 2).sum(-1))
        .min(axis=1) for e in det.estimators_], axis=1)


@pytest.fixture(scope="module")
def grouped() -> KMeansEnsembleDetector:
    return KMeansEnsembleDetector(n_clusters=(5, 9), n_dense_features=4,
                                  random_state=0).fit(one_hot_data(2000, seed=0))


def test_distances_grouped_by_one_hot_pattern_equal_brute_force(grouped):
    X = one_hot_data(700, seed=1)
    X[:3, 4:] = 0.0  # an unseen category encodes as an all-zero block
    np.testing.assert_allclose(grouped._model_distances(X), brute_force_distances(grouped, X),
                               rtol=1e-4, atol=1e-4)


def test_rows_the_pattern_hash_would_merge_are_still_scored_exactly(grouped, monkeypatch):
    X = one_hot_data(300, seed=2)
    expected = grouped._model_distances(X)
    monkeypatch.setattr(grouped, "_pattern_keys", np.zeros_like(grouped._pattern_keys))
    np.testing.assert_allclose(grouped._model_distances(X), expected, rtol=1e-6)


def test_distances_stay_exact_with_many_small_patterns_and_a_column_no_centroid_uses():
    """Blocks then end at the pattern-slot limit, not the row limit; and a dense column that
    is 0 in every centroid (skipped in the product) still counts for a row that is not 0."""
    rng = np.random.RandomState(3)

    def data(n):
        a = np.eye(6)[rng.randint(0, 6, size=n)] * 2
        b = np.eye(7)[rng.randint(0, 7, size=n)] * 2
        return np.hstack([rng.normal(0, 1, size=(n, 3)), np.zeros((n, 1)), a, b])

    det = KMeansEnsembleDetector(n_clusters=(4, 7), n_dense_features=4, random_state=0)
    det.fit(data(1500))
    assert list(det._dense_columns) == [0, 1, 2]
    X = data(260)  # 42 possible patterns, about 6 rows each
    X[:, 3] = rng.normal(0, 1, size=len(X))
    np.testing.assert_allclose(det._model_distances(X), brute_force_distances(det, X),
                               rtol=1e-4, atol=1e-4)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=40))
def test_pattern_blocks_are_full_row_windows_cut_into_the_runs_they_cross(run_lengths):
    run_starts = np.cumsum(run_lengths)[:-1]
    n_rows = int(np.sum(run_lengths))
    starts = {0, *run_starts.tolist()}
    expected_lo = 0
    for lo, hi, runs in _pattern_blocks(run_starts, n_rows):
        assert lo == expected_lo and hi - lo == min(_BLOCK_ROWS, n_rows - lo)
        assert runs[0][0] == lo and runs[-1][1] == hi
        for (_, b), (c, _) in itertools.pairwise(runs):
            assert b == c and c in starts  # a run boundary inside a block is a pattern change
        assert not any(a < start < b for a, b in runs for start in starts)
        expected_lo = hi
    assert expected_lo == n_rows


def test_distances_do_not_depend_on_how_many_patterns_share_a_block():
    """Rows of many small patterns give blocks with many slot columns; the same rows alone
    (a block with one slot) must score to the same bit."""
    rng = np.random.RandomState(5)

    def data(n):
        a = np.eye(9)[rng.randint(0, 9, size=n)] * 2
        b = np.eye(11)[rng.randint(0, 11, size=n)] * 2
        return np.hstack([rng.normal(0, 1, size=(n, 4)), a, b])

    det = KMeansEnsembleDetector(n_clusters=(6, 10), n_dense_features=4, random_state=0)
    det.fit(data(2000))
    X = data(600)  # up to 99 patterns: blocks of many slots
    whole = det._model_distances(X)
    for row in range(0, 600, 37):
        np.testing.assert_array_equal(det._model_distances(X[row:row + 1]), whole[row:row + 1])


@pytest.fixture(scope="module")
def kdd_test_matrix(kdd_test_path):
    model = load_model(REPO_ROOT / "models")
    return model.detector, model.features.transform(read_records(kdd_test_path).features)


@pytest.mark.slow
@pytest.mark.parametrize("blas_threads", [1, 2])
@pytest.mark.parametrize("size", [1, 17, 129, 3000])
def test_a_record_scores_exactly_the_same_in_any_batch(size, blas_threads, kdd_test_matrix):
    """Chunking and thread splits must not change a score, not even in the last bit (the
    committed model: BLAS changes kernels, and rounding, with the shape of a product)."""
    detector, X = kdd_test_matrix
    rows = np.sort(np.random.RandomState(size).choice(len(X), size=size, replace=False))
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        whole = detector.anomaly_score(X)
        np.testing.assert_array_equal(detector.anomaly_score(X[rows]), whole[rows])
