"""Measuring a model on the gate's rows, and the gate itself: a candidate is promoted unless
its balanced F1 or AUROC is lower by more than ``tolerance`` (0.005 = half a percentage point)
or its detection rate of any attack category (DoS, Probe, R2L, U2R) is lower by more than
``category_tolerance`` (0.02)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from utils.metrics import categories, evaluate
from utils.retraining.selection import SCORE_CHUNK
from utils.retraining.settings import DEFAULT_CATEGORY_TOLERANCE, DEFAULT_TOLERANCE
from utils.schema import ATTACK_CATEGORY_ORDER
from utils.thresholds import balanced_f1

GATE_CATEGORIES = tuple(c for c in ATTACK_CATEGORY_ORDER if c != "Unknown")


def pipeline_scores(pipeline: Pipeline, features: pd.DataFrame) -> np.ndarray:
    parts = [pipeline[-1].anomaly_score(pipeline[0].transform(features.iloc[i:i + SCORE_CHUNK]))
             for i in range(0, len(features), SCORE_CHUNK)]
    return np.concatenate(parts) if parts else np.empty(0)


def measure(pipeline: Pipeline, features: pd.DataFrame, labels: pd.Series) -> dict[str, Any]:
    """``utils.metrics.evaluate`` plus ``balanced_f1`` on labeled rows (unknown labels dropped)."""
    known = labels.notna().to_numpy()
    features, labels = features[known], labels[known]
    scores = pipeline_scores(pipeline, features)
    threshold = float(pipeline[-1].threshold_)
    metrics = evaluate(labels, scores > threshold, scores)
    metrics["balanced_f1"] = balanced_f1(scores, categories(labels), threshold)
    metrics["threshold"] = threshold
    return metrics


def gate(before: dict, after: dict, tolerance: float = DEFAULT_TOLERANCE,
         category_tolerance: float = DEFAULT_CATEGORY_TOLERANCE) -> tuple[bool, str]:
    """(promote?, why): promote unless balanced F1 or AUROC drops by more than ``tolerance``,
    or the detection rate of an attack category present in both by more than
    ``category_tolerance`` (an average can hide one category given up for the others)."""
    for name, value in (("tolerance", tolerance), ("category_tolerance", category_tolerance)):
        if not 0 <= value <= 1:  # NaN too: it would promote every candidate
            raise ValueError(f"{name} must be from 0 to 1, got {value!r}")
    lines, worse = [], []
    for name in ("balanced_f1", "auroc"):
        old, new = before.get(name), after.get(name)
        if old is None or new is None:
            continue
        lines.append(f"{name} {old:.4f} -> {new:.4f}")
        if old - new > tolerance + 1e-12:
            worse.append(name)
    old, new = before.get("false_positive_rate"), after.get("false_positive_rate")
    if old is not None and new is not None:  # reported, not judged: F1 already weighs it
        lines.append(f"false_positive_rate {old:.4f} -> {new:.4f}")
    old_rates = before.get("detection_rate_by_category") or {}
    new_rates = after.get("detection_rate_by_category") or {}
    for name in GATE_CATEGORIES:
        if name not in old_rates or name not in new_rates:
            continue
        old, new = old_rates[name]["rate"], new_rates[name]["rate"]
        lines.append(f"{name} detection {old:.4f} -> {new:.4f}")
        if old - new > category_tolerance + 1e-12:
            worse.append(f"{name} detection")
    summary = ", ".join(lines) + (f" (tolerance {tolerance:.4f}, per category "
                                  f"{category_tolerance:.4f})")
    if worse:
        return False, f"candidate worse on {' and '.join(worse)}: {summary}"
    return True, f"candidate as good within the tolerance: {summary}"
