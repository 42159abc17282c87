"""Files cut into partitions ("pieces"), and the rows each Zeek piece needs from the others.

A plain file is cut at line ends into pieces of about ``piece_bytes``: a piece holds the lines
that start in its byte range, so every worker finds the same cuts on its own. A gzip file
cannot be split (its bytes only decompress from the start), so it is one piece, held whole
in the worker's memory while it is read: size the worker memory limit for the largest one.

A Zeek row's window features depend on the ``lookback`` rows before it in time order (ties in
stream order): the last 2 seconds (at most 511 connections) and the last 255 connections.
Zeek writes a record when its connection ends, so those rows may sit in the previous piece,
in any earlier one (a burst before a long connection ended) or in a later one (a long
connection that started before the row, logged after it). ``zeek_halos`` finds them exactly
from every row's ``ts`` (a first pass reads only those): a piece scored together with its
halo gets the features the whole stream would give it, record for record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utils.batch.inputs import InputFile

DEFAULT_PIECE_MB = 64.0


@dataclass(frozen=True)
class Piece:
    """Lines of one file: those starting in bytes [start, end) (a gzip file: all of it)."""

    file_id: int
    path: str
    kind: str
    gzip: bool
    index: int  # the piece's place in its file
    start: int
    end: int | None  # None: to the end of the file

    @property
    def name(self) -> str:
        return f"{self.file_id:05d}-{self.index:04d}"


def cut(file_id: int, item: InputFile, piece_bytes: int) -> list[Piece]:
    """The pieces of one file, in order."""
    if item.gzip or item.size <= piece_bytes:
        return [Piece(file_id, item.path, item.kind, item.gzip, 0, 0, None)]
    starts = list(range(0, item.size, piece_bytes))
    ends = [*starts[1:], None]
    return [Piece(file_id, item.path, item.kind, False, i, start, end)
            for i, (start, end) in enumerate(zip(starts, ends, strict=True))]


def zeek_halos(times: list[np.ndarray], lookback: int) -> list[dict[int, np.ndarray]]:
    """For each piece q of a stream (pieces in stream order, ``times[q]`` the ts of its rows
    in file order): {piece p: the rows of p (positions in p, ascending) that q's rows have
    among their ``lookback`` predecessors in time order}, p != q."""
    sizes = np.array([len(t) for t in times], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    if offsets[-1] == 0:
        return [{} for _ in times]
    order = np.argsort(np.concatenate(times), kind="stable")  # ties in stream order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    piece_of = np.repeat(np.arange(len(times)), sizes)
    sorted_piece = piece_of[order]
    halos = []
    for q in range(len(times)):
        ranks = np.sort(rank[offsets[q]:offsets[q + 1]])
        if len(ranks) == 0:
            halos.append({})
            continue
        positions = _covered(ranks, lookback)
        rows = order[positions[sorted_piece[positions] != q]]
        owners = piece_of[rows]
        halo = {}
        for p in np.unique(owners).tolist():
            halo[p] = np.sort(rows[owners == p] - offsets[p])
        halos.append(halo)
    return halos


def _covered(ranks: np.ndarray, lookback: int) -> np.ndarray:
    """The union of [r - lookback, r] over the ascending ``ranks``, as positions."""
    lows = np.maximum(ranks - lookback, 0)
    opens = np.ones(len(ranks), dtype=bool)
    opens[1:] = lows[1:] > ranks[:-1] + 1
    starts = lows[opens]
    ends = ranks[np.r_[opens[1:], True]]
    lengths = ends - starts + 1
    before = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    return np.arange(lengths.sum()) - np.repeat(before - starts, lengths)
