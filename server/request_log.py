"""Structured logs: one JSON line per request (method, path, status, rows, ms) on stderr.

Gunicorn's access log is off (gunicorn.conf.py); this line replaces it and also says how many
records a request scored and with which model. It is written when the response is closed, so
a streamed CSV is timed to its last byte.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request

LOGGER_NAME = "anomalyze"
log = logging.getLogger(f"{LOGGER_NAME}.requests")


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object: time, level, logger, message, the record's ``fields``
    and, for errors, the traceback (which stays in the log, never in a response)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for every ``anomalyze.*`` logger (idempotent)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(getattr(h, "anomalyze", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        handler.anomalyze = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False


def note_request(*, rows: int | None = None, model_version: str | None = None) -> None:
    """What a view wants in its request's log line."""
    if rows is not None:
        g.log_rows = rows
    if model_version is not None:
        g.log_model_version = model_version


def init_app(app: Flask) -> None:
    configure_logging(app.config["LOG_LEVEL"])

    @app.before_request
    def _start_timer() -> None:
        g.log_started = time.perf_counter()

    @app.after_request
    def _log_on_close(response: Response) -> Response:
        started = g.get("log_started", time.perf_counter())
        fields: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "rows": g.get("log_rows"),
        }
        if "log_model_version" in g:
            fields["model_version"] = g.log_model_version
        if response.status_code >= 400 and response.is_json:
            fields["error_type"] = (response.get_json(silent=True) or {}).get("error_type")

        def _write() -> None:
            fields["ms"] = round((time.perf_counter() - started) * 1000, 1)
            log.info("request", extra={"fields": fields})

        response.call_on_close(_write)
        return response
