"""One model as one joblib file: the fitted pipeline plus its model card, in an envelope.

joblib runs code when it loads a file, so models are loaded only from the store's own
locations, never from an upload. A model is only safe with the scikit-learn version that wrote
it: the card records the versions and loading refuses a mismatch with a clear message. The
joblib file is the source of truth; the JSON card beside it is for people.
"""

from __future__ import annotations

import json
import platform
import warnings
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.pipeline import Pipeline

from utils.durable_files import atomic_write
from utils.model_store.interface import LoadedModel, ModelLoadError

ENVELOPE_FORMAT = "anomalyze-model/1"


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


def card_json(card: dict) -> bytes:
    return (json.dumps(card, indent=2, sort_keys=False) + "\n").encode()


def dump_envelope(pipeline: Pipeline, card: dict, path: Path) -> None:
    """Write the model file atomically (utils.durable_files.atomic_write)."""
    envelope = {"format": ENVELOPE_FORMAT, "card": card, "pipeline": pipeline}
    atomic_write(path, lambda tmp: joblib.dump(envelope, tmp, compress=3))


def load_model_file(path: Path) -> LoadedModel:
    """The model in one envelope file; ModelLoadError with advice if it is unusable."""
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
    check_versions(card)
    return LoadedModel(pipeline=envelope["pipeline"], card=card, path=path)


def check_versions(card: dict) -> None:
    """ModelLoadError if the card says another scikit-learn version wrote the model."""
    written = card.get("library_versions", {}).get("scikit-learn")
    if written and written != sklearn.__version__:
        raise ModelLoadError(
            f"the model was written by scikit-learn {written}, this is {sklearn.__version__}; "
            "install the pinned requirements or retrain with `make train`")
