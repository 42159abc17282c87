"""One JSON error shape for every failure on every route (docs/API.md, "Errors").

``{"success": false, "error": "...", "error_type": "...", "problems": [...]}``. Client errors
say what to fix; server faults say only that something failed: the traceback goes to the log,
never into a response (it could leak paths or data).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from contract.json_errors import JsonError
from server.disk_space import is_out_of_space, is_storage_failure
from server.gunicorn_errors import RequestParseError
from server.multipart import FormLimitExceeded
from utils.readers import InputFormatError

log = logging.getLogger("anomalyze.server")

# Default error_type for werkzeug's HTTP errors (anything else: "http_<status>").
HTTP_ERROR_TYPES: dict[int, str] = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
    507: "insufficient_storage",
}


class ApiError(JsonError):
    """A failure with the status, machine-readable type and message the client should get."""


def too_large(max_upload_mb: float) -> ApiError:
    return ApiError(413, "too_large", f"the upload exceeds the {max_upload_mb:g} MB limit")


def out_of_space() -> ApiError:
    return ApiError(507, "insufficient_storage",
                    "the server has no room to receive this upload right now; "
                    "try again later or send a smaller file")


def storage_unavailable() -> ApiError:
    return ApiError(503, "storage_unavailable",
                    "the server's data folder cannot be read or written right now; "
                    "try again later")


def too_deep() -> ApiError:
    return ApiError(400, "invalid_json",
                    "the JSON is nested too deeply to be read (Anomalyze's inputs nest a few "
                    "levels at most)")


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

    @app.errorhandler(FormLimitExceeded)
    def _form_limit(error: FormLimitExceeded):
        response = error_response(ApiError(413, "too_large", str(error.description)))
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

    @app.errorhandler(RecursionError)
    def _recursion_error(error: RecursionError):
        # Python's json parser recurses once per nesting level: about a thousand nested
        # brackets (a request body, a JSON Zeek upload) exhaust the stack. That is the
        # client's JSON, not a fault of ours; a RecursionError anywhere else is.
        if _raised_by_the_json_parser(error):
            return error_response(too_deep())
        return _unexpected(error)

    if RequestParseError is not None:
        @app.errorhandler(RequestParseError)
        def _body_framing(error: Exception):
            # gunicorn raises these while the app reads the body (a bad chunk size...):
            # the client's framing, a 400, not a fault of ours.
            return error_response(ApiError(400, "bad_request",
                                           f"the request body is malformed: {str(error)[:200]}"))

    @app.errorhandler(OSError)
    def _os_error(error: OSError):
        if is_out_of_space(error):  # e.g. receiving an upload on a full disk
            log.error("out of space: %s", error)
            return error_response(out_of_space())
        return _unexpected(error)

    @app.errorhandler(sqlite3.Error)
    def _sqlite_error(error: sqlite3.Error):
        if is_out_of_space(error):
            log.error("out of space: sqlite3: %s", error)
            return error_response(out_of_space())
        if is_storage_failure(error):  # e.g. reading the registry while the disk is full
            log.error("storage unavailable: sqlite3: %s", error)
            return error_response(storage_unavailable())
        return _unexpected(error)


def _raised_by_the_json_parser(error: BaseException) -> bool:
    """Whether the innermost Python frame of the error is the standard json decoder's."""
    traceback = error.__traceback__
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return Path(traceback.tb_frame.f_code.co_filename).parts[-2:] == ("json", "decoder.py")


def _http_message(error: HTTPException) -> str:
    name = (error.name or "error").lower()
    if error.code == 404:
        return "no such endpoint; see docs/API.md"
    if error.code == 405:
        return "method not allowed for this endpoint"
    if error.code == 429:  # only failed admin authentications are limited (admin_limit.py)
        return ("too many failed admin authentications from this address; "
                "try again after the Retry-After delay")
    return name
