"""The watcher's one use of the Zeek reader and feature derivation: lines in, records out.

A live log may hold a bad line among good ones; unlike an upload, which is refused whole, the
watcher skips the bad line (naming file and line) and reads on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from utils.readers import InputFormatError, ParsedRecords
from utils.readers.zeek import ZeekLogReader, zeek_records
from utils.zeek_features import derive_kdd_features, window_lookback

__all__ = ["LOOKBACK", "BadLine", "LogParser", "derive_records"]

# Rows before a row, in time order, that its window features can depend on.
LOOKBACK = window_lookback()


@dataclass(frozen=True)
class BadLine:
    line: int  # 1-based physical line in its file
    reason: str


class LogParser:
    """Parses consecutive whole lines of one log file (TSV with its header, or JSON lines)."""

    def __init__(self) -> None:
        self._reader = ZeekLogReader()

    def parse(self, data: bytes, first_line: int) -> tuple[pd.DataFrame | None, list[BadLine]]:
        """The lines' records as a connection table (rows in file order, index from 0), and
        the lines skipped as malformed. ``first_line`` is the physical line of ``data``'s
        first line."""
        try:
            return self._reader.connections(data, first_line), []
        except InputFormatError:
            pass
        # one line at a time, only when a chunk holds a bad line
        tables, bad = [], []
        for number, line in enumerate(data.splitlines(keepends=True), start=first_line):
            try:
                table = self._reader.connections(line, number)
            except InputFormatError as exc:
                bad.append(BadLine(number, str(exc)))
                continue
            if table is not None:
                tables.append(table)
        if not tables:
            return None, bad
        return pd.concat(tables, ignore_index=True), bad


def derive_records(conns: pd.DataFrame, wanted: np.ndarray) -> ParsedRecords:
    """Records (features and identity) of the ``wanted`` rows of a connection table, derived
    with all its rows as context; the index (row numbers) is kept."""
    features = derive_kdd_features(conns)
    if not wanted.all():
        conns, features = conns[wanted], features[wanted]
    return zeek_records(conns, features)
