"""Where each column of a KDD / NSL-KDD file sits: fixed by its header or its first line.

A header may name the columns as common exports do (see COLUMN_ALIASES), in any case and in
any order; without a header the file holds the 41 features in KDD order, then optionally
the label and the difficulty.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from utils.readers.records import InputFormatError
from utils.readers.source import WS, binary_data, decode_utf8
from utils.schema import (
    CATEGORICAL_FEATURES,
    DIFFICULTY_COLUMN,
    FEATURE_NAMES,
    LABEL_COLUMN,
    N_FEATURES,
    NUMERIC_FEATURES,
)

# Other names (lower-case) that exports give a column. The OpenML / datahub copy of KDD Cup
# 1999 (and CSVs written from scikit-learn's fetch_kddcup99 in releases that used its names)
# prefixes eight content features with "l"; the KDD Cup task description spells
# is_host_login "is_hot_login". Labels: "labels" (fetch_kddcup99), "class" (the NSL-KDD ARFF
# files), "attack" and "outcome" (Kaggle notebooks, with "level" for the difficulty).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "num_compromised": ("lnum_compromised",),
    "root_shell": ("lroot_shell",),
    "su_attempted": ("lsu_attempted",),
    "num_root": ("lnum_root",),
    "num_file_creations": ("lnum_file_creations",),
    "num_shells": ("lnum_shells",),
    "num_access_files": ("lnum_access_files",),
    "num_outbound_cmds": ("lnum_outbound_cmds",),
    "is_host_login": ("is_hot_login",),
    LABEL_COLUMN: ("labels", "class", "attack", "outcome"),
    DIFFICULTY_COLUMN: ("difficulty_level", "level"),
}
# header name (lower-case) -> the column it names
_CANONICAL: dict[str, str] = {
    **{name: name for name in (*FEATURE_NAMES, LABEL_COLUMN, DIFFICULTY_COLUMN)},
    **{alias: name for name, aliases in COLUMN_ALIASES.items() for alias in aliases},
}
_MIN_FIELDS, _MAX_FIELDS = N_FEATURES, N_FEATURES + 2
_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")
# Certainly valid fields, as bytes patterns: printable ASCII without either separator, numbers
# too short to overflow, difficulty below MAX_DIFFICULTY.
_PLAIN_TEXT = rb"[\x20-\x2b\x2d-\x7e]*"
_PLAIN_NON_EMPTY_TEXT = rb" *[\x21-\x2b\x2d-\x7e][\x20-\x2b\x2d-\x7e]*"
_PLAIN_NUMBER = rb" *\+?(?:[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})(?:[eE][+-]?[0-9]{1,2})? *"
_PLAIN_SMALL_INT = rb" *\+?[0-9]{1,9} *"


@dataclass(frozen=True)
class Layout:
    """Where each column sits, fixed by the header or by the first data line."""

    sep: str
    n_fields: int
    feature_pos: tuple[int, ...]  # file position of each of FEATURE_NAMES
    label_pos: int | None
    difficulty_pos: int | None
    header_line: int | None
    first_line: int

    @functools.cached_property
    def names(self) -> tuple[str | None, ...]:
        """Column name by file position (None for columns we ignore)."""
        names: list[str | None] = [None] * self.n_fields
        for name, pos in zip(FEATURE_NAMES, self.feature_pos, strict=True):
            names[pos] = name
        if self.label_pos is not None:
            names[self.label_pos] = LABEL_COLUMN
        if self.difficulty_pos is not None:
            names[self.difficulty_pos] = DIFFICULTY_COLUMN
        return tuple(names)

    @functools.cached_property
    def text_dtypes(self) -> dict[int, type]:
        """Columns pandas must keep as str: categoricals, label and ignored columns."""
        numeric = {self.feature_pos[FEATURE_NAMES.index(n)] for n in NUMERIC_FEATURES}
        if self.difficulty_pos is not None:
            numeric.add(self.difficulty_pos)
        return {pos: object for pos in range(self.n_fields) if pos not in numeric}

    @functools.cached_property
    def numeric_pos(self) -> tuple[int, ...]:
        """File position of each of NUMERIC_FEATURES."""
        return tuple(self.feature_pos[FEATURE_NAMES.index(n)] for n in NUMERIC_FEATURES)

    @property
    def other_sep(self) -> str:
        return "," if self.sep == "\t" else "\t"

    @functools.cached_property
    def plain_line(self) -> re.Pattern[bytes]:
        """Matches only lines that are certainly valid (printable ASCII, modest numbers).

        Lets the line pass skip the field-by-field checks on good lines, so finding the few
        bad lines in a large chunk stays cheap.
        """
        parts = []
        for name in self.names:
            if name in CATEGORICAL_FEATURES:
                parts.append(_PLAIN_NON_EMPTY_TEXT)
            elif name is None or name == LABEL_COLUMN:
                parts.append(_PLAIN_TEXT)
            elif name == DIFFICULTY_COLUMN:
                parts.append(_PLAIN_SMALL_INT)
            else:
                parts.append(_PLAIN_NUMBER)
        return re.compile(re.escape(self.sep.encode()).join(parts))

    def field_count_message(self, count: int) -> str:
        if self.header_line is not None:
            return f"{count} fields, expected {self.n_fields}, as in the header"
        if _MIN_FIELDS <= count <= _MAX_FIELDS:
            return f"{count} fields, expected {self.n_fields}, as on line {self.first_line}"
        return f"{count} fields, expected {_MIN_FIELDS}-{_MAX_FIELDS}"


def line_text(raw: bytes, line: int) -> tuple[str | None, dict | None, str]:
    """Decode one physical line; (text, None, "") or (None, problem, error_type)."""
    found = _BINARY_BYTES.search(raw)
    if found:
        return None, binary_data(line, found.group()[0]), "binary_data"
    try:
        return decode_utf8(raw, line), None, ""
    except InputFormatError as exc:
        return None, exc.problems[0], exc.error_type


def detect_layout(raw: bytes, line: int) -> Layout:
    """The layout from the first non-blank line ``raw`` (a header, or the first record)."""
    text, found, error_type = line_text(raw, line)
    if text is None:
        raise InputFormatError(error_type, problems=[found])
    if "\t" in text and "," in text:
        raise InputFormatError("mixed_separators", "mixes tabs and commas", line=line)
    sep = "\t" if "\t" in text else ","
    fields = [_column_key(field) for field in text.split(sep)]
    if fields[0] in _CANONICAL:
        return _header_layout(fields, sep, line)
    count = len(fields)
    if not _MIN_FIELDS <= count <= _MAX_FIELDS:
        raise InputFormatError(
            "field_count", f"{count} fields, expected {_MIN_FIELDS}-{_MAX_FIELDS}", line=line
        )
    return Layout(
        sep=sep,
        n_fields=count,
        feature_pos=tuple(range(N_FEATURES)),
        label_pos=N_FEATURES if count > N_FEATURES else None,
        difficulty_pos=N_FEATURES + 1 if count > N_FEATURES + 1 else None,
        header_line=None,
        first_line=line,
    )


def _column_key(field: str) -> str:
    return field.strip(WS).strip("\"'").strip(WS).lower()


def _header_layout(names: list[str], sep: str, line: int) -> Layout:
    positions: dict[str, int] = {}
    for pos, name in enumerate(names):
        column = _CANONICAL.get(name)
        if column is None:
            continue
        if column in positions:
            first = names[positions[column]]
            message = f"column '{name}' appears twice" if first == name else (
                f"columns '{first}' and '{name}' both name the {column}"
            )
            raise InputFormatError("invalid_format", message, line=line)
        positions[column] = pos
    missing = [name for name in FEATURE_NAMES if name not in positions]
    if missing:
        listed = ", ".join(missing[:8])
        if len(missing) > 8:
            listed += f" and {len(missing) - 8} more"
        raise InputFormatError("invalid_format", f"header lacks column(s) {listed}", line=line)
    return Layout(
        sep=sep,
        n_fields=len(names),
        feature_pos=tuple(positions[name] for name in FEATURE_NAMES),
        label_pos=positions.get(LABEL_COLUMN),
        difficulty_pos=positions.get(DIFFICULTY_COLUMN),
        header_line=line,
        first_line=line,
    )
