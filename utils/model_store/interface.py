"""What the rest of Anomalyze asks of a model store, wherever the models are kept.

A store keeps every model version it is given, serves one of them as the current model, and
makes another current in one step (a promotion after retraining, or a rollback to an earlier
version; the store does not know which). The embedded backend is a local folder
(utils/model_store/local.py); an object-storage backend implements the same protocol with
the "current" pointer in the registry's database. Callers get one from
``utils.model_store.open_model_store`` and never name a backend.

Deciding *which* version to roll back to, and quarantining the uploads the abandoned version
learned from, is the learning code's business (utils/retraining/rollback.py): the store only
promotes.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sklearn.pipeline import Pipeline


class ModelLoadError(RuntimeError):
    """The model cannot be used (missing, corrupt, or written by another version)."""


@dataclass(frozen=True)
class LoadedModel:
    pipeline: Pipeline
    card: dict
    path: Path

    @property
    def version(self) -> str:
        return str(self.card["model_version"])

    @property
    def detector(self) -> Any:
        return self.pipeline[-1]

    @property
    def features(self) -> Any:
        return self.pipeline[0]


@runtime_checkable
class ModelStore(Protocol):
    """Model versions, one of them current. Safe to use from several processes at once."""

    def current(self) -> LoadedModel:
        """The current model; ModelLoadError (saying why, never a path) if there is none."""
        ...

    def stamp(self) -> Hashable | None:
        """A cheap token that changes whenever another model becomes current (None: no
        current model); servers poll it to hot-swap, a run compares it before promoting."""
        ...

    def keep(self, pipeline: Pipeline, card: dict) -> str:
        """Write a version (named by ``card["model_version"]``) without making it current;
        keeping a version twice is a no-op. Returns the version."""
        ...

    def promote(self, version: str) -> LoadedModel:
        """Make a kept version current, atomically: readers see the old model or the new,
        never half. The model it replaces is kept first, so it can be promoted back.
        ModelLoadError if the version is not kept or unusable."""
        ...

    def load_version(self, version: str) -> LoadedModel:
        """A kept version (ModelLoadError if there is no such version or it is unusable)."""
        ...

    def versions(self) -> list[dict[str, str]]:
        """Kept versions as ``{"version", "created_at"}``, oldest first by creation time."""
        ...
