"""Baselines from the web: an admin sends a quiet period of their network's Zeek conn.logs and
the service trains a Zeek model of that network in the background (docs/API.md, "Baselines").

``POST /api/models/baseline`` (multipart ``files``, or JSON naming kept uploads by SHA-256)
checks every file is a readable Zeek conn.log, keeps it as a trusted upload (once per
content, within the upload limits), records a job in the registry and starts
``train_model.py --job ID`` (server/background.py); it answers 202 with the job at once.
``GET /api/models/baseline[/<id>]`` shows the jobs, ``POST /api/models/baseline/<id>/promote``
makes a held job's model current. Every route is for admins (server/admin_auth.py); without a
configured token they answer 404 ``disabled``. What the process does: utils/baseline/jobs.py.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from server.admin_auth import require_admin
from server.analysis_slots import analysis_slot
from server.backends import get_backends, get_watch
from server.background import ScriptLauncher, start_background
from server.config import megabytes
from server.disk_space import get_disk_space
from server.errors import ApiError, from_input_error
from server.uploads import Received, UploadSink, get_sink
from utils.baseline.jobs import JobNotHeld, job_log, parse_options, promote_held_job
from utils.model_store import ModelLoadError
from utils.readers import InputFormatError, iter_record_chunks
from utils.registry import Registry, RetrainBusy
from utils.registry.baseline_jobs import DEFAULT_LIST, HOST, public_job

log = logging.getLogger("anomalyze.server")

bp = Blueprint("baseline", __name__)

EXTENSION_KEY = "anomalyze.baseline"
SCRIPT = Path(__file__).resolve().parents[1] / "train_model.py"
FILES_FIELD = "files"
MAX_FILES = 20
KIND = "zeek"
MAX_JOB_ID = 10**18 - 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


class BaselineLauncher(ScriptLauncher):
    """Starts ``train_model.py --job ID`` in the background for the app's folders."""

    SCRIPT = SCRIPT

    def command(self, job_id: int) -> list[str]:
        return [self.python, str(self.script), "--job", str(int(job_id)), "--model-dir",
                str(self.model_dir), "--data-dir", str(self.data_dir)]

    def launch(self, job_id: int) -> int | None:
        """Start the job's process; its pid, or None if it could not be started (logged)."""
        pid = start_background(self.command(job_id), job_log(self.data_dir, job_id),
                               cwd=self.script.parent, name="baseline")
        if pid is not None:
            log.info("baseline job %d: process %d started", job_id, pid)
        return pid


def init_app(app: Flask) -> BaselineLauncher:
    launcher = BaselineLauncher(app.config["MODEL_DIR"], app.config["DATA_DIR"])
    app.extensions[EXTENSION_KEY] = launcher
    app.register_blueprint(bp)
    return launcher


def get_launcher() -> BaselineLauncher:
    return current_app.extensions[EXTENSION_KEY]


def _registry() -> Registry:
    return get_sink().registry


@bp.post("/api/models/baseline")
def create_job() -> tuple[Response, int]:
    """Queue a baseline job on the files sent (or kept uploads named) and start it: 202."""
    require_admin()
    if request.mimetype == "application/json":
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json", 'the body must be a JSON object like '
                           '{"uploads": ["<sha256>", …], "report_only": false}')
        options = _options(body)
        sha256s = _kept_uploads(body.get("uploads"))
    else:
        request.file_fields = {FILES_FIELD: MAX_FILES}  # each file spooled to disk
        options = _options(request.form)
        sha256s = _receive_files(get_sink())
    registry = _registry()
    job_id = registry.create_baseline_job(sha256s, options)
    pid = get_launcher().launch(job_id)
    if pid is None:
        registry.update_baseline_job(job_id, status="failed", stage="failed",
                                     reason="the server could not start the training "
                                            "process; see its log")
        raise ApiError(503, "unavailable", f"baseline job {job_id} could not be started; "
                       "the server's log says why")
    registry.update_baseline_job(job_id, only_if="queued", pid=pid, host=HOST)
    return jsonify({"success": True, "job": public_job(registry.baseline_job(job_id))}), 202


@bp.get("/api/models/baseline")
def list_jobs() -> Response:
    """The newest baseline jobs, newest first."""
    require_admin()
    return jsonify({"success": True, "jobs": [public_job(job) for job in
                                              _registry().baseline_jobs(DEFAULT_LIST)]})


@bp.get("/api/models/baseline/<int:job_id>")
def show_job(job_id: int) -> Response:
    require_admin()
    return jsonify({"success": True, "job": public_job(_job(job_id))})


@bp.post("/api/models/baseline/<int:job_id>/promote")
def promote_job(job_id: int) -> Response:
    """Make a held job's model the current Zeek model (the admin judged it clean)."""
    require_admin()
    _job(job_id)
    backends = get_backends()
    try:
        job = promote_held_job(_registry(), job_id, model_dir=current_app.config["MODEL_DIR"],
                               data_dir=current_app.config["DATA_DIR"], models=backends.models)
    except JobNotHeld as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except RetrainBusy:
        raise ApiError(409, "retrain_running", "a retrain or rollback is in progress; promote "
                       "the baseline when it has finished") from None
    except ModelLoadError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    if backends.models is not None:
        get_watch().sync_model()
    log.info("baseline job %d: %s promoted by an admin", job_id, job["version"])
    return jsonify({"success": True, "model_version": job["version"], "input_kind": KIND})


def _job(job_id: int) -> dict[str, Any]:
    job = _registry().baseline_job(job_id) if job_id <= MAX_JOB_ID else None
    if job is None:
        raise ApiError(404, "not_found", f"no baseline job {job_id}")
    return job


def _options(source: Mapping[str, Any]) -> dict[str, Any]:
    """The job's options from the form or the JSON body; 400 ``invalid_value`` naming the
    bad host, range or flag."""
    report_only = source.get("report_only", False)
    if isinstance(report_only, str):
        flag = report_only.strip().lower()
        if flag not in _TRUE | _FALSE:
            raise ApiError(400, "invalid_value",
                           f"report_only must be true or false, got {report_only[:40]!r}")
        report_only = flag in _TRUE
    elif not isinstance(report_only, bool):
        raise ApiError(400, "invalid_value", "report_only must be true or false")
    hosts, ranges = source.get("exclude_hosts"), source.get("exclude_ranges")
    for name, value in (("exclude_hosts", hosts), ("exclude_ranges", ranges)):
        if value is not None and not isinstance(value, str | list):
            raise ApiError(400, "invalid_value",
                           f"{name} must be text (one item per line) or a list")
    try:
        return parse_options(hosts, ranges, report_only)
    except ValueError as exc:
        raise ApiError(400, "invalid_value", str(exc)) from None


def _kept_uploads(value: Any) -> list[str]:
    """The SHA-256s of kept Zeek uploads a JSON body names (400/404 naming the bad one)."""
    if (not isinstance(value, list) or not value
            or not all(isinstance(item, str) for item in value)):
        raise ApiError(400, "invalid_value",
                       "uploads must be a list of one or more SHA-256s of kept uploads")
    if len(value) > MAX_FILES:
        raise ApiError(400, "invalid_value", f"a baseline takes at most {MAX_FILES} files")
    registry = _registry()
    wanted = []
    for sha256 in value:
        sha256 = sha256.strip().lower()
        if not _SHA256.fullmatch(sha256):
            raise ApiError(400, "invalid_value",
                           f"{sha256[:70]!r} is not a SHA-256 (64 hex digits)")
        upload = registry.find(sha256)
        if upload is None:
            raise ApiError(404, "not_found", f"no kept upload has SHA-256 {sha256}")
        if upload.input_kind != KIND:
            raise ApiError(400, "input_kind", _not_zeek(upload.original_name,
                                                        upload.input_kind))
        if sha256 not in wanted:
            wanted.append(sha256)
    return wanted


def _receive_files(sink: UploadSink) -> list[str]:
    """Receive, check and keep the files sent; their SHA-256s. Nothing is kept unless every
    file is a readable Zeek conn.log."""
    files = request.files.getlist(FILES_FIELD)
    if not files:
        raise ApiError(400, "missing_file", "no file uploaded: send multipart/form-data with "
                       f"one or more Zeek conn.logs in the field '{FILES_FIELD}'")
    if len(files) > MAX_FILES or len(request.files) > len(files):
        raise ApiError(400, "invalid_parameter", f"send at most {MAX_FILES} files, all in "
                       f"the field '{FILES_FIELD}'")
    received = [sink.receive(upload) for upload in files]
    try:
        limit = megabytes(current_app.config["MAX_DECOMPRESSED_MB"])
        with analysis_slot():
            checked = [_check_zeek(item, limit) for item in received]
        disk = get_disk_space()
        if disk.low():
            log.error("baseline not kept: %s bytes free in the data folder, under the %s "
                      "kept free", disk.free_bytes(), disk.min_free_bytes)
            raise ApiError(507, "insufficient_storage", "the server's data folder is low on "
                           "space, so the baseline's files cannot be kept; try again later")
        for item, (rows, has_labels) in zip(received, checked, strict=True):
            kept = sink.register(item, rows, has_labels, KIND, trusted=True,
                                 client=request.remote_addr, counted=False)
            if not (kept["stored"] or kept["duplicate"]):
                raise ApiError(507, "insufficient_storage",
                               f"{item.original_name or 'a file'} was not kept "
                               f"({kept['store_reason']}): the upload quota is used up")
    finally:
        for item in received:
            sink.discard(item)
    return list(dict.fromkeys(item.sha256 for item in received))


def _check_zeek(item: Received, max_decompressed_bytes: int) -> tuple[int, bool]:
    """Rows and whether it has labels, if the whole file reads as a Zeek conn.log; else 400
    (413 past the decompressed limit) naming the file, and the line and column."""
    name = item.original_name or "the file"
    rows, has_labels = 0, False
    try:
        for chunk in iter_record_chunks(item.path, max_decompressed_bytes=max_decompressed_bytes):
            if chunk.input_kind != KIND:
                raise ApiError(400, "input_kind", _not_zeek(name, chunk.input_kind))
            rows += len(chunk)
            has_labels = has_labels or chunk.has_labels
    except InputFormatError as exc:
        error = from_input_error(exc)
        raise ApiError(error.status, error.error_type, f"{name}: {error.message}",
                       [{"file": name, **problem} for problem in error.problems]) from None
    return rows, has_labels


def _not_zeek(name: str, kind: str) -> str:
    what = "KDD records" if kind == "kdd" else f"{kind} input"
    return (f"{name} holds {what}; a baseline is trained from Zeek conn.logs of your own "
            "network (TSV or JSON, plain or gzip)")
