"""Training a model from labeled (or unlabeled) records; shared by the scripts and retraining.

Protocol, chosen so that no test data ever decides anything:
1. the training file is split into a fit part and a validation part (stratified by attack
   category, ``validation_fraction``, fixed seed recorded in the card);
2. the detector is fitted on the *normal* rows of the fit part (rows with unknown labels count
   as normal traffic: that is what unlabeled own-network captures are; attack rows never);
3. the threshold is chosen on the validation part by a rule of ``utils.thresholds``;
4. validation metrics are recorded in the model card.
Without labeled attacks (e.g. a Zeek capture of your own traffic) step 3 falls back to a
quantile of held-out normal scores (``UNLABELED_THRESHOLD_QUANTILE``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from utils.detector import DEFAULT_N_CLUSTERS, KMeansEnsembleDetector
from utils.features import KDDFeatureTransformer
from utils.metrics import categories, evaluate
from utils.model_store import library_versions, new_version, utc_now
from utils.readers import ParsedRecords
from utils.schema import FEATURE_NAMES, NUMERIC_FEATURES
from utils.thresholds import choose_threshold

# Without labeled attacks there is nothing to choose a threshold on, so a false-alarm budget
# decides: 1% of held-out normal rows flagged. Every trained model records it (the committed
# model too), though with labeled attacks the threshold rule replaces the threshold it gives.
UNLABELED_THRESHOLD_QUANTILE = 0.99


@dataclass
class TrainingResult:
    pipeline: Pipeline
    card: dict
    validation_scores: np.ndarray | None
    validation_categories: np.ndarray | None


def build_pipeline(n_clusters: Sequence[int] = DEFAULT_N_CLUSTERS, random_state: int = 0,
                   threshold_quantile: float = UNLABELED_THRESHOLD_QUANTILE) -> Pipeline:
    return Pipeline([
        ("features", KDDFeatureTransformer()),
        ("detector", KMeansEnsembleDetector(n_clusters=tuple(n_clusters),
                                            threshold_quantile=threshold_quantile,
                                            n_dense_features=len(NUMERIC_FEATURES),
                                            random_state=random_state)),
    ])


def row_categories(records: ParsedRecords) -> np.ndarray:
    """Per row "Normal", an attack category, or "Unlabeled" (no label column / unknown)."""
    if records.labels is None:
        return np.full(len(records), "Unlabeled", dtype=object)
    known = records.labels.notna().to_numpy()
    out = np.full(len(records), "Unlabeled", dtype=object)
    out[known] = categories(records.labels[known])
    return out


def split_validation(cats: np.ndarray, fraction: float, random_state: int) -> np.ndarray:
    """Boolean mask of validation rows, stratified by category (same seed, same split)."""
    rng = np.random.RandomState(random_state)
    mask = np.zeros(len(cats), dtype=bool)
    for name in sorted(set(cats.tolist())):
        rows = np.flatnonzero(cats == name)
        take = round(len(rows) * fraction)
        mask[rng.permutation(rows)[:take]] = True
    return mask


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def train(
    records: ParsedRecords,
    *,
    n_clusters: Sequence[int] = DEFAULT_N_CLUSTERS,
    random_state: int = 0,
    validation_fraction: float = 0.2,
    threshold_rule: str = "balanced-f1",
    target_fpr: float | None = None,
    source: dict | None = None,
    extra_normal: pd.DataFrame | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> TrainingResult:
    """Fit a pipeline on ``records`` per the protocol above and describe it in a model card.

    ``extra_normal`` adds trusted normal rows to the fit set only (retraining uses it for
    upload rows), never to validation.
    """
    cats = row_categories(records)
    has_attacks = bool(np.any((cats != "Normal") & (cats != "Unlabeled")))
    if has_attacks:
        val_mask = split_validation(cats, validation_fraction, random_state)
    else:
        val_mask = np.zeros(len(cats), dtype=bool)
    fit_mask = ~val_mask & np.isin(cats, ["Normal", "Unlabeled"])
    fit_features = records.features[fit_mask]
    if extra_normal is not None and len(extra_normal):
        fit_features = pd.concat([fit_features, extra_normal[list(FEATURE_NAMES)]],
                                 ignore_index=True)
    progress(f"fitting {len(n_clusters)} K-means models (k={list(n_clusters)}) "
             f"on {len(fit_features):,} normal rows")
    pipeline = build_pipeline(n_clusters, random_state)
    pipeline.fit(fit_features)
    detector = pipeline[-1]
    val_scores = val_cats = None
    metrics = None
    rule = "calibration-quantile"
    if has_attacks:
        val_features = records.features[val_mask]
        val_cats = cats[val_mask]
        known = val_cats != "Unlabeled"
        val_scores = detector.anomaly_score(pipeline[0].transform(val_features))
        progress(f"choosing the threshold on {int(known.sum()):,} validation rows "
                 f"(rule {threshold_rule})")
        detector.set_threshold(choose_threshold(val_scores[known], val_cats[known],
                                                threshold_rule, target_fpr))
        rule = threshold_rule
        metrics = evaluate(records.labels[val_mask], val_scores > detector.threshold_,
                           val_scores)
    training_data = {
        **(source or {}),
        "rows": len(records),
        "normal_rows": int(np.sum(cats == "Normal")),
        "unlabeled_rows": int(np.sum(cats == "Unlabeled")),
        "fit_rows": len(fit_features),
        "calibration_rows": len(detector.calibration_scores_),
        "validation_rows": int(val_mask.sum()),
        "validation_fraction": validation_fraction if has_attacks else 0.0,
        "split_random_state": random_state,
    }
    card = model_card(pipeline, input_kind=records.input_kind, n_clusters=n_clusters,
                      random_state=random_state, threshold_rule=rule, target_fpr=target_fpr,
                      training_data=training_data, validation_metrics=metrics)
    return TrainingResult(pipeline, card, val_scores, val_cats)


def model_card(pipeline: Pipeline, *, input_kind: str, n_clusters: Sequence[int],
               random_state: int, threshold_rule: str, target_fpr: float | None,
               training_data: dict, validation_metrics: dict | None) -> dict:
    """The model card of a fitted pipeline whose threshold is set: its version (creation
    time and a digest of the fitted centroids and weights), what it is, and how it was
    trained (``training_data``, ``validation_metrics``)."""
    detector = pipeline[-1]
    created = utc_now()
    digest = hashlib.sha256(np.concatenate(
        [e.cluster_centers_.ravel() for e in detector.estimators_]
        + [detector.model_weights_]).tobytes()).hexdigest()
    return {
        "model_version": new_version(created, digest),
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "input_kind": input_kind,
        "n_models": len(detector.estimators_),
        "k_values": [int(k) for k in n_clusters],
        "model_weights": [float(w) for w in detector.model_weights_],
        "random_state": random_state,
        "threshold": detector.threshold_,
        "threshold_rule": threshold_rule,
        "target_fpr": target_fpr,
        "severity_edges": [float(e) for e in detector.severity_edges()],
        "feature_names": list(FEATURE_NAMES),
        "training_data": training_data,
        "validation_metrics": validation_metrics,
        "library_versions": library_versions(),
    }


def validation_mask(records: ParsedRecords, card: dict, file_sha256: str) -> np.ndarray:
    """Rows of ``records`` that the model described by ``card`` never trained on.

    For the model's own training file this is the recorded validation split; any other
    labeled file was unseen as a whole. Rows with unknown labels are left out.
    """
    if records.labels is None:
        raise ValueError("choosing a threshold needs a labeled file")
    data = card.get("training_data", {})
    cats = row_categories(records)
    if data.get("sha256") == file_sha256:
        mask = split_validation(cats, data["validation_fraction"], data["split_random_state"])
    else:
        mask = np.ones(len(records), dtype=bool)
    return mask & (cats != "Unlabeled")
