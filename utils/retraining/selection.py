"""Which rows of the kept uploads a candidate may learn from, and which judge it.

What anonymous uploaders send is a claim. A row enters the fit set on the *current* model's
word only: it must be called Normal with confidence >= ``min_confidence``, whatever label the
uploader gave it (an anonymous "attack" label only keeps a row out). Labels are facts only in
trusted uploads (sent with the admin token): their normal rows train even where the model
disagrees, and a share of them, with all their attack rows, is held out for the gate.
Influence is bounded: a row repeated anywhere in the pool counts once, and one anonymous
upload or one anonymous client adds at most ``max_rows_per_upload`` / ``max_rows_per_client``
rows to a run's fit set (a fixed random sample beyond that).
Analysts' verdicts (utils/feedback.py) are facts, given with a token: rows they confirmed as
attacks never train, rows they marked false positive are fitted apart (utils/retraining/
feedback_rows.py), and trusted attack rows an allow-list entry allows stay out of the gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from utils.allowlist import AllowList
from utils.model_store import LoadedModel
from utils.readers import ParsedRecords
from utils.schema import FEATURE_NAMES
from utils.scoring import score_features
from utils.training import row_categories, split_validation

SCORE_CHUNK = 100_000  # rows scored at once: bounds the memory of scoring a large upload


COUNT_KEYS = (
    "files", "trusted_files", "rows", "duplicate_rows",
    "labeled_normal_fit",  # trusted rows labeled normal (trained whatever the model says)
    "confident_unlabeled_fit", "unlabeled_refused",  # unlabeled rows, by the model's word
    "claimed_normal_fit", "claimed_normal_refused",  # anonymous rows labeled normal, ditto
    "claimed_attack_ignored",  # anonymous rows labeled as attacks: neither fit nor gate
    "capped_rows",  # accepted rows over the per-upload or per-client cap
    "validation_normal", "validation_attack",  # held-out trusted rows, for the gate
    "allowlisted_attack_ignored",  # trusted attack rows an allow-list entry allows
    "true_positive_kept_out",  # rows analysts confirmed as attacks: never fitted
)


@dataclass
class UploadSelection:
    """Upload rows split by how far they are trusted (see the module docstring).

    Feed uploads with ``add`` in a fixed order (trusted first, then oldest first): the first
    copy of a repeated row is the one that counts, and the per-client cap is filled first by
    a client's oldest uploads. ``None`` caps: no cap.
    """

    max_rows_per_upload: int | None = None
    max_rows_per_client: int | None = None
    random_state: int = 0
    extra_normal: list[pd.DataFrame] = field(default_factory=list)
    validation_features: list[pd.DataFrame] = field(default_factory=list)
    validation_labels: list[pd.Series] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    _seen: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64),
                              repr=False)  # sorted row hashes (8 bytes a row, not a set's ~70)
    _client_rows: dict[str | None, int] = field(default_factory=dict, repr=False)

    def add(self, records: ParsedRecords, model: LoadedModel, *, validation_fraction: float,
            random_state: int, min_confidence: float, trusted: bool = False,
            client: str | None = None, allowlist: AllowList | None = None,
            confirmed: np.ndarray | None = None, cleared: np.ndarray | None = None) -> None:
        """``confirmed``: rows analysts marked true positive (never fitted); ``cleared``:
        rows they marked false positive (fitted separately, ``FeedbackRows``: here they are
        neither fitted nor held out as attacks). An attack row ``allowlist`` allows is
        neither either."""
        counts = self.counts
        counts["files"] += 1
        counts["trusted_files"] += int(trusted)
        counts["rows"] += len(records)
        fresh = self._first_copies(records.features)
        counts["duplicate_rows"] += int(len(records) - fresh.sum())
        cats = row_categories(records)
        normal = fresh & (cats == "Normal")
        unlabeled = fresh & (cats == "Unlabeled")
        attack = fresh & ~(cats == "Normal") & ~(cats == "Unlabeled")
        if cleared is not None:
            attack &= ~cleared
        if allowlist and attack.any():
            allowed = allowlist.match_records(records, attack) > 0
            counts["allowlisted_attack_ignored"] += int(allowed.sum())
            attack &= ~allowed
        fit = np.zeros(len(records), dtype=bool)
        validation = np.zeros(len(records), dtype=bool)
        if trusted:
            held = split_validation(cats[fresh], validation_fraction, random_state)
            held_normal = np.zeros(len(records), dtype=bool)
            held_normal[np.flatnonzero(fresh)[held]] = True
            held_normal &= normal
            fit |= normal & ~held_normal
            validation |= attack | held_normal
            counts["labeled_normal_fit"] += int(fit.sum())
            counts["validation_normal"] += int(held_normal.sum())
            counts["validation_attack"] += int(attack.sum())
            by_model = unlabeled
        else:
            counts["claimed_attack_ignored"] += int(attack.sum())
            by_model = unlabeled | normal
        confident = np.zeros(len(records), dtype=bool)
        if by_model.any():
            rows = np.flatnonzero(by_model)
            severity, confidence = _verdicts(model, records.features.iloc[rows])
            confident[rows] = (severity == "Normal") & (confidence >= min_confidence)
        counts["confident_unlabeled_fit"] += int((confident & unlabeled).sum())
        counts["unlabeled_refused"] += int((unlabeled & ~confident).sum())
        counts["claimed_normal_fit"] += int((confident & normal).sum())
        counts["claimed_normal_refused"] += int((by_model & normal & ~confident).sum())
        fit |= confident
        if confirmed is not None:
            counts["true_positive_kept_out"] += int((fit & confirmed).sum())
            fit &= ~confirmed
        if cleared is not None:
            fit &= ~cleared
        if not trusted:
            fit = self._cap(fit, client)
        self.extra_normal.append(records.features[fit])
        if validation.any():
            self.validation_features.append(records.features[validation])
            self.validation_labels.append(records.labels[validation])

    def _first_copies(self, features: pd.DataFrame) -> np.ndarray:
        """Rows whose values were not seen before, in this upload or an earlier one."""
        keys = pd.util.hash_pandas_object(features, index=False).to_numpy()
        first = ~pd.Series(keys).duplicated().to_numpy()
        first &= ~np.isin(keys, self._seen, assume_unique=False)
        self._seen = np.union1d(self._seen, keys[first])
        return first

    def _cap(self, fit: np.ndarray, client: str | None) -> np.ndarray:
        """At most ``max_rows_per_upload`` rows of this upload and what is left of the
        client's ``max_rows_per_client`` for this run (a fixed random sample of them)."""
        allowed = int(fit.sum())
        if self.max_rows_per_upload is not None:
            allowed = min(allowed, self.max_rows_per_upload)
        if self.max_rows_per_client is not None:
            allowed = min(allowed, self.max_rows_per_client - self._client_rows.get(client, 0))
        allowed = max(allowed, 0)
        self._client_rows[client] = self._client_rows.get(client, 0) + allowed
        rows = np.flatnonzero(fit)
        if allowed >= len(rows):
            return fit
        self.counts["capped_rows"] += len(rows) - allowed
        keep = np.random.RandomState(self.random_state).choice(rows, allowed, replace=False)
        capped = np.zeros(len(fit), dtype=bool)
        capped[keep] = True
        return capped

    def normal_rows(self, cap: int, random_state: int) -> pd.DataFrame:
        """The trusted normal rows, at most ``cap`` of them (a fixed random sample)."""
        parts = [part for part in self.extra_normal if len(part)]
        if not parts:
            return pd.DataFrame(columns=list(FEATURE_NAMES))
        rows = pd.concat(parts, ignore_index=True)
        if len(rows) > cap:
            keep = np.sort(np.random.RandomState(random_state).choice(len(rows), cap,
                                                                       replace=False))
            rows = rows.iloc[keep].reset_index(drop=True)
        return rows


def _verdicts(model: LoadedModel, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    severity, confidence = [], []
    for start in range(0, len(features), SCORE_CHUNK):
        scored = score_features(model, features.iloc[start:start + SCORE_CHUNK])
        severity.append(scored.severity)
        confidence.append(scored.confidence)
    return np.concatenate(severity), np.concatenate(confidence)

