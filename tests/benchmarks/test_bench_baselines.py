"""The benchmark's baseline detectors on small generated data (fast; no NSL-KDD needed)."""

import numpy as np
import pandas as pd
import pytest
from pyod.models.copod import COPOD
from pyod.models.ecod import ECOD
from pyod.models.hbos import HBOS
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from benchmarks.baselines import (
    REFERENCE_FEATURES,
    OutlierScorer,
    PyODScorer,
    ReferenceVoteDetector,
    SingleKMeans,
)
from utils.schema import CATEGORICAL_FEATURES, FEATURE_NAMES


def kdd_frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Rows with the 41 KDD columns: a few numeric blobs, categoricals from small vocabularies."""
    rng = np.random.RandomState(seed)
    centers = np.random.RandomState(0).uniform(0, 10, size=(4, len(FEATURE_NAMES)))
    values = centers[rng.randint(0, 4, n)] + rng.normal(0, 0.3, (n, len(FEATURE_NAMES))) + shift
    frame = pd.DataFrame(np.abs(values), columns=list(FEATURE_NAMES))
    vocab = {"protocol_type": ["tcp", "udp"], "service": ["http", "smtp", "domain_u"],
             "flag": ["SF", "S0"]}
    for name in CATEGORICAL_FEATURES:
        frame[name] = np.array(vocab[name], dtype=object)[rng.randint(0, len(vocab[name]), n)]
    return frame


@pytest.fixture(scope="module")
def reference() -> ReferenceVoteDetector:
    return ReferenceVoteDetector(n_init=2).fit(kdd_frame(800, seed=1))


def test_reference_uses_the_first_20_columns_only(reference):
    assert FEATURE_NAMES[:20] == REFERENCE_FEATURES
    rows = kdd_frame(50, seed=2)
    changed = rows.copy()
    changed[list(FEATURE_NAMES[20:])] = 1e6  # columns the design does not read
    np.testing.assert_array_equal(reference.anomaly_score(rows), reference.anomaly_score(changed))


def test_reference_decides_by_strict_majority_of_votes(reference):
    rows = pd.concat([kdd_frame(300, seed=3), kdd_frame(30, seed=4, shift=25.0)])
    votes = reference.votes(rows)
    assert votes.shape == (330, 5)
    np.testing.assert_array_equal(reference.predict_anomaly(rows), votes.sum(axis=1) >= 3)


def test_reference_vote_thresholds_are_training_quantiles(reference):
    train = kdd_frame(800, seed=1)
    share = reference.votes(train).mean(axis=0)  # each model flags ~5% of its training rows
    assert np.all(share <= 0.06) and np.all(share >= 0.03)


def test_reference_separates_generated_outliers(reference):
    rows = pd.concat([kdd_frame(300, seed=5), kdd_frame(30, seed=6, shift=25.0)])
    y = np.r_[np.zeros(300), np.ones(30)]
    assert roc_auc_score(y, reference.anomaly_score(rows)) >= 0.95
    flagged = reference.predict_anomaly(rows)
    assert flagged[300:].all() and flagged[:300].mean() < 0.1


def test_reference_gives_an_unseen_category_the_next_free_code(reference):
    rows = kdd_frame(5, seed=7)
    rows["service"] = "never_seen"
    encoded = reference._encode(rows)
    column = REFERENCE_FEATURES.index("service")
    assert (encoded[:, column] == len(reference.categories_["service"])).all()
    assert np.isfinite(reference.anomaly_score(rows)).all()


def test_outlier_scorer_subsamples_and_flips_the_sign():
    X = np.random.RandomState(0).normal(size=(500, 3))
    scorer = OutlierScorer(IsolationForest(random_state=0), max_fit_rows=200).fit(X)
    assert scorer.fit_rows_ == 200
    outliers = np.full((5, 3), 8.0)
    np.testing.assert_allclose(scorer.anomaly_score(outliers),
                               -scorer.estimator.score_samples(outliers))
    assert scorer.anomaly_score(outliers).min() > np.median(scorer.anomaly_score(X))


def test_single_kmeans_scores_the_nearest_centroid_distance():
    X = np.random.RandomState(1).normal(size=(300, 4))
    model = SingleKMeans(5).fit(X)
    centers = model.kmeans_.cluster_centers_
    expected = np.sqrt(((X[:, None, :] - centers[None]) ** 2).sum(axis=2)).min(axis=1)
    np.testing.assert_allclose(model.anomaly_score(X), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("make", [ECOD, COPOD, HBOS], ids=["ECOD", "COPOD", "HBOS"])
def test_pyod_scorer_keeps_pyods_sign_higher_is_more_abnormal(make):
    X = np.random.RandomState(2).normal(size=(400, 4))
    scorer = PyODScorer(make()).fit(X)
    assert scorer.fit_rows_ == 400
    rows = np.vstack([np.random.RandomState(3).normal(size=(50, 4)), np.full((5, 4), 8.0)])
    scores = scorer.anomaly_score(rows)
    np.testing.assert_allclose(scores, scorer.estimator.decision_function(rows))
    assert scores[-5:].min() > scores[:50].max()
