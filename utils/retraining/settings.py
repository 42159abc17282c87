"""How a retrain run behaves and where it finds things, with the defaults of each knob.

The defaults here are the ones the settings table (settings/table.py) starts from; a test
checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from utils.model_store import DEFAULT_KIND, ModelStore, open_model_store

DEFAULT_TRAIN_FILE = "KDDTrain+.txt"
DEFAULT_TOLERANCE = 0.005
DEFAULT_CATEGORY_TOLERANCE = 0.02
DEFAULT_MIN_CONFIDENCE = 0.5
DEFAULT_MAX_UPLOAD_ROWS = 1_000_000
DEFAULT_MAX_ROWS_PER_UPLOAD = 2_000
DEFAULT_MAX_ROWS_PER_CLIENT = 10_000
DEFAULT_FEEDBACK_SHARE = 0.05  # analysts' false positives, per normal fit row of the file
LOCK_WAIT_SECONDS = 5.0
# The one input kind whose model learns from kept uploads. A Zeek model is a baseline of the
# analyst's network that an admin trained; an anonymous uploader's unlabeled traffic saying
# "this is normal here" is only a claim, so no Zeek upload ever trains a model.
LEARNS_FROM_UPLOADS = DEFAULT_KIND


class RetrainError(RuntimeError):
    """A run cannot go on; the message is safe to show in the status (no paths, no traces)."""


class UnknownVersion(RetrainError):
    """A rollback named a version that the model store does not keep."""


@dataclass
class RetrainSettings:
    """Where things are and how a run behaves (retrain_model.py fills it from the settings).

    ``n_clusters`` None keeps the current model's k values (tests pass small ones).
    ``train_file`` None: ``<data_dir>/<file named in the current model card>``, else
    ``<data_dir>/KDDTrain+.txt``. ``max_decompressed_bytes`` bounds reading a kept upload
    (None: utils.readers' default), as the API bounded it when it arrived. ``store``
    None: the model store on the local folder ``model_dir``.
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
    store: ModelStore | None = None

    def model_store(self) -> ModelStore:
        """The store of the model that learns from uploads (the KDD model's)."""
        if self.store is not None:
            return self.store
        return open_model_store(self.model_dir, kind=LEARNS_FROM_UPLOADS)
