"""The anomaly detector: an ensemble of K-means models fitted on normal traffic.

A record's anomaly score is how far it lies from the normal traffic each model learned: per
model, the distance to its nearest centroid divided by that model's median distance on
held-out normal records (so models with different k speak the same unit), combined over the
models by a geometric mean in which finer models weigh more (weights proportional to
k ** weight_power). Higher is more abnormal; ``threshold_`` separates the two.

Confidence and severity are read against the scores of held-out normal records
(``calibration_scores_``), never against the record's own file. Definitions: docs/MODEL.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.cluster import KMeans
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from utils.schema import SEVERITIES as SEVERITY_LEVELS  # the names of the levels, in order

# The default k set and combination, chosen on KDDTrain+ validation splits (docs/MODEL.md).
DEFAULT_N_CLUSTERS: tuple[int, ...] = (400, 450, 500, 550, 600)
DEFAULT_WEIGHT_POWER = 2.0
# The estimator's own threshold before anything moves it: flags 5% of held-out normal rows.
# Trained models use utils.training.UNLABELED_THRESHOLD_QUANTILE instead (and then only when
# the training data has no labeled attacks to choose a threshold on).
DEFAULT_THRESHOLD_QUANTILE = 0.95
_EPS = 1e-12
_BLOCK_ROWS = 128


class KMeansEnsembleDetector(OutlierMixin, BaseEstimator):
    """Outlier detector over an ensemble of ``KMeans`` models (one per entry of ``n_clusters``).

    ``n_dense_features`` is a layout hint, not a model choice: when the columns from that index
    on are one-hot blocks (as ``KDDFeatureTransformer`` writes them), rows sharing a one-hot
    pattern share that part of every centroid product, which scoring then computes once per
    pattern (about 3x less arithmetic; same distances).

    Follows scikit-learn's outlier contract (like ``IsolationForest``): ``score_samples`` is
    lower for more abnormal records, ``decision_function = score_samples - offset_`` is
    negative for anomalies, and ``predict`` returns 1 (normal) or -1 (anomaly).
    """

    def __init__(
        self,
        n_clusters: Sequence[int] = DEFAULT_N_CLUSTERS,
        *,
        calibration_fraction: float = 0.2,
        threshold_quantile: float = DEFAULT_THRESHOLD_QUANTILE,
        max_iter: int = 300,
        weight_power: float = DEFAULT_WEIGHT_POWER,
        n_dense_features: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.weight_power = weight_power
        self.n_dense_features = n_dense_features
        self.calibration_fraction = calibration_fraction
        self.threshold_quantile = threshold_quantile
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: object = None) -> KMeansEnsembleDetector:
        """Fit on normal records only; a share of them is held out to calibrate the scores."""
        X = validate_data(self, X, dtype=[np.float32, np.float64])
        if not 0.0 < self.calibration_fraction < 1.0:
            raise ValueError(
                f"calibration_fraction must be in (0, 1), got {self.calibration_fraction}")
        ks = [int(self.n_clusters)] if np.isscalar(self.n_clusters) else [
            int(k) for k in self.n_clusters]
        rng = check_random_state(self.random_state)
        order = rng.permutation(len(X))
        n_cal = max(1, round(len(X) * self.calibration_fraction))
        if len(X) - n_cal < max(ks):
            raise ValueError(
                f"need more than {max(ks) + n_cal} normal records to fit k={max(ks)}, "
                f"got n_samples={len(X)}"
            )
        fit_rows, cal_rows = X[order[n_cal:]], X[order[:n_cal]]
        seeds = rng.randint(np.iinfo(np.int32).max, size=len(ks))
        self.estimators_ = [
            KMeans(n_clusters=k, n_init=1, max_iter=self.max_iter, random_state=int(seed)).fit(
                fit_rows
            )
            for k, seed in zip(ks, seeds, strict=True)
        ]
        for estimator in self.estimators_:
            estimator.labels_ = None  # per-row training labels: not needed, and they bloat the file
        self._prepare_fast_distances()
        cal_distances = self._model_distances(cal_rows)
        self.n_iter_ = max(int(e.n_iter_) for e in self.estimators_)
        weights = np.asarray(ks, dtype=np.float64) ** self.weight_power
        self.model_weights_ = weights / weights.sum()
        self.scales_ = np.maximum(np.median(cal_distances, axis=0), _EPS)
        self.calibration_scores_ = np.sort(self._combine(cal_distances))
        self.set_threshold(float(np.quantile(self.calibration_scores_, self.threshold_quantile)))
        return self

    def set_threshold(self, threshold: float) -> KMeansEnsembleDetector:
        """Move the decision threshold (``optimize_threshold.py`` chooses it on training data)."""
        self.threshold_ = float(threshold)
        self.offset_ = -self.threshold_
        return self

    # --- outlier contract -------------------------------------------------------------------
    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        """Higher = more abnormal; 1.0 is as far as a median held-out normal record."""
        return self._combine(self._model_distances(self._validate(X)))

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return -self.anomaly_score(X)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.score_samples(X) - self.offset_

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.where(self.anomaly_score(X) > self.threshold_, -1, 1)

    # --- per-record detail ------------------------------------------------------------------
    def analyse(self, X: np.ndarray, *, check_input: bool = True) -> dict[str, np.ndarray]:
        """Score, per-model votes, confidence and severity in one pass over the distances.

        ``check_input=False`` skips scikit-learn's input validation (as in its trees'
        ``predict``): for a float matrix of the fitted width that the caller built itself,
        such as KDDFeatureTransformer's output. It saves about 0.5 ms per call, and about
        5 ms on the first call of a process (scikit-learn then looks for dataframe plugins).
        """
        if check_input:
            X = self._validate(X)
        else:
            check_is_fitted(self, "estimators_")
            if X.ndim != 2 or X.shape[1] != self.n_features_in_ or X.dtype.kind != "f":
                raise ValueError(f"expected a float matrix of {self.n_features_in_} columns")
        distances = self._model_distances(X)
        scores = self._combine(distances)
        return {
            "anomaly_score": scores,
            "is_anomaly": scores > self.threshold_,
            "votes": (distances / self.scales_) > self.threshold_,
            "confidence": self.confidence(scores),
            "severity": self.severity(scores),
        }

    def tail_probability(self, scores: np.ndarray) -> np.ndarray:
        """Share of held-out normal records scoring at least this high (a conformal p-value)."""
        check_is_fitted(self, "calibration_scores_")
        cal = self.calibration_scores_
        at_least = len(cal) - np.searchsorted(cal, scores, side="left")
        return (1.0 + at_least) / (1.0 + len(cal))

    def confidence(self, scores: np.ndarray) -> np.ndarray:
        """How sure the call is, in [0, 1] (definition in docs/MODEL.md).

        Anomaly: 1 - p(s) / p(t), the share of the threshold's false-alarm rate that this score
        rules out. Normal: rises linearly from 0 at the threshold to 1 for a record at least as
        typical as the median held-out normal record.
        """
        scores = np.asarray(scores, dtype=np.float64)
        p = self.tail_probability(scores)
        p_t = float(self.tail_probability(np.array([self.threshold_]))[0])
        anomalous = scores > self.threshold_
        conf_anomaly = 1.0 - p / p_t
        span = max(0.5 - p_t, _EPS)
        conf_normal = (p - p_t) / span
        return np.clip(np.where(anomalous, conf_anomaly, conf_normal), 0.0, 1.0)

    def severity_edges(self) -> np.ndarray:
        """Score edges Low|Medium, Medium|High, High|Critical (see docs/MODEL.md)."""
        check_is_fitted(self, "calibration_scores_")
        cal = self.calibration_scores_
        edges = np.array([np.quantile(cal, 0.99), np.quantile(cal, 0.999), cal[-1]])
        return np.maximum(edges, self.threshold_)

    def severity(self, scores: np.ndarray) -> np.ndarray:
        """Normal below the threshold; then Low (as rare as the top 1% of held-out normal
        traffic), Medium (top 1%..0.1%), High (rarer than 0.1%), Critical (beyond every
        held-out normal record)."""
        scores = np.asarray(scores, dtype=np.float64)
        level = np.where(scores > self.threshold_, 1 + np.searchsorted(
            self.severity_edges(), scores, side="left"), 0)
        return np.asarray(SEVERITY_LEVELS, dtype=object)[level]

    def nearest_centroids(self, X: np.ndarray, model: int = -1, *,
                          check_input: bool = True) -> np.ndarray:
        """Nearest centroid of one model (default: the finest) for each row, for explanations.

        ``check_input=False``: as in ``analyse``.
        """
        X = (self._validate(X) if check_input else X).astype(np.float64)
        centers, minus_2ct, center_sq = self._centers64(model)
        # argmin of |c|^2 - 2 x.c is the nearest centroid; a plain product is ~50x faster
        # here than sklearn's generic pairwise_distances_argmin on small batches
        products = X @ minus_2ct  # -2 is exact: the same values as -2 * (X @ c.T)
        products += center_sq
        return centers[np.argmin(products, axis=1)]

    def _centers64(self, model: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One model's centroids in float64, -2 c.T and |c|^2 (kept after first use)."""
        cache = self.__dict__.setdefault("_centers64_cache", {})
        found = cache.get(model)
        if found is None:
            centers = self.estimators_[model].cluster_centers_.astype(np.float64)
            found = cache[model] = (centers, np.ascontiguousarray(-2.0 * centers.T),
                                    (centers**2).sum(axis=1))
        return found

    # --- internals --------------------------------------------------------------------------
    def _validate(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        return validate_data(self, X, dtype=[np.float32, np.float64], reset=False)

    def _prepare_fast_distances(self) -> None:
        # All centroids stacked: one matrix product scores every model at once. The weights
        # hold -2c (exact: a power of two), so x @ w + |c|^2 is |x - c|^2 - |x|^2 directly.
        centers = np.vstack([e.cluster_centers_ for e in self.estimators_]).astype(np.float32)
        split = self.n_dense_features if self.n_dense_features is not None else centers.shape[1]
        # a dense column that is 0 in every centroid adds exactly 0 to every product: skip it
        self._dense_columns = np.flatnonzero(np.any(centers[:, :split] != 0, axis=0))
        self._dense_w = np.ascontiguousarray(-2.0 * centers[:, self._dense_columns].T)
        self._pattern_w = np.ascontiguousarray(-2.0 * centers[:, split:].T)
        self._center_sq = (centers.astype(np.float64) ** 2).sum(axis=1).astype(np.float32)
        bounds = np.cumsum([0] + [len(e.cluster_centers_) for e in self.estimators_])
        self._segment_starts = bounds[:-1]
        self._pattern_keys = np.random.RandomState(0).standard_normal(
            self._pattern_w.shape[0]).astype(np.float32)

    def _model_distances(self, X: np.ndarray) -> np.ndarray:
        """Euclidean distance to the nearest centroid of each model, shape (n, n_models).

        Rows sharing a one-hot pattern share that part of every centroid product (with |c|^2):
        it is computed once per pattern as a bias row. Rows are sorted by pattern and taken
        _BLOCK_ROWS at a time; each pattern in a block gets a slot column, each row a 1 in its
        pattern's slot, and the weights that block's bias rows, so one product adds the dense
        part and the bias (no separate pass over the block). A block costs in proportion to
        its columns, dense plus slots: about 11% less than blocks capped at 4 patterns on
        KDDTest+, half for 1,000 rows of many small patterns.

        Every product has _BLOCK_ROWS rows (the last block padded): BLAS picks its kernel by
        shape, and a row's float32 result would otherwise depend on which rows share its
        batch (measured on OpenBLAS: blocks of 2-30 rows round differently). The number of
        slot columns does not change a row's result (checked to the bit for 1 to 128 slots
        and every slot position: the other slots add exact zeros), so a record scores the
        same in any file, chunk or thread split.
        """
        X = np.asarray(X, dtype=np.float32)
        split = X.shape[1] - len(self._pattern_w)
        width = len(self._dense_w)
        patterns, inverse = _one_hot_patterns(X[:, split:], self._pattern_keys)
        bias = np.vstack([product for _, _, product in _block_products(patterns, self._pattern_w)])
        bias += self._center_sq
        order = np.argsort(inverse, kind="stable")
        pattern_of = inverse[order]
        dense = np.take(np.take(X, self._dense_columns, axis=1), order, axis=0)
        run_starts = np.flatnonzero(np.diff(pattern_of)) + 1
        blocks = list(_pattern_blocks(run_starts, len(X)))
        most_slots = max(len(runs) for _, _, runs in blocks)
        block = np.zeros((_BLOCK_ROWS, width + most_slots), dtype=np.float32)
        weights = np.zeros((width + most_slots, bias.shape[1]), dtype=np.float32)
        weights[:width] = self._dense_w
        product = np.empty((_BLOCK_ROWS, bias.shape[1]), dtype=np.float32)  # reused: 1.3 MB
        nearest = np.empty((len(X), len(self._segment_starts)), dtype=np.float64)
        for lo, hi, runs in blocks:
            columns = width + len(runs)
            a = block[:, :columns] if columns == block.shape[1] else np.zeros(
                (_BLOCK_ROWS, columns), dtype=np.float32)
            a[: hi - lo, :width] = dense[lo:hi]
            a[hi - lo:, :width] = 0.0
            a[:, width:] = 0.0
            for slot, (start, stop) in enumerate(runs):
                a[start - lo:stop - lo, width + slot] = 1.0
                weights[width + slot] = bias[pattern_of[start]]
            np.matmul(a, weights[:columns], out=product)
            nearest[lo:hi] = np.minimum.reduceat(product[: hi - lo], self._segment_starts, axis=1)
        out = np.empty_like(nearest)
        out[order] = nearest
        out += np.einsum("ij,ij->i", X, X, dtype=np.float64)[:, None]
        return np.sqrt(np.maximum(out, 0.0))

    def _combine(self, distances: np.ndarray) -> np.ndarray:
        # a weighted sum, model by model: a BLAS product here would round a row differently
        # depending on how many rows share the call (seen: 1 row vs 22,544 differ in the last bit)
        logs = np.log(distances / self.scales_ + _EPS)
        total = logs[:, 0] * self.model_weights_[0]
        for j in range(1, logs.shape[1]):
            total += logs[:, j] * self.model_weights_[j]
        return np.exp(total)

    _CACHES = ("_dense_columns", "_dense_w", "_pattern_w", "_center_sq", "_segment_starts",
               "_pattern_keys", "_centers64_cache")

    def __getstate__(self) -> dict:
        # derived from estimators_ on load: keeps the model file small
        state = super().__getstate__()
        return {k: v for k, v in state.items() if k not in self._CACHES}

    def __setstate__(self, state: dict) -> None:
        if "estimators_" in state and "model_weights_" not in state:
            # written before weights existed: the plain geometric mean it was calibrated with
            state = {**state, "weight_power": 0.0,
                     "model_weights_": np.full(len(state["estimators_"]),
                                               1.0 / len(state["estimators_"]))}
        super().__setstate__(state)
        if "estimators_" in state and "_dense_w" not in state:
            self._prepare_fast_distances()


def _one_hot_patterns(tail: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of ``tail`` and each row's index among them.

    A random projection, hashed, finds them in one pass (KDDTest+ has 99 one-hot patterns in
    22,544 rows); if it ever merged two different rows, the exact (slower) row sort decides.
    """
    codes, uniques = pd.factorize(tail @ keys)
    first = np.empty(len(uniques), dtype=np.intp)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    patterns = tail[first]
    if np.array_equal(patterns[codes], tail):
        return patterns, codes
    patterns, inverse = np.unique(tail, axis=0, return_inverse=True)
    return patterns, inverse.reshape(-1)


def _pattern_blocks(
    run_starts: np.ndarray, n_rows: int
) -> Iterator[tuple[int, int, list[tuple[int, int]]]]:
    """Consecutive blocks (lo, hi, runs) of _BLOCK_ROWS rows (the last may be shorter) over
    rows sorted by pattern; ``runs`` are the (start, stop) of the block's parts of the runs
    (a run: rows of one pattern, starting at 0 or at an entry of ``run_starts``)."""
    ends = [*run_starts.tolist(), n_rows]  # where each run stops
    first = 0  # ends[first] is the end of the run holding row lo
    for lo in range(0, n_rows, _BLOCK_ROWS):
        hi = min(lo + _BLOCK_ROWS, n_rows)
        while ends[first] <= lo:
            first += 1
        runs = []
        start, j = lo, first
        while start < hi:
            runs.append((start, min(ends[j], hi)))
            start, j = runs[-1][1], j + 1
        yield lo, hi, runs


def _block_products(A: np.ndarray, W: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
    """``A[lo:hi] @ W`` block by block, every product computed with exactly _BLOCK_ROWS rows."""
    A = np.ascontiguousarray(A)
    padded = np.zeros((_BLOCK_ROWS, A.shape[1]), dtype=A.dtype)
    for lo in range(0, len(A), _BLOCK_ROWS):
        hi = min(lo + _BLOCK_ROWS, len(A))
        if hi - lo == _BLOCK_ROWS:
            yield lo, hi, A[lo:hi] @ W
        else:
            padded[: hi - lo] = A[lo:hi]
            yield lo, hi, (padded @ W)[: hi - lo]
