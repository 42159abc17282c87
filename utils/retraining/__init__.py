"""Incremental learning: which upload rows a candidate learns from, the gate that promotes it
only if it is not worse, the queue of runs, and rollback (docs/LEARNING.md).

Everything here reaches kept uploads through a registry (utils.registry) and models through a
model store (utils.model_store), never through files directly.
"""

from utils.retraining.feedback_rows import FeedbackRows
from utils.retraining.gate import GATE_CATEGORIES, gate, measure, pipeline_scores
from utils.retraining.queued_runs import close_interrupted_runs, run_queued
from utils.retraining.rollback import RollbackResult, rollback, trained_uploads
from utils.retraining.run import RunResult, retrain_once, rows_digest
from utils.retraining.selection import COUNT_KEYS, UploadSelection
from utils.retraining.settings import (
    DEFAULT_CATEGORY_TOLERANCE,
    DEFAULT_FEEDBACK_SHARE,
    DEFAULT_MAX_ROWS_PER_CLIENT,
    DEFAULT_MAX_ROWS_PER_UPLOAD,
    DEFAULT_MAX_UPLOAD_ROWS,
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_TOLERANCE,
    DEFAULT_TRAIN_FILE,
    LEARNS_FROM_UPLOADS,
    LOCK_WAIT_SECONDS,
    RetrainError,
    RetrainSettings,
    UnknownVersion,
)

__all__ = [
    "COUNT_KEYS", "DEFAULT_CATEGORY_TOLERANCE", "DEFAULT_FEEDBACK_SHARE",
    "DEFAULT_MAX_ROWS_PER_CLIENT", "DEFAULT_MAX_ROWS_PER_UPLOAD", "DEFAULT_MAX_UPLOAD_ROWS",
    "DEFAULT_MIN_CONFIDENCE", "DEFAULT_TOLERANCE", "DEFAULT_TRAIN_FILE", "GATE_CATEGORIES",
    "LEARNS_FROM_UPLOADS", "LOCK_WAIT_SECONDS", "FeedbackRows", "RetrainError",
    "RetrainSettings", "RollbackResult", "RunResult", "UnknownVersion", "UploadSelection",
    "close_interrupted_runs", "gate", "measure", "pipeline_scores", "retrain_once", "rollback",
    "rows_digest", "run_queued", "trained_uploads",
]
