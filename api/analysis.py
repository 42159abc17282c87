"""The page's XHR routes: they forward work to the ML API and answer with JSON (or the CSV).

Uploads arrive as multipart (werkzeug spools large files to a temporary file) and are streamed
on to the API, never read whole into memory.
"""

from __future__ import annotations

import re
from pathlib import PurePath

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.datastructures import FileStorage

from api.api_client import get_client, iter_and_close
from api.errors import FrontendError

bp = Blueprint("analysis", __name__)


@bp.post("/analyze")
def analyze():
    """The API's JSON analysis of the uploaded file, after waking the API if it sleeps."""
    upload = _uploaded_file()
    client = get_client()
    client.wake()
    result = client.predict(upload.filename or "upload.txt", upload.stream, upload.mimetype,
                            limit=current_app.config["TABLE_LIMIT"])
    return jsonify(result)


@bp.post("/download.csv")
def download_csv():
    """The API's per-record CSV for the uploaded file, streamed through to the browser."""
    upload = _uploaded_file()
    client = get_client()
    client.wake()
    upstream = client.predict_csv(upload.filename or "upload.txt", upload.stream,
                                  upload.mimetype)
    return Response(
        iter_and_close(upstream),
        mimetype="text/csv",
        headers={"Content-Disposition":
                 f'attachment; filename="{results_filename(upload.filename)}"'},
    )


@bp.get("/service-status")
def service_status():
    """Whether the API is awake; with `?wait=1`, waits (bounded, with back-off) until it is."""
    client = get_client()
    if request.args.get("wait") == "1":
        health = client.wake()
        return jsonify({"success": True, "awake": True, "status": health.get("status", "ok"),
                        "model_version": health.get("model_version")})
    return jsonify({"success": True, **client.probe()})


@bp.get("/model-panel")
def model_panel():
    """Model card and retraining status for the page's "Model" panel."""
    client = get_client()
    model = client.model_info()
    retrain = client.retrain_status()
    return jsonify({"success": True, "model": model, "retrain": retrain,
                    "retrain_available": retrain is not None})


def results_filename(uploaded_name: str | None) -> str:
    """A header-safe download name derived from the uploaded file's name."""
    stem = PurePath(uploaded_name or "").stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:80]
    return f"{stem or 'anomalyze'}-results.csv"


def _uploaded_file() -> FileStorage:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise FrontendError(400, "missing_file", "Choose a file to analyse first.")
    return upload
