"""One JSON error shape for every failure on every route (docs/API.md, "Errors").

``{"success": false, "error": "...", "error_type": "...", "problems": [...]}``. Client errors
say what to fix; server faults say only that something failed: the traceback goes to the log,
never into a response (it could leak paths or data).
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from utils.json_errors import JsonError
from utils.preprocessing import InputFormatError

log = logging.getLogger("anomalyze.server")

# Default error_type for werkzeug's HTTP errors (anything else: "http_<status>").
HTTP_ERROR_TYPES: dict[int, str] = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(JsonError):
    """A failure with the status, machine-readable type and message the client should get."""


def too_large(max_upload_mb: float) -> ApiError:
    return ApiError(413, "too_large", f"the upload exceeds the {max_upload_mb:g} MB limit")


def from_input_error(error: InputFormatError) -> ApiError:
    """The parser's error as it is; its own size limit (decompressed input) is a 413 too."""
    status = 413 if error.error_type == "too_large" else 400
    return ApiError(status, error.error_type, str(error), list(error.problems))


def error_response(error: ApiError):
    response = jsonify(error.to_dict())
    response.status_code = error.status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError):
        return error_response(error)

    @app.errorhandler(InputFormatError)
    def _input_error(error: InputFormatError):
        return error_response(from_input_error(error))

    @app.errorhandler(RequestEntityTooLarge)
    def _request_too_large(_error: RequestEntityTooLarge):
        response = error_response(too_large(current_app.config["MAX_UPLOAD_MB"]))
        # The rest of the body was never read: the connection cannot be reused.
        response.headers["Connection"] = "close"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        status = error.code or 500
        error_type = HTTP_ERROR_TYPES.get(status, f"http_{status}")
        response = error_response(ApiError(status, error_type, _http_message(error)))
        for name, value in error.get_headers():  # e.g. Allow on 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        if isinstance(error, HTTPException):
            return _http_error(error)
        log.error("unhandled error", exc_info=error)
        return error_response(ApiError(500, "internal_error", "internal server error"))


def _http_message(error: HTTPException) -> str:
    name = (error.name or "error").lower()
    if error.code == 404:
        return "no such endpoint; see docs/API.md"
    if error.code == 405:
        return "method not allowed for this endpoint"
    return name
