"""Service and model information: GET /health, GET /api/model-info."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from server.backends import get_watch
from server.disk_space import get_disk_space
from server.model_holder import answer_with, current_model, get_holders
from utils.model_store import DEFAULT_KIND, LoadedModel

bp = Blueprint("info", __name__)

# Model card fields passed through as stored (fractions stay fractions). ``baseline``: how
# a baseline of the analyst's network was trained and what it measured (null otherwise).
CARD_FIELDS = ("created_at", "n_models", "k_values", "feature_names", "input_kind",
               "threshold_rule", "severity_edges", "training_data", "validation_metrics",
               "baseline", "library_versions")


@bp.get("/health")
def health() -> tuple[Response, int]:
    """200 while the KDD model is loaded ("ok", or "degraded" if a model file on disk is
    faulty), else 503. The top-level model fields are the KDD model's; ``models`` has every
    input kind's version and fault. A kind without a model (no Zeek baseline trained yet) is
    normal: version and error null, status unchanged.

    ``disk`` reports the data folder's free space; ``low`` means uploads are no longer kept
    (scoring goes on), which is for monitoring to act on, so it does not change the status.
    ``backends`` names the registry and store in use and whether each answered when last
    checked (server/backends.py); an unreachable one does not change the status either.
    """
    statuses = {kind: holder.status() for kind, holder in get_holders().items()}
    model, error = statuses[DEFAULT_KIND]
    if model is None:
        status, code = "unavailable", 503
    else:
        faulty = any(fault for _, fault in statuses.values())
        status, code = ("degraded" if faulty else "ok"), 200
    response = jsonify({
        "status": status,
        "models_loaded": len(model.detector.estimators_) if model is not None else 0,
        "model_version": model.version if model is not None else None,
        "uptime": round(time.monotonic() - current_app.config["STARTED_AT"], 1),
        "model_error": error,
        "models": {kind: {"version": held.version if held is not None else None,
                          "error": fault}
                   for kind, (held, fault) in statuses.items()},
        "disk": get_disk_space().status(),
        "backends": get_watch().health(),
    })
    if model is not None:
        answer_with(model)
    return response, code


@bp.get("/api/model-info")
def model_info() -> Response:
    """What the model cards say: the KDD model's fields at the top level (503 if it is not
    loaded), and under ``models`` the same fields for every input kind (null for a kind
    without a model)."""
    model = current_model()
    body: dict[str, Any] = {"success": True, **model_fields(model)}
    body["models"] = {DEFAULT_KIND: model_fields(model)}
    for kind, holder in get_holders().items():
        if kind != DEFAULT_KIND:
            held = holder.status()[0]
            body["models"][kind] = model_fields(held) if held is not None else None
    return jsonify(body)


def model_fields(model: LoadedModel) -> dict[str, Any]:
    """One model's version, card fields, ensemble weights and threshold."""
    fields: dict[str, Any] = {"model_version": model.version}
    fields |= {name: model.card.get(name) for name in CARD_FIELDS}
    fields["input_kind"] = model.card.get("input_kind") or DEFAULT_KIND
    fields["n_models"] = len(model.detector.estimators_)
    fields["model_weights"] = model.detector.model_weights_.tolist()  # also for older cards
    fields["threshold"] = float(model.detector.threshold_)
    return fields
