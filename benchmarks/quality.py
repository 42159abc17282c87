"""Detection quality on KDDTest+ and KDDTest-21: our ensemble against baselines, one protocol.

Every detector learns from the same rows and decides the same way, so differences come from
the method: fitted on the normal rows of the 80% fit split of KDDTrain+ (utils.training's
split, seed 0), threshold chosen on the 20% validation split by the balanced-F1 rule
(utils.thresholds.choose_threshold). KDDTest+ is only ever scored, never used to choose a
threshold, k, feature or seed. The reference design decides by its own majority vote, whose
per-model thresholds come from its training rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pyod.models.copod import COPOD
from pyod.models.ecod import ECOD
from pyod.models.hbos import HBOS
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.neighbors import LocalOutlierFactor
from sklearn.svm import OneClassSVM

from benchmarks.baselines import (
    REFERENCE_FEATURES,
    REFERENCE_N_CLUSTERS,
    OutlierScorer,
    PyODScorer,
    ReferenceVoteDetector,
    SingleKMeans,
)
from utils.metrics import evaluate
from utils.readers import ParsedRecords, read_records
from utils.thresholds import choose_threshold
from utils.training import DEFAULT_N_CLUSTERS, row_categories, split_validation, train

SEED = 0
VALIDATION_FRACTION = 0.2
THRESHOLD_RULE = "balanced-f1"
KDDTEST21_BELOW = 21  # KDDTest-21: the KDDTest+ rows whose difficulty level is below 21
# The range of k the ensemble sets were studied over (docs/MODEL.md), so the comparison is fair
SINGLE_KMEANS_GRID: tuple[int, ...] = (25, 50, 100, 200, 300, 400, 500, 600, 700, 800)
LOF_MAX_FIT_ROWS = 25_000
OCSVM_MAX_FIT_ROWS = 10_000
OCSVM_NU = 0.05
ROC_POINTS = 400

Progress = Callable[[str], None]


@dataclass
class _Data:
    """Train/validation/test rows as the detectors need them."""

    fit_frame: pd.DataFrame  # normal rows of the fit split
    split_frame: pd.DataFrame  # every row of the fit split (the reference design's label codes)
    val_frame: pd.DataFrame
    val_cats: np.ndarray
    test: ParsedRecords
    test21: np.ndarray  # mask of KDDTest-21 rows in test


def run_quality(train_path: Path, test_path: Path, model_version: str | None = None,
                progress: Progress = print) -> dict:
    """Fit ours and every baseline, evaluate on KDDTest+ and KDDTest-21; a JSON-ready dict.

    ``model_version`` (the committed model's) is compared with the freshly trained one.
    """
    started = time.perf_counter()
    progress(f"quality: reading {train_path.name} and training our ensemble (seed {SEED})")
    records = read_records(train_path)
    result = train(records, random_state=SEED, validation_fraction=VALIDATION_FRACTION,
                   threshold_rule=THRESHOLD_RULE, source={"file": train_path.name})
    training_seconds = time.perf_counter() - started
    card = result.card
    data = _prepare(records, read_records(test_path))

    detectors = []
    pipeline = result.pipeline
    transformer, ensemble = pipeline[0], pipeline[-1]
    known = data.val_cats != "Unlabeled"
    test_scores = ensemble.anomaly_score(transformer.transform(data.test.features))
    power = f"{ensemble.weight_power:g}"
    detectors.append(_entry(
        "ours", f"K-means ensemble (k={','.join(map(str, DEFAULT_N_CLUSTERS))}; "
        f"weights ∝ {'k²' if power == '2' else 'k^' + power})",
        "utils.training.train, default settings, seed 0: the K-means models see 80% of the "
        f"fit rows, 20% calibrate the scores; geometric mean (models weighted by k^{power}) "
        "of calibrated nearest-centroid distances", data, card["training_data"]["fit_rows"],
        training_seconds, result.validation_scores[known], float(ensemble.threshold_),
        THRESHOLD_RULE, test_scores, test_scores > ensemble.threshold_))

    X_fit = transformer.transform(data.fit_frame)
    X_val = transformer.transform(data.val_frame)
    X_test = transformer.transform(data.test.features)

    progress(f"quality: single K-means, choosing k from {list(SINGLE_KMEANS_GRID)} by "
             "validation AUROC")
    grid = {}
    fitted = {}
    y_val = data.val_cats != "Normal"
    for k in SINGLE_KMEANS_GRID:
        t0 = time.perf_counter()
        model = SingleKMeans(k, random_state=SEED).fit(X_fit)
        grid[k] = {"validation_auroc": float(roc_auc_score(y_val, model.anomaly_score(X_val))),
                   "fit_seconds": time.perf_counter() - t0}
        fitted[k] = model
        progress(f"quality:   k={k}: validation AUROC {grid[k]['validation_auroc']:.4f}")
    best_k = max(SINGLE_KMEANS_GRID, key=lambda k: (grid[k]["validation_auroc"], -k))

    matrix_baselines = [
        ("isolation_forest", "IsolationForest",
         "sklearn defaults (100 trees), random_state 0, all fit rows",
         OutlierScorer(IsolationForest(random_state=SEED))),
        ("lof", "LocalOutlierFactor (novelty)",
         f"n_neighbors 20, fitted on a random subsample of {LOF_MAX_FIT_ROWS:,} fit rows",
         OutlierScorer(LocalOutlierFactor(novelty=True), max_fit_rows=LOF_MAX_FIT_ROWS,
                       random_state=SEED)),
        ("ocsvm", "OneClassSVM",
         f"RBF kernel, gamma 'scale', nu {OCSVM_NU}, fitted on a random subsample of "
         f"{OCSVM_MAX_FIT_ROWS:,} fit rows",
         OutlierScorer(OneClassSVM(nu=OCSVM_NU), max_fit_rows=OCSVM_MAX_FIT_ROWS,
                       random_state=SEED)),
        ("ecod", "ECOD (PyOD)", "pyod.models.ecod.ECOD defaults, all fit rows; scores a "
         "batch against the fit rows and the batch itself (PyOD's behaviour)",
         PyODScorer(ECOD())),
        ("copod", "COPOD (PyOD)", "pyod.models.copod.COPOD defaults, all fit rows; scores a "
         "batch against the fit rows and the batch itself (PyOD's behaviour)",
         PyODScorer(COPOD())),
        ("hbos", "HBOS (PyOD)", "pyod.models.hbos.HBOS defaults (10 bins per feature), all "
         "fit rows", PyODScorer(HBOS())),
        ("single_kmeans", f"single K-means (k={best_k})",
         f"k chosen from {list(SINGLE_KMEANS_GRID)} by validation AUROC; n_init 1, seed 0; "
         "distance to the nearest centroid",
         fitted[best_k]),
    ]
    for key, label, description, model in matrix_baselines:
        progress(f"quality: {label}")
        if key == "single_kmeans":  # fitted during the k search
            fit_seconds = grid[best_k]["fit_seconds"]
        else:
            t0 = time.perf_counter()
            model.fit(X_fit)
            fit_seconds = time.perf_counter() - t0
        val_scores = model.anomaly_score(X_val)
        threshold = choose_threshold(val_scores[known], data.val_cats[known], THRESHOLD_RULE)
        scores = model.anomaly_score(X_test)
        detectors.append(_entry(key, label, description, data, model.fit_rows_, fit_seconds,
                                val_scores[known], threshold, THRESHOLD_RULE, scores,
                                scores > threshold))

    for key, ks, n_init in (("reference", REFERENCE_N_CLUSTERS, 10),
                            ("reference_our_k", DEFAULT_N_CLUSTERS, 1)):
        label = f"reference design (k={','.join(map(str, ks))})"
        progress(f"quality: {label}")
        t0 = time.perf_counter()
        model = ReferenceVoteDetector(ks, n_init=n_init, random_state=SEED).fit(
            data.fit_frame, vocabulary=data.split_frame)
        fit_seconds = time.perf_counter() - t0
        val_scores = model.anomaly_score(data.val_frame)
        scores = model.anomaly_score(data.test.features)
        description = (
            f"re-implementation from the design's description: the first "
            f"{len(REFERENCE_FEATURES)} KDD columns; protocol_type/service/flag label-encoded "
            "with codes learned from the fit split's rows (a value unseen there gets the next "
            "free code); StandardScaler and "
            f"{len(ks)} K-means (n_init {n_init}) fitted on the normal fit rows; each model "
            "votes anomaly when the distance to its nearest centroid exceeds the 95th "
            "percentile of its training rows' distances; 3 of 5 votes flag a row. AUROC uses "
            "the mean over models of distance / that model's 95th percentile")
        detectors.append(_entry(key, label, description, data, model.fit_rows_, fit_seconds,
                                val_scores[known], None, "majority vote (3 of 5)", scores,
                                model.predict_anomaly(data.test.features)))

    return {
        "protocol": {
            "train_file": train_path.name, "test_file": test_path.name,
            "validation_fraction": VALIDATION_FRACTION, "split_seed": SEED,
            "threshold_rule": THRESHOLD_RULE, "fit_rows_normal": len(data.fit_frame),
            "validation_rows": int(known.sum()), "test_rows": len(data.test),
            "kddtest21_rows": int(data.test21.sum()),
            "kddtest21_definition": f"KDDTest+ rows with difficulty < {KDDTEST21_BELOW}",
        },
        "training": {
            "seconds": training_seconds, "model_version": card["model_version"],
            "committed_model_version": model_version,
            "same_as_committed": (model_version is not None and model_version.split("-")[-1]
                                  == card["model_version"].split("-")[-1]),
            "threshold": card["threshold"],
        },
        "single_kmeans_grid": {"grid": {str(k): v for k, v in grid.items()},
                               "chosen_k": best_k, "criterion": "validation AUROC"},
        "detectors": detectors,
    }


def _prepare(records: ParsedRecords, test: ParsedRecords) -> _Data:
    """The same split utils.training.train makes (same function, fraction and seed)."""
    cats = row_categories(records)
    val_mask = split_validation(cats, VALIDATION_FRACTION, SEED)
    fit_mask = ~val_mask & np.isin(cats, ["Normal", "Unlabeled"])
    if test.difficulty is None:
        raise ValueError("the test file has no difficulty column; KDDTest-21 needs it")
    return _Data(
        fit_frame=records.features[fit_mask], split_frame=records.features[~val_mask],
        val_frame=records.features[val_mask], val_cats=cats[val_mask], test=test,
        test21=(test.difficulty < KDDTEST21_BELOW).to_numpy())


def _entry(key: str, label: str, description: str, data: _Data, fit_rows: int,
           fit_seconds: float, val_scores: np.ndarray, threshold: float | None, rule: str,
           scores: np.ndarray, flagged: np.ndarray) -> dict:
    known = data.val_cats != "Unlabeled"
    labels = data.test.labels
    y_test = (labels.astype(str) != "normal").to_numpy()
    return {
        "key": key, "label": label, "description": description, "fit_rows": int(fit_rows),
        "fit_seconds": float(fit_seconds), "threshold": threshold, "threshold_rule": rule,
        "validation_auroc": float(roc_auc_score(data.val_cats[known] != "Normal", val_scores)),
        "kddtest_plus": evaluate(labels, flagged, scores),
        "kddtest_21": evaluate(labels[data.test21], np.asarray(flagged)[data.test21],
                               np.asarray(scores)[data.test21]),
        "roc_kddtest_plus": thin_roc(y_test, scores),
    }


def thin_roc(y: np.ndarray, scores: np.ndarray, points: int = ROC_POINTS) -> dict:
    """The ROC curve at a fixed set of false-positive rates (linear and log-spaced).

    At each rate the true-positive rate is the curve's highest point at or below it, so the
    thinned curve is exact at its points and small enough for the JSON file.
    """
    fpr, tpr, _ = roc_curve(y, scores)
    grid = np.unique(np.concatenate([np.linspace(0.0, 1.0, points // 2),
                                     np.geomspace(1e-4, 1.0, points // 2)]))
    idx = np.searchsorted(fpr, grid, side="right") - 1
    return {"fpr": [round(float(v), 6) for v in grid],
            "tpr": [round(float(v), 6) for v in tpr[np.maximum(idx, 0)]]}
