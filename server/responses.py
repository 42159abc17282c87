"""The JSON and CSV answers of the prediction endpoints, built from one Analysis.

Everything numpy or pandas is turned into plain JSON values here (NaN and pd.NA become null),
so the views never hand a numpy scalar to the JSON encoder.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from server.analysis import Analysis
from server.input_warnings import input_warnings, model_kind
from utils.metrics import evaluate
from utils.model_store import LoadedModel
from utils.schema import SEVERITIES
from utils.scoring import explain, score_histogram

ANOMALY_FEATURES = ("protocol_type", "service", "flag", "src_bytes", "dst_bytes")
CSV_COLUMNS = ("index", "is_anomaly", "severity", "anomaly_score", "confidence")
CSV_BLOCK_ROWS = 20_000
# The Zeek identity the JSON and CSV answers carry. Zeek's own ``service`` stays out: in an
# anomaly record ``service`` is the KDD service the model scored (ECS alerts carry Zeek's).
REPORTED_IDENTITY = ("uid", "ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def prediction(
    model: LoadedModel, analysis: Analysis, *, processing_time: float,
    upload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of a successful /api/predict or /api/predict-json answer (docs/API.md)."""
    codes = analysis.severity.codes
    by_severity = np.bincount(codes[codes >= 0], minlength=len(SEVERITIES))
    anomalies = anomaly_records(model, analysis)
    summary: dict[str, Any] = {
        "total_samples": len(analysis),
        "anomalies_detected": int(np.count_nonzero(analysis.is_anomaly)),
        "alerts": int(np.count_nonzero(analysis.alerts)),
        "allowlisted": int(np.count_nonzero(analysis.is_anomaly & ~analysis.alerts)),
        "anomalies_returned": len(anomalies),
        "severity_counts": dict(zip(SEVERITIES, by_severity.tolist(), strict=True)),
        "processing_time": round(processing_time, 4),
        "model_version": model.version,
        "model": {"version": model.version, "input_kind": model_kind(model.card)},
        "threshold": float(analysis.threshold),
        "input_kind": analysis.input_kind,
        "warnings": input_warnings(model.card, analysis.input_kind),
    }
    if upload is not None:
        summary |= upload
    overview = analysis.overview
    return {
        "success": True,
        "has_labels": analysis.has_labels,
        "summary": summary,
        "score_histogram": score_histogram(analysis.anomaly_score, analysis.threshold),
        "anomalies": anomalies,
        "metrics": metrics(analysis),
        "hosts": overview.hosts() if overview is not None else None,
        "timeline": overview.timeline() if overview is not None else None,
    }


def anomaly_records(model: LoadedModel, analysis: Analysis) -> list[dict[str, Any]]:
    """The described anomalies, highest score first; explanations for these rows only.

    Values are pulled out column by column (one numpy conversion each), not row by row.
    """
    index = analysis.top_index
    if index.size == 0:
        return []
    features = analysis.top_features
    columns: dict[str, list] = {
        "index": index.tolist(),
        "severity": severity_names(analysis, index),
        "anomaly_score": analysis.anomaly_score[index].tolist(),
        "confidence": analysis.confidence[index].tolist(),
    }
    entry = (analysis.allowlisted[index] if analysis.allowlisted is not None
             else np.zeros(index.size, dtype=np.int32)).tolist()
    columns["allowlisted"] = [bool(value) for value in entry]
    columns["allowlist_entry"] = [value or None for value in entry]
    model_votes = analysis.votes[index].astype(int)
    columns["votes"] = model_votes.sum(axis=1).tolist()
    columns["model_votes"] = model_votes.tolist()
    for name in ANOMALY_FEATURES:
        columns[name] = json_column(features[name].to_numpy())
    if analysis.labels is not None:
        columns["label"] = json_column(analysis.labels.iloc[index].to_numpy(dtype=object))
    columns["top_features"] = explain(model, features)
    if analysis.top_identity is not None:
        identity = analysis.top_identity.loc[index]
        for name in reported_identity(identity):
            columns[str(name)] = json_column(identity[name].to_numpy())
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


# Indexed by a severity code; code -1 (none) takes the last entry.
_SEVERITY_NAMES = np.array([*SEVERITIES, None], dtype=object)


def severity_names(analysis: Analysis, rows: np.ndarray | slice) -> list:
    """The rows' severities as str, from their codes (a pandas Categorical's own ``take`` and
    ``tolist`` cost 0.4 ms for 1,000 rows, this 0.03)."""
    return _SEVERITY_NAMES[analysis.severity.codes[rows]].tolist()


def reported_identity(identity: pd.DataFrame) -> list[str]:
    return [name for name in REPORTED_IDENTITY if name in identity.columns]


def metrics(analysis: Analysis) -> dict[str, Any] | None:
    """utils.metrics.evaluate, with rates in percent (0..100, as docs/API.md specifies).

    None without labels, and when no row has a known label.
    """
    if analysis.labels is None:
        return None
    result = evaluate(analysis.labels, analysis.is_anomaly, analysis.anomaly_score,
                      by_label=True)
    if result["labeled_samples"] == 0:
        return None
    return {
        "accuracy": percent(result["accuracy"]),
        "precision": percent(result["precision"]),
        "recall": percent(result["recall"]),
        "f1_score": percent(result["f1"]),
        "auroc": result["auroc"],
        "labeled_samples": result["labeled_samples"],
        "confusion_matrix": result["confusion_matrix"],
        "detection_rate_by_category": {
            name: {"total": entry["total"], "detected": entry["detected"],
                   "rate": percent(entry["rate"])}
            for name, entry in result["detection_rate_by_category"].items()
        },
        "detection_rate_by_label": {
            name: {"category": entry["category"], "total": entry["total"],
                   "detected": entry["detected"], "rate": percent(entry["rate"])}
            for name, entry in result["detection_rate_by_label"].items()
        },
    }


def percent(fraction: float) -> float:
    return 100.0 * fraction


def csv_rows(analysis: Analysis,
             identity: Iterator[pd.DataFrame] | None = None) -> Iterator[str]:
    """One CSV line per input record, in blocks, for a streamed response.

    ``identity``: the input's identity columns in row order, in parts of any size (Zeek input:
    utils.readers.iter_identity); closed when the rows end or the client goes away.
    """
    try:
        yield from _csv_blocks(analysis, identity)
    finally:
        close = getattr(identity, "close", None)
        if close is not None:
            close()


def _csv_blocks(analysis: Analysis, identity: Iterator[pd.DataFrame] | None) -> Iterator[str]:
    header = list(CSV_COLUMNS)
    labels = analysis.labels
    if labels is not None:
        header.append("label")
    rows = _IdentityRows(identity) if identity is not None else None
    if rows is not None:
        header.extend(rows.columns)
    header.extend(("allowlisted", "allowlist_entry"))
    entries = (analysis.allowlisted if analysis.allowlisted is not None
               else np.zeros(len(analysis), dtype=np.int32))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for start in range(0, len(analysis), CSV_BLOCK_ROWS):
        stop = min(start + CSV_BLOCK_ROWS, len(analysis))
        scores = analysis.anomaly_score[start:stop].tolist()
        confidence = analysis.confidence[start:stop].tolist()
        flagged = analysis.is_anomaly[start:stop].tolist()
        severity = severity_names(analysis, slice(start, stop))
        label_block = (labels.iloc[start:stop].to_numpy(dtype=object)
                       if labels is not None else None)
        identity_rows = rows.take(stop - start) if rows is not None else None
        entry_block = entries[start:stop].tolist()
        for offset in range(stop - start):
            i = start + offset
            row = [i, "true" if flagged[offset] else "false", severity[offset],
                   scores[offset], confidence[offset]]
            if label_block is not None:
                row.append(csv_cell(label_block[offset]))
            if identity_rows is not None:
                row.extend(csv_cell(value) for value in identity_rows[offset])
            row.extend(("true", entry_block[offset]) if entry_block[offset] else ("false", ""))
            writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if len(analysis) == 0:
        yield buffer.getvalue()


class _IdentityRows:
    """Rows of identity columns, taken block by block from parts of any size."""

    def __init__(self, parts: Iterator[pd.DataFrame]) -> None:
        self._parts = parts
        first = next(parts)
        self.columns = reported_identity(first)
        self._rows = self._as_rows(first)
        self._at = 0

    def take(self, count: int) -> list[tuple]:
        taken: list[tuple] = []
        while len(taken) < count:
            if self._at == len(self._rows):
                part = next(self._parts, None)
                if part is None:
                    raise RuntimeError("the input has fewer identity rows than records")
                self._rows, self._at = self._as_rows(part), 0
            end = min(len(self._rows), self._at + count - len(taken))
            taken.extend(self._rows[self._at:end])
            self._at = end
        return taken

    def _as_rows(self, part: pd.DataFrame) -> list[tuple]:
        columns = [part[name].to_numpy(dtype=object) for name in self.columns]
        return list(zip(*columns, strict=True))


def csv_cell(value: Any) -> Any:
    """A CSV cell: text that a spreadsheet would run as a formula gets a leading quote;
    numbers stay numbers (a negative number is not a formula)."""
    value = json_value(value)
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def json_column(values: np.ndarray) -> list:
    """``[json_value(v) for v in values]``, without the per-value checks where the dtype makes
    them unnecessary (a float column, or text that is all str): 1,000 rows x 6 columns per
    /api/predict answer."""
    if values.dtype.kind == "f":
        floats = values.astype(np.float64)
        whole = np.isfinite(floats) & (floats == np.floor(floats)) & (np.abs(floats) < 2**53)
        if whole.all():
            return floats.astype(np.int64).tolist()
        if np.isfinite(floats).all() and not whole.any():
            return floats.tolist()
    elif values.dtype == object and all(type(value) is str for value in values):
        return values.tolist()
    return [json_value(value) for value in values.tolist()]


def json_value(value: Any) -> Any:
    """A plain JSON value: numpy scalars unwrapped, whole floats as ints, missing as None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    return value if isinstance(value, str) else str(value)
