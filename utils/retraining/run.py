"""One recorded retrain run: read the training data and the kept uploads, train a candidate,
judge it against the current model, promote it through the model store.

Only the KDD model learns from uploads, and only from KDD uploads: a Zeek model is a
baseline an admin trained (an uploader's unlabeled traffic is a claim, not a fact), so Zeek
uploads feed no model and a run refuses a model folder whose current model is not KDD.
Uploads already in a promoted model (``archived``) feed every later candidate too: each
candidate is trained from scratch and would otherwise forget them. The gate judges on rows no
anonymous uploader controls: the training file's held-out rows (which neither model fitted
on) plus held-out rows of trusted uploads. Analysts' false positives
join the fit set as normal rows (utils/retraining/feedback_rows.py); the gate still decides.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from utils.allowlist import AllowList
from utils.model_store import LoadedModel, ModelLoadError, ModelStore
from utils.readers import InputFormatError, ParsedRecords, read_records
from utils.registry import Registry, Upload
from utils.retraining.feedback_rows import FeedbackRows, feedback_cap
from utils.retraining.gate import gate, measure
from utils.retraining.selection import UploadSelection
from utils.retraining.settings import (
    DEFAULT_TRAIN_FILE,
    LEARNS_FROM_UPLOADS,
    RetrainError,
    RetrainSettings,
)
from utils.schema import FEATURE_NAMES, NORMAL_LABEL
from utils.thresholds import RULES
from utils.training import (
    TrainingResult,
    file_digest,
    row_categories,
    split_validation,
    train,
    validation_mask,
)

Progress = Callable[[str], None]
Trainer = Callable[..., TrainingResult]


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
    registry: Registry,
    *,
    trigger: str = "cli",
    progress: Progress = lambda message: None,
    trainer: Trainer = train,
) -> RunResult:
    """One recorded run: candidate, gate, promotion. Call it holding the retrain lock.

    Never raises for a failed run: the failure is recorded (``retrain_runs``) and returned,
    and model, uploads and counter stay as they were.
    """
    started = time.perf_counter()
    store = settings.model_store()
    current: LoadedModel | None = None
    with contextlib.suppress(ModelLoadError):
        current = store.current()
    run_id = registry.start_run(trigger=trigger,
                                previous_version=current.version if current else None)
    progress(f"run {run_id} started ({trigger})")
    try:
        result = _run(settings, store, registry, run_id, current, progress, trainer)
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


def _run(settings: RetrainSettings, store: ModelStore, registry: Registry, run_id: int,
         current: LoadedModel | None, progress: Progress, trainer: Trainer) -> RunResult:
    if current is None:
        current = store.current()  # raises the ModelLoadError that says why
    stamp = store.stamp()
    card = current.card
    kind = card.get("input_kind") or LEARNS_FROM_UPLOADS
    if kind != LEARNS_FROM_UPLOADS:
        raise RetrainError(
            f"the current model was trained on {kind} input, and only a {LEARNS_FROM_UPLOADS} "
            f"model learns from uploads ({kind} models come from baselines an admin trains)")
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
    cleared_rows = feedback.rows(feedback_cap(base, fraction, seed, settings.feedback_share),
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

    if store.stamp() != stamp:
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
    progress(f"promoting {version} (keeping {current.version} for rollback)")
    store.keep(candidate.pipeline, candidate.card)
    store.promote(version)
    registry.finish_run(run_id, "promoted", reason, metrics_before=before, metrics_after=after,
                        version=version)
    registry.mark_feedback_trained(feedback.used_ids, version)
    return RunResult(run_id, "promoted", reason, version, before, after)


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


def _read_upload(registry: Registry, upload: Upload,
                 max_decompressed_bytes: int | None) -> ParsedRecords:
    try:
        with registry.upload_file(upload) as path:
            return read_records(path, max_decompressed_bytes=max_decompressed_bytes)
    except FileNotFoundError:
        raise RetrainError(f"upload {upload.id} ({upload.sha256[:16]}) has no file") from None
    except InputFormatError as exc:
        raise RetrainError(f"upload {upload.id} ({upload.sha256[:16]}) no longer parses: "
                           f"{exc}") from None


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, RetrainError | InputFormatError | ModelLoadError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory"
    if isinstance(exc, ValueError):  # our own validation messages (e.g. too few rows for k)
        return f"invalid training setup: {exc}"
    return f"unexpected error ({type(exc).__name__}); see the retrain log"
