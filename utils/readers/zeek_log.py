"""The text of a Zeek log (TSV with #-directives, or JSON lines) as a raw table of the
columns the reader needs, with bad lines named by their physical line in the file."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re

import numpy as np
import pandas as pd

from utils.readers.records import MAX_PROBLEMS, InputFormatError, problem
from utils.readers.source import decode_utf8
from utils.zeek_features import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

# Besides what the feature derivation needs: the connection's uid, and its label if any.
OPTIONAL_FIELDS: tuple[str, ...] = ("uid", *OPTIONAL_COLUMNS)
LABEL_FIELD = "label"
DETAIL_FIELDS: tuple[str, ...] = ("detailedlabel", "detailed-label", "detailed_label")
COUNT_FIELDS: tuple[str, ...] = ("duration", "orig_bytes", "resp_bytes")
_NUMERIC_COLUMNS = frozenset({"ts", "id.orig_p", "id.resp_p", *COUNT_FIELDS})
_JSON_CHUNK_ROWS = 50_000


class Lines:
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
        return decode_utf8(self.data[self.starts[line]:self.ends[line]], self.first_line + line)

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


def format_error(message: str, line: int | None = None) -> InputFormatError:
    return InputFormatError("invalid_format", message, line=line)


class Header:
    """The #-directives of a Zeek TSV log, read as they come; fixed from the first record on."""

    def __init__(self) -> None:
        self.separator = "\t"
        self.set_separator = ","
        self.empty_field = "(empty)"
        self.unset_field = "-"
        self.fields: list[str] | None = None
        self._fixed = False  # a record has been read: the directives may no longer change

    def read(self, lines: Lines) -> None:
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
                raise format_error(f"unsupported #separator {separator!r}", line)
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
                raise format_error("the log repeats #fields with different columns", line)
            if len(set(fields)) != len(fields):
                raise format_error("#fields names a column twice", line)
            self._set("fields", fields, key, line, fixed)

    def _set(self, name: str, value: object, directive: str, line: int, fixed: bool) -> None:
        if fixed and getattr(self, name) != value:
            raise format_error(f"{directive} changes after the first record", line)
        setattr(self, name, value)


def _unescape(value: str) -> str:
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda match: chr(int(match.group(1), 16)), value)


def _split_combined_fields(fields: list[str]) -> dict[str, tuple[str, ...]]:
    """Columns whose name holds several names (IoT-23 writes "tunnel_parents   label   …")."""
    return {field: tuple(field.split()) for field in fields if len(field.split()) > 1}


_WANTED = frozenset({*REQUIRED_COLUMNS, *OPTIONAL_FIELDS, LABEL_FIELD, *DETAIL_FIELDS})


def read_tsv(lines: Lines, header: Header, wanted: frozenset[str] = _WANTED) -> pd.DataFrame:
    fields = header.fields or []
    combined = _split_combined_fields(fields)
    available = set(fields) | {part for parts in combined.values() for part in parts}
    require_fields(available)
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
            raise format_error("the Zeek log could not be read as TSV")
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


def _raise_first_bad_tsv_line(lines: Lines, separator: bytes, expected: int) -> None:
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
            decode_utf8(raw, lines.line_of(row))
    if found:
        raise InputFormatError("field_count", problems=found)
    for line in lines.data_rows:
        lines.text(line)  # raises the "encoding" error for the first bad line


def read_json(lines: Lines, fields: set[str], columns: list[str] | None = None
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


def _raise_first_json_error(lines: Lines) -> None:
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


def require_fields(available: set[str]) -> None:
    missing = [field for field in REQUIRED_COLUMNS if field not in available]
    if missing:
        raise InputFormatError(
            "invalid_format", f"the Zeek log lacks required field(s): {', '.join(missing)}"
        )
