"""The signed-in analyst's XHR routes: the allow-list and feedback, forwarded to the ML API.

The API's analyst token is a frontend setting (``ANOMALYZE_API_ANALYST_TOKEN``): the browser
holds only its session cookie and CSRF token, both checked before these views run
(``analyst_required``, CSRFProtect). The API's refusals (a malformed field, a duplicate entry,
an upload it did not keep) reach the page with their status, message, field and existing id.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from api.api_client import get_client
from api.auth import analyst_required
from api.errors import FrontendError, from_api_response

bp = Blueprint("analyst_tools", __name__, url_prefix="/analyst")

MAX_BODY = 64 * 1024


def _forward(method: str, path: str, body: dict[str, Any] | None = None
             ) -> tuple[Response, int]:
    token = current_app.config.get("API_ANALYST_TOKEN")
    if not token:
        raise FrontendError(503, "analyst_tools_disabled", "The analyst tools are not set up "
                            "on this server (ANOMALYZE_API_ANALYST_TOKEN).")
    status, payload = get_client().analyst_call(method, path, token, body)
    if status in (401, 403):  # the API refuses this server's token: not the analyst's fault
        raise FrontendError(502, "analyst_token_refused", "The analysis service refused this "
                            "server's analyst token (ANOMALYZE_API_ANALYST_TOKEN).")
    if status == 404 and not _is_refusal(payload):
        raise FrontendError(503, "analyst_tools_disabled", "The analysis service does not "
                            "offer the analyst tools (set ANOMALYZE_ANALYST_TOKEN there).")
    if status >= 500:
        raise from_api_response(status, payload)
    if status >= 400:
        error = from_api_response(status, payload).to_dict()
        problems = payload.get("problems") if isinstance(payload, dict) else None
        first = problems[0] if isinstance(problems, list) and problems else {}
        if isinstance(first, dict):
            error["field"] = first.get("field") if isinstance(first.get("field"), str) else None
            existing = first.get("existing_id")
            error["existing_id"] = existing if isinstance(existing, int) else None
        return jsonify(error), status
    return jsonify(payload if isinstance(payload, dict) else {"success": True}), status


def _is_refusal(payload: Any) -> bool:
    """A 404 about the request itself (an unknown entry or upload), not a missing route."""
    return isinstance(payload, dict) and payload.get("error_type") in {
        "unknown_entry", "unknown_upload"}


def _body() -> dict[str, Any]:
    if (request.content_length or 0) > MAX_BODY:
        raise FrontendError(413, "too_large", "That request is too large.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise FrontendError(400, "invalid_json", "Send a JSON object.")
    return body


@bp.get("/allowlist")
@analyst_required
def list_entries():
    return _forward("GET", "/api/allowlist")


@bp.post("/allowlist")
@analyst_required
def add_entry():
    return _forward("POST", "/api/allowlist", _body())


@bp.delete("/allowlist/<int:entry_id>")
@analyst_required
def delete_entry(entry_id: int):
    return _forward("DELETE", f"/api/allowlist/{entry_id}")


@bp.post("/feedback")
@analyst_required
def add_feedback():
    return _forward("POST", "/api/feedback", _body())
