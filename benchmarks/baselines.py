"""Baseline detectors the benchmark compares our ensemble with (scikit-learn and PyOD).

Every baseline is fitted on normal training rows only and exposes ``anomaly_score`` (higher =
more abnormal), so one threshold rule (utils.thresholds.choose_threshold on the validation
split) and one ROC computation serve all of them. The "reference design" is the simplest
version of this service's detector, kept as a yardstick: 5 K-means on the first 20 KDD
columns with the text columns label-encoded, deciding by the majority vote of its models
rather than by a threshold on the score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from utils.schema import CATEGORICAL_FEATURES, FEATURE_NAMES

# The reference design's hand-picked features: the first 20 KDD columns (basic + content).
REFERENCE_FEATURES: tuple[str, ...] = FEATURE_NAMES[:20]
REFERENCE_N_CLUSTERS: tuple[int, ...] = (2, 3, 4, 5, 6)


class OutlierScorer(BaseEstimator):
    """A scikit-learn outlier estimator seen through ``anomaly_score = -score_samples``.

    ``max_fit_rows`` fits on a random subsample (LOF and One-Class SVM grow quadratically with
    the training rows); ``fit_rows_`` records how many rows the estimator really saw.
    """

    def __init__(self, estimator: BaseEstimator, *, max_fit_rows: int | None = None,
                 random_state: int = 0) -> None:
        self.estimator = estimator
        self.max_fit_rows = max_fit_rows
        self.random_state = random_state

    def fit(self, X: np.ndarray) -> OutlierScorer:
        if self.max_fit_rows is not None and len(X) > self.max_fit_rows:
            rows = np.random.RandomState(self.random_state).choice(
                len(X), self.max_fit_rows, replace=False)
            X = X[np.sort(rows)]
        self.estimator.fit(X)
        self.fit_rows_ = len(X)
        return self

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "fit_rows_")
        return -np.asarray(self.estimator.score_samples(X), dtype=np.float64)


class PyODScorer(OutlierScorer):
    """A PyOD detector: its ``decision_function`` is already higher for more abnormal rows.

    ECOD and COPOD score a batch against the training rows *and the batch itself* (their
    empirical distributions are recomputed on both), so a row's score depends a little on the
    rows scored with it. That is PyOD's behaviour, kept as a user would meet it.
    """

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "fit_rows_")
        return np.asarray(self.estimator.decision_function(X), dtype=np.float64)


class SingleKMeans(BaseEstimator):
    """One K-means model; the score is the distance to the nearest centroid."""

    def __init__(self, n_clusters: int, *, random_state: int = 0) -> None:
        self.n_clusters = n_clusters
        self.random_state = random_state

    def fit(self, X: np.ndarray) -> SingleKMeans:
        self.kmeans_ = KMeans(n_clusters=self.n_clusters, n_init=1,
                              random_state=self.random_state).fit(X)
        self.fit_rows_ = len(X)
        return self

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "kmeans_")
        return self.kmeans_.transform(X).min(axis=1).astype(np.float64)


class ReferenceVoteDetector(BaseEstimator):
    """The reference design (module docstring): a yardstick, not a detector we serve.

    The first 20 KDD columns; protocol_type/service/flag label-encoded with a vocabulary
    learned from training data (a value never seen there gets the next free code, rather than
    re-fitting the encoder on each scored file, which would give one value different codes in
    different files); StandardScaler fitted on the normal rows; one K-means per entry of
    ``n_clusters``. Each model votes "anomaly" when a
    row's distance to its nearest centroid exceeds that model's ``vote_quantile`` of the
    distances of its own (normal) training rows; a strict majority of votes decides.
    ``anomaly_score`` is the mean of the distances divided by those per-model thresholds.
    """

    def __init__(self, n_clusters: Sequence[int] = REFERENCE_N_CLUSTERS, *,
                 vote_quantile: float = 0.95, n_init: int = 10, random_state: int = 0) -> None:
        self.n_clusters = n_clusters
        self.vote_quantile = vote_quantile
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, frame: pd.DataFrame, vocabulary: pd.DataFrame | None = None
            ) -> ReferenceVoteDetector:
        """Fit on normal rows ``frame``; ``vocabulary`` (default ``frame``) gives the codes."""
        source = frame if vocabulary is None else vocabulary
        self.categories_ = {
            name: pd.Index(sorted(source[name].astype(str).unique()))
            for name in CATEGORICAL_FEATURES if name in REFERENCE_FEATURES
        }
        self.scaler_ = StandardScaler().fit(self._encode(frame))
        X = self._prepare(frame)
        self.models_ = [
            KMeans(n_clusters=int(k), n_init=self.n_init, random_state=self.random_state + i)
            .fit(X)
            for i, k in enumerate(self.n_clusters)
        ]
        self.thresholds_ = np.quantile(self._distances(X), self.vote_quantile, axis=0)
        self.thresholds_ = np.maximum(self.thresholds_, 1e-12)
        self.fit_rows_ = len(frame)
        return self

    def votes(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, n_models) booleans: which models call each row anomalous."""
        check_is_fitted(self, "models_")
        return self._distances(self._prepare(frame)) > self.thresholds_

    def predict_anomaly(self, frame: pd.DataFrame) -> np.ndarray:
        return self.votes(frame).sum(axis=1) * 2 > len(self.models_)

    def anomaly_score(self, frame: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "models_")
        return (self._distances(self._prepare(frame)) / self.thresholds_).mean(axis=1)

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), len(REFERENCE_FEATURES)), dtype=np.float64)
        for j, name in enumerate(REFERENCE_FEATURES):
            if name in self.categories_:
                vocabulary = self.categories_[name]
                codes = vocabulary.get_indexer(frame[name].astype(str).to_numpy())
                out[:, j] = np.where(codes < 0, len(vocabulary), codes)
            else:
                out[:, j] = frame[name].to_numpy(dtype=np.float64)
        return out

    def _prepare(self, frame: pd.DataFrame) -> np.ndarray:
        return self.scaler_.transform(self._encode(frame))

    def _distances(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([m.transform(X).min(axis=1) for m in self.models_])
