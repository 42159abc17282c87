"""The analyst's routes: the allow-list and feedback on flagged records (docs/API.md).

``GET/POST /api/allowlist``, ``DELETE /api/allowlist/<id>``, ``POST /api/allowlist/apply``,
``GET/POST /api/feedback`` take ``Authorization: Bearer $ANOMALYZE_ANALYST_TOKEN`` (the admin
token works too: an admin may do what an analyst does). Without either token configured they
answer 404 ``disabled``. Verdicts become training data, so they are never anonymous.

The token check is server/admin_auth.py's; scoring reads the list through
server/allowlist.py (every prediction applies the entries in force when it starts).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from server.admin_auth import require_analyst
from server.allowlist import analyst_registry, current_allowlist
from server.errors import ApiError
from server.query_params import whole_number
from utils.allowlist import AllowlistError, DuplicateEntry, UnknownEntry, parse_entry
from utils.allowlist_files import ScoredFileError, reapply
from utils.feedback import FeedbackError, parse_feedback

log = logging.getLogger("anomalyze.server")

bp = Blueprint("analyst", __name__)

NAME_HEADER = "X-Analyst"  # who, as the caller names them (the token says only "an analyst")
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_ID = 10**18 - 1


def who(role: str) -> str:
    """``role`` plus the name the caller gives in X-Analyst (printable, bounded)."""
    name = "".join(ch for ch in request.headers.get(NAME_HEADER, "") if ch.isprintable())
    name = name.strip()[:80]
    return f"{role}:{name}" if name else role


def _json_body() -> object:
    body = request.get_json(force=True, silent=True)
    if body is None:
        raise ApiError(400, "invalid_json", "the request body is not valid JSON")
    return body


@bp.get("/api/allowlist")
def list_entries() -> Response:
    require_analyst()
    expired = request.args.get("expired", "").lower() in {"1", "true", "yes"}
    entries = analyst_registry().allow_entries(include_expired=expired)
    return jsonify({"success": True, "total": len(entries),
                    "entries": [entry.to_dict() for entry in entries]})


@bp.post("/api/allowlist")
def add_entry() -> tuple[Response, int]:
    role = require_analyst()
    try:
        entry = parse_entry(_json_body(), added_by=who(role))
        kept = analyst_registry().add_allow_entry(entry)
    except AllowlistError as exc:
        raise ApiError(400, "invalid_entry", str(exc),
                       [{"field": exc.field, "message": str(exc)}]) from None
    except DuplicateEntry as exc:
        raise ApiError(409, "duplicate_entry", str(exc),
                       [{"field": "entry", "existing_id": exc.existing_id,
                         "message": str(exc)}]) from None
    log.info("allow-list entry %s added by %s: %s", kept.id, kept.added_by, kept.kind)
    return jsonify({"success": True, "entry": kept.to_dict()}), 201


@bp.delete("/api/allowlist")
@bp.delete("/api/allowlist/<int:entry_id>")
def delete_entry(entry_id: int | None = None) -> Response:
    """Remove the entry ``/api/allowlist/<id>`` (or ``?id=<id>``) names."""
    role = require_analyst()
    if entry_id is None:
        entry_id = whole_number(request.args, "id", default=0, maximum=MAX_ID, minimum=1)
    try:
        removed = analyst_registry().delete_allow_entry(entry_id)
    except UnknownEntry as exc:
        raise ApiError(404, "unknown_entry", str(exc)) from None
    log.info("allow-list entry %s removed by %s", entry_id, who(role))
    return jsonify({"success": True, "removed": removed.to_dict()})


@bp.post("/api/allowlist/apply")
def apply_to_results() -> Response:
    """Re-apply the list in force to a scored CSV or NDJSON (multipart field ``file``)."""
    require_analyst()
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "missing_file", "no file uploaded: send multipart/form-data with "
                       "the field 'file' (a scored CSV or NDJSON alerts)")
    try:
        result = reapply(upload.stream.read(), current_allowlist())
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_file", "the file is not UTF-8 text") from None
    except ScoredFileError as exc:
        problems = [{"line": exc.line, "message": str(exc)}] if exc.line else None
        raise ApiError(400, "invalid_file", str(exc), problems) from None
    mimetype = "text/csv" if result.kind == "csv" else "application/x-ndjson"
    response = Response(result.body, mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="anomalyze-reapplied.{result.kind}"')
    response.headers["X-Anomalyze-Flagged"] = str(result.flagged)
    response.headers["X-Anomalyze-Allowlisted"] = str(result.allowlisted)
    response.headers["X-Anomalyze-Alerts"] = str(result.alerts)
    return response


@bp.post("/api/feedback")
def add_feedback() -> tuple[Response, int]:
    """Verdicts on records of a kept upload: false positives train the next candidates."""
    role = require_analyst()
    registry = analyst_registry()
    try:
        wanted = parse_feedback(_json_body())
    except FeedbackError as exc:
        raise ApiError(400, "invalid_feedback", str(exc),
                       [{"field": exc.field, "message": str(exc)}]) from None
    upload = registry.find(wanted.sha256)
    if upload is None:
        raise ApiError(404, "unknown_upload", "no kept upload has this SHA-256 (only uploads "
                       "the server kept can take feedback)")
    for i, record in enumerate(wanted.records):
        if record.isdigit() and int(record) >= upload.rows:
            raise ApiError(400, "invalid_feedback", f"row {record} is past the upload's "
                           f"{upload.rows} rows", [{"field": f"records[{i}]",
                                                    "message": "no such row"}])
    kept = registry.add_feedback(wanted.sha256, wanted.records, wanted.verdict, wanted.note,
                                 who(role))
    log.info("%d %s verdict(s) on upload %s by %s", len(kept), wanted.verdict,
             wanted.sha256[:16], who(role))
    return jsonify({"success": True, "recorded": len(kept),
                    "feedback": [item.to_dict() for item in kept[:DEFAULT_PAGE]],
                    "waiting": registry.feedback_counts()}), 201


@bp.get("/api/feedback")
def list_feedback() -> Response:
    require_analyst()
    limit = whole_number(request.args, "limit", default=DEFAULT_PAGE, maximum=MAX_PAGE,
                         minimum=1)
    before = whole_number(request.args, "before", default=0, maximum=MAX_ID) or None
    verdict = request.args.get("verdict") or None
    if verdict not in (None, "false_positive", "true_positive"):
        raise ApiError(400, "invalid_parameter", "verdict must be false_positive or "
                       "true_positive")
    registry = analyst_registry()
    page = registry.feedback(verdict, limit + 1, before)
    more = len(page) > limit
    return jsonify({"success": True, "counts": registry.feedback_counts(),
                    "feedback": [item.to_dict() for item in page[:limit]],
                    "next_before": page[limit - 1].id if more else None})
