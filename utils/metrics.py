"""Detection metrics for labeled input: one implementation for the API, the scripts and tests.

Rows whose label is unknown (pd.NA, e.g. Stratosphere "Background") are left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils.schema import ATTACK_CATEGORY_ORDER, NORMAL_LABEL, attack_category

# Attack labels reported one by one (the most frequent): a file may carry any label names.
MAX_LABELS_REPORTED = 20


def known_label_mask(labels: pd.Series) -> np.ndarray:
    return labels.notna().to_numpy()


def categories(labels: pd.Series) -> np.ndarray:
    """Per row: "Normal", "DoS", "Probe", "R2L", "U2R" or "Unknown" (labels must be known)."""
    codes, uniques = _factorize(labels)
    return np.array([attack_category(value) for value in uniques], dtype=object)[codes]


def _factorize(labels: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes (-1 for unknown) and distinct labels (as str): per-label work then runs once per
    distinct label. A categorical Series has them already (a byte or two a row)."""
    if isinstance(labels.dtype, pd.CategoricalDtype):
        codes, uniques = labels.cat.codes.to_numpy(), labels.cat.categories
    else:
        codes, uniques = pd.factorize(labels.to_numpy(dtype=object))
    return codes, [str(value) for value in uniques]


def auroc_score(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the boolean labels ``y`` (both classes
    present): the share of (positive, negative) pairs ordered right, ties counting half.

    The Mann-Whitney statistic (see _auroc): the value of scikit-learn's roc_auc_score (to
    the last bits of a float), without its input checks, which cost 1.3 ms per 1,000-row API
    answer (against 0.1 ms) and 5.7 ms for KDDTest+ (against 1.5 ms).
    """
    y = np.asarray(y, dtype=bool)
    scores = np.asarray(scores)
    return _auroc(scores[y], scores[~y])  # boolean indexing copies: _auroc may sort them


def evaluate(labels: pd.Series, is_anomaly: np.ndarray, scores: np.ndarray, *,
             by_label: bool = False) -> dict:
    """Accuracy, precision, recall, F1 (fractions), AUROC, confusion matrix, per category.

    ``by_label``: also ``detection_rate_by_label``, per attack label by the file's own names
    (the MAX_LABELS_REPORTED most frequent), which say more than "Unknown" for labels outside
    the KDD taxonomy (Stratosphere's "malicious").

    Everything is counted per distinct label, and the AUROC per class: an upload can hold
    millions of rows, so no step may cost much more than the inputs (see _auroc).
    """
    codes, uniques = _factorize(labels)
    pred = np.asarray(is_anomaly, dtype=bool)
    slots = len(uniques) + 1  # slot 0: unknown label
    rows = np.bincount(codes + 1, minlength=slots)[1:]
    flagged = np.bincount(codes[pred] + 1, minlength=slots)[1:]
    is_attack = np.array([value != NORMAL_LABEL for value in uniques], dtype=bool)
    tp = int(flagged[is_attack].sum())
    fp = int(flagged[~is_attack].sum())
    fn = int(rows[is_attack].sum()) - tp
    tn = int(rows[~is_attack].sum()) - fp
    total = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    auroc = None
    if 0 < tp + fn < total:  # both classes present
        attack_row = np.append(is_attack, False)[codes]  # code -1 (unknown) is not an attack
        positives = np.asarray(scores)[attack_row]
        del attack_row
        normal_row = np.append(~is_attack, False)[codes]
        negatives = np.asarray(scores)[normal_row]
        del normal_row
        auroc = _auroc(positives, negatives)
    order = list(ATTACK_CATEGORY_ORDER)
    totals = dict.fromkeys(order, 0)
    detected = dict.fromkeys(order, 0)
    for code, value in enumerate(uniques):
        category = attack_category(value)
        if category in totals:  # "Normal" is not a category here
            totals[category] += int(rows[code])
            detected[category] += int(flagged[code])
    by_category = {
        name: {"total": totals[name], "detected": detected[name],
               "rate": detected[name] / totals[name]}
        for name in order if totals[name]
    }
    result = {
        "accuracy": (tp + tn) / total if total else 0.0,
        "precision": precision, "recall": recall, "f1": f1, "auroc": auroc,
        "labeled_samples": total,
        "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "detection_rate_by_category": by_category,
    }
    if by_label:
        result["detection_rate_by_label"] = _by_label(uniques, rows, flagged, is_attack)
    return result


def _by_label(uniques: list[str], rows: np.ndarray, flagged: np.ndarray,
              is_attack: np.ndarray) -> dict[str, dict]:
    attacks = [code for code in np.flatnonzero(is_attack).tolist() if rows[code]]
    attacks.sort(key=lambda code: (-int(rows[code]), uniques[code]))
    return {
        uniques[code]: {"category": attack_category(uniques[code]), "total": int(rows[code]),
                        "detected": int(flagged[code]),
                        "rate": int(flagged[code]) / int(rows[code])}
        for code in attacks[:MAX_LABELS_REPORTED]
    }


_AUROC_BLOCK = 1 << 20


def _auroc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Area under the ROC curve as the Mann-Whitney statistic: the share of (attack, normal)
    pairs the scores order right, ties counting one half.

    This is the area sklearn's roc_auc_score integrates (equal to ~1e-15), counted exactly
    with the normal scores sorted and each block of attack scores looked up in them. Measured
    on 7.85 M rows: 92 MB at its peak, against 599 MB for roc_auc_score (which builds the
    curve with several arrays per row).
    """
    negatives.sort()  # in place: evaluate() hands over a copy of its own
    below = ties = 0
    for start in range(0, len(positives), _AUROC_BLOCK):
        block = positives[start:start + _AUROC_BLOCK]
        left = np.searchsorted(negatives, block, side="left")
        right = np.searchsorted(negatives, block, side="right")
        below += int(left.sum())
        ties += int((right - left).sum())
    return (2 * below + ties) / (2 * len(positives) * len(negatives))
