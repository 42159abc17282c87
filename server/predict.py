"""Prediction endpoints: POST /api/predict (an uploaded file), POST /api/predict-json."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas as pd
from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from server.analysis import Analysis, analyse_file, analyse_records
from server.config import upload_limit_bytes
from server.errors import ApiError, too_large
from server.json_records import parse_json_records
from server.model_holder import ModelUnavailable, get_holder
from server.request_log import note_request
from server.responses import csv_rows, prediction
from server.uploads import Received, UploadSink, get_sink
from utils.model_store import LoadedModel
from utils.preprocessing import iter_identity
from utils.upload_registry import RegistryBusyError

log = logging.getLogger("anomalyze.server")

bp = Blueprint("predict", __name__)

DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000
MODEL_VERSION_HEADER = "X-Model-Version"


@bp.post("/api/predict")
def predict() -> Response:
    """Score an uploaded file (multipart field ``file``): JSON summary or per-record CSV."""
    started = time.perf_counter()
    limit = parse_limit(request.args)
    as_csv = wants_csv(request.args)
    model = current_model()  # before the upload is read: no model, no point receiving it
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "missing_file",
                       "no file uploaded: send multipart/form-data with the field 'file'")
    sink = get_sink()
    received = sink.receive(upload)
    try:
        analysis = analyse_file(model, received.path, 0 if as_csv else limit)
        # Per-row identity is read again while the CSV streams: opened now, the file stays
        # readable after it is kept (moved) or discarded.
        identity = (identity_reader(received.path)
                    if as_csv and analysis.input_kind == "zeek" else None)
        kept = keep_upload(sink, received, analysis)
    finally:
        sink.discard(received)
    note_request(rows=len(analysis))
    if as_csv:
        return csv_response(model, analysis, identity)
    upload_summary = {"sha256": received.sha256, "duplicate": kept["duplicate"],
                      "stored": kept["stored"]}
    body = prediction(model, analysis, processing_time=time.perf_counter() - started,
                      upload=upload_summary)
    return json_response(model, body)


@bp.post("/api/predict-json")
def predict_json() -> Response:
    """Score records sent as JSON: ``{"records": [[41 values], ...]}`` or objects by name."""
    started = time.perf_counter()
    limit = parse_limit(request.args)
    as_csv = wants_csv(request.args)
    model = current_model()
    # A JSON body is parsed in memory (several times its size as Python objects), so it
    # gets a smaller limit than a file upload, which is streamed.
    limit_mb = current_app.config["MAX_JSON_MB"]
    request.max_content_length = upload_limit_bytes(limit_mb)
    try:
        body = request.get_json(force=True, silent=True)
    except RequestEntityTooLarge:
        raise too_large(limit_mb) from None
    if body is None:
        raise ApiError(400, "invalid_json", "the request body is not valid JSON")
    records = parse_json_records(body)
    analysis = analyse_records(model, records, 0 if as_csv else limit)
    note_request(rows=len(analysis))
    if as_csv:
        return csv_response(model, analysis)
    return json_response(model, prediction(
        model, analysis, processing_time=time.perf_counter() - started))


def keep_upload(sink: UploadSink, received: Received, analysis: Analysis) -> dict[str, bool]:
    """Register the analysed upload. Failing to keep it (disk full, registry locked too long)
    must not cost the client its analysis: it is logged and answered with ``stored: false``."""
    try:
        return sink.register(received, rows=len(analysis), has_labels=analysis.has_labels,
                             input_kind=analysis.input_kind)
    except (OSError, sqlite3.Error, RegistryBusyError) as exc:
        log.error("upload %s not kept: %s: %s", received.sha256[:16], type(exc).__name__, exc)
        return {"duplicate": False, "stored": False}


def parse_limit(args: Mapping[str, str]) -> int:
    raw = args.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = -1
    if not 0 <= limit <= MAX_LIMIT:
        raise ApiError(400, "invalid_parameter",
                       f"limit must be a whole number from 0 to {MAX_LIMIT}, got {raw[:40]!r}")
    return limit


def wants_csv(args: Mapping[str, str]) -> bool:
    fmt = (args.get("format") or "json").lower()
    if fmt not in ("json", "csv"):
        raise ApiError(400, "invalid_parameter", f"format must be json or csv, got {fmt[:40]!r}")
    return fmt == "csv"


def current_model() -> LoadedModel:
    """The model for this whole request (a reload meanwhile does not affect it)."""
    try:
        model = get_holder().current()
    except ModelUnavailable as exc:
        raise ApiError(503, "model_unavailable", f"no model is loaded: {exc}") from None
    note_request(model_version=model.version)
    return model


def json_response(model: LoadedModel, body: dict) -> Response:
    response = jsonify(body)
    response.headers[MODEL_VERSION_HEADER] = model.version
    return response


def identity_reader(path: Path) -> Iterator[pd.DataFrame]:
    """The upload's identity columns in row order, from a handle opened now."""
    handle = open(path, "rb")  # noqa: SIM115 - closed when the generator ends or is closed

    def parts() -> Iterator[pd.DataFrame]:
        with handle:
            yield from iter_identity(handle)

    return parts()


def csv_response(model: LoadedModel, analysis: Analysis,
                 identity: Iterator[pd.DataFrame] | None = None) -> Response:
    response = Response(csv_rows(analysis, identity), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="anomalyze-results.csv"'
    response.headers[MODEL_VERSION_HEADER] = model.version
    return response
