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

from server.admin_auth import request_is_admin
from server.alerts import alerts_from_file, alerts_from_records, ndjson_response
from server.allowlist import current_allowlist
from server.analysis import Analysis, analyse_file, analyse_records
from server.analysis_slots import analysis_slot
from server.config import megabytes, upload_limit_bytes
from server.disk_space import get_disk_space
from server.errors import ApiError, too_large
from server.json_records import parse_json_records
from server.model_holder import current_model, model_for_input, require_any_model
from server.query_params import whole_number
from server.request_log import note_request
from server.responses import csv_rows, prediction
from server.uploads import Received, UploadSink, get_sink
from utils.backend_errors import BackendUnavailable
from utils.readers import input_kind_of, iter_identity
from utils.registry import RegistryBusyError
from utils.retraining import LEARNS_FROM_UPLOADS

log = logging.getLogger("anomalyze.server")

bp = Blueprint("predict", __name__)

DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000
OUTPUT_FORMATS = ("json", "csv", "ndjson")


@bp.post("/api/predict")
def predict() -> Response:
    """Score an uploaded file (multipart field ``file``) with the model of its input kind:
    JSON summary, per-record CSV or ECS alerts as NDJSON."""
    started = time.perf_counter()
    limit = parse_limit(request.args)
    fmt = output_format(request.args)
    as_csv = fmt == "csv"
    require_any_model()  # before the upload is read: no model, no point receiving it
    trusted = request_is_admin()  # its labels may teach the model; a wrong token is a 403
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "missing_file",
                       "no file uploaded: send multipart/form-data with the field 'file'")
    sink = get_sink()
    received = sink.receive(upload)
    allowlist = current_allowlist()
    alerts = identity = None
    try:
        reading = {"threads": current_app.config["SCORING_THREADS"],
                   "max_decompressed_bytes": megabytes(current_app.config["MAX_DECOMPRESSED_MB"])}
        model = model_for_input(input_kind_of(
            received.path, max_decompressed_bytes=reading["max_decompressed_bytes"]))
        with analysis_slot():
            if fmt == "ndjson":
                analysis, alerts = alerts_from_file(model, received.path,
                                                    spool_dir=sink.incoming_dir,
                                                    allowlist=allowlist, **reading)
            else:
                analysis = analyse_file(model, received.path, 0 if as_csv else limit,
                                        overview=not as_csv, allowlist=allowlist, **reading)
        # Per-row identity is read again while the CSV streams: opened now, the file stays
        # readable after it is kept (moved) or discarded.
        identity = (identity_reader(received.path, reading["max_decompressed_bytes"])
                    if as_csv and analysis.input_kind == "zeek" else None)
        kept = keep_upload(sink, received, analysis, trusted=trusted,
                           client=request.remote_addr)
    except BaseException:
        if alerts is not None:
            alerts.close()
        if identity is not None:
            identity.close()
        raise
    finally:
        sink.discard(received)
    note_request(rows=len(analysis))
    if alerts is not None:
        return ndjson_response(alerts)
    if as_csv:
        return csv_response(analysis, identity)
    upload_summary = {"sha256": received.sha256, "duplicate": kept["duplicate"],
                      "stored": kept["stored"], "store_reason": kept["store_reason"],
                      "trusted": trusted}
    body = prediction(model, analysis, processing_time=time.perf_counter() - started,
                      upload=upload_summary)
    return jsonify(body)


@bp.post("/api/predict-json")
def predict_json() -> Response:
    """Score records sent as JSON: ``{"records": [[41 values], ...]}`` or objects by name."""
    started = time.perf_counter()
    limit = parse_limit(request.args)
    fmt = output_format(request.args)
    as_csv = fmt == "csv"
    model = current_model()
    # A JSON body is parsed in memory (several times its size as Python objects), so it
    # gets a smaller limit than a file upload, which is streamed.
    limit_mb = current_app.config["MAX_JSON_MB"]
    request.max_content_length = upload_limit_bytes(limit_mb)
    try:
        request.get_data()  # received first: a slow client must not hold an analysis slot
    except RequestEntityTooLarge:
        raise too_large(limit_mb) from None
    with analysis_slot():
        body = request.get_json(force=True, silent=True)
        if body is None:
            raise ApiError(400, "invalid_json", "the request body is not valid JSON")
        records = parse_json_records(body)
        allowlist = current_allowlist()
        if fmt == "ndjson":
            analysis, alerts = alerts_from_records(model, records, allowlist)
        else:
            analysis = analyse_records(model, records, 0 if as_csv else limit, allowlist)
    if fmt == "ndjson":
        note_request(rows=len(analysis))
        return ndjson_response(alerts)
    note_request(rows=len(analysis))
    if as_csv:
        return csv_response(analysis)
    return jsonify(prediction(model, analysis, processing_time=time.perf_counter() - started))


def keep_upload(sink: UploadSink, received: Received, analysis: Analysis, *,
                trusted: bool = False, client: str | None = None) -> dict:
    """Register the analysed upload. Not keeping it (quota reached, data folder low on space
    (server/disk_space.py), disk full, registry locked too long) must not cost the client its
    analysis: it is answered with ``stored: false`` and a ``store_reason``; failures are
    logged."""
    disk = get_disk_space()
    if disk.low():
        log.error("upload %s not kept: %s bytes free in the data folder, under the %s kept free",
                  received.sha256[:16], disk.free_bytes(), disk.min_free_bytes)
        return {"duplicate": False, "stored": False, "store_reason": "low_disk"}
    try:
        # Only input a retrain learns from counts towards the next one (docs/LEARNING.md).
        return sink.register(received, rows=len(analysis), has_labels=analysis.has_labels,
                             input_kind=analysis.input_kind, trusted=trusted, client=client,
                             counted=analysis.input_kind == LEARNS_FROM_UPLOADS)
    except BackendUnavailable as exc:  # the shared database or object store is away
        log.error("upload %s not kept: %s", received.sha256[:16], exc)
        return {"duplicate": False, "stored": False, "store_reason": exc.reason}
    except (OSError, sqlite3.Error, RegistryBusyError) as exc:
        log.error("upload %s not kept: %s: %s", received.sha256[:16], type(exc).__name__, exc)
        return {"duplicate": False, "stored": False, "store_reason": "storage_error"}


def parse_limit(args: Mapping[str, str]) -> int:
    return whole_number(args, "limit", default=DEFAULT_LIMIT, maximum=MAX_LIMIT)


def output_format(args: Mapping[str, str]) -> str:
    """``json`` (default), ``csv`` or ``ndjson`` (ECS alerts, docs/ALERTS.md)."""
    fmt = (args.get("format") or "json").lower()
    if fmt not in OUTPUT_FORMATS:
        raise ApiError(400, "invalid_parameter",
                       f"format must be json, csv or ndjson, got {fmt[:40]!r}")
    return fmt


def identity_reader(path: Path, max_decompressed_bytes: int | None = None
                    ) -> Iterator[pd.DataFrame]:
    """The upload's identity columns in row order, from a handle opened now
    (``max_decompressed_bytes`` as when the upload was analysed)."""
    handle = open(path, "rb")  # noqa: SIM115 - closed when the generator ends or is closed

    def parts() -> Iterator[pd.DataFrame]:
        with handle:
            yield from iter_identity(handle, max_decompressed_bytes=max_decompressed_bytes)

    return parts()


def csv_response(analysis: Analysis,
                 identity: Iterator[pd.DataFrame] | None = None) -> Response:
    response = Response(csv_rows(analysis, identity), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="anomalyze-results.csv"'
    return response
