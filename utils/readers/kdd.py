"""The KDD / NSL-KDD record reader: a fast and a careful parser that never disagree.

Every upload passes through here, so the reader has to be both fast and strict. The fast path
is pandas' C reader plus a few vectorised checks; whenever it balks, a line-by-line pass reads
the same bytes and is the one that decides: it either returns the same records or raises an
InputFormatError naming the first offending lines and columns. The fast path only accepts
input that the line pass would accept with the same values, so the two never disagree.
"""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pandas as pd

from utils.readers.kdd_layout import Layout, detect_layout, line_text
from utils.readers.records import (
    MAX_PROBLEMS,
    FeatureArrays,
    InputFormatError,
    ParsedRecords,
    normalise_label,
    problem,
)
from utils.readers.source import WS, WS_BYTES
from utils.schema import (
    CATEGORICAL_FEATURES,
    DIFFICULTY_COLUMN,
    FEATURE_NAMES,
    LABEL_COLUMN,
    NUMERIC_FEATURES,
)

NON_BLANK = re.compile(rb"[^ \t\r\n\v\f]")
_BINARY_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_UNKNOWN_LABELS = frozenset({"", "?", "-"})
_MAX_DIFFICULTY = 2**31 - 1


class KddReader:
    """Parses the consecutive line-aligned chunks of one KDD file.

    ``prepare`` runs on the chunks in order (the first one fixes the layout); ``parse_piece``
    only reads the layout, so the prepared bodies can be parsed on any thread.
    """

    def __init__(self) -> None:
        self.layout: Layout | None = None
        self.has_records = False

    def prepare(self, chunk: bytes, first_line: int) -> tuple[bytes, int] | None:
        """The chunk's records part and its first line number; None if there is none."""
        if self.layout is None:
            start, first_line = _skip_blank_lines(chunk, first_line)
            if start is None:
                return None
            end = chunk.find(b"\n", start)
            end = len(chunk) if end < 0 else end
            self.layout = detect_layout(chunk[start:end].removesuffix(b"\r"), first_line)
            if self.layout.header_line is not None:
                start, first_line = end + 1, first_line + 1
            chunk = chunk[start:]
        if not NON_BLANK.search(chunk):
            return None  # blank lines only: no need to read them one by one
        # any other character makes a record or an error, so the input is not empty
        self.has_records = True
        return chunk, first_line

    def parse_piece(self, chunk: bytes, first_line: int, start: int, end: int) -> ParsedRecords:
        """The lines chunk[start:end] of a prepared chunk (its first line is ``first_line``)."""
        assert self.layout is not None
        body = chunk if (start, end) == (0, len(chunk)) else chunk[start:end]
        records = _parse_fast(body, self.layout)
        if records is None:  # only now is the piece's first line number needed
            line = first_line + chunk.count(b"\n", 0, start)
            records = _parse_slow(body, self.layout, line)
        return records

    def finish(self) -> None:
        """Refuse an input that held no records at all."""
        if self.layout is None:
            raise InputFormatError("empty_file", "the file is empty")
        if not self.has_records:
            raise InputFormatError("no_records", "the file has a header but no records")


def _skip_blank_lines(chunk: bytes, line: int) -> tuple[int | None, int]:
    """Offset and line number of the first non-blank line (None if there is none)."""
    rest = chunk.lstrip(WS_BYTES)  # at C speed: a million blank lines must not take seconds
    if not rest:
        return None, line + chunk.count(b"\n")
    start = chunk.rfind(b"\n", 0, len(chunk) - len(rest)) + 1
    return start, line + chunk.count(b"\n", 0, start)


def _fast_records(numeric: np.ndarray, texts: dict[int, tuple[np.ndarray, np.ndarray]],
                  difficulty: np.ndarray | None, layout: Layout) -> ParsedRecords:
    """ParsedRecords (with its arrays) from checked numbers and text columns given as
    (codes, distinct cleaned values) by file position."""
    encoded = {name: texts[layout.feature_pos[FEATURE_NAMES.index(name)]]
               for name in CATEGORICAL_FEATURES}
    arrays = FeatureArrays(numeric=numeric,
                           codes={name: pair[0] for name, pair in encoded.items()},
                           values={name: pair[1] for name, pair in encoded.items()})
    categoricals = {name: values[codes] for name, (codes, values) in encoded.items()}
    labels = None
    if layout.label_pos is not None:
        label_codes, label_values = texts[layout.label_pos]
        labels = label_values[label_codes]
    return _assemble(numeric, categoricals, labels, difficulty, arrays)


def _parse_fast(chunk: bytes, layout: Layout) -> ParsedRecords | None:
    """pandas' C reader plus vectorised checks; None whenever anything looks off.

    Text columns are factorised: the checks run once per distinct value, and the records
    carry the numbers and the codes as FeatureArrays for the feature transformer.
    """
    if b"\x00" in chunk or layout.other_sep.encode() in chunk:
        return None
    if b"\r" in chunk and chunk.count(b"\r") != chunk.count(b"\r\n"):
        return None  # a lone CR: pandas would take it for a line break, the line pass not
    if not chunk.isascii():
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        frame = pd.read_csv(
            io.BytesIO(chunk), sep=layout.sep, header=None, dtype=layout.text_dtypes,
            quoting=csv.QUOTE_NONE, na_filter=False, low_memory=False, engine="c",
        )
    except Exception:  # anything pandas refuses goes to the line pass, which explains it
        return None
    if frame.shape[1] != layout.n_fields:
        return None  # pandas drops the extra fields of a first line that has too many
    # A line with too few fields is padded with NaN, which the checks below refuse.

    numeric = _finite_non_negative(frame, list(layout.numeric_pos))
    if numeric is None:
        return None
    texts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for pos in layout.text_dtypes:
        codes, uniques = pd.factorize(frame.iloc[:, pos].to_numpy(dtype=object))
        if (codes < 0).any():  # a missing field (pandas pads a short line with NaN)
            return None
        values = _clean_uniques(uniques, layout.names[pos])
        if values is None:
            return None
        texts[pos] = codes, values
    difficulty = None
    if layout.difficulty_pos is not None:
        values = _finite_non_negative(frame, [layout.difficulty_pos])
        if values is None:
            return None
        values = values[:, 0]
        if not ((values == np.floor(values)) & (values <= _MAX_DIFFICULTY)).all():
            return None
        difficulty = values.astype(np.int64)
    return _fast_records(numeric, texts, difficulty, layout)


def _finite_non_negative(frame: pd.DataFrame, positions: list[int]) -> np.ndarray | None:
    values = np.empty((len(frame), len(positions)), dtype=np.float64, order="F")
    for j, pos in enumerate(positions):
        column = frame[pos].to_numpy()  # header=None: the column labels are the positions
        if column.dtype.kind not in "iuf":
            return None  # pandas could not read some value as a number
        values[:, j] = column
    if values.size and not (values.min() >= 0 and values.max() < np.inf):  # NaN fails both
        return None
    return values


def _label_or_na(value: str):
    label = normalise_label(value)
    return pd.NA if label in _UNKNOWN_LABELS else label


def _clean_uniques(uniques: np.ndarray, name: str | None) -> np.ndarray | None:
    """The distinct values of a text column, stripped (labels normalised), as an object array;
    None if one is empty, binary or not a str."""
    cleaned = np.empty(len(uniques), dtype=object)
    for i, value in enumerate(uniques):
        if not isinstance(value, str) or _BINARY_CHARS.search(value):
            return None
        if name == LABEL_COLUMN:
            cleaned[i] = _label_or_na(value)
            continue
        value = value.strip(WS)
        if not value and name in CATEGORICAL_FEATURES:
            return None
        cleaned[i] = value
    return cleaned


def _parse_slow(
    chunk: bytes, layout: Layout, first_line: int
) -> ParsedRecords:
    """Line by line: the records, or an InputFormatError with the first problems found.

    A first pass only looks for problems (cheaply, see Layout.plain_line); the records are
    built in a second pass, once the chunk is known to be valid.
    """
    positions = [(pos, name) for pos, name in enumerate(layout.names) if name is not None]
    lines = [
        (first_line + offset, raw.removesuffix(b"\r"))
        for offset, raw in enumerate(chunk.split(b"\n"))
        if raw.strip(WS_BYTES)
    ]
    problems: list[dict] = []
    error_type = ""
    plain = layout.plain_line.fullmatch
    for line, raw in lines:
        if plain(raw):
            continue
        found, kind, _ = _check_line(raw, line, layout, positions)
        if found:
            error_type = error_type or kind
            problems.extend(found)
            if len(problems) >= MAX_PROBLEMS:
                break
    if problems:
        raise InputFormatError(error_type, problems=problems)

    rows = [_check_line(raw, line, layout, positions)[2] for line, raw in lines]
    n = len(rows)
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(positions)
    by_name = dict(zip((name for _, name in positions), columns, strict=True))
    numeric = np.array([by_name[name] for name in NUMERIC_FEATURES], dtype=np.float64).T
    categoricals = {
        name: np.array(by_name[name], dtype=object) for name in CATEGORICAL_FEATURES
    }
    labels = None
    if layout.label_pos is not None:
        labels = np.empty(n, dtype=object)
        labels[:] = by_name[LABEL_COLUMN]
    difficulty = None
    if layout.difficulty_pos is not None:
        difficulty = np.array(by_name[DIFFICULTY_COLUMN], dtype=np.int64)
    return _assemble(numeric, categoricals, labels, difficulty)


def _check_line(
    raw: bytes, line: int, layout: Layout, positions: list[tuple[int, str]]
) -> tuple[list[dict], str, list]:
    """Problems of one non-blank line (with their error type), else its parsed values."""
    text, found, error_type = line_text(raw, line)
    if text is None:
        return [found], error_type, []
    if layout.other_sep in text:
        other, own = ("a tab", "comma") if layout.sep == "," else ("a comma", "tab")
        message = f"contains {other}, but the file is {own}-separated"
        return [problem(line, None, message)], "mixed_separators", []
    fields = text.split(layout.sep)
    if len(fields) != layout.n_fields:
        message = layout.field_count_message(len(fields))
        return [problem(line, None, message)], "field_count", []
    problems: list[dict] = []
    row: list = []
    for pos, name in positions:
        value, message = _field_value(fields[pos], name)
        if message is not None:
            problems.append(problem(line, name, message))
        row.append(value)
    return problems, "invalid_value", row


def _field_value(field: str, name: str) -> tuple[object, str | None]:
    if name == LABEL_COLUMN:
        return _label_or_na(field), None
    text = field.strip(WS)
    if name in CATEGORICAL_FEATURES:
        return text, None if text else "empty value"
    if not text:
        return None, "empty value"
    quoted = repr(text if len(text) <= 40 else text[:37] + "...")
    if not _NUMBER.fullmatch(text):
        if _NON_FINITE.fullmatch(text):
            return None, f"{quoted} is not a finite number"
        return None, f"{quoted} is not a number"
    value = float(text) + 0.0  # + 0.0 turns -0.0 into 0.0, as pandas reads "-0"
    if value == np.inf:
        return None, f"{quoted} is not a finite number"
    if value < 0:
        return None, f"{quoted} must not be negative"
    if name == DIFFICULTY_COLUMN:
        if value != int(value):
            return None, f"{quoted} is not a whole number"
        if value > _MAX_DIFFICULTY:
            return None, f"{quoted} is out of range"
        return int(value), None
    return value, None


def _assemble(
    numeric: np.ndarray,
    categoricals: dict[str, np.ndarray],
    labels: np.ndarray | None,
    difficulty: np.ndarray | None,
    arrays: FeatureArrays | None = None,
) -> ParsedRecords:
    """Build ParsedRecords the same way for both paths, so their output cannot differ."""
    index = pd.RangeIndex(len(numeric))
    features = pd.DataFrame(numeric, columns=list(NUMERIC_FEATURES), index=index, copy=False)
    for name in CATEGORICAL_FEATURES:  # ascending positions, so each lands where it belongs
        column = pd.Series(categoricals[name], index=index, dtype=object)
        features.insert(FEATURE_NAMES.index(name), name, column)
    return ParsedRecords(
        features=features,
        labels=None if labels is None else pd.Series(
            labels, index=index, dtype=object, name=LABEL_COLUMN
        ),
        difficulty=None if difficulty is None else pd.Series(
            difficulty, index=index, dtype=np.int64, name=DIFFICULTY_COLUMN
        ),
        arrays=arrays,
    )

