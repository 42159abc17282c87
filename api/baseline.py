"""The admin's "Train a baseline for your network" section: a page and its XHR routes, which
forward to the API's baseline jobs (docs/API.md, ``/api/models/baseline``).

Only a signed-in admin uses them (``admin_required``; the CSRF token is checked before each
view). The API's admin token is a frontend setting (``ANOMALYZE_API_ADMIN_TOKEN``) sent from
here: the browser holds only its session cookie and CSRF token. The uploaded conn.logs are
streamed on to the API as they arrive (werkzeug spools them), never read whole into memory;
training runs in the API's background process, and the page polls the job.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, make_response, render_template, request

from api.api_client import get_client
from api.auth import admin_required, admin_sign_in_enabled, admin_signed_in, analyst_signed_in
from api.errors import FrontendError, from_api_response

bp = Blueprint("baseline", __name__, url_prefix="/admin/baseline")

API_JOBS = "/api/models/baseline"
MAX_FILES = 20
MAX_BODY = 64 * 1024  # a JSON request (a re-run of kept uploads)
OPTION_FIELDS = ("exclude_hosts", "exclude_ranges")
MAX_OPTION_CHARS = 32 * 1024
# Values a checkbox or a script may send for "check only".
TRUE_VALUES = frozenset({"1", "true", "on", "yes"})


@bp.get("")
def page() -> Response:
    """The section for an admin; for anyone else, what it is and how to get there (403)."""
    if admin_signed_in():
        body = render_template("baseline.html", max_upload_mb=current_app.config["MAX_UPLOAD_MB"],
                               max_files=MAX_FILES)
        response = make_response(body, 200)
    else:
        body = render_template("baseline_locked.html", signed_in=analyst_signed_in(),
                               admin_sign_in=admin_sign_in_enabled())
        response = make_response(body, 403)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/jobs")
@admin_required
def list_jobs():
    status, payload = get_client().admin_call("GET", API_JOBS, _token())
    if status == 200 and isinstance(payload, list):
        payload = {"success": True, "jobs": payload}
    return _answer(status, payload, listing=True)


@bp.post("/jobs")
@admin_required
def create_job():
    """A new job from uploaded conn.logs (multipart ``files``) or, as JSON, from uploads the
    API already keeps (``{"uploads": [sha256, ...]}``), with the same options either way."""
    client = get_client()
    if request.is_json:
        body, token = _json_body(), _token()
        client.wake()
        status, payload = client.admin_call("POST", API_JOBS, token, body)
        return _answer(status, payload)
    files = [upload for upload in request.files.getlist("files") if upload.filename]
    if not files:
        raise FrontendError(400, "missing_file", "Choose one or more Zeek conn.log files.")
    if len(files) > MAX_FILES:
        raise FrontendError(400, "too_many_files",
                            f"Choose at most {MAX_FILES} files for one baseline.")
    fields = {name: _option_text(name) for name in OPTION_FIELDS}
    fields["report_only"] = "true" if _report_only(request.form.get("report_only")) else "false"
    token = _token()
    client.wake()
    status, payload = client.admin_upload(
        API_JOBS, token, [(upload.filename or "conn.log", upload.stream, upload.mimetype)
                          for upload in files], fields)
    return _answer(status, payload)


@bp.get("/jobs/<int:job_id>")
@admin_required
def show_job(job_id: int):
    status, payload = get_client().admin_call("GET", f"{API_JOBS}/{job_id}", _token())
    if status == 200 and isinstance(payload, dict) and "job" not in payload and "id" in payload:
        payload = {"success": True, "job": payload}  # the job itself, not in an envelope
    return _answer(status, payload)


@bp.post("/jobs/<int:job_id>/promote")
@admin_required
def promote_job(job_id: int):
    status, payload = get_client().admin_call("POST", f"{API_JOBS}/{job_id}/promote",
                                              _token())
    return _answer(status, payload)


def _token() -> str:
    token = current_app.config.get("API_ADMIN_TOKEN")
    if not token:
        raise FrontendError(503, "baselines_disabled", "Baseline training is not set up on "
                            "this server (ANOMALYZE_API_ADMIN_TOKEN).")
    return token


def _answer(status: int, payload: Any, *, listing: bool = False) -> tuple[Response, int]:
    """The API's answer for the page: successes and refusals (a bad exclusion, a file that
    is not a Zeek conn.log, a job that cannot be promoted) with their status and message;
    problems of this server's setup or of the API as the frontend's own errors."""
    body = payload if isinstance(payload, dict) else {}
    error_type = body.get("error_type")
    if status in (401, 403):  # the API refuses this server's token: not the admin's fault
        raise FrontendError(502, "admin_token_refused", "The analysis service refused this "
                            "server's admin token (ANOMALYZE_API_ADMIN_TOKEN).")
    if status == 404 and (error_type == "disabled" or (listing and error_type == "not_found")):
        raise FrontendError(503, "baselines_disabled", "The analysis service does not offer "
                            "baseline training (set ANOMALYZE_ADMIN_TOKEN there).")
    if status >= 500:
        raise from_api_response(status, payload)
    if status >= 400:
        return jsonify(from_api_response(status, payload).to_dict()), status
    if not isinstance(payload, dict):
        raise FrontendError(502, "bad_gateway",
                            "The analysis service sent a response the page cannot read.")
    return jsonify(payload), status


def _json_body() -> dict[str, Any]:
    if (request.content_length or 0) > MAX_BODY:
        raise FrontendError(413, "too_large", "That request is too large.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise FrontendError(400, "invalid_json", "Send a JSON object.")
    uploads = body.get("uploads")
    if not isinstance(uploads, list) or not uploads or len(uploads) > MAX_FILES:
        raise FrontendError(400, "invalid_value",
                            f"Name 1 to {MAX_FILES} kept uploads (their SHA-256) in `uploads`.")
    return body


def _option_text(name: str) -> str:
    text = request.form.get(name, "")
    if len(text) > MAX_OPTION_CHARS:
        raise FrontendError(400, "invalid_value", f"The {name.replace('_', ' ')} list is too "
                            f"long (at most {MAX_OPTION_CHARS:,} characters).")
    return text


def _report_only(value: str | None) -> bool:
    return (value or "").strip().lower() in TRUE_VALUES
