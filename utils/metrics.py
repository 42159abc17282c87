"""Detection metrics for labeled input: one implementation for the API, the scripts and tests.

Rows whose label is unknown (pd.NA, e.g. Stratosphere "Background") are left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from utils.schema import ATTACK_CATEGORY_ORDER, NORMAL_LABEL, attack_category


def known_label_mask(labels: pd.Series) -> np.ndarray:
    return labels.notna().to_numpy()


def categories(labels: pd.Series) -> np.ndarray:
    """Per row: "Normal", "DoS", "Probe", "R2L", "U2R" or "Unknown" (labels must be known)."""
    codes, uniques = _factorize(labels)
    return np.array([attack_category(value) for value in uniques], dtype=object)[codes]


def _factorize(labels: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes and distinct labels (as str): per-label work then runs once per distinct label."""
    codes, uniques = pd.factorize(labels.to_numpy(dtype=object))
    return codes, [str(value) for value in uniques]


def auroc_score(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the boolean labels ``y`` (both classes
    present): the share of (positive, negative) pairs ordered right, ties counting half.

    The Mann-Whitney statistic from average ranks: the value of scikit-learn's roc_auc_score
    (to the last bits of a float), without its input checks, which cost 1.3 ms per 1,000-row
    API answer (against 0.1 ms) and 5.7 ms for KDDTest+ (against 1.5 ms).
    """
    y = np.asarray(y, dtype=bool)
    ranks = rankdata(scores)  # average ranks: a tie between the classes counts half
    positives = int(y.sum())
    negatives = len(y) - positives
    pairs_right = ranks[y].sum() - positives * (positives + 1) / 2.0
    return float(pairs_right / (positives * negatives))


def evaluate(labels: pd.Series, is_anomaly: np.ndarray, scores: np.ndarray) -> dict:
    """Accuracy, precision, recall, F1 (fractions), AUROC, confusion matrix, per category."""
    known = known_label_mask(labels)
    codes, uniques = _factorize(labels[known])
    y = np.array([value != NORMAL_LABEL for value in uniques], dtype=bool)[codes]
    pred = np.asarray(is_anomaly, dtype=bool)[known]
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    tn = int(np.sum(~pred & ~y))
    total = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    both_classes = 0 < y.sum() < len(y)
    auroc = auroc_score(y, np.asarray(scores)[known]) if both_classes else None
    order = list(ATTACK_CATEGORY_ORDER)
    slot = {name: i for i, name in enumerate(order)}  # "Normal" counts in the extra slot
    row_slot = np.array([slot.get(attack_category(value), len(order)) for value in uniques],
                        dtype=np.intp)[codes]
    totals = np.bincount(row_slot, minlength=len(order) + 1)
    detected = np.bincount(row_slot, weights=pred, minlength=len(order) + 1)
    by_category = {
        name: {"total": int(totals[i]), "detected": int(detected[i]),
               "rate": int(detected[i]) / int(totals[i])}
        for i, name in enumerate(order) if totals[i]
    }
    return {
        "accuracy": (tp + tn) / total if total else 0.0,
        "precision": precision, "recall": recall, "f1": f1, "auroc": auroc,
        "labeled_samples": total,
        "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "detection_rate_by_category": by_category,
    }
