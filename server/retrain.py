"""Incremental learning over HTTP, and the launcher that starts retrains (docs/LEARNING.md).

``GET /api/retrain/status`` and ``GET /api/retrain/runs`` are public and read-only.
``POST /api/retrain``, ``POST /api/models/rollback``, ``GET /api/uploads/quarantined`` and
``POST /api/uploads/<sha256>/release`` are for admins (server/admin_auth.py): ``Authorization:
Bearer $ANOMALYZE_ADMIN_TOKEN``; without a configured token they answer 404 ``disabled``.

A retrain never runs inside a request. ``RetrainLauncher`` starts ``retrain_model.py`` as a
process of its own (server/background.py) and returns at once. That
process takes the retrain lock itself, so it doesn't matter which worker launched it, or
whether two did.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from server.admin_auth import require_admin
from server.backends import get_backends, get_watch
from server.background import ScriptLauncher, start_background
from server.errors import ApiError
from server.model_holder import get_holder
from server.query_params import whole_number
from server.signals import retrain_due
from server.uploads import get_sink
from utils.model_store import DEFAULT_KIND, KINDS
from utils.registry import NotQuarantined, Registry, RetrainBusy, UnknownUpload
from utils.retraining import RetrainError, UnknownVersion, rollback

log = logging.getLogger("anomalyze.server")

bp = Blueprint("retrain", __name__)

EXTENSION_KEY = "anomalyze.retrain"
LOG_FILE = "retrain.log"
SCRIPT = Path(__file__).resolve().parents[1] / "retrain_model.py"
LAST_RUNS = 10
DEFAULT_PAGE = 20
MAX_PAGE = 100
MAX_RUN_ID = 10**18 - 1  # what server.query_params reads; SQLite's ids stay below it
_SHA256 = re.compile(r"[0-9a-f]{64}")


class RetrainLauncher(ScriptLauncher):
    """Starts ``retrain_model.py`` in the background for the app's model and data folders."""

    SCRIPT = SCRIPT

    def command(self, trigger: str) -> list[str]:
        return [self.python, str(self.script), "--model-dir", str(self.model_dir),
                "--data-dir", str(self.data_dir), "--trigger", trigger, "--nice", "10"]

    def launch(self, trigger: str) -> int | None:
        """Start a retrain process; its pid, or None if it could not be started (logged).

        The request that was queued stays queued, so a failed launch only delays the run.
        """
        pid = start_background(self.command(trigger), self.data_dir / LOG_FILE,
                               cwd=self.script.parent, name="retrain")
        if pid is not None:
            log.info("retrain process %d started (%s)", pid, trigger)
        return pid


def init_app(app: Flask) -> RetrainLauncher:
    """Attach the launcher, start it when the uploads make a retrain due (the
    ``retrain_due`` signal, server/signals.py: in any order with the uploads extension),
    and register the endpoints."""
    launcher = RetrainLauncher(app.config["MODEL_DIR"], app.config["DATA_DIR"])
    app.extensions[EXTENSION_KEY] = launcher
    retrain_due.connect(_launch_when_due, sender=app)
    app.register_blueprint(bp)
    return launcher


def _launch_when_due(app: Flask, **_extra: object) -> None:
    app.extensions[EXTENSION_KEY].launch("upload")


def get_launcher() -> RetrainLauncher:
    return current_app.extensions[EXTENSION_KEY]


def _registry() -> Registry:
    return get_sink().registry


@bp.get("/api/retrain/status")
def status() -> Response:
    """Pending uploads, the threshold, whether a retrain runs, the last runs, the versions
    (``versions`` and ``model_version``: the KDD model's, which retraining updates; the
    ``*_by_kind`` / ``model_versions`` maps: every input kind's)."""
    registry = _registry()
    counts = registry.counts()
    state = registry.state()
    current = registry.running_run()
    model_versions = {kind: _served_version(kind) for kind in KINDS}
    versions_by_kind = {kind: _versions(kind) for kind in KINDS}
    return jsonify({
        "success": True,
        "pending_uploads": counts["pending"],
        "threshold": current_app.config["RETRAIN_THRESHOLD"],
        "uploads_since_retrain": state["uploads_since_retrain"],
        "queued_requests": state["requests"],
        "running": current is not None,
        "current_run": _run_summary(current) if current else None,
        "uploads": counts,
        "feedback": registry.feedback_counts(),
        "model_version": model_versions[DEFAULT_KIND],
        "versions": versions_by_kind[DEFAULT_KIND],
        "versions_by_kind": versions_by_kind,
        "model_versions": model_versions,
        "runs_total": registry.run_count(),
        "last_runs": [_run_summary(run) for run in registry.runs(LAST_RUNS)],
    })


@bp.get("/api/retrain/runs")
def runs() -> Response:
    """Every run ever recorded, newest first, a page at a time: ``?limit=20&before=<id>``.

    ``next_before`` is the ``before`` of the next (older) page, null on the last one. Paging
    by id, not by offset, so runs recorded meanwhile do not shift the pages.
    """
    limit = whole_number(request.args, "limit", default=DEFAULT_PAGE, minimum=1,
                         maximum=MAX_PAGE)
    before = whole_number(request.args, "before", default=0, minimum=1,
                          maximum=MAX_RUN_ID) or None  # absent: from the newest run
    registry = _registry()
    page = registry.runs(limit + 1, before=before)
    more = len(page) > limit
    page = page[:limit]
    return jsonify({"success": True, "total": registry.run_count(),
                    "runs": [_run_summary(run) for run in page],
                    "next_before": page[-1]["id"] if more else None})


@bp.get("/api/uploads/quarantined")
def quarantined_uploads() -> Response:
    """The uploads set aside by rollbacks (admin: names and client addresses are private)."""
    require_admin()
    uploads = _registry().uploads(status="quarantined")
    keys = ("sha256", "original_name", "size", "rows", "has_labels", "input_kind",
            "received_at", "trusted", "client")
    return jsonify({"success": True,
                    "uploads": [{key: getattr(u, key) for key in keys} for u in uploads]})


@bp.post("/api/uploads/<sha256>/release")
def release_upload(sha256: str) -> Response:
    """Let a quarantined upload train again (from the next run on)."""
    require_admin()
    if not _SHA256.fullmatch(sha256):
        raise ApiError(400, "invalid_parameter",
                       "the upload is named by its SHA-256: 64 lowercase hex digits")
    try:
        upload = _registry().release(sha256)
    except UnknownUpload as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except NotQuarantined as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    log.info("released upload %s from quarantine", sha256[:16])
    return jsonify({"success": True, "sha256": upload.sha256, "status": upload.status})


@bp.post("/api/retrain")
def start_retrain() -> tuple[Response, int]:
    """Queue a retrain and start the process that runs it (202: it runs in the background)."""
    require_admin()
    registry = _registry()
    running = registry.running_run() is not None
    registry.request_retrain()
    get_launcher().launch("api")
    return jsonify({"success": True, "queued": True, "running": running}), 202


@bp.post("/api/models/rollback")
def rollback_model() -> Response:
    """Make an archived version of one input kind's model current again (body ``kind``,
    default "kdd"; ``version`` default: the one the current model replaced). Other kinds'
    models, and the uploads they learned from, are left as they are."""
    require_admin()
    kind, version = _requested_rollback()
    shared = get_backends()
    holder = get_holder(kind)
    try:
        if shared.models is not None:  # the pointer moves; every instance syncs to it
            previous, current, quarantined = shared.models.rollback(version, kind=kind)
            get_watch().sync_model()
        else:
            previous, current, quarantined = rollback(holder.store, _registry(), version,
                                                      kind=kind)
    except RetrainBusy:
        raise ApiError(409, "retrain_running",
                       "a retrain is in progress; roll back when it has finished") from None
    except UnknownVersion as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except RetrainError as exc:  # no earlier version, or it is already the current one
        raise ApiError(409, "conflict", str(exc)) from None
    holder.refresh(force=True)  # this worker answers with it at once; others within the
    log.info("rolled back the %s model from %s to %s, %d upload(s) quarantined",  # interval
             kind, previous, current, len(quarantined))
    return jsonify({"success": True, "previous_version": previous, "model_version": current,
                    "quarantined": quarantined})


def _served_version(kind: str) -> str | None:
    model = get_holder(kind).status()[0]
    return model.version if model is not None else None


def _versions(kind: str = DEFAULT_KIND) -> list[dict[str, str]]:
    """Every version of ``kind`` a rollback may name: the shared store's, else the kind's
    model folder's."""
    models = get_backends().models
    if models is not None:
        return models.versions(kind=kind)
    return get_holder(kind).store.versions()


def _requested_rollback() -> tuple[str, str | None]:
    """(kind, version or None) from the optional body ``{"kind": …, "version": …}``."""
    if not request.get_data(cache=True):
        return DEFAULT_KIND, None
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json",
                       'the body must be a JSON object like {"kind": "zeek", "version": "…"}')
    version = body.get("version")
    if version is not None and not isinstance(version, str):
        raise ApiError(400, "invalid_value", "version must be a string")
    kind = body.get("kind")
    if kind is None:
        kind = DEFAULT_KIND
    if not isinstance(kind, str) or kind not in KINDS:
        raise ApiError(400, "invalid_value",
                       f"kind must be one of {', '.join(KINDS)}",
                       [{"field": "kind", "message": f"unknown input kind: {str(kind)[:40]!r}"}])
    return kind, version or None


def _run_summary(run: dict) -> dict:
    keys = ("id", "started_at", "finished_at", "outcome", "reason", "metrics_before",
            "metrics_after", "version", "previous_version", "triggered_by", "uploads_used",
            "host")
    return {key: run.get(key) for key in keys}
