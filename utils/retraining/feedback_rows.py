"""The rows analysts marked (utils/feedback.py), found in their uploads, for a retrain run.

Verdicts are facts, given with the analyst token: rows marked false positive join the fit set
as normal rows whatever the upload's label said, at most ``feedback_share`` of the training
file's normal fit rows (a flood of verdicts cannot outweigh the file); rows confirmed as
attacks never train. The gate still decides whether the candidate is promoted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from utils.feedback import Feedback
from utils.readers import ParsedRecords
from utils.registry import Registry, Upload
from utils.schema import FEATURE_NAMES
from utils.training import row_categories, split_validation


@dataclass
class FeedbackRows:
    """Verdicts by upload, and the false-positive rows taken from the uploads read so far.

    Beyond ``cap`` rows a fixed random sample is kept. Verdicts on records an upload does not
    have (an unknown uid or row) are counted and skipped.
    """

    verdicts: dict[str, list[Feedback]]
    normal: list[pd.DataFrame] = field(default_factory=list)
    used_ids: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {
        "feedback_false_positive": 0, "feedback_true_positive": 0, "feedback_unmatched": 0,
        "feedback_capped": 0, "feedback_rows": 0})

    @classmethod
    def from_registry(cls, registry: Registry) -> FeedbackRows:
        verdicts: dict[str, list[Feedback]] = {}
        for item in registry.feedback():
            verdicts.setdefault(item.sha256, []).append(item)
        return cls(verdicts)

    def masks(self, upload: Upload, records: ParsedRecords
              ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(confirmed, cleared) row masks of this upload; the cleared rows are taken."""
        items = self.verdicts.pop(upload.sha256, None)
        if not items:
            return None, None
        confirmed = np.zeros(len(records), dtype=bool)
        cleared = np.zeros(len(records), dtype=bool)
        index = records.features.index
        uids = (records.identity["uid"].astype(str).to_numpy()
                if records.identity is not None else None)
        for item in items:
            if item.row is not None:
                at = index.get_indexer([item.row])
                at = at[at >= 0]
            elif uids is not None:
                at = np.flatnonzero(uids == item.record)
            else:
                at = np.empty(0, dtype=np.int64)
            if not at.size:
                self.counts["feedback_unmatched"] += 1
                continue
            if item.verdict == "true_positive":
                confirmed[at] = True
                self.counts["feedback_true_positive"] += int(at.size)
            else:
                cleared[at] = True
                self.counts["feedback_false_positive"] += int(at.size)
                self.used_ids.append(item.id)
        cleared &= ~confirmed
        if cleared.any():
            self.normal.append(records.features[cleared])
        return confirmed, cleared

    def rows(self, cap: int, random_state: int) -> pd.DataFrame:
        """The false-positive rows taken, at most ``cap`` of them."""
        parts = [part for part in self.normal if len(part)]
        if not parts:
            return pd.DataFrame(columns=list(FEATURE_NAMES))
        rows = pd.concat(parts, ignore_index=True)
        if len(rows) > cap:
            self.counts["feedback_capped"] = len(rows) - cap
            keep = np.sort(np.random.RandomState(random_state).choice(len(rows), cap,
                                                                       replace=False))
            rows = rows.iloc[keep].reset_index(drop=True)
        self.counts["feedback_rows"] = len(rows)
        return rows


def feedback_cap(base: ParsedRecords, fraction: float, seed: int, share: float) -> int:
    """Most false-positive rows one candidate fits: ``share`` of the file's normal fit rows."""
    cats = row_categories(base)
    normal_fit = (cats == "Normal") & ~split_validation(cats, fraction, seed)
    return int(share * int(normal_fit.sum()))
