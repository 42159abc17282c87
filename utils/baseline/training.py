"""Training a model of one's own network from a Zeek baseline, split in time.

1. Hosts and time ranges the admin excluded are taken out (utils.baseline.exclusions), and
   the health report is made of what remains.
2. The rows are split by ``ts`` (utils.baseline.slices): the oldest part fits the model,
   the next slice sets the threshold, the newest slice measures it (and is what the
   promotion gate compares, utils.baseline.gate).
3. Unlabeled rows count as normal; rows labeled malicious are left out of the fit and of the
   threshold, and counted. Where the newest slice holds some, they measure recall and AUROC.
4. The k set follows the fit rows (utils.baseline.k_rule) unless the caller names one.
5. The threshold flags ``target_fpr`` of the threshold slice's normal rows: a false-alarm
   budget, since a baseline has no attacks to weigh it against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.pipeline import Pipeline

from utils.baseline.exclusions import Exclusions
from utils.baseline.health import health_report, health_summary, iso_time
from utils.baseline.k_rule import MIN_FIT_ROWS, baseline_k_values, k_rule_card
from utils.baseline.slices import (
    FIT_FRACTION,
    NEWEST_FRACTION,
    SLICE_NAMES,
    THRESHOLD_FRACTION,
    fit_positions,
    malicious_mask,
    temporal_slices,
)
from utils.metrics import auroc_score
from utils.readers.records import ParsedRecords, take_records
from utils.retraining.gate import pipeline_scores
from utils.thresholds import choose_threshold
from utils.training import build_pipeline, model_card

DEFAULT_TARGET_FPR = 0.01
THRESHOLD_RULE = "fpr"  # utils.thresholds' rule, on the threshold slice
INPUT_KIND = "zeek"


@dataclass
class BaselineResult:
    """A trained baseline: the pipeline and its card, the health report of the rows it was
    trained on, its figures on the newest slice, and that slice (the gate's rows)."""

    pipeline: Pipeline
    card: dict
    health: dict
    figures: dict
    newest: ParsedRecords
    exclusions: dict


def slice_figures(scores: np.ndarray, threshold: float, malicious: np.ndarray) -> dict:
    """False alarms among the normal (or unlabeled) rows at ``threshold``; recall and AUROC
    when rows labeled malicious are present (else None)."""
    scores = np.asarray(scores, dtype=float)
    malicious = np.asarray(malicious, dtype=bool)
    normal = ~malicious
    flagged = scores > threshold
    both = bool(normal.any() and malicious.any())
    return {
        "rows": len(scores),
        "normal_rows": int(normal.sum()),
        "malicious_rows": int(malicious.sum()),
        "false_alarms": int(flagged[normal].sum()),
        "false_alarm_rate": float(flagged[normal].mean()) if normal.any() else None,
        "recall": float(flagged[malicious].mean()) if malicious.any() else None,
        "auroc": auroc_score(malicious, scores) if both else None,
        "threshold": float(threshold),
    }


def train_baseline(
    records: ParsedRecords,
    *,
    exclusions: Exclusions | None = None,
    random_state: int = 0,
    target_fpr: float = DEFAULT_TARGET_FPR,
    n_clusters: Sequence[int] | None = None,
    source: dict | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> BaselineResult:
    """Train a baseline model of ``records`` (a Zeek conn.log's) per the module's protocol.

    ValueError when the records are not Zeek connections, when ``target_fpr`` is outside
    (0, 1), or when a slice is left without the rows it needs.
    """
    if records.identity is None or "ts" not in records.identity:
        raise ValueError("a baseline needs Zeek conn.log records (with ts and hosts)")
    if not 0.0 < target_fpr < 1.0:
        raise ValueError(f"target_fpr must be between 0 and 1, got {target_fpr!r}")
    exclusions = exclusions or Exclusions()
    kept, excluded = exclusions.apply(records)
    if excluded["excluded"]:
        progress(f"left out {excluded['excluded']:,} of {excluded['rows']:,} rows "
                 "(excluded hosts and time ranges)")
    health = health_report(kept)
    ts = kept.identity["ts"].to_numpy(dtype=float)
    slices = temporal_slices(ts)
    malicious = malicious_mask(kept.labels, len(kept))
    fit_rows = fit_positions(slices, malicious)
    if len(fit_rows) < MIN_FIT_ROWS:
        raise ValueError(
            f"the baseline leaves {len(fit_rows):,} rows to fit on (the oldest "
            f"{FIT_FRACTION:.0%}, without malicious rows); at least {MIN_FIT_ROWS} are needed")
    threshold_rows = slices["threshold"][~malicious[slices["threshold"]]]
    if not len(threshold_rows) or not len(slices["newest"]):
        raise ValueError("the baseline is too small to hold out a threshold slice and a "
                         "newest slice")
    explicit = n_clusters is not None
    ks = tuple(int(k) for k in n_clusters) if explicit else baseline_k_values(len(fit_rows))
    progress(f"fitting {len(ks)} K-means models (k={list(ks)}) on the oldest "
             f"{len(fit_rows):,} normal rows")
    pipeline = build_pipeline(ks, random_state)
    pipeline.fit(kept.features.iloc[fit_rows])
    detector = pipeline[-1]
    progress(f"threshold: {target_fpr:.2%} of the next {len(threshold_rows):,} normal rows")
    threshold_scores = pipeline_scores(pipeline, kept.features.iloc[threshold_rows])
    detector.set_threshold(choose_threshold(
        threshold_scores, np.full(len(threshold_scores), "Normal", dtype=object), "fpr",
        target_fpr))
    newest = take_records(kept, slices["newest"])
    newest_scores = pipeline_scores(pipeline, newest.features)
    figures = slice_figures(newest_scores, detector.threshold_, malicious[slices["newest"]])
    progress(f"newest {len(newest):,} rows: false-alarm rate "
             f"{_percent(figures['false_alarm_rate'])}, recall {_percent(figures['recall'])}")
    known = kept.labels.notna().to_numpy() if kept.labels is not None else np.zeros(
        len(kept), dtype=bool)
    training_data = {
        **(source or {}),
        "rows": len(records),
        "excluded_rows": excluded["excluded"],
        "normal_rows": int(np.sum(known & ~malicious)),
        "unlabeled_rows": int(np.sum(~known)),
        "malicious_rows": int(malicious.sum()),
        "fit_rows": len(fit_rows),
        "calibration_rows": len(detector.calibration_scores_),
        "threshold_rows": len(threshold_rows),
        "newest_rows": len(newest),
        "split_random_state": random_state,
    }
    card = model_card(pipeline, input_kind=INPUT_KIND, n_clusters=ks,
                      random_state=random_state, threshold_rule=THRESHOLD_RULE,
                      target_fpr=target_fpr, training_data=training_data,
                      validation_metrics=None)
    card["baseline"] = {
        "period": health["period"],
        "slices": _slices_card(ts, slices, malicious),
        "k_rule": k_rule_card(len(fit_rows), ks, explicit=explicit),
        "exclusions": {**exclusions.to_dict(), "counts": excluded},
        "health": health_summary(health),
        "figures": figures,
    }
    return BaselineResult(pipeline, card, health, figures, newest, excluded)


def _slices_card(ts: np.ndarray, slices: dict[str, np.ndarray], malicious: np.ndarray
                 ) -> dict:
    """Each slice's share, rows, time span and malicious rows (left out of the fit and the
    threshold; in the newest slice they measure recall)."""
    shares = {"fit": FIT_FRACTION, "threshold": THRESHOLD_FRACTION, "newest": NEWEST_FRACTION}
    out = {}
    for name in SLICE_NAMES:
        rows = slices[name]
        out[name] = {"share": round(shares[name], 6), "rows": len(rows),
                     "malicious_rows": int(malicious[rows].sum()),
                     "start": iso_time(float(ts[rows[0]])) if len(rows) else None,
                     "end": iso_time(float(ts[rows[-1]])) if len(rows) else None,
                     # exact, for the rows never fitted (slices.threshold_slice_rows)
                     "end_ts": float(ts[rows[-1]]) if len(rows) else None}
    return out


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"
