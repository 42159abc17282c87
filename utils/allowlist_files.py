"""Re-applying the allow-list to results already scored: a per-record CSV or NDJSON alerts.

So a change to the list applies to past data too. A CSV keeps every row and gets its
``allowlisted`` / ``allowlist_entry`` columns recomputed from ``is_anomaly`` (a row allowed
before but not now becomes an alert again). NDJSON alerts are what goes to alert sinks: the
alerts the list now allows are left out (an alert left out before cannot come back: re-score
the upload for that). What a file carries decides what can match: a Zeek CSV has addresses and
the destination port but no service, NDJSON alerts have all three, a KDD CSV none of them.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from utils.allowlist import (
    DESTINATION_COLUMNS,
    PORT_COLUMNS,
    SERVICE_COLUMNS,
    SOURCE_COLUMNS,
    AllowList,
)

_FIELDS = (SOURCE_COLUMNS[1], DESTINATION_COLUMNS[1], PORT_COLUMNS[1], SERVICE_COLUMNS[1])


class ScoredFileError(ValueError):
    """The file is not a scored CSV or NDJSON; ``line`` (1-based) where known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class Reapplied:
    body: str
    kind: str  # csv or ndjson
    rows: int  # CSV rows or NDJSON alerts read
    flagged: int
    allowlisted: int

    @property
    def alerts(self) -> int:
        return self.flagged - self.allowlisted


def reapply(data: bytes, allowlist: AllowList) -> Reapplied:
    """The file with the list applied (CSV or NDJSON, told apart by the first byte)."""
    text = data.decode("utf-8-sig", errors="strict") if data else ""
    if not text.strip():
        raise ScoredFileError("the file is empty", 1)
    if text.lstrip().startswith("{"):
        return _ndjson(text, allowlist)
    return _csv(text, allowlist)


def _csv(text: str, allowlist: AllowList) -> Reapplied:
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise ScoredFileError(f"not a CSV: {str(exc)[:200]}") from None
    if "is_anomaly" not in frame.columns:
        raise ScoredFileError("not a scored CSV: no is_anomaly column (download the results "
                              "as CSV from /api/predict?format=csv)", 1)
    flagged = frame["is_anomaly"].str.lower().eq("true").to_numpy()
    ids = allowlist.match_frame(frame, flagged)
    frame["allowlisted"] = np.where(ids > 0, "true", "false")
    frame["allowlist_entry"] = [str(i) if i else "" for i in ids.tolist()]
    out = io.StringIO()
    frame.to_csv(out, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    return Reapplied(out.getvalue(), "csv", len(frame), int(flagged.sum()),
                     int((ids > 0).sum()))


def _ndjson(text: str, allowlist: AllowList) -> Reapplied:
    alerts: list[tuple[str, dict[str, Any]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            alert = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ScoredFileError(f"line {number} column {exc.colno}: not JSON: {exc.msg}",
                                  number) from None
        if not isinstance(alert, dict):
            raise ScoredFileError(f"line {number}: an alert is a JSON object", number)
        alerts.append((line, alert))
    frame = pd.DataFrame([{name: _dotted(alert, name) for name in _FIELDS}
                          for _, alert in alerts], columns=list(_FIELDS))
    ids = allowlist.match_frame(frame)
    kept = [line for (line, _), entry in zip(alerts, ids.tolist(), strict=True) if not entry]
    body = "".join(line + "\n" for line in kept)
    return Reapplied(body, "ndjson", len(alerts), len(alerts), int((ids > 0).sum()))


def _dotted(document: dict[str, Any], name: str) -> Any:
    value: Any = document
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
