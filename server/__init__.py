"""Anomalyze ML API: the scoring service behind the frontend (contract: docs/API.md).

``create_app`` only wires the parts together; each module owns one concern and registers
itself with ``init_app(app)``, as in Flask's tutorial app.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flask import Flask
from flask_cors import CORS

from server import (
    admin_limit,
    analysis_slots,
    backends,
    baseline,
    disk_space,
    errors,
    model_holder,
    request_log,
    retrain,
    uploads,
)
from server.analyst import bp as analyst_bp
from server.config import load_config, max_content_length
from server.info import bp as info_bp
from server.json_provider import OrjsonProvider
from server.model_holder import MODEL_VERSION_HEADER
from server.predict import bp as predict_bp
from utils.parallel import single_threaded_blas


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The app, configured from the environment (server/config.py) and then from ``config``."""
    app = Flask(__name__)
    app.config.from_mapping(load_config())
    app.config.update(DEBUG=False, PROPAGATE_EXCEPTIONS=False)
    if config:
        app.config.update(config)
    app.config["MODEL_DIR"] = Path(app.config["MODEL_DIR"])
    app.config["DATA_DIR"] = Path(app.config["DATA_DIR"])
    app.config.setdefault("MAX_CONTENT_LENGTH", None)
    if app.config["MAX_CONTENT_LENGTH"] is None:
        app.config["MAX_CONTENT_LENGTH"] = max_content_length(app.config["MAX_UPLOAD_MB"])
    app.config["STARTED_AT"] = time.monotonic()
    # Requests score on threads of their own (utils/parallel.py): BLAS's threads would only
    # compete with them. Set here, before the model is loaded and warmed up.
    single_threaded_blas()
    app.json = OrjsonProvider(app)
    app.json.sort_keys = False  # keep the documented key order

    request_log.init_app(app)
    errors.init_app(app)
    admin_limit.init_app(app)
    disk_space.init_app(app)
    shared = backends.init_app(app)  # before the model holder: it may fetch the model
    uploads.init_app(app, shared.registry)
    analysis_slots.init_app(app)
    model_holder.init_app(app)
    if app.config["CORS_ORIGINS"]:
        # Without this, browsers only let pages from the API's own origin read its answers.
        # always_send=False: Access-Control-Allow-Origin only in answer to a matching Origin
        # (by default flask-cors names a configured origin even when no Origin was sent).
        CORS(app, origins=list(app.config["CORS_ORIGINS"]),
             expose_headers=[MODEL_VERSION_HEADER], always_send=False)
    app.register_blueprint(info_bp)
    app.register_blueprint(predict_bp)
    app.register_blueprint(analyst_bp)
    retrain.init_app(app)
    baseline.init_app(app)
    return app
