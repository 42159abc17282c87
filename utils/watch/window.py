"""The rows a live watcher holds so that each row's window features equal a batch read's.

A row's window features depend on the LOOKBACK rows before it in time order (ties in read
order). Zeek writes a record when its connection ends, so a record can arrive after records
that started later. A row is therefore held until no record still to come can land before it:
until the log's time (the largest ``ts`` read, plus the wall-clock seconds since it last grew,
since a live sensor's clock runs on when no connection ends) has passed the row's ``ts`` by
``reorder_seconds``. Then it is final: derived with the LOOKBACK final rows before it as
context, exactly as a batch read of the same log derives it, provided no record arrives more
than ``reorder_seconds`` behind the newest one. One that does is "late": it is scored at
once with the context still held, and counted.

Memory holds the rows waiting (about reorder_seconds times the connection rate, at most
``max_held`` rows: past that the oldest are finalised early, and counted) plus LOOKBACK
rows of context.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from utils.watch.zeek_lines import LOOKBACK

READ_AT = "_read_at"  # wall-clock time the watcher read the row (for the lag figure)
BATCH_ROWS = 25_000  # rows derived and scored at once


@dataclass
class Finalised:
    """Rows whose features are final, with the context their derivation needs."""

    conns: pd.DataFrame  # context rows then the rows, in read order (index: row number)
    wanted: np.ndarray  # bool per row of conns: the rows to score (the rest is context)
    late: int  # rows among them that arrived after rows later in time were finalised


class WindowState:
    """Held rows (not final yet) and context rows (the last LOOKBACK final rows)."""

    def __init__(self, reorder_seconds: float, max_held: int,
                 held: pd.DataFrame | None = None, context: pd.DataFrame | None = None,
                 log_time: float = -math.inf, final_time: float = -math.inf) -> None:
        self.reorder_seconds = reorder_seconds
        self.max_held = max_held
        self.held = held  # in read order
        self.context = context  # in read order
        self.log_time = log_time  # largest ts read
        self.final_time = final_time  # largest ts finalised: rows before it are late
        self._log_time_grew_at: float | None = None  # wall clock, for the idle extension
        self.forced = 0  # rows finalised early because max_held was reached

    def __len__(self) -> int:
        return 0 if self.held is None else len(self.held)

    def add(self, conns: pd.DataFrame, now: float) -> None:
        """Hold new rows (index: their row numbers, increasing)."""
        if not len(conns):
            return
        conns = conns.assign(**{READ_AT: now})
        self.held = conns if self.held is None else pd.concat([self.held, conns])
        newest = float(conns["ts"].max())
        if newest > self.log_time:
            self.log_time = newest
            self._log_time_grew_at = now

    def cutoff(self, now: float) -> float:
        """Rows with ts below this are final."""
        idle = 0.0 if self._log_time_grew_at is None else max(0.0, now - self._log_time_grew_at)
        return self.log_time + idle - self.reorder_seconds

    def finalise(self, now: float, *, everything: bool = False) -> Iterator[Finalised]:
        """The rows now final, in batches of at most BATCH_ROWS in time order."""
        if self.held is None or not len(self.held):
            return
        ts = self.held["ts"].to_numpy()
        ready = np.ones(len(ts), bool) if everything else ts < self.cutoff(now)
        over = len(ts) - int(ready.sum()) - self.max_held
        if over > 0:  # too many held: the oldest go now, whatever may still come before them
            waiting = np.flatnonzero(~ready)
            oldest = waiting[np.argsort(ts[waiting], kind="stable")[:over]]
            ready[oldest] = True
            self.forced += over
        if not ready.any():
            return
        rows = self.held[ready]
        self.held = self.held[~ready] if not ready.all() else None
        order = np.argsort(rows["ts"].to_numpy(), kind="stable")
        for start in range(0, len(rows), BATCH_ROWS):
            yield self._finalise_batch(rows.iloc[np.sort(order[start:start + BATCH_ROWS])])

    def _finalise_batch(self, rows: pd.DataFrame) -> Finalised:
        late = int((rows["ts"].to_numpy() < self.final_time).sum())
        context = self.context
        conns = rows if context is None else pd.concat([context, rows]).sort_index()
        wanted = np.zeros(len(conns), bool) if context is not None else np.ones(len(rows), bool)
        if context is not None:
            wanted[conns.index.isin(rows.index)] = True
        self.final_time = max(self.final_time, float(rows["ts"].max()))
        # the new context: the last LOOKBACK rows in (ts, row) order, kept in row order
        order = np.argsort(conns["ts"].to_numpy(), kind="stable")
        self.context = conns.iloc[np.sort(order[-LOOKBACK:])]
        return Finalised(conns, wanted, late)
