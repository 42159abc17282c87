"""Incremental learning: build a candidate from the training data plus kept uploads, promote it
only if it is not worse than the current model, and keep every version for rollback.

The decisions (docs/LEARNING.md):
- What anonymous uploaders send is a claim. A row enters the fit set on the *current* model's
  word only: it must be called Normal with confidence >= ``min_confidence``, whatever label the
  uploader gave it (an anonymous "attack" label only keeps a row out). Labels are facts only in
  trusted uploads (sent with the admin token): their normal rows train even where the model
  disagrees, and a share of them, with all their attack rows, is held out for the gate.
- Bounded influence: a row repeated anywhere in the pool counts once, and one anonymous upload
  or one anonymous client adds at most ``max_rows_per_upload`` / ``max_rows_per_client`` rows
  to a run's fit set (a fixed random sample beyond that).
- Analysts' verdicts (utils/feedback.py) are facts, given with a token: rows marked false
  positive join the fit set as normal rows whatever their label (at most ``feedback_share`` of
  the training file's normal fit rows); rows confirmed as attacks never train. Trusted attack
  rows an allow-list entry allows are held out of the gate. The gate still decides.
- Only uploads of the model's input kind feed it (a KDD model learns from KDD uploads, a Zeek
  model from Zeek uploads). Uploads already in a promoted model (``archived``) feed every later
  candidate too: each candidate is trained from scratch and would otherwise forget them.
  Uploads that trained a rolled-back version are ``quarantined`` and feed nothing.
- The gate judges on rows no anonymous uploader controls: the training file's held-out rows
  (which neither model fitted on) plus held-out rows of trusted uploads. The candidate is
  promoted unless its balanced F1 or AUROC is lower by more than ``tolerance`` (0.005 = half a
  percentage point) or its detection rate of any attack category (DoS, Probe, R2L, U2R) is
  lower by more than ``category_tolerance`` (0.02).
- One retrain at a time, across every worker and process: ``RetrainLock`` is an ``flock`` held
  by the retraining process itself, so the kernel releases it if that process is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from utils.allowlist import AllowList
from utils.feedback import Feedback
from utils.metrics import categories, evaluate
from utils.model_store import (
    CARD_FILE,
    MODEL_FILE,
    VERSIONS_DIR,
    LoadedModel,
    ModelLoadError,
    archive_model,
    load_model,
    load_model_file,
    save_model,
)
from utils.preprocessing import InputFormatError, ParsedRecords, read_records
from utils.schema import ATTACK_CATEGORY_ORDER, FEATURE_NAMES, NORMAL_LABEL
from utils.scoring import score_features
from utils.thresholds import RULES, category_weights
from utils.training import (
    TrainingResult,
    file_digest,
    row_categories,
    split_validation,
    train,
    validation_mask,
)
from utils.upload_registry import RetrainBusy, RetrainLock, Upload, UploadRegistry

DEFAULT_TRAIN_FILE = "KDDTrain+.txt"
DEFAULT_TOLERANCE = 0.005
DEFAULT_CATEGORY_TOLERANCE = 0.02
DEFAULT_MIN_CONFIDENCE = 0.5
DEFAULT_MAX_UPLOAD_ROWS = 1_000_000
DEFAULT_MAX_ROWS_PER_UPLOAD = 2_000
DEFAULT_MAX_ROWS_PER_CLIENT = 10_000
DEFAULT_FEEDBACK_SHARE = 0.05  # analysts' false positives, per normal fit row of the file
LOCK_WAIT_SECONDS = 5.0
GATE_CATEGORIES = tuple(c for c in ATTACK_CATEGORY_ORDER if c != "Unknown")

_SCORE_CHUNK = 100_000
_VERSION_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")

Progress = Callable[[str], None]
Trainer = Callable[..., TrainingResult]


class RetrainError(RuntimeError):
    """A run cannot go on; the message is safe to show in the status (no paths, no traces)."""


class UnknownVersion(RetrainError):
    """A rollback named a version that is not in ``versions/``."""


class RollbackResult(NamedTuple):
    previous_version: str | None
    model_version: str
    quarantined: list[str]  # SHA-256s of the uploads set aside by this rollback


# --- settings ------------------------------------------------------------------------------


@dataclass
class RetrainSettings:
    """Where things are and how a run behaves (retrain_model.py fills it from the settings).

    ``n_clusters`` None keeps the current model's k values (tests pass small ones).
    ``train_file`` None: ``<data_dir>/<file named in the current model card>``, else
    ``<data_dir>/KDDTrain+.txt``. ``max_decompressed_bytes`` bounds reading a kept upload
    (None: utils.preprocessing's default), as the API bounded it when it arrived.
    """

    model_dir: Path
    data_dir: Path
    train_file: Path | None = None
    n_clusters: tuple[int, ...] | None = None
    tolerance: float = DEFAULT_TOLERANCE
    category_tolerance: float = DEFAULT_CATEGORY_TOLERANCE
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    max_upload_rows: int = DEFAULT_MAX_UPLOAD_ROWS
    max_rows_per_upload: int = DEFAULT_MAX_ROWS_PER_UPLOAD
    max_rows_per_client: int = DEFAULT_MAX_ROWS_PER_CLIENT
    max_decompressed_bytes: int | None = None
    feedback_share: float = DEFAULT_FEEDBACK_SHARE


# --- choosing upload rows ------------------------------------------------------------------


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


@dataclass
class FeedbackRows:
    """The rows analysts marked (utils/feedback.py), found in their uploads.

    False positives join the fit set as normal rows whatever the upload's label said, up to
    ``cap`` (a share of the training file's normal fit rows: a flood of verdicts cannot
    outweigh the file; a fixed random sample beyond). True positives never train. Verdicts on
    records an upload does not have (an unknown uid) are counted and skipped.
    """

    verdicts: dict[str, list[Feedback]]
    normal: list[pd.DataFrame] = field(default_factory=list)
    used_ids: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {
        "feedback_false_positive": 0, "feedback_true_positive": 0, "feedback_unmatched": 0,
        "feedback_capped": 0, "feedback_rows": 0})

    @classmethod
    def from_registry(cls, registry: Any) -> FeedbackRows:
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


def _verdicts(model: LoadedModel, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    severity, confidence = [], []
    for start in range(0, len(features), _SCORE_CHUNK):
        scored = score_features(model, features.iloc[start:start + _SCORE_CHUNK])
        severity.append(scored.severity)
        confidence.append(scored.confidence)
    return np.concatenate(severity), np.concatenate(confidence)


# --- measuring and the gate ----------------------------------------------------------------


def pipeline_scores(pipeline: Pipeline, features: pd.DataFrame) -> np.ndarray:
    parts = [pipeline[-1].anomaly_score(pipeline[0].transform(features.iloc[i:i + _SCORE_CHUNK]))
             for i in range(0, len(features), _SCORE_CHUNK)]
    return np.concatenate(parts) if parts else np.empty(0)


def balanced_f1(scores: np.ndarray, cats: np.ndarray, threshold: float) -> float:
    """F1 with every attack category weighted alike (the default threshold rule's measure)."""
    y = cats != "Normal"
    weights = category_weights(cats)
    flagged = scores > threshold
    tp = weights[flagged & y].sum()
    fp = weights[flagged & ~y].sum()
    fn = weights[~flagged & y].sum()
    denominator = 2 * tp + fp + fn
    return float(2 * tp / denominator) if denominator else 0.0


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


# --- one run -------------------------------------------------------------------------------


@dataclass
class RunResult:
    run_id: int
    outcome: str  # promoted / rejected / failed
    reason: str
    version: str | None = None
    metrics_before: dict | None = None
    metrics_after: dict | None = None


def retrain_once(
    settings: RetrainSettings,
    registry: UploadRegistry,
    *,
    trigger: str = "cli",
    progress: Progress = lambda message: None,
    trainer: Trainer = train,
) -> RunResult:
    """One recorded run: candidate, gate, promotion. Call it while holding the RetrainLock.

    Never raises for a failed run: the failure is recorded (``retrain_runs``) and returned,
    and model, uploads and counter stay as they were.
    """
    started = time.perf_counter()
    current: LoadedModel | None = None
    with contextlib.suppress(ModelLoadError):
        current = load_model(settings.model_dir)
    run_id = registry.start_run(trigger=trigger,
                                previous_version=current.version if current else None)
    progress(f"run {run_id} started ({trigger})")
    try:
        result = _run(settings, registry, run_id, current, progress, trainer)
    except Exception as exc:
        reason = _failure_reason(exc)
        progress(f"run {run_id} failed: {reason}")
        if not isinstance(exc, RetrainError | InputFormatError | ModelLoadError):
            traceback.print_exc()
        registry.finish_run(run_id, "failed", reason)
        return RunResult(run_id, "failed", reason)
    progress(f"run {run_id} {result.outcome} in {time.perf_counter() - started:.1f} s: "
             f"{result.reason}")
    return result


def _run(settings: RetrainSettings, registry: UploadRegistry, run_id: int,
         current: LoadedModel | None, progress: Progress, trainer: Trainer) -> RunResult:
    if current is None:
        current = load_model(settings.model_dir)  # raises the ModelLoadError that says why
    stamp = _model_stamp(settings.model_dir)
    card = current.card
    kind = card.get("input_kind", "kdd")
    split = card.get("training_data", {})
    fraction = float(split.get("validation_fraction") or 0.2)
    seed = int(split.get("split_random_state", card.get("random_state", 0)))

    new = registry.claim_pending(run_id, kind)
    corpus = registry.uploads(status="archived", input_kind=kind) + new
    corpus.sort(key=lambda upload: (not upload.trusted, upload.id))  # see UploadSelection
    progress(f"{len(new)} new and {len(corpus) - len(new)} earlier {kind} uploads "
             f"({sum(u.trusted for u in corpus)} trusted)")
    base_path = _train_file(settings, card)
    progress(f"reading the training data {base_path.name}")
    content = base_path.read_bytes()
    base_sha = file_digest(content)
    base = read_records(content)
    del content
    if base.input_kind != kind:
        raise RetrainError(f"the training data {base_path.name} is {base.input_kind} input but "
                           f"the current model is {kind}; pass a {kind} training file")
    selection = UploadSelection(max_rows_per_upload=settings.max_rows_per_upload,
                                max_rows_per_client=settings.max_rows_per_client,
                                random_state=seed)
    allowlist = AllowList(registry.allow_entries())
    feedback = FeedbackRows.from_registry(registry)
    for upload in corpus:
        records = _read_upload(registry, upload, settings.max_decompressed_bytes)
        confirmed, cleared = feedback.masks(upload, records)
        selection.add(records, current, validation_fraction=fraction, random_state=seed,
                      min_confidence=settings.min_confidence, trusted=upload.trusted,
                      client=upload.client, allowlist=allowlist, confirmed=confirmed,
                      cleared=cleared)
        del records
    for sha256 in list(feedback.verdicts):  # verdicts on uploads outside the corpus
        upload = registry.find(sha256)
        if upload is None or upload.input_kind != kind or upload.status == "quarantined":
            feedback.counts["feedback_unmatched"] += len(feedback.verdicts.pop(sha256))
            continue
        feedback.masks(upload, _read_upload(registry, upload, settings.max_decompressed_bytes))
    extra = selection.normal_rows(settings.max_upload_rows, seed)
    cleared_rows = feedback.rows(_feedback_cap(base, fraction, seed, settings.feedback_share),
                                 seed)
    if len(cleared_rows):  # (an empty frame's object columns would change the dtypes)
        extra = (pd.concat([extra, cleared_rows], ignore_index=True) if len(extra)
                 else cleared_rows)
    progress(f"upload rows: {selection.counts}")
    progress(f"analyst feedback: {feedback.counts}")

    n_clusters = settings.n_clusters or tuple(card.get("k_values") or ())
    if not n_clusters:
        raise RetrainError("the current model card names no k values; pass --k")
    rule = card.get("threshold_rule")
    extra_sha = rows_digest(extra)
    if _same_inputs(card, base_sha, n_clusters, seed, extra_sha):
        reason = ("no upload row passed the selection beyond those the current model learned "
                  "from (the same training data gives the same model): nothing new to learn")
        registry.finish_run(run_id, "rejected", reason)
        return RunResult(run_id, "rejected", reason)
    source = {"file": base_path.name, "sha256": base_sha, "uploads": {
        "files": len(corpus), "sha256": [u.sha256 for u in corpus],
        "normal_rows": len(extra), "rows_sha256": extra_sha, **selection.counts,
        **feedback.counts}}
    candidate = trainer(
        base, n_clusters=n_clusters, random_state=seed, validation_fraction=fraction,
        threshold_rule=rule if rule in RULES else "balanced-f1",
        target_fpr=card.get("target_fpr"), source=source, extra_normal=extra,
        progress=progress)
    if _same_model(candidate.card, card):
        reason = ("the candidate equals the current model (same centroids and threshold): "
                  "nothing new to learn")
        registry.finish_run(run_id, "rejected", reason)
        return RunResult(run_id, "rejected", reason)

    features, labels = _validation_set(base, card, base_sha, fraction, seed, selection)
    known = labels.dropna().astype(str)
    if not ((known == NORMAL_LABEL).any() and (known != NORMAL_LABEL).any()):
        reason = ("no labeled validation rows with both normal and attack traffic: the candidate "
                  "cannot be shown to be no worse")
        registry.finish_run(run_id, "rejected", reason)
        return RunResult(run_id, "rejected", reason)
    progress(f"comparing both models on {len(features):,} validation rows")
    before = measure(current.pipeline, features, labels)
    after = measure(candidate.pipeline, features, labels)
    promote, reason = gate(before, after, settings.tolerance, settings.category_tolerance)
    reason += f"; {feedback.counts['feedback_rows']} feedback row(s) in the fit set"
    for figures in (before, after):
        figures["feedback_rows"] = feedback.counts["feedback_rows"]
    version = str(candidate.card["model_version"])
    if not promote:
        registry.finish_run(run_id, "rejected", reason, metrics_before=before,
                            metrics_after=after, version=version)
        return RunResult(run_id, "rejected", reason, version, before, after)

    if _model_stamp(settings.model_dir) != stamp:
        raise RetrainError("the current model was replaced during the run; not promoting")
    candidate.card["retraining"] = {
        "run_id": run_id, "previous_version": current.version, "tolerance": settings.tolerance,
        "category_tolerance": settings.category_tolerance,
        "gate_validation_rows": len(features),
        "balanced_f1_before": before["balanced_f1"], "balanced_f1_after": after["balanced_f1"],
        "auroc_before": before["auroc"], "auroc_after": after["auroc"],
        "false_positive_rate_before": before["false_positive_rate"],
        "false_positive_rate_after": after["false_positive_rate"],
        "feedback_rows": feedback.counts["feedback_rows"]}
    registry.set_run_version(run_id, version)
    progress(f"promoting {version} (keeping {current.version} in {VERSIONS_DIR}/)")
    archive_model(current.pipeline, current.card, settings.model_dir)
    save_model(candidate.pipeline, candidate.card, settings.model_dir, archive=True)
    registry.finish_run(run_id, "promoted", reason, metrics_before=before, metrics_after=after,
                        version=version)
    registry.mark_feedback_trained(feedback.used_ids, version)
    return RunResult(run_id, "promoted", reason, version, before, after)


def _feedback_cap(base: ParsedRecords, fraction: float, seed: int, share: float) -> int:
    """Most false-positive rows one candidate fits: ``share`` of the file's normal fit rows."""
    cats = row_categories(base)
    normal_fit = (cats == "Normal") & ~split_validation(cats, fraction, seed)
    return int(share * int(normal_fit.sum()))


def _validation_set(base: ParsedRecords, card: dict, base_sha: str, fraction: float, seed: int,
                    selection: UploadSelection) -> tuple[pd.DataFrame, pd.Series]:
    """Training-file rows neither model fitted on, plus the held-out rows of trusted uploads
    (``UploadSelection`` holds out no anonymous row: no uploader can steer the gate)."""
    features, labels = [], []
    if base.labels is not None:
        mask = split_validation(row_categories(base), fraction, seed)
        mask &= validation_mask(base, card, base_sha)
        features.append(base.features[mask])
        labels.append(base.labels[mask])
    features += selection.validation_features
    labels += selection.validation_labels
    if not features:
        return pd.DataFrame(columns=list(FEATURE_NAMES)), pd.Series([], dtype=object)
    return (pd.concat(features, ignore_index=True),
            pd.concat(labels, ignore_index=True).astype(object))


def rows_digest(rows: pd.DataFrame) -> str:
    """SHA-256 of the rows' values in order (the order matters to K-means)."""
    if not len(rows):
        return file_digest(b"")
    return file_digest(pd.util.hash_pandas_object(rows[list(FEATURE_NAMES)], index=False)
                       .to_numpy().tobytes())


def _same_inputs(card: dict, base_sha: str, n_clusters: tuple[int, ...], seed: int,
                 extra_sha: str) -> bool:
    """Whether the current model was trained on exactly what the candidate would be (same
    training file, k, seed, threshold rule and upload rows): training is deterministic, so
    the candidate would be the current model again. A run that teaches nothing (every upload
    row refused, say) then ends without the minutes of fitting."""
    data = card.get("training_data") or {}
    learned = (data.get("uploads") or {}).get("rows_sha256")
    if learned is None:  # a model trained by train_model.py learned no upload row
        learned = file_digest(b"") if not (data.get("uploads") or {}).get("normal_rows") else ""
    return (data.get("sha256") == base_sha
            and [int(k) for k in card.get("k_values") or ()] == list(n_clusters)
            and int(card.get("random_state", -1)) == seed
            and card.get("threshold_rule") in RULES
            and learned == extra_sha)


def _same_model(candidate: dict, current: dict) -> bool:
    """Versions end in a digest of the centroids (utils.training.train)."""
    return (str(candidate["model_version"]).rsplit("-", 1)[-1]
            == str(current.get("model_version", "")).rsplit("-", 1)[-1]
            and candidate["threshold"] == current.get("threshold"))


def _train_file(settings: RetrainSettings, card: dict) -> Path:
    if settings.train_file is not None:
        path = settings.train_file
    else:
        named = Path(str(card.get("training_data", {}).get("file") or DEFAULT_TRAIN_FILE)).name
        path = settings.data_dir / named
        if not path.is_file():
            path = settings.data_dir / DEFAULT_TRAIN_FILE
    if not path.exists() or path.is_dir():  # (a named pipe is fine: tests block on one)
        raise RetrainError(f"the training data {path.name} is missing from the data folder "
                           "(run `make data`, or pass --train)")
    return path


def _read_upload(registry: UploadRegistry, upload: Upload,
                 max_decompressed_bytes: int | None) -> ParsedRecords:
    path = registry.path_of(upload)
    if not path.is_file():
        registry.reconcile_files()
    try:
        return read_records(path, max_decompressed_bytes=max_decompressed_bytes)
    except FileNotFoundError:
        raise RetrainError(f"upload {upload.id} ({upload.sha256[:16]}) has no file") from None
    except InputFormatError as exc:
        raise RetrainError(f"upload {upload.id} ({upload.sha256[:16]}) no longer parses: "
                           f"{exc}") from None


def _model_stamp(model_dir: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(Path(model_dir) / MODEL_FILE)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, RetrainError | InputFormatError | ModelLoadError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory"
    if isinstance(exc, ValueError):  # our own validation messages (e.g. too few rows for k)
        return f"invalid training setup: {exc}"
    return f"unexpected error ({type(exc).__name__}); see the retrain log"


# --- the queue of requests -----------------------------------------------------------------


def close_interrupted_runs(settings: RetrainSettings, registry: UploadRegistry) -> int:
    """Close runs whose process died (call with the lock held); returns how many.

    A run killed after its candidate became the current model is recorded as promoted (its
    uploads archived); any other is failed, and its uploads stay pending for the next run.
    """
    runs = registry.interrupted_runs()
    if not runs:
        return 0
    current_version = None
    with contextlib.suppress(ModelLoadError):
        current_version = load_model(settings.model_dir).version
    for run in runs:
        if run["version"] and run["version"] == current_version:
            registry.finish_run(run["id"], "promoted",
                                "the process ended after promoting; completed by the next run")
        else:
            registry.finish_run(run["id"], "failed",
                                f"interrupted: the retrain process (pid {run['pid']}) ended "
                                "before finishing")
    registry.reconcile_files()
    return len(runs)


def run_queued(
    settings: RetrainSettings,
    registry: UploadRegistry,
    *,
    force: bool = False,
    trigger: str = "cli",
    progress: Progress = lambda message: None,
    trainer: Trainer = train,
    lock: RetrainLock | None = None,
    lock_wait: float = LOCK_WAIT_SECONDS,
) -> list[RunResult] | None:
    """Run one retrain per queued request (``force``: at least one); None if another process
    holds the lock (it will serve the queued requests).

    After letting go of the lock it looks at the queue once more: a request queued while a
    process that had just failed to take the lock was giving up would otherwise wait for the
    next trigger. ``lock``: the caller's RetrainLock, possibly already held.
    """
    lock = lock or RetrainLock(settings.data_dir)
    if not lock.acquire(wait=lock_wait):
        progress("another retrain holds the lock; it will serve the queued requests")
        return None
    results: list[RunResult] = []
    while True:
        try:
            closed = close_interrupted_runs(settings, registry)
            if closed:
                progress(f"closed {closed} interrupted run(s)")
            while registry.take_request() or force:
                force = False
                results.append(retrain_once(settings, registry, trigger=trigger,
                                            progress=progress, trainer=trainer))
                trigger = "queued"
        finally:
            lock.release()
        if registry.state()["requests"] == 0 or not lock.acquire(wait=lock_wait):
            return results


# --- versions and rollback -----------------------------------------------------------------


def list_versions(model_dir: Path | str) -> list[dict[str, str]]:
    """Archived versions (``versions/<version>/``), oldest first by their creation time."""
    found = []
    folder = Path(model_dir) / VERSIONS_DIR
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith(".") or not (entry / MODEL_FILE).is_file():
                continue
            created = ""
            with contextlib.suppress(OSError, ValueError):
                created = json.loads((entry / CARD_FILE).read_text()).get(
                    "created_at", "")
            found.append({"version": entry.name, "created_at": created})
    return sorted(found, key=lambda v: (v["created_at"], v["version"]))


def rollback(model_dir: Path | str, data_dir: Path | str, version: str | None = None,
             *, lock_wait: float = 2.0, registry: Any = None, lock: Any = None
             ) -> RollbackResult:
    """Make an archived version current again and quarantine the uploads it did not learn
    from but the rolled-back model did.

    Default target: the version the current model replaced (its card's
    ``retraining.previous_version``), else the newest archived version created before it. The
    current model is archived first, so a rollback can itself be undone (quarantined uploads
    stay quarantined until released). The uploads are quarantined before the model is
    swapped: a crash in between leaves them set aside, never the bad model's data back in the
    pool. Holds the retrain lock, so it never races a promotion (RetrainBusy while a retrain
    runs). ``registry`` and ``lock``: another backend's (default: SQLite and the flock of
    ``data_dir``).
    """
    model_dir = Path(model_dir)
    lock = lock or RetrainLock(data_dir)
    if not lock.acquire(wait=lock_wait):
        raise RetrainBusy("a retrain is in progress; roll back when it has finished")
    try:
        current: LoadedModel | None = None
        with contextlib.suppress(ModelLoadError):
            current = load_model(model_dir)
        versions = list_versions(model_dir)
        names = {v["version"] for v in versions}
        if version is not None:
            if not _VERSION_NAME.fullmatch(version) or version not in names:
                raise UnknownVersion(f"no archived model version {version!r}")
            target = version
        else:
            target = _previous_version(current, versions)
        if current is not None and target == current.version:
            raise RetrainError(f"{target} is already the current model")
        chosen = load_model_file(model_dir / VERSIONS_DIR / target / MODEL_FILE)
        quarantined: list[str] = []
        if current is not None:
            learned = trained_uploads(current.card) - trained_uploads(chosen.card)
            quarantined = (registry or UploadRegistry(data_dir)).quarantine(learned)
            archive_model(current.pipeline, current.card, model_dir)
        save_model(chosen.pipeline, chosen.card, model_dir)
        return RollbackResult(current.version if current else None, chosen.version,
                              quarantined)
    finally:
        lock.release()


def trained_uploads(card: Mapping[str, Any]) -> set[str]:
    """SHA-256s of the uploads a model's training considered (its card records them)."""
    uploads = (card.get("training_data") or {}).get("uploads") or {}
    return {str(sha) for sha in uploads.get("sha256") or ()}


def _previous_version(current: LoadedModel | None, versions: list[dict[str, str]]) -> str:
    names = [v["version"] for v in versions]
    if current is None:
        if not names:
            raise RetrainError("no archived model version to roll back to")
        return names[-1]
    replaced = current.card.get("retraining", {}).get("previous_version")
    if replaced in names and replaced != current.version:
        return replaced
    older = [v["version"] for v in versions if v["version"] != current.version
             and v["created_at"] <= current.card.get("created_at", "")]
    if not older:
        raise RetrainError("no earlier model version to roll back to")
    return older[-1]
