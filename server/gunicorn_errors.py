"""gunicorn's own error answers in the API's JSON error shape (docs/API.md, "Errors").

gunicorn refuses some requests before the app sees them: a malformed request line or header,
an invalid or repeated Content-Length, Content-Length together with chunked framing, an
unknown transfer coding, a request line or headers over its size limits. It answers those
with a small HTML page written by ``gunicorn.util.write_error``, and has no setting for that
body. ``use_json_errors`` replaces that one function, in the process that serves the app, with
one that writes the same status line and ``Connection: close`` with our JSON body instead. It
is written for the gunicorn pinned in requirements.txt; tests/robustness checks the answers
against the real server, so an upgrade that changes the hook shows there.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

try:  # what gunicorn raises inside a request when the body's chunked framing is malformed
    from gunicorn.http.errors import ParseException as RequestParseError
except ImportError:  # another WSGI server
    RequestParseError = None  # type: ignore[assignment,misc]

MAX_DETAIL = 200  # gunicorn's message may quote the client's request line

ERROR_TYPES: dict[int, str] = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    500: "internal_error",
    501: "not_implemented",
}


def json_error(status: int, message: str) -> bytes:
    """The whole HTTP answer: status line, headers and the JSON body."""
    try:
        reason = HTTPStatus(status).phrase  # gunicorn 27 says "Bad Request" with its 501
    except ValueError:
        reason = "Error"
    detail = message.strip()[:MAX_DETAIL]
    text = reason.lower()
    if status == 500:
        detail = ""  # a server fault: the log has it, the client gets no details
    body = json.dumps({
        "success": False,
        "error": f"{text}: {detail}" if detail else text,
        "error_type": ERROR_TYPES.get(status, f"http_{status}"),
        "problems": [],
    }).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def use_json_errors() -> None:
    """Make gunicorn write its own error answers as JSON (no-op without gunicorn)."""
    try:
        from gunicorn import util
    except ImportError:
        return

    def write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
        util.write_nonblock(sock, json_error(status_int, mesg))

    util.write_error = write_error
