"""Reads Zeek conn.log uploads (TSV or JSON lines) into KDD records the model can score.

The parser hands us the decompressed bytes once it recognises a Zeek log: whole, or as
consecutive line-aligned chunks (utils/zeek_stream.py reads large logs that way). We read only
the columns the KDD derivation needs, number every row by its data row in the file (the API's
`index`) and report bad values by physical line, as the other readers do.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re

import numpy as np
import pandas as pd

from utils.preprocessing import (
    MAX_PROBLEMS,
    InputFormatError,
    ParsedRecords,
    normalise_label,
    problem,
)
from utils.schema import NORMAL_LABEL
from utils.zeek_features import derive_kdd_features

NEEDED_FIELDS: tuple[str, ...] = (
    "ts", "proto", "conn_state", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
)
OPTIONAL_FIELDS: tuple[str, ...] = ("uid", "service", "duration", "orig_bytes", "resp_bytes")
# The connection's identity, and Zeek's detected service (ECS alerts name the protocol).
IDENTITY_COLUMNS: tuple[str, ...] = ("uid", "ts", "id.orig_h", "id.orig_p", "id.resp_h",
                                     "id.resp_p", "service")
LABEL_FIELD = "label"
DETAIL_FIELDS: tuple[str, ...] = ("detailedlabel", "detailed-label", "detailed_label")
INPUT_KIND = "zeek"
_JSON_CHUNK_ROWS = 50_000

_NUMERIC_FIELDS = ("duration", "orig_bytes", "resp_bytes")
_NUMERIC_COLUMNS = frozenset({"ts", "id.orig_p", "id.resp_p", *_NUMERIC_FIELDS})
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
    chunks instead (utils/zeek_stream.py); both give the same records.
    """
    reader = ZeekLogReader()
    table = reader.connections(data.removeprefix(b"\xef\xbb\xbf"), first_line=1)
    reader.finish(0 if table is None else len(table))
    assert table is not None  # finish() refuses a log without records
    return zeek_records(table, derive_kdd_features(table))


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
    the whole log with ``timestamps`` first (as utils/zeek_stream.py does) before reading
    its chunks with ``connections``, or give it the whole log as one chunk.
    """

    def __init__(self) -> None:
        self.is_json: bool | None = None
        self.header = _Header()
        self.json_fields: set[str] = set()

    def timestamps(self, chunk: bytes, first_line: int) -> np.ndarray:
        """``ts`` of the chunk's records in seconds, NaN where it is not a time (a cheap pass:
        only ``ts`` is converted; bad values are left for ``connections`` to report)."""
        lines = self._lines(chunk, first_line)
        if lines is None:
            return np.empty(0)
        if self.is_json:
            table = _read_json(lines, self.json_fields, columns=["ts"])
        else:
            table = _read_tsv(lines, self.header, frozenset({"ts"}))
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
            table = _read_json(lines, self.json_fields)
            if require:
                _require(self.json_fields)
        else:
            table = _read_tsv(lines, self.header)
        return _connection_table(table, lines)

    def finish(self, rows: int) -> None:
        """Refuse a log that held no records, or (JSON) lacks a needed field everywhere."""
        if rows == 0:
            raise InputFormatError("no_records", "the Zeek log holds no connection records")
        if self.is_json:
            _require(self.json_fields)

    def _lines(self, chunk: bytes, first_line: int) -> _Lines | None:
        lines = _Lines(chunk, first_line)
        nul = chunk.find(b"\x00")
        if nul >= 0:
            line = first_line + chunk.count(b"\n", 0, nul)
            raise InputFormatError("binary_data", "contains binary data (byte 0x00)", line=line)
        self.header.read(lines)
        if not len(lines.data_rows):
            return None
        if self.is_json is None:
            self.is_json = lines.text(lines.data_rows[0]).lstrip().startswith("{")
        if not self.is_json and self.header.fields is None:
            raise _format_error("the Zeek log has no #fields header line before its first "
                                "record", lines.line_of(0))
        return lines


class _Lines:
    """Line layout of a chunk (found with numpy), so errors can name physical lines."""

    def __init__(self, data: bytes, first_line: int = 1) -> None:
        self.data = data
        self.first_line = first_line
        raw = np.frombuffer(data, dtype=np.uint8)
        newlines = np.flatnonzero(raw == ord("\n"))
        self.starts = np.concatenate(([0], newlines + 1))
        self.ends = np.concatenate((newlines, [len(data)]))
        if len(data) and data.endswith(b"\n"):  # no line after the final newline
            self.starts, self.ends = self.starts[:-1], self.ends[:-1]
        carriage = np.zeros(len(self.ends), dtype=bool)
        has_text = self.ends > self.starts
        carriage[has_text] = raw[self.ends[has_text] - 1] == ord("\r")
        self.ends = self.ends - carriage
        nonblank = self.ends > self.starts
        first_byte = np.zeros(len(self.starts), dtype=np.uint8)
        first_byte[nonblank] = raw[self.starts[nonblank]]
        self.comments = np.flatnonzero(nonblank & (first_byte == ord("#")))
        self.data_rows = np.flatnonzero(nonblank & (first_byte != ord("#")))

    def text(self, line: int) -> str:
        """The text of the chunk's line ``line`` (0-based)."""
        return _decode(self.data[self.starts[line]:self.ends[line]], self.first_line + line)

    def body(self) -> bytes:
        """The data lines only, one per line, in order."""
        rows = self.data_rows
        first, last = rows[0], rows[-1]
        if last - first + 1 == len(rows):  # no comment or blank line between data lines
            return self.data[self.starts[first]:self.ends[last]]
        raw = np.frombuffer(self.data, dtype=np.uint8)
        is_data = np.zeros(len(self.starts), dtype=bool)
        is_data[rows] = True
        line_lengths = np.diff(np.concatenate((self.starts, [len(raw)])))
        return raw[np.repeat(is_data, line_lengths)].tobytes()

    def line_of(self, row: int) -> int:
        """1-based physical line in the file of the chunk's 0-based data row."""
        return int(self.data_rows[row]) + self.first_line

    def field_count_problems(self, separator: bytes, expected: int) -> list[dict]:
        """Data lines whose field count is wrong (a line-by-line pass, for errors only)."""
        found = []
        for row, line in enumerate(self.data_rows):
            count = self.data[self.starts[line]:self.ends[line]].count(separator) + 1
            if count != expected:
                message = f"{count} fields, expected {expected}, as in #fields"
                found.append(problem(self.line_of(row), None, message))
                if len(found) == MAX_PROBLEMS:
                    break
        return found


def _decode(raw: bytes, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"not valid UTF-8 text (byte 0x{raw[exc.start]:02x})"
        raise InputFormatError("encoding", message, line=line) from None


def _format_error(message: str, line: int | None = None) -> InputFormatError:
    return InputFormatError("invalid_format", message, line=line)


class _Header:
    """The #-directives of a Zeek TSV log, read as they come; fixed from the first record on."""

    def __init__(self) -> None:
        self.separator = "\t"
        self.set_separator = ","
        self.empty_field = "(empty)"
        self.unset_field = "-"
        self.fields: list[str] | None = None
        self._fixed = False  # a record has been read: the directives may no longer change

    def read(self, lines: _Lines) -> None:
        """Apply the chunk's directives (comment lines), in order."""
        first_record = lines.data_rows[0] if len(lines.data_rows) else None
        for line in lines.comments:
            fixed = self._fixed or (first_record is not None and line > first_record)
            self._directive(lines.text(line), lines.first_line + int(line), fixed)
        if first_record is not None:
            self._fixed = True

    def _directive(self, text: str, line: int, fixed: bool) -> None:
        if text.startswith("#separator"):
            separator = _unescape(text[len("#separator"):].strip())
            if len(separator.encode()) != 1:
                raise _format_error(f"unsupported #separator {separator!r}", line)
            self._set("separator", separator, "#separator", line, fixed)
            return
        key, _, value = text.partition(self.separator)
        if key == "#set_separator":
            self._set("set_separator", value, key, line, fixed)
        elif key == "#empty_field":
            self._set("empty_field", value, key, line, fixed)
        elif key == "#unset_field":
            self._set("unset_field", value, key, line, fixed)
        elif key == "#fields":
            fields = value.split(self.separator)
            if self.fields is not None and fields != self.fields:
                raise _format_error("the log repeats #fields with different columns", line)
            if len(set(fields)) != len(fields):
                raise _format_error("#fields names a column twice", line)
            self._set("fields", fields, key, line, fixed)

    def _set(self, name: str, value: object, directive: str, line: int, fixed: bool) -> None:
        if fixed and getattr(self, name) != value:
            raise _format_error(f"{directive} changes after the first record", line)
        setattr(self, name, value)


def _unescape(value: str) -> str:
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda match: chr(int(match.group(1), 16)), value)


def _split_combined_fields(fields: list[str]) -> dict[str, tuple[str, ...]]:
    """Columns whose name holds several names (IoT-23 writes "tunnel_parents   label   …")."""
    return {field: tuple(field.split()) for field in fields if len(field.split()) > 1}


_WANTED = frozenset({*NEEDED_FIELDS, *OPTIONAL_FIELDS, LABEL_FIELD, *DETAIL_FIELDS})


def _read_tsv(lines: _Lines, header: _Header, wanted: frozenset[str] = _WANTED) -> pd.DataFrame:
    fields = header.fields or []
    combined = _split_combined_fields(fields)
    available = set(fields) | {part for parts in combined.values() for part in parts}
    _require(available)
    usecols = [field for field in fields
               if field in wanted or wanted & set(combined.get(field, ()))]
    last = fields[-1]
    body = lines.body()
    try:
        table = pd.read_csv(
            io.BytesIO(body), sep=header.separator, header=None, names=fields,
            usecols=list(dict.fromkeys([*usecols, last])), engine="c", quoting=csv.QUOTE_NONE,
            dtype={field: object for field in fields if field not in _NUMERIC_COLUMNS},
            keep_default_na=False, na_values=[header.unset_field, header.empty_field],
            skip_blank_lines=False, encoding="utf-8",
        )
    except UnicodeDecodeError:
        table = None
    except ValueError:  # pandas' ParserError among them; the line pass below explains it
        table = None
    # pandas pads short lines (last field "") and, with usecols, drops extra fields: count.
    separators = body.count(header.separator.encode())
    if (table is None or len(table) != len(lines.data_rows)
            or separators != len(lines.data_rows) * (len(fields) - 1)
            or (table[last] == "").any()):
        _raise_first_bad_tsv_line(lines, header.separator.encode(), len(fields))
        if table is None or len(table) != len(lines.data_rows):
            raise _format_error("the Zeek log could not be read as TSV")
    if last not in usecols:
        table = table.drop(columns=last)
    for field, parts in combined.items():
        if field not in table:
            continue
        split = table.pop(field).str.split(n=len(parts) - 1, expand=True, regex=False)
        for position, part in enumerate(parts):
            if part not in table and position in split:
                table[part] = split[position].mask(split[position].isin(
                    [header.unset_field, header.empty_field]))
    return table


def _raise_first_bad_tsv_line(lines: _Lines, separator: bytes, expected: int) -> None:
    """Raise for the first data line that is not UTF-8 or has the wrong field count (with up
    to MAX_PROBLEMS field-count problems before it), line by line, so that where a chunk
    starts cannot change which error is reported."""
    found = []
    for row, line in enumerate(lines.data_rows):
        raw = lines.data[lines.starts[line]:lines.ends[line]]
        count = raw.count(separator) + 1
        if count != expected:
            message = f"{count} fields, expected {expected}, as in #fields"
            found.append(problem(lines.line_of(row), None, message))
            if len(found) == MAX_PROBLEMS:
                break
        elif not found:
            _decode(raw, lines.line_of(row))
    if found:
        raise InputFormatError("field_count", problems=found)
    for line in lines.data_rows:
        lines.text(line)  # raises the "encoding" error for the first bad line


def _read_json(lines: _Lines, fields: set[str], columns: list[str] | None = None
               ) -> pd.DataFrame:
    """JSON lines, parsed a chunk at a time as one JSON array (much faster than read_json).

    The wanted field names found are added to ``fields``; the table's columns are
    ``columns`` (default: all of ``fields``, sorted), absent ones unset.
    """
    body = lines.body()
    newlines = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == ord("\n"))
    cuts = [0, *(newlines[_JSON_CHUNK_ROWS - 1::_JSON_CHUNK_ROWS] + 1).tolist(), len(body)]
    wanted = {name.lower() for name in _WANTED}
    frames = []
    for start, stop in itertools.pairwise(cuts):
        chunk = body[start:stop].rstrip(b"\r\n")
        if not chunk:
            continue
        try:
            records = json.loads(b"[" + chunk.replace(b"\n", b",") + b"]")
        except ValueError:  # JSONDecodeError or UnicodeDecodeError: find and name the line
            _raise_first_json_error(lines)
        if not all(isinstance(record, dict) for record in records):
            _raise_first_json_error(lines)
        keys = {key for key in set().union(*records) if key.lower() in wanted}
        fields |= keys
        frames.append(pd.DataFrame.from_records(
            records, columns=sorted(keys) if columns is None else columns))
    table = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if len(table) != len(lines.data_rows):  # e.g. two objects on one line
        _raise_first_json_error(lines)
    return table.reindex(columns=sorted(fields) if columns is None else columns)


def _raise_first_json_error(lines: _Lines) -> None:
    """Raise for the first data line that is not UTF-8 or not one JSON object."""
    for row, line in enumerate(lines.data_rows):
        try:
            record = json.loads(lines.text(line))
        except json.JSONDecodeError as exc:
            message = f"not valid JSON ({exc.msg})"
        else:
            if isinstance(record, dict):
                continue
            message = "expected one JSON object per line"
        raise InputFormatError("invalid_json", message, line=lines.line_of(row))
    raise InputFormatError("invalid_json", "the Zeek JSON log could not be read")


def _require(available: set[str]) -> None:
    missing = [field for field in NEEDED_FIELDS if field not in available]
    if missing:
        raise InputFormatError(
            "invalid_format", f"the Zeek log lacks required field(s): {', '.join(missing)}"
        )


class _Problems:
    """Bad values found while converting columns, reported together."""

    def __init__(self, lines: _Lines) -> None:
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


def _connection_table(table: pd.DataFrame, lines: _Lines) -> pd.DataFrame:
    """Typed, checked columns: see ZeekLogReader.connections."""
    table = table.reset_index(drop=True)
    problems = _Problems(lines)
    conns = pd.DataFrame(index=table.index)
    conns["ts"] = _timestamps(table["ts"], problems)
    for column in _PORT_FIELDS:
        conns[column] = _ports(table[column], column, problems)
    for column in _NUMERIC_FIELDS:
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
