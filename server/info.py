"""Service and model information: GET /health, GET /api/model-info."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify

from server.backends import get_watch
from server.disk_space import get_disk_space
from server.model_holder import get_holder
from server.predict import MODEL_VERSION_HEADER, current_model

bp = Blueprint("info", __name__)

# Model card fields passed through as stored (fractions stay fractions).
CARD_FIELDS = ("created_at", "n_models", "k_values", "feature_names", "input_kind",
               "threshold_rule", "severity_edges", "training_data", "validation_metrics",
               "library_versions")


@bp.get("/health")
def health() -> tuple[Response, int]:
    """200 while a model is loaded ("ok", or "degraded" if the file on disk is faulty), else 503.

    ``disk`` reports the data folder's free space; ``low`` means uploads are no longer kept
    (scoring goes on), which is for monitoring to act on, so it does not change the status.
    ``backends`` names the registry and store in use and whether each answered when last
    checked (server/backends.py); an unreachable one does not change the status either.
    """
    model, error = get_holder().status()
    if model is None:
        status, code = "unavailable", 503
    else:
        status, code = ("degraded" if error else "ok"), 200
    response = jsonify({
        "status": status,
        "models_loaded": len(model.detector.estimators_) if model is not None else 0,
        "model_version": model.version if model is not None else None,
        "uptime": round(time.monotonic() - current_app.config["STARTED_AT"], 1),
        "model_error": error,
        "disk": get_disk_space().status(),
        "backends": get_watch().health(),
    })
    if model is not None:
        response.headers[MODEL_VERSION_HEADER] = model.version
    return response, code


@bp.get("/api/model-info")
def model_info() -> Response:
    """What the model card says about the model in use (503 if none is loaded)."""
    model = current_model()
    body = {"success": True, "model_version": model.version}
    body |= {name: model.card.get(name) for name in CARD_FIELDS}
    body["n_models"] = len(model.detector.estimators_)
    body["model_weights"] = model.detector.model_weights_.tolist()  # also for older cards
    body["threshold"] = float(model.detector.threshold_)
    response = jsonify(body)
    response.headers[MODEL_VERSION_HEADER] = model.version
    return response
