"""What every reader returns or raises: ParsedRecords and InputFormatError.

Kept apart from the readers so that callers (the API, training, feature preparation) can
name these types without importing a parser.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MAX_PROBLEMS = 5


class InputFormatError(ValueError):
    """One exception for every invalid input; its message names the first offending lines/columns.

    ``error_type`` is the API's machine-readable code and ``problems`` (at most five) the
    structured form of the message, so the HTTP layer can pass both on unchanged.
    """

    def __init__(
        self,
        error_type: str,
        message: str | None = None,
        *,
        line: int | None = None,
        column: str | None = None,
        problems: Iterable[dict] | None = None,
    ) -> None:
        found = list(problems or [])
        if message is not None:
            found.insert(0, problem(line, column, message))
        if not found:
            raise TypeError("InputFormatError needs a message or problems")
        self.error_type = error_type
        self.problems: list[dict] = found[:MAX_PROBLEMS]
        super().__init__("; ".join(_describe(p) for p in self.problems))

    def __reduce__(self):
        return functools.partial(type(self), problems=self.problems), (self.error_type,)


def problem(line: int | None, column: str | None, message: str) -> dict:
    """One entry of InputFormatError.problems."""
    return {"line": line, "column": column, "message": message}


def _describe(entry: dict) -> str:
    where = []
    if entry.get("line") is not None:
        where.append(f"line {entry['line']}")
    if entry.get("column") is not None:
        where.append(f"column {entry['column']}")
    return f"{', '.join(where)}: {entry['message']}" if where else entry["message"]


@dataclass(frozen=True)
class FeatureArrays:
    """The features of ParsedRecords as the reader produced them, before any DataFrame.

    ``numeric`` (rows x NUMERIC_FEATURES, float64, column-major) holds the same values as the
    numeric columns of ``features``; each categorical is ``values[name][codes[name]]``. Feature
    preparation reads these directly (KDDFeatureTransformer.transform_arrays) instead of
    taking the DataFrame apart again and looking up every row's text.
    """

    numeric: np.ndarray
    codes: dict[str, np.ndarray]
    values: dict[str, np.ndarray]


@dataclass
class ParsedRecords:
    """Records in the model's layout, whatever file format they came from.

    ``features`` holds exactly schema.FEATURE_NAMES in order (categoricals as Python str in
    object columns, the rest float64). ``labels`` are normalised (pd.NA when unknown) or None
    when the input has no label column. The index is the 0-based data row of the whole input,
    also for chunks from iter_record_chunks. ``numbered``: the index already holds those row
    numbers, which need not be consecutive (a large Zeek log's rows come in time order).
    ``arrays``, when the reader filled it, is the same features as arrays; it is only valid
    as long as ``features`` is not modified.
    """

    features: pd.DataFrame
    labels: pd.Series | None
    difficulty: pd.Series | None
    identity: pd.DataFrame | None = None
    input_kind: str = "kdd"
    numbered: bool = False
    arrays: FeatureArrays | None = field(default=None, repr=False, compare=False)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def __len__(self) -> int:
        return len(self.features)


# A part of an input to parse, on any thread; see utils.readers.dispatch.iter_parse_tasks.
ParseTask = Callable[[], ParsedRecords]


def normalise_label(value: str) -> str:
    """KDD Cup 99 writes "normal." where NSL-KDD writes "normal"; both mean the same class."""
    return value.strip().lower().removesuffix(".").strip()


def number_rows(records: ParsedRecords, start: int) -> ParsedRecords:
    """Number a part's rows from ``start`` (its 0-based row in the whole input), in place,
    unless they are numbered already."""
    if start and not records.numbered:
        index = pd.RangeIndex(start, start + len(records))
        for frame in (records.features, records.labels, records.difficulty, records.identity):
            if frame is not None:
                frame.index = index
    return records


def slice_records(records: ParsedRecords, start: int, stop: int) -> ParsedRecords:
    """Rows ``start:stop`` (by position) of ``records``, keeping their index."""
    return take_records(records, slice(start, stop))


def take_records(records: ParsedRecords, rows: np.ndarray | slice) -> ParsedRecords:
    """The rows at positions ``rows`` (a slice, or where a boolean mask is true) of
    ``records``, in that order, keeping their index (each row's number in its input)."""

    def part(frame):
        return None if frame is None else frame.iloc[rows]

    return ParsedRecords(
        features=part(records.features),
        labels=part(records.labels),
        difficulty=part(records.difficulty),
        identity=part(records.identity),
        input_kind=records.input_kind,
        numbered=records.numbered,
    )


def concat_records(parts: Iterable[ParsedRecords]) -> ParsedRecords:
    """Several inputs of one kind as one (e.g. a baseline of several conn.logs): rows are
    renumbered from 0, and labels are None only when no part has a label column."""
    parts = list(parts)
    if not parts:
        raise ValueError("no records to concatenate")
    kinds = {part.input_kind for part in parts}
    if len(kinds) > 1:
        raise ValueError(f"cannot mix input kinds {sorted(kinds)} in one set of records")

    def joined(name: str) -> pd.DataFrame | pd.Series | None:
        frames = [getattr(part, name) for part in parts]
        if all(frame is None for frame in frames):
            return None
        if name == "labels":  # a part without labels is unlabeled: its rows are unknown
            frames = [pd.Series(pd.NA, index=part.features.index, dtype=object)
                      if frame is None else frame.astype(object)
                      for part, frame in zip(parts, frames, strict=True)]
        elif any(frame is None for frame in frames):
            return None
        return pd.concat(frames, ignore_index=True)

    return ParsedRecords(
        features=pd.concat([part.features for part in parts], ignore_index=True),
        labels=joined("labels"),
        difficulty=joined("difficulty"),
        identity=joined("identity"),
        input_kind=kinds.pop(),
    )
