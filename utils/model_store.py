"""Saving and loading the model: one joblib file plus a human-readable model card.

joblib runs code when it loads a file, so the server loads models only from its own model
folder, never from an upload. A model is only safe with the scikit-learn version that wrote it:
the card records the versions and ``load_model`` refuses a mismatch with a clear message.

Writes never leave a half-written model behind: every file goes to a temp path in the same
folder, is flushed to disk, then renamed into place (``os.replace`` is atomic on POSIX). The
joblib file is the source of truth; it carries its own copy of the card.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.pipeline import Pipeline

MODEL_FILE = "model.joblib"
CARD_FILE = "model_card.json"
VERSIONS_DIR = "versions"
ENVELOPE_FORMAT = "anomalyze-model/1"


class ModelLoadError(RuntimeError):
    """The model on disk cannot be used (missing, corrupt, or written by another version)."""


@dataclass(frozen=True)
class LoadedModel:
    pipeline: Pipeline
    card: dict
    path: Path

    @property
    def version(self) -> str:
        return str(self.card["model_version"])

    @property
    def detector(self):
        return self.pipeline[-1]

    @property
    def features(self):
        return self.pipeline[0]


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "joblib": joblib.__version__,
    }


def new_version(created_at: datetime, digest: str) -> str:
    return f"{created_at.strftime('%Y%m%dT%H%M%SZ')}-{digest[:8]}"


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file beside ``path``, fsync, rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the model from other users and git
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dump_envelope(pipeline: Pipeline, card: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o644)
    os.close(fd)
    try:
        joblib.dump({"format": ENVELOPE_FORMAT, "card": card, "pipeline": pipeline}, tmp,
                    compress=3)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def card_json(card: dict) -> bytes:
    return (json.dumps(card, indent=2, sort_keys=False) + "\n").encode()


def save_model(pipeline: Pipeline, card: dict, model_dir: Path, *, archive: bool = False) -> Path:
    """Make ``pipeline`` the current model in ``model_dir`` (atomically).

    With ``archive`` the same files are also kept under ``versions/<version>/`` for rollback.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    if archive:
        archive_model(pipeline, card, model_dir)
    _dump_envelope(pipeline, card, model_dir / MODEL_FILE)
    atomic_write_bytes(model_dir / CARD_FILE, card_json(card))
    return model_dir / MODEL_FILE


def archive_model(pipeline: Pipeline, card: dict, model_dir: Path) -> Path:
    """Write ``versions/<version>/`` via a temp folder renamed into place."""
    target = Path(model_dir) / VERSIONS_DIR / str(card["model_version"])
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=target.parent))
    try:
        _dump_envelope(pipeline, card, tmp / MODEL_FILE)
        atomic_write_bytes(tmp / CARD_FILE, card_json(card))
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_model(model_dir: Path | str) -> LoadedModel:
    """Load the current model of ``model_dir``; raise ModelLoadError with advice if unusable."""
    model_dir = Path(model_dir)
    path = model_dir / MODEL_FILE
    if not path.is_file():
        raise ModelLoadError(f"no model file {MODEL_FILE} in the model folder; run `make train`")
    card_path = model_dir / CARD_FILE
    if card_path.is_file():
        # the envelope's own card is checked below; an unreadable JSON copy is informational
        with contextlib.suppress(ValueError, KeyError, TypeError):
            _check_versions(json.loads(card_path.read_text()))
    return load_model_file(path)


def load_model_file(path: Path) -> LoadedModel:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", sklearn.exceptions.InconsistentVersionWarning)
            envelope = joblib.load(path)
    except sklearn.exceptions.InconsistentVersionWarning as exc:
        raise ModelLoadError(
            f"the model was written by scikit-learn {exc.original_sklearn_version}, this is "
            f"{sklearn.__version__}; retrain it with `make train`") from None
    except Exception as exc:  # corrupt, truncated, or not a joblib file at all
        raise ModelLoadError(
            f"the model file {path.name} is corrupt or unreadable ({type(exc).__name__}); "
            "restore it from git or retrain with `make train`") from None
    if not isinstance(envelope, dict) or envelope.get("format") != ENVELOPE_FORMAT:
        raise ModelLoadError(f"{path.name} is not an Anomalyze model ({ENVELOPE_FORMAT})")
    card = envelope["card"]
    _check_versions(card)
    return LoadedModel(pipeline=envelope["pipeline"], card=card, path=path)


def _check_versions(card: dict) -> None:
    written = card.get("library_versions", {}).get("scikit-learn")
    if written and written != sklearn.__version__:
        raise ModelLoadError(
            f"the model was written by scikit-learn {written}, this is {sklearn.__version__}; "
            "install the pinned requirements or retrain with `make train`")
