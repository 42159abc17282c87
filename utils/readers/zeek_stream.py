"""Zeek conn.logs of any size in bounded memory, with the same features as a whole-file read.

A row's window features depend on the rows before it in time order (ties in file order), at
most utils.zeek_features.window_lookback() of them. Zeek writes a record when its connection
ends, so a log is not in time order: a long connection's record comes long after those that
started after it, and a row's predecessors in time may lie anywhere in the file. So a large
log is read twice, chunk by chunk:

1. only ``ts``. The times (8 bytes a row) are sorted once, which tells, for every row, the
   chunk after which all its predecessors have been read (``final``) and the chunk after
   which no row still to come needs it as a predecessor (``drop``).
2. every column. Rows are held from their chunk until their ``drop`` chunk; at their
   ``final`` chunk their features are derived, with their predecessors as context, and they
   are handed on, numbered by their data row in the file (so batches are not in file order).

Memory then holds the times, the two step numbers, and the rows held at once: about one chunk
plus the rows that wait for a connection logged late. The plan tells that peak before the
second pass starts; a log whose order would need more than ``max_held_rows`` is refused (413)
instead of being read, and so is one of more than MAX_ROWS rows, as soon as the first pass
has counted them. A log that fits in one chunk is read once, whole.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from utils.readers.records import InputFormatError, ParsedRecords
from utils.readers.zeek import ZeekLogReader, zeek_identity, zeek_records
from utils.zeek_features import derive_kdd_features, window_lookback

# Held rows cost about 300-600 bytes each (the connection table; JSON strings are not shared).
MAX_HELD_ROWS = 500_000
# Every row costs about 25 bytes for the plan and as much for its results, however short it
# is: a 1 GiB log of the shortest possible rows would hold 60 M. Real logs run 120-250 bytes
# a row, so the decompressed limit (1 GiB) allows about 4-9 M.
MAX_ROWS = 10_000_000
# Rows derived at once: deriving costs about 1 KB a row while it runs, and each batch is
# scored while the next one is derived.
BATCH_ROWS = 25_000

# A fresh iterator over the decompressed log as (chunk of whole lines, its newline count).
ChunkSource = Callable[[], Iterator[tuple[bytes, int]]]


def iter_zeek_batches(open_chunks: ChunkSource, *,
                      max_held_rows: int | None = None) -> Iterator[ParsedRecords]:
    """The log's records in batches; each row is in exactly one, numbered by its data row.

    ``open_chunks`` is called once for a log of one chunk, otherwise three times (the first
    two chunks tell which case it is). Errors are InputFormatErrors with whole-file lines.
    """
    reader = ZeekLogReader()
    chunks = open_chunks()
    try:
        first = next(chunks, None)
        more = first is not None and next(chunks, None) is not None
    finally:
        chunks.close()
    if not more:
        table = None if first is None else reader.connections(first[0], first_line=1)
        reader.finish(0 if table is None else len(table))
        assert table is not None  # finish() refuses a log without records
        yield zeek_records(table, derive_kdd_features(table))
        return
    del first
    lookback = window_lookback()
    plan = _plan(reader, open_chunks(), lookback)
    max_held_rows = MAX_HELD_ROWS if max_held_rows is None else max_held_rows
    if plan.peak_rows > max_held_rows:
        raise InputFormatError(
            "too_large",
            f"the Zeek log is too far out of time order to read in bounded memory: "
            f"{plan.peak_rows:,} records would wait for connections logged later (limit "
            f"{max_held_rows:,}); sort it by ts or split it")
    yield from _batches(reader, open_chunks(), plan, lookback)


def iter_zeek_identity(chunks: Iterator[tuple[bytes, int]]) -> Iterator[pd.DataFrame]:
    """The identity columns of a log already read once (so known valid), in file order."""
    reader = ZeekLogReader()
    line = 1
    for chunk, newlines in chunks:
        table = reader.connections(chunk, line, require=False)
        line += newlines
        if table is not None:
            yield zeek_identity(table)


@dataclass
class _Plan:
    """What the first pass found: when each row (in file order) can be finished, forgotten."""

    final: np.ndarray
    drop: np.ndarray
    checksums: list[int]  # CRC-32 of each chunk's times: both passes must read the same log
    peak_rows: int


def _plan(reader: ZeekLogReader, chunks: Iterator[tuple[bytes, int]], lookback: int) -> _Plan:
    times: list[np.ndarray] = []
    checksums = []
    line = 1
    rows = 0
    for chunk, newlines in chunks:
        ts = reader.timestamps(chunk, line)
        line += newlines
        times.append(ts)
        checksums.append(zlib.crc32(ts))
        rows += len(ts)
        if rows > MAX_ROWS:
            raise InputFormatError(
                "too_large", f"the Zeek log holds more than {MAX_ROWS:,} records, the most one "
                "upload may hold; split it")
    sizes = [len(ts) for ts in times]
    reader.finish(rows)
    step = np.repeat(np.arange(len(sizes), dtype=np.min_scalar_type(len(sizes))), sizes)
    ts = np.concatenate(times)
    del times
    order = np.argsort(ts, kind="stable")  # NaN (a bad ts) last; the second pass refuses it
    del ts
    final_in_order = _trailing_max(step[order], lookback + 1)
    drop_in_order = _trailing_max(final_in_order[::-1], lookback + 1)[::-1]
    final = np.empty_like(step)
    final[order] = final_in_order
    drop = np.empty_like(step)
    drop[order] = drop_in_order
    read_by = np.cumsum(np.bincount(step, minlength=len(sizes)))
    dropped_before = np.cumsum(np.bincount(drop, minlength=len(sizes))) - np.bincount(
        drop, minlength=len(sizes))
    peak = int((read_by - dropped_before).max())
    return _Plan(final=final, drop=drop, checksums=checksums, peak_rows=peak)


def _trailing_max(values: np.ndarray, width: int) -> np.ndarray:
    """out[p] = max(values[p - width + 1 : p + 1]) (fewer at the start), in O(n): the window
    spans at most two blocks of ``width``, the end of one and the start of the next."""
    n = len(values)
    if width <= 1 or n == 0:
        return values.copy()
    blocks = -(-n // width)
    padded = np.zeros(blocks * width, dtype=values.dtype)
    padded[:n] = values
    grid = padded.reshape(blocks, width)
    from_start = np.maximum.accumulate(grid, axis=1).ravel()[:n]
    to_end = np.maximum.accumulate(grid[:, ::-1], axis=1)[:, ::-1].ravel()
    out = from_start.copy()
    if n >= width:
        out[width - 1:] = np.maximum(from_start[width - 1:], to_end[:n - width + 1])
    return out


def _batches(reader: ZeekLogReader, chunks: Iterator[tuple[bytes, int]], plan: _Plan,
             lookback: int) -> Iterator[ParsedRecords]:
    held: pd.DataFrame | None = None  # rows read and still needed, in file order
    line, row = 1, 0
    for step, (chunk, newlines) in enumerate(chunks):
        table = reader.connections(chunk, line)
        line += newlines
        ts = np.empty(0) if table is None else np.ascontiguousarray(table["ts"].to_numpy())
        if zlib.crc32(ts) != plan.checksums[step]:
            raise RuntimeError("the Zeek log read differently in its two passes")
        if table is not None:
            table.index = pd.RangeIndex(row, row + len(table))
            row += len(table)
            held = table if held is None else pd.concat([held, table])
        if held is None:
            continue
        rows = held.index.to_numpy()
        ready = plan.final[rows] == step
        if ready.any():
            yield from _finish(held, ready, lookback)
        kept = plan.drop[rows] > step
        if not kept.all():
            held = held[kept]


def _finish(held: pd.DataFrame, ready: np.ndarray, lookback: int) -> Iterator[ParsedRecords]:
    """Records of the ``ready`` rows of ``held`` (whose predecessors ``held`` all holds), in
    batches of at most BATCH_ROWS rows consecutive in time, each derived with its context."""
    order = np.argsort(held["ts"].to_numpy(), kind="stable")  # held is in file order
    in_order = np.flatnonzero(ready[order])
    for start in range(0, len(in_order), BATCH_ROWS):
        batch = np.zeros(len(held), dtype=bool)
        batch[in_order[start:start + BATCH_ROWS]] = True
        context = np.empty(len(held), dtype=bool)
        context[order] = _followed_by(batch, lookback)
        wanted = np.empty(len(held), dtype=bool)
        wanted[order] = batch
        # derive_kdd_features sorts by time itself (ties by position, i.e. file order), so
        # the rows it needs can stay in file order
        conns = held if context.all() else held[context]
        features = derive_kdd_features(conns)
        if not wanted[context].all():
            features = features[wanted[context]]
        yield zeek_records(held if wanted.all() else held[wanted], features)


def _followed_by(mask: np.ndarray, distance: int) -> np.ndarray:
    """Positions p with a True in mask[p : p + distance + 1]."""
    counts = np.concatenate(([0], np.cumsum(mask)))
    ends = np.minimum(np.arange(len(mask)) + distance + 1, len(mask))
    return counts[ends] - counts[:-1] > 0
