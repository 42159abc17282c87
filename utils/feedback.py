"""Analyst feedback: an analyst's verdict on flagged records of a kept upload.

A verdict is ``false_positive`` (the record is normal traffic the model flagged) or
``true_positive`` (a real attack). False positives join every later retrain as normal rows,
whatever label the upload gave them (utils/retraining/feedback_rows.py), up to a share of the
normal training rows; true positives never train. A record is named by its 0-based row in the
upload, or by its Zeek ``uid``. A newer verdict on the same record replaces the older one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VERDICTS = ("false_positive", "true_positive")
MAX_RECORDS = 10_000  # per request
MAX_NOTE = 1_000
_SHA256 = re.compile(r"[0-9a-f]{64}")
_UID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class FeedbackError(ValueError):
    """A request that cannot be kept; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Feedback:
    """One verdict; ``trained_version``: the promoted model that first learned from it."""

    id: int
    sha256: str
    record: str  # a row number ("17") or a Zeek uid ("CHhAvVGS1DHFjwGM9")
    verdict: str
    note: str | None
    analyst: str
    created_at: str
    trained_version: str | None = None

    @property
    def row(self) -> int | None:
        return int(self.record) if self.record.isdigit() else None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class FeedbackRequest:
    sha256: str
    records: tuple[str, ...]
    verdict: str
    note: str | None


def parse_feedback(body: Any) -> FeedbackRequest:
    """What ``POST /api/feedback`` (and the command) sends; FeedbackError naming the field."""
    if not isinstance(body, Mapping):
        raise FeedbackError("body", "send a JSON object")
    sha256 = body.get("sha256")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.strip().lower()):
        raise FeedbackError("sha256", "sha256 must be the upload's SHA-256 (64 hex digits), as "
                            "the predict answer's summary.sha256 gives it")
    records = body.get("records")
    if not isinstance(records, list) or not records:
        raise FeedbackError("records", "records must be a non-empty list of row numbers or "
                            "Zeek uids")
    if len(records) > MAX_RECORDS:
        raise FeedbackError("records", f"at most {MAX_RECORDS:,} records per request")
    named: list[str] = []
    for i, record in enumerate(records):
        if isinstance(record, bool):
            raise FeedbackError(f"records[{i}]", "a record is a row number or a Zeek uid")
        if isinstance(record, int):
            if record < 0:
                raise FeedbackError(f"records[{i}]", "row numbers start at 0")
            named.append(str(record))
        elif isinstance(record, str) and _UID.fullmatch(record.strip()):
            named.append(record.strip())
        else:
            raise FeedbackError(f"records[{i}]", "a record is a row number (0-based) or a "
                                "Zeek uid (letters and digits)")
    verdict = body.get("verdict")
    if verdict not in VERDICTS:
        raise FeedbackError("verdict", "verdict must be false_positive or true_positive")
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise FeedbackError("note", f"note must be text of at most {MAX_NOTE} characters")
    return FeedbackRequest(sha256.strip().lower(), tuple(dict.fromkeys(named)), verdict,
                           note.strip() or None if note else None)
