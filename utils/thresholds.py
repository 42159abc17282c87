"""Choosing the decision threshold on labeled *training* data (never on KDDTest+).

Rules:
- ``balanced-f1`` (default): F1 where every attack category (DoS, Probe, R2L, U2R) carries the
  same total weight. KDDTrain+'s attacks are 79% DoS+Probe; plain F1 on them tunes the
  threshold to DoS alone, while a deployment's attack mix is unknown. Measured history in
  docs/MODEL.md.
- ``f1``: plain F1 on the validation rows as they come.
- ``fpr``: the lowest threshold whose false-positive rate on validation normal rows is at most
  a target (``--target-fpr``), for analysts who budget false alarms.
"""

from __future__ import annotations

import numpy as np

from utils.schema import ATTACK_CATEGORY_ORDER

RULES = ("balanced-f1", "f1", "fpr")


def candidate_thresholds(scores: np.ndarray, n: int = 4001) -> np.ndarray:
    return np.unique(np.quantile(scores, np.linspace(0.0, 1.0, n)))


def category_weights(cats: np.ndarray) -> np.ndarray:
    """Sample weights giving each present attack category the same total weight."""
    weights = np.ones(len(cats), dtype=np.float64)
    attack = cats != "Normal"
    present = [c for c in ATTACK_CATEGORY_ORDER if np.any(cats == c)]
    for name in present:
        rows = cats == name
        weights[rows] = attack.sum() / len(present) / rows.sum()
    return weights


def _f1_curve(scores: np.ndarray, y: np.ndarray, weights: np.ndarray,
              thresholds: np.ndarray) -> np.ndarray:
    """Weighted F1 for every threshold at once (sorted cumulative sums, no loop)."""
    order = np.argsort(scores)
    s, yy, w = scores[order], y[order], weights[order]
    pos_w = np.where(yy, w, 0.0)
    neg_w = np.where(yy, 0.0, w)
    # rows with score <= t are predicted normal
    idx = np.searchsorted(s, thresholds, side="right")
    cum_pos = np.concatenate([[0.0], np.cumsum(pos_w)])
    cum_neg = np.concatenate([[0.0], np.cumsum(neg_w)])
    tp = cum_pos[-1] - cum_pos[idx]
    fp = cum_neg[-1] - cum_neg[idx]
    fn = cum_pos[idx]
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def choose_threshold(scores: np.ndarray, cats: np.ndarray, rule: str = "balanced-f1",
                     target_fpr: float | None = None) -> float:
    """Threshold by ``rule`` from validation scores and their categories ("Normal", "DoS", ...)."""
    scores = np.asarray(scores, dtype=np.float64)
    cats = np.asarray(cats, dtype=object)
    normal = cats == "Normal"
    if rule == "fpr":
        if target_fpr is None or not 0.0 <= target_fpr < 1.0:
            raise ValueError("rule 'fpr' needs target_fpr in [0, 1)")
        return float(np.quantile(scores[normal], 1.0 - target_fpr, method="higher"))
    if rule not in RULES:
        raise ValueError(f"unknown threshold rule {rule!r}; choose from {RULES}")
    if normal.all() or not normal.any():
        raise ValueError("choosing a threshold by F1 needs both normal and attack rows")
    y = ~normal
    weights = category_weights(cats) if rule == "balanced-f1" else np.ones(len(cats))
    thresholds = candidate_thresholds(scores)
    f1 = _f1_curve(scores, y, weights, thresholds)
    return float(thresholds[int(np.argmax(f1))])


def tradeoff_table(scores: np.ndarray, cats: np.ndarray, thresholds: np.ndarray) -> list[dict]:
    """Per threshold: FPR, recall per category, plain and balanced F1 (for the printed table)."""
    scores = np.asarray(scores, dtype=np.float64)
    cats = np.asarray(cats, dtype=object)
    y = cats != "Normal"
    plain = _f1_curve(scores, y, np.ones(len(cats)), thresholds)
    balanced = _f1_curve(scores, y, category_weights(cats), thresholds)
    rows = []
    for i, t in enumerate(thresholds):
        flagged = scores > t
        row = {"threshold": float(t), "fpr": float(flagged[~y].mean()) if (~y).any() else 0.0,
               "recall": float(flagged[y].mean()) if y.any() else 0.0,
               "f1": float(plain[i]), "balanced_f1": float(balanced[i])}
        for name in ATTACK_CATEGORY_ORDER:
            if np.any(cats == name):
                row[f"recall_{name}"] = float(flagged[cats == name].mean())
        rows.append(row)
    return rows


def balanced_f1(scores: np.ndarray, cats: np.ndarray, threshold: float) -> float:
    """F1 at one threshold with every attack category weighted alike (the default rule's
    measure; rows scoring above ``threshold`` are flagged)."""
    scores = np.asarray(scores, dtype=np.float64)
    cats = np.asarray(cats, dtype=object)
    curve = _f1_curve(scores, cats != "Normal", category_weights(cats),
                      np.asarray([threshold], dtype=np.float64))
    return float(curve[0])
