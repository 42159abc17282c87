"""Where and when a Zeek upload's anomalies happened: per-host counts and a timeline.

The page's hosts view and timeline must count every flagged connection, not only the top
``limit`` rows the response describes. Identity is not kept per row (server.analysis), so the
counts are folded in chunk by chunk while the upload is scored, in memory bounded by the caps
below whatever the upload holds: at most MAX_HOSTS_TRACKED hosts per side are counted (hosts
first seen after that are left out, and the answer says ``complete: false``), and the
timeline's bins widen (BIN_LADDER) whenever more than MAX_TIMELINE_BINS would be needed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from utils.schema import SEVERITIES

MAX_HOSTS_TRACKED = 20_000
HOSTS_REPORTED = 25
MAX_TIMELINE_BINS = 720  # 12 hours of one-minute bins
# Bin widths in seconds, each a whole multiple of the one before, so counts re-bin exactly.
BIN_LADDER = (60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400)
# Rows with a time beyond +-1e12 s (some 30,000 years) are left out of the timeline, so bin
# numbers always fit in 64 bits.
MAX_TIMESTAMP = 1e12
SIDES = (("sources", "id.orig_h"), ("destinations", "id.resp_h"))
ANOMALY_SEVERITIES = SEVERITIES[1:]  # a flagged row is never "Normal"


class _HostCounts:
    """Connections and flagged rows per severity of each host of one side."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.counts = np.zeros((64, 1 + len(SEVERITIES)), dtype=np.int64)
        self.untracked = False

    def add(self, hosts: np.ndarray, flagged: np.ndarray, severity: np.ndarray) -> None:
        codes, uniques = pd.factorize(hosts)
        known = codes >= 0  # an unset host is not counted
        chunk = np.zeros((len(uniques), 1 + len(SEVERITIES)), dtype=np.int64)
        np.add.at(chunk[:, 0], codes[known], 1)
        hit = known & flagged
        np.add.at(chunk, (codes[hit], 1 + severity[hit].astype(np.int64)), 1)
        rows = np.fromiter((self._slot(str(host)) for host in uniques.tolist()),
                           dtype=np.int64, count=len(uniques))
        kept = rows >= 0
        self.counts[rows[kept]] += chunk[kept]

    def _slot(self, host: str) -> int:
        slot = self.index.get(host)
        if slot is not None:
            return slot
        if len(self.index) >= MAX_HOSTS_TRACKED:
            self.untracked = True
            return -1
        slot = self.index[host] = len(self.index)
        if slot == len(self.counts):
            self.counts = np.concatenate([self.counts, np.zeros_like(self.counts)])
        return slot

    def ranked(self) -> tuple[list[dict[str, Any]], int]:
        """The hosts with anomalies, most first (then highest severity, then name), and how
        many hosts have any."""
        if not self.index:
            return [], 0
        hosts = np.array(list(self.index), dtype=object)
        counts = self.counts[:len(hosts)]
        by_severity = counts[:, 1:]
        anomalies = by_severity.sum(axis=1)
        worst = np.where(by_severity > 0, np.arange(len(SEVERITIES)), -1).max(axis=1)
        listed = np.flatnonzero(anomalies > 0)
        order = sorted(listed.tolist(), key=lambda i: (-anomalies[i], -worst[i], hosts[i]))
        return [{"host": hosts[i], "anomalies": int(anomalies[i]),
                 "connections": int(counts[i, 0]), "max_severity": SEVERITIES[worst[i]]}
                for i in order[:HOSTS_REPORTED]], len(listed)


class _Timeline:
    """Flagged rows per time bin and severity, and the time range of every row."""

    def __init__(self) -> None:
        self.width_step = 0
        self.bins: dict[int, np.ndarray] = {}
        self.start = math.inf
        self.end = -math.inf

    @property
    def width(self) -> int:
        return _bin_width(self.width_step)

    def add(self, ts: np.ndarray, flagged: np.ndarray, severity: np.ndarray) -> None:
        finite = np.abs(ts) < MAX_TIMESTAMP  # False for NaN
        if not finite.any():
            return
        self.start = min(self.start, float(ts[finite].min()))
        self.end = max(self.end, float(ts[finite].max()))
        self._fit()
        hit = finite & flagged
        if not hit.any():
            return
        keys = np.floor(ts[hit] / self.width).astype(np.int64)
        levels = severity[hit].astype(np.int64) - 1  # Low is column 0
        unique, inverse = np.unique(keys, return_inverse=True)
        chunk = np.zeros((len(unique), len(ANOMALY_SEVERITIES)), dtype=np.int64)
        np.add.at(chunk, (inverse, np.clip(levels, 0, None)), 1)
        for key, row in zip(unique.tolist(), chunk, strict=True):
            self._bin(key)[:] += row

    def _bin(self, key: int) -> np.ndarray:
        counts = self.bins.get(key)
        if counts is None:
            counts = self.bins[key] = np.zeros(len(ANOMALY_SEVERITIES), dtype=np.int64)
        return counts

    def _fit(self) -> None:
        """Widen the bins until the whole time range fits in MAX_TIMELINE_BINS."""
        step = self.width_step
        while _bin_count(self.start, self.end, _bin_width(step)) > MAX_TIMELINE_BINS:
            step += 1
        if step == self.width_step:
            return
        factor = _bin_width(step) // self.width
        old, self.bins, self.width_step = self.bins, {}, step
        for key, counts in old.items():
            self._bin(key // factor)[:] += counts

    def result(self) -> dict[str, Any] | None:
        if not math.isfinite(self.start):
            return None
        width = self.width
        first, last = math.floor(self.start / width), math.floor(self.end / width)
        counts = np.zeros((last - first + 1, len(ANOMALY_SEVERITIES)), dtype=np.int64)
        for key, row in self.bins.items():
            counts[key - first] = row
        return {"start": self.start, "end": self.end, "bin_seconds": width,
                "first_bin": first * width,
                "counts": {name: counts[:, i].tolist()
                           for i, name in enumerate(ANOMALY_SEVERITIES)}}


def _bin_count(start: float, end: float, width: int) -> int:
    return math.floor(end / width) - math.floor(start / width) + 1


def _bin_width(step: int) -> int:
    """BIN_LADDER, then doubling past its last rung (a log spanning years)."""
    if step < len(BIN_LADDER):
        return BIN_LADDER[step]
    return BIN_LADDER[-1] * 2 ** (step - len(BIN_LADDER) + 1)


class ZeekOverview:
    """Fed each scored chunk of a Zeek upload (``add``), answers ``hosts`` and ``timeline``."""

    def __init__(self) -> None:
        self._hosts = {side: _HostCounts() for side, _ in SIDES}
        self._timeline = _Timeline()

    def add(self, identity: pd.DataFrame, is_anomaly: np.ndarray,
            severity_codes: np.ndarray) -> None:
        """One chunk: its identity columns and, row for row, its verdicts and severity codes
        (positions in utils.schema.SEVERITIES)."""
        flagged = np.asarray(is_anomaly, dtype=bool)
        for side, column in SIDES:
            if column in identity.columns:
                self._hosts[side].add(identity[column].to_numpy(dtype=object), flagged,
                                      severity_codes)
        if "ts" in identity.columns:
            ts = pd.to_numeric(identity["ts"], errors="coerce").to_numpy(dtype=np.float64)
            self._timeline.add(ts, flagged, severity_codes)

    def hosts(self) -> dict[str, Any]:
        answer: dict[str, Any] = {}
        for side, _ in SIDES:
            answer[side], answer[f"{side}_with_anomalies"] = self._hosts[side].ranked()
        answer["complete"] = not any(counts.untracked for counts in self._hosts.values())
        return answer

    def timeline(self) -> dict[str, Any] | None:
        return self._timeline.result()
