"""Rolling back: make an earlier model version of one input kind current again, and set aside
the uploads that only the abandoned version learned from (``quarantined``: they feed no later
run unless an admin releases them).

Each input kind has its own versions (utils.model_store.kinds), so a rollback touches one
kind's model only. Only the KDD model learns from uploads; a Zeek model is a baseline an
admin trained, so rolling one back quarantines nothing.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from utils.model_store import (
    DEFAULT_KIND,
    LoadedModel,
    ModelLoadError,
    ModelStore,
    check_kind,
    open_model_store,
)
from utils.registry import Registry, RetrainBusy, open_registry
from utils.retraining.settings import LEARNS_FROM_UPLOADS, RetrainError, UnknownVersion

_VERSION_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")


class RollbackResult(NamedTuple):
    previous_version: str | None
    model_version: str
    quarantined: list[str]  # SHA-256s of the uploads set aside by this rollback


def rollback(store: ModelStore | Path | str, registry: Registry | Path | str,
             version: str | None = None, *, kind: str = DEFAULT_KIND,
             lock_wait: float = 2.0) -> RollbackResult:
    """Make an archived version of ``kind``'s model current again and, for the KDD model,
    quarantine the uploads it did not learn from but the rolled-back model did.

    Default target: the version the current model replaced (its card's
    ``retraining.previous_version``), else the newest archived version created before it. The
    current model is archived first, so a rollback can itself be undone (quarantined uploads
    stay quarantined until released). The uploads are quarantined before the model is
    swapped: a crash in between leaves them set aside, never the bad model's data back in the
    pool. Holds the retrain lock, so it never races a promotion (RetrainBusy while a retrain
    runs). A folder for ``store`` (the model folder: ``kind``'s own is found in it) or
    ``registry`` means its embedded backend.
    """
    check_kind(kind)
    if isinstance(store, Path | str):
        store = open_model_store(store, kind=kind)
    if isinstance(registry, Path | str):
        registry = open_registry(registry)
    lock = registry.retrain_lock()
    if not lock.acquire(wait=lock_wait):
        raise RetrainBusy("a retrain is in progress; roll back when it has finished")
    try:
        current: LoadedModel | None = None
        with contextlib.suppress(ModelLoadError):
            current = store.current()
        versions = store.versions()
        names = {v["version"] for v in versions}
        if version is not None:
            if not _VERSION_NAME.fullmatch(version) or version not in names:
                raise UnknownVersion(f"no archived model version {version!r}")
            target = version
        else:
            target = _previous_version(current, versions)
        if current is not None and target == current.version:
            raise RetrainError(f"{target} is already the current model")
        chosen = store.load_version(target)
        quarantined: list[str] = []
        if current is not None and kind == LEARNS_FROM_UPLOADS:
            learned = trained_uploads(current.card) - trained_uploads(chosen.card)
            quarantined = registry.quarantine(learned)
        store.promote(target)
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
