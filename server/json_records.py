"""``{"records": [...]}`` bodies of /api/predict-json, checked by the same parser as uploads.

The records are written out as KDD CSV text (a header line, then one line per record) and read
back with utils.readers.read_records, so a JSON record is valid exactly when the same
values in an uploaded file would be. Only what CSV text cannot carry is checked here: the
body's shape, value types, and separators or line breaks inside a value. The parser's line
numbers are turned back into record indexes.
"""

from __future__ import annotations

from typing import Any

from server.errors import ApiError
from utils.readers import MAX_PROBLEMS, InputFormatError, ParsedRecords, read_records
from utils.schema import FEATURE_NAMES, LABEL_COLUMN, N_FEATURES

_FIELDS = (*FEATURE_NAMES, LABEL_COLUMN)
_KNOWN_KEYS = frozenset(_FIELDS)
_UNSAFE = (",", "\t", "\n", "\r")
_FIRST_RECORD_LINE = 2  # line 1 is the header


def parse_json_records(body: Any) -> ParsedRecords:
    """The records of a predict-json body, or ApiError (400) naming record index and field."""
    if not isinstance(body, dict) or "records" not in body:
        raise ApiError(400, "invalid_json", 'expected a JSON object {"records": [...]}')
    records = body["records"]
    if not isinstance(records, list):
        raise ApiError(400, "invalid_json", '"records" must be a list')
    if not records:
        raise ApiError(400, "no_records", '"records" is empty')
    rows: list[list[Any]] = []
    problems: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        row, found = _row(index, record)
        problems.extend(found)
        if len(problems) >= MAX_PROBLEMS:
            break
        rows.append(row)
    if problems:
        raise _error("invalid_value", problems)
    with_label = any(row[-1] is not None for row in rows)
    fields = _FIELDS if with_label else FEATURE_NAMES
    lines = [",".join(fields)]
    lines.extend(",".join(_text(value) for value in row[: len(fields)]) for row in rows)
    try:
        return read_records("\n".join(lines).encode())
    except InputFormatError as exc:
        raise _error(exc.error_type, [_record_problem(p) for p in exc.problems]) from None


def _row(index: int, record: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    """The 41 values plus label (None when absent) of one record, or its problems."""
    if isinstance(record, dict):
        unknown = sorted(str(key) for key in record if key not in _KNOWN_KEYS)
        if unknown:
            return [], [_problem(index, unknown[0], "unknown field")]
        missing = [name for name in FEATURE_NAMES if name not in record]
        if missing:
            return [], [_problem(index, name, "missing value") for name in missing[:3]]
        values = [record[name] for name in FEATURE_NAMES] + [record.get(LABEL_COLUMN)]
    elif isinstance(record, list):
        if len(record) not in (N_FEATURES, N_FEATURES + 1):
            expected = f"expected {N_FEATURES} (or {N_FEATURES + 1} with a label)"
            message = f"{len(record)} values, {expected}"
            return [], [_problem(index, None, message)]
        values = list(record) + [None] * (N_FEATURES + 1 - len(record))
    else:
        return [], [_problem(index, None, "expected a list of 41 values or an object")]
    problems = []
    for name, value in zip(_FIELDS, values, strict=True):
        message = _value_problem(value, optional=name == LABEL_COLUMN)
        if message:
            problems.append(_problem(index, name, message))
    return values, problems


def _value_problem(value: Any, *, optional: bool) -> str | None:
    if value is None:
        return None if optional else "missing value"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return f"expected a number or a string, got {_json_type(value)}"
    if isinstance(value, str) and any(sep in value for sep in _UNSAFE):
        return "must not contain a comma, tab or line break"
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else repr(value)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _problem(index: int, field: str | None, message: str) -> dict[str, Any]:
    return {"record": index, "field": field, "message": message}


def _record_problem(entry: dict[str, Any]) -> dict[str, Any]:
    line = entry.get("line")
    index = line - _FIRST_RECORD_LINE if isinstance(line, int) else None
    return _problem(index, entry.get("column"), entry["message"])


def _error(error_type: str, problems: list[dict[str, Any]]) -> ApiError:
    problems = problems[:MAX_PROBLEMS]
    return ApiError(400, error_type, "; ".join(_describe(p) for p in problems), problems)


def _describe(entry: dict[str, Any]) -> str:
    where = []
    if entry["record"] is not None:
        where.append(f"record {entry['record']}")
    if entry["field"] is not None:
        where.append(f"field {entry['field']}")
    return f"{', '.join(where)}: {entry['message']}" if where else entry["message"]
