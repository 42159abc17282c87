"""Every failure the page can meet, as one JSON shape with a sentence a person can act on.

The page shows `error` (and the `problems` list) as text; it never sees a raw API body, a
requests exception or a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from contract.json_errors import JsonError

MAX_PROBLEMS = 20
MAX_LOGGED = 500  # characters of an upstream message written to the log

log = logging.getLogger("anomalyze.frontend")

# Shown when the API's error body carries no usable message.
GENERIC_MESSAGES: dict[int, str] = {
    400: "The file could not be analysed: its format was not recognised.",
    404: "The analysis service does not offer this feature.",
    413: "The file is larger than the analysis service accepts.",
    503: "The analysis service is not ready (no model is loaded). Please try again later.",
    507: "The analysis service has no room to receive the file right now. "
         "Please try again later.",
}


class FrontendError(JsonError):
    """A failure with the HTTP status and readable message the page should get."""


def from_api_response(status: int, payload: Any) -> FrontendError:
    """The page's error for an API error response (`payload` is its parsed JSON, or None).

    4xx, 503 and 507 keep their status; other server failures become 502, because for the
    browser the fault is upstream of the frontend. A 502 says only that: whatever the API
    sent (a stack trace, a proxy's page, a path) goes to the log, never to the page.
    """
    body = payload if isinstance(payload, dict) else {}
    error_type = body.get("error_type") if isinstance(body.get("error_type"), str) else None
    message = body.get("error") if isinstance(body.get("error"), str) else None
    if status < 500 or status == 503:
        default = GENERIC_MESSAGES.get(
            status, f"The analysis service refused the request (HTTP {status}).")
        if status == 503 and message:
            message = f"The analysis service is not ready: {message}"
        return FrontendError(status, error_type or f"http_{status}", message or default,
                             _clean_problems(body.get("problems")))
    if status == 507:
        return FrontendError(507, "insufficient_storage", GENERIC_MESSAGES[507])
    log.warning("analysis service answered HTTP %d (error_type %r): %r", status, error_type,
                (message or "")[:MAX_LOGGED])
    return FrontendError(
        502, "bad_gateway",
        f"The analysis service failed while handling the file (HTTP {status}). "
        "Please try again; if it keeps failing, the service's operators have the details.")


def _clean_problems(problems: Any) -> list[dict[str, Any]]:
    """At most MAX_PROBLEMS entries, each reduced to the fields the page renders."""
    if not isinstance(problems, list):
        return []
    cleaned = []
    for item in problems[:MAX_PROBLEMS]:
        if not isinstance(item, dict):
            continue
        line, column, message = item.get("line"), item.get("column"), item.get("message")
        cleaned.append({
            "line": line if isinstance(line, int) and not isinstance(line, bool) else None,
            "column": str(column) if column is not None else None,
            "message": str(message) if message is not None else "",
        })
    return cleaned


def too_large(max_upload_mb: float) -> FrontendError:
    return FrontendError(413, "too_large",
                         f"The file is larger than the {max_upload_mb:g} MB upload limit.")


def init_app(app: Flask) -> None:
    """JSON errors for the page's XHR routes; a short HTML page for people browsing."""

    @app.errorhandler(FrontendError)
    def _frontend_error(error: FrontendError):
        return jsonify(error.to_dict()), error.status

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_error: RequestEntityTooLarge):
        return _frontend_error(too_large(app.config["MAX_UPLOAD_MB"]))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if request.method == "GET" and request.accept_mimetypes.accept_html:
            return render_template("error.html", code=error.code, name=error.name), error.code
        error_type = (error.name or "error").lower().replace(" ", "_")
        return _frontend_error(FrontendError(error.code or 500, error_type,
                                             error.description or error.name))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        if isinstance(error, HTTPException):
            return _http_error(error)
        app.logger.exception("unexpected error in the frontend")
        return _frontend_error(FrontendError(500, "internal_error",
                                             "Something went wrong in the web frontend."))
