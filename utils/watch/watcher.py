"""The watcher's loop: read new lines, hold them until final, score, alert, save, repeat.

A commit ends a round (or, when saving grows slow, every few rounds): the alerts are
appended to the outbox (fsync), then the state (read position, held rows, row count,
suppression memory, outbox end) is saved atomically, then the sinks may see the new
alerts. A stop at any moment therefore resumes from the last commit: lines read after it are
read again, alerts written after it are cut from the outbox and made again, and no sink has
seen them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from utils.alerts import ecs_alerts
from utils.allowlist import AllowList
from utils.model_store import LoadedModel
from utils.scoring import score_records
from utils.watch.follower import READ_BYTES, LogFollower, Position
from utils.watch.metrics import WatchMetrics
from utils.watch.outbox import Outbox
from utils.watch.sinks import Sink, SinkRunner
from utils.watch.state import StateStore
from utils.watch.suppression import Suppressor
from utils.watch.window import READ_AT, Finalised, WindowState
from utils.watch.zeek_lines import LogParser, derive_records

log = logging.getLogger("anomalyze.watch")


@dataclass
class WatchConfig:
    reorder_seconds: float = 120.0  # how far behind the newest record one may arrive
    idle_flush_seconds: float = 0.0  # wall seconds without new records, then all is final
    poll_seconds: float = 0.25
    suppress_seconds: float = 3600.0  # 0: every alert is sent
    max_held_rows: int = 500_000
    max_outbox_bytes: int = 1 << 30  # undelivered alerts kept; past it reading pauses
    read_bytes: int = READ_BYTES


class Watcher:
    def __init__(self, log_path: Path, state_dir: Path,
                 model_source: Callable[[], LoadedModel], sinks: list[Sink],
                 config: WatchConfig | None = None, metrics: WatchMetrics | None = None,
                 allowlist: Callable[[], AllowList] | None = None) -> None:
        """``allowlist``: the entries in force (utils/watch/allowed.py), asked for each
        scored batch; the anomalies they allow are counted, never sent."""
        self.config = config = config or WatchConfig()
        self.metrics = metrics or WatchMetrics()
        self.model_source = model_source
        self.allowlist = allowlist
        self.store = StateStore(Path(state_dir))
        loaded = self.store.load()
        document, held, context = loaded if loaded else ({}, None, None)
        self.instance = document.get("instance") or uuid.uuid4().hex[:16]
        position = document.get("position")
        self.follower = LogFollower(log_path, Position.from_json(position) if position
                                    else None)
        self.window = WindowState(
            config.reorder_seconds, config.max_held_rows, held, context,
            _float(document.get("log_time")), _float(document.get("final_time")))
        self.next_row = int(document.get("next_row", 0))
        self.suppressor = Suppressor(config.suppress_seconds, document.get("suppression"))
        self.outbox = Outbox(Path(state_dir) / "outbox", int(document.get("outbox_end", 0)))
        self.runners = [SinkRunner(sink, self.outbox, self.metrics) for sink in sinks]
        self._parser: LogParser | None = None
        self._parser_file: tuple[int, int] | None = None
        self._last_rows_at = time.time()
        self._model_version: str | None = None
        self._paused = False
        # done since the last commit: alert lines, and per scored batch read and end times
        self._unsent: list[bytes] = []
        self._unsent_read_at: list[np.ndarray] = []
        self._unsent_ended: list[np.ndarray] = []
        self._dirty = False
        self._next_commit = 0.0
        if document:
            log.info("resumed with %d records held, %d read in all", len(self.window),
                     self.next_row)

    # -- running -------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; then deliver what is under way and return."""
        for runner in self.runners:
            runner.start()
        try:
            while not stop.is_set():
                if not self.poll_once():
                    stop.wait(self.config.poll_seconds)
        finally:
            self.close()

    def delivered(self) -> bool:
        """Whether every sink has delivered every committed alert."""
        return all(runner.acked >= self.outbox.committed for runner in self.runners)

    def close(self) -> None:
        self.commit()
        for runner in self.runners:
            if runner.is_alive():
                runner.stop()
        self.follower.close()

    def poll_once(self) -> int:
        """One round; returns the number of records read."""
        if self._outbox_full():
            return 0
        now = time.time()
        chunks = self.follower.read(self.config.read_bytes)
        rows = 0
        for chunk in chunks:
            if chunk.file != self._parser_file:
                self._parser, self._parser_file = LogParser(), chunk.file
                if chunk.header:
                    self._parser.parse(chunk.header, 1)
            assert self._parser is not None
            table, bad = self._parser.parse(chunk.data, chunk.first_line)
            for line in bad:
                log.warning("%s line %d skipped: %s", chunk.path, line.line, line.reason)
            self.metrics.malformed.inc(len(bad))
            if table is not None and len(table):
                table.index = pd.RangeIndex(self.next_row, self.next_row + len(table))
                self.next_row += len(table)
                self.window.add(table, now)
                rows += len(table)
        if rows:
            self._last_rows_at = now
        idle = now - self._last_rows_at
        everything = 0 < self.config.idle_flush_seconds <= idle
        for final in self.window.finalise(now, everything=everything):
            self._unsent += self._alert_lines(final)
            scored = final.conns[final.wanted]
            self._unsent_read_at.append(scored[READ_AT].to_numpy())
            duration = (scored["duration"].to_numpy(dtype=np.float64, na_value=np.nan)
                        if "duration" in scored else np.zeros(len(scored)))
            self._unsent_ended.append(scored["ts"].to_numpy(dtype=np.float64)
                                      + np.nan_to_num(duration))
        if chunks or self._unsent_read_at:
            self._dirty = True
        if self._dirty and time.time() >= self._next_commit:
            self.commit()
        return rows

    def commit(self) -> None:
        """Save what the rounds since the last commit did, and let the sinks see its alerts.

        Saving costs time in proportion to the records held, so commits are spaced to take
        at most about a fifth of the time: with few records held, every round commits.
        """
        if not self._dirty:
            return
        started = time.time()
        end = self.outbox.append(self._unsent)
        self._save()
        self.outbox.commit(end)
        committed_at = time.time()
        self._next_commit = committed_at + 4 * (committed_at - started)
        for times, ends in zip(self._unsent_read_at, self._unsent_ended, strict=True):
            self.metrics.rows.inc(len(times))
            for lag in (committed_at - times).tolist():
                self.metrics.lag.observe(lag)
            for age in (committed_at - ends).tolist():
                self.metrics.record_age.observe(age)
        self._unsent, self._unsent_read_at, self._unsent_ended = [], [], []
        self._dirty = False
        self.metrics.held.set(len(self.window))
        self._release()

    # -- one finalised batch -------------------------------------------------------------

    def _alert_lines(self, final: Finalised) -> list[bytes]:
        model = self.model_source()  # a promoted model is used from the next batch on
        if model.version != self._model_version:
            if self._model_version is not None:
                self.metrics.model_swaps.inc()
                log.info("model %s swapped in (was %s)", model.version, self._model_version)
            self._model_version = model.version
        self.metrics.late.inc(final.late)
        records = derive_records(final.conns.drop(columns=[READ_AT]), final.wanted)
        scored = score_records(model, records)
        allowlist = self.allowlist() if self.allowlist is not None else None
        if allowlist:
            scored = allowlist.apply(records, scored)
            self.metrics.allowlisted.inc(int(np.count_nonzero(scored.allowlisted)))
        alerts = ecs_alerts(model, records, scored, scored_at=datetime.now(UTC))
        if not alerts:
            return []
        ts = records.identity["ts"].to_numpy(dtype=np.float64)[scored.alerts]
        order = np.argsort(ts, kind="stable")  # in time order, as suppression counts time
        lines = []
        for alert, moment in zip([alerts[i] for i in order], ts[order].tolist(), strict=True):
            alert["event"]["id"] = f"{self.instance}-{alert['anomalyze']['row']}"
            if self.suppressor.admit(alert, moment):
                lines.append(orjson.dumps(alert) + b"\n")
            else:
                self.metrics.suppressed.inc()
        self.suppressor.forget_before(float(ts.max()))
        self.metrics.alerts.inc(len(lines))
        return lines

    # -- saving --------------------------------------------------------------------------

    def _save(self) -> None:
        position = self.follower.snapshot()
        document = {
            "instance": self.instance,
            "position": position.to_json() if position else None,
            "next_row": self.next_row,
            "log_time": _finite(self.window.log_time),
            "final_time": _finite(self.window.final_time),
            "outbox_end": self.outbox.end,
            "suppression": self.suppressor.to_json(),
        }
        self.store.save(document, self.window.held, self.window.context)

    def _release(self) -> None:
        if self.runners:
            self.outbox.release(min(runner.acked for runner in self.runners))
        else:
            self.outbox.release(self.outbox.committed)

    def _outbox_full(self) -> bool:
        if not self.runners:
            return False
        behind = self.outbox.committed - min(runner.acked for runner in self.runners)
        full = behind > self.config.max_outbox_bytes
        if full != self._paused:
            self._paused = full
            if full:
                log.error("%d bytes of alerts undelivered: reading paused until the sinks "
                          "catch up", behind)
            else:
                log.info("sinks caught up: reading again")
        if full:
            self._release()
        return full


def _float(value) -> float:
    return -math.inf if value is None else float(value)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
