"""Zeek conn.log uploads (TSV or JSON lines) as KDD records the model can score.

The dispatcher hands us the decompressed bytes once it recognises a Zeek log: whole, or as
consecutive line-aligned chunks (utils.readers.zeek_stream reads large logs that way). We read
only the columns the KDD derivation needs, number every row by its data row in the file (the
API's `index`) and report bad values by physical line, as the KDD reader does.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from utils.readers.records import (
    MAX_PROBLEMS,
    InputFormatError,
    ParsedRecords,
    normalise_label,
    problem,
)
from utils.readers.source import BOM, refuse_nul
from utils.readers.zeek_log import (
    COUNT_FIELDS,
    DETAIL_FIELDS,
    LABEL_FIELD,
    Header,
    Lines,
    format_error,
    read_json,
    read_tsv,
    require_fields,
)
from utils.schema import NORMAL_LABEL
from utils.zeek_features import derive_kdd_features

# The connection's identity, and Zeek's detected service (ECS alerts name the protocol).
IDENTITY_COLUMNS: tuple[str, ...] = ("uid", "ts", "id.orig_h", "id.orig_p", "id.resp_h",
                                     "id.resp_p", "service")
INPUT_KIND = "zeek"

_PORT_FIELDS = ("id.orig_p", "id.resp_p")
# Label words (first word, lower-case) and what they mean; anything else is an attack name.
_NORMAL_WORDS = frozenset({"normal", "benign"})
_UNKNOWN_WORDS = frozenset({"background", "unknown"})
_MALICIOUS_WORD = "malicious"
_UNSET_LABELS = frozenset({"", "-", "(empty)"})
_NOT_A_DETAIL = _UNSET_LABELS | {_MALICIOUS_WORD}
_FIRST_WORD = re.compile(r"[A-Za-z]+")
_DETAIL_PUNCTUATION = " \t-_:/"


def read_zeek_records(data: bytes) -> ParsedRecords:
    """Parse a whole Zeek conn.log (TSV with #fields header, or JSON lines) into KDD records.

    `data` is the decompressed upload, held in memory as one chunk. Large uploads are read in
    chunks instead (utils.readers.zeek_stream); both give the same records.
    """
    table = read_connections(data)
    return zeek_records(table, derive_kdd_features(table))


def read_connections(data: bytes) -> pd.DataFrame:
    """A whole Zeek log's connection table (see ZeekLogReader.connections): what the feature
    derivation is given."""
    reader = ZeekLogReader()
    table = reader.connections(data.removeprefix(BOM), first_line=1)
    reader.finish(0 if table is None else len(table))
    assert table is not None  # finish() refuses a log without records
    return table


def zeek_records(table: pd.DataFrame, features: pd.DataFrame) -> ParsedRecords:
    """ParsedRecords of connection-table rows (ZeekLogReader.connections) and their features."""
    return ParsedRecords(
        features=features,
        labels=table.get(LABEL_FIELD),
        difficulty=None,
        identity=zeek_identity(table),
        input_kind=INPUT_KIND,
        numbered=True,
    )


def zeek_identity(table: pd.DataFrame) -> pd.DataFrame:
    """The identity columns (IDENTITY_COLUMNS) of connection-table rows; a column the log
    lacks (e.g. no ``service``) is unset."""
    return pd.DataFrame({name: (table[name] if name in table
                                else pd.Series(pd.NA, index=table.index, dtype=object))
                         for name in IDENTITY_COLUMNS}, index=table.index)


class ZeekLogReader:
    """Reads one Zeek log from its consecutive line-aligned chunks (a whole log is one chunk).

    What it learns carries over from chunk to chunk: the format (JSON if the first record
    starts with "{", else TSV), the TSV header directives and the JSON field names seen. So
    that every chunking gives the same records, a directive may not change once the first
    record has been read, and a JSON log's columns are the fields seen anywhere in it: read
    the whole log with ``timestamps`` first (as utils.readers.zeek_stream does) before reading
    its chunks with ``connections``, or give it the whole log as one chunk.
    """

    def __init__(self) -> None:
        self.is_json: bool | None = None
        self.header = Header()
        self.json_fields: set[str] = set()

    def timestamps(self, chunk: bytes, first_line: int) -> np.ndarray:
        """``ts`` of the chunk's records in seconds, NaN where it is not a time (a cheap pass:
        only ``ts`` is converted; bad values are left for ``connections`` to report)."""
        lines = self._lines(chunk, first_line)
        if lines is None:
            return np.empty(0)
        if self.is_json:
            table = read_json(lines, self.json_fields, columns=["ts"])
        else:
            table = read_tsv(lines, self.header, frozenset({"ts"}))
        return _timestamps(table["ts"], _Problems(lines))

    def connections(self, chunk: bytes, first_line: int, *,
                    require: bool = True) -> pd.DataFrame | None:
        """The chunk's records as a connection table, None if it holds none.

        Columns: what utils.zeek_features needs (REQUIRED_COLUMNS and those of
        OPTIONAL_COLUMNS the log has), "uid", and "label" (normalised) if the log has labels.
        Rows in file order, indexed from 0. Bad values raise InputFormatError with their
        physical lines (``first_line`` is the chunk's). ``require=False`` skips the check
        for needed JSON fields (for a log already read once).
        """
        lines = self._lines(chunk, first_line)
        if lines is None:
            return None
        if self.is_json:
            table = read_json(lines, self.json_fields)
            if require:
                require_fields(self.json_fields)
        else:
            table = read_tsv(lines, self.header)
        return _connection_table(table, lines)

    def finish(self, rows: int) -> None:
        """Refuse a log that held no records, or (JSON) lacks a needed field everywhere."""
        if rows == 0:
            raise InputFormatError("no_records", "the Zeek log holds no connection records")
        if self.is_json:
            require_fields(self.json_fields)

    def _lines(self, chunk: bytes, first_line: int) -> Lines | None:
        lines = Lines(chunk, first_line)
        refuse_nul(chunk, first_line)
        self.header.read(lines)
        if not len(lines.data_rows):
            return None
        if self.is_json is None:
            self.is_json = lines.text(lines.data_rows[0]).lstrip().startswith("{")
        if not self.is_json and self.header.fields is None:
            raise format_error("the Zeek log has no #fields header line before its first "
                                "record", lines.line_of(0))
        return lines


class _Problems:
    """Bad values found while converting columns, reported together."""

    def __init__(self, lines: Lines) -> None:
        self.lines = lines
        self.items: list[dict] = []

    def add(self, column: str, rows: np.ndarray, values: pd.Series, message: str) -> None:
        for row in rows[:MAX_PROBLEMS]:
            value = values.iloc[row]
            text = "missing value" if pd.isna(value) else f"{str(value)[:40]!r} {message}"
            self.items.append(problem(self.lines.line_of(int(row)), column, text))

    def raise_if_any(self) -> None:
        if self.items:
            first = sorted(self.items, key=lambda item: item["line"])[:MAX_PROBLEMS]
            raise InputFormatError("invalid_value", problems=first)


def _timestamps(values: pd.Series, problems: _Problems) -> np.ndarray:
    """Epoch (or relative) seconds; JSON logs may also carry ISO 8601 times."""
    seconds = pd.to_numeric(values, errors="coerce").to_numpy(float, copy=True)
    text = values.notna().to_numpy() & np.isnan(seconds)
    if text.any():
        parsed = pd.to_datetime(values[text].astype(str), utc=True, errors="coerce",
                                format="ISO8601")
        epoch = pd.Timestamp("1970-01-01", tz="UTC")
        seconds[text] = ((parsed - epoch) / pd.Timedelta(seconds=1)).to_numpy(float)
    problems.add("ts", np.flatnonzero(~np.isfinite(seconds)), values, "is not a timestamp")
    return seconds


def _ports(values: pd.Series, column: str, problems: _Problems) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
    valid = (numbers >= 0) & (numbers <= 65535) & (numbers == np.floor(numbers))
    problems.add(column, np.flatnonzero(~valid), values, "is not a port number (0-65535)")
    return np.where(valid, numbers, 0).astype(np.int64)


def _counts(values: pd.Series, column: str, problems: _Problems) -> np.ndarray:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
    bad = values.notna().to_numpy() & ~((numbers >= 0) & (numbers < np.inf))
    problems.add(column, np.flatnonzero(bad), values, "is not a non-negative number")
    return np.where(bad, np.nan, numbers)


def _strings(table: pd.DataFrame, column: str) -> pd.Series:
    """A text column as object dtype with pd.NA where unset (or absent)."""
    if column not in table:
        return pd.Series(pd.NA, index=table.index, dtype=object)
    values = table[column].astype(object)
    return values.where(values.notna(), pd.NA)


def _connection_table(table: pd.DataFrame, lines: Lines) -> pd.DataFrame:
    """Typed, checked columns: see ZeekLogReader.connections."""
    table = table.reset_index(drop=True)
    problems = _Problems(lines)
    conns = pd.DataFrame(index=table.index)
    conns["ts"] = _timestamps(table["ts"], problems)
    for column in _PORT_FIELDS:
        conns[column] = _ports(table[column], column, problems)
    for column in COUNT_FIELDS:
        if column in table:
            conns[column] = _counts(table[column], column, problems)
    for column in ("proto", "id.orig_h", "id.resp_h"):
        values = _strings(table, column)
        problems.add(column, np.flatnonzero(values.isna().to_numpy()), values, "missing value")
        conns[column] = values
    problems.raise_if_any()
    conns["conn_state"] = _strings(table, "conn_state")
    if "service" in table:
        conns["service"] = _strings(table, "service")
    conns["uid"] = _strings(table, "uid")
    labels = _labels(table)
    if labels is not None:
        conns[LABEL_FIELD] = labels
    return conns


def _labels(table: pd.DataFrame) -> pd.Series | None:
    label_column = next((c for c in table.columns if c.lower() == LABEL_FIELD), None)
    if label_column is None:
        return None
    detail_column = next((c for c in table.columns if c.lower() in DETAIL_FIELDS), None)
    labels = _strings(table, label_column)
    details = (_strings(table, detail_column) if detail_column is not None
               else pd.Series(pd.NA, index=table.index, dtype=object))
    # each distinct (label, detail) pair is normalised once; pairs are coded by hand, which
    # is several times faster than factorizing a MultiIndex of the two columns
    label_codes, label_values = pd.factorize(labels.fillna("").to_numpy(dtype=object))
    detail_codes, detail_values = pd.factorize(details.fillna("").to_numpy(dtype=object))
    codes, pairs = pd.factorize(label_codes * len(detail_values) + detail_codes)
    mapped = np.array([normalise_zeek_label(label_values[pair // len(detail_values)],
                                            detail_values[pair % len(detail_values)])
                       for pair in pairs.tolist()], dtype=object)
    return pd.Series(mapped[codes], index=table.index, dtype=object, name=LABEL_FIELD)


def normalise_zeek_label(label: object, detail: object = None) -> object:
    """One label cell (and its detailed label) as "normal", an attack name, or pd.NA.

    Stratosphere labels a connection Malicious, Benign or Background (not known either way),
    sometimes with the detail in the same cell ("Malicious   C&C"); other logs carry plain
    labels ("normal", "neptune"), normalised as the KDD reader does.
    """
    text = label.strip() if isinstance(label, str) else ""
    if text in _UNSET_LABELS:
        return pd.NA
    match = _FIRST_WORD.match(text)
    word = match.group().lower() if match else ""
    if word in _NORMAL_WORDS:
        return NORMAL_LABEL
    if word in _UNKNOWN_WORDS:
        return pd.NA
    if word == _MALICIOUS_WORD:
        for candidate in (detail, text[match.end():]):
            cleaned = candidate.strip(_DETAIL_PUNCTUATION).lower() if isinstance(
                candidate, str) else ""
            if cleaned not in _NOT_A_DETAIL:
                return cleaned
        return _MALICIOUS_WORD
    return normalise_label(text)
