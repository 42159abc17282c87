"""Per-piece tallies (computed on the workers) and the job's ``summary.json`` (on the client).

Anomalies are the model's verdicts; alerts are the anomalies no allow-list entry allows
(``allowlisted`` counts the others), so the summary gives all three wherever it counts.
A tally is small: counts, the anomalous hosts, and for labelled input the labels, scores and
verdicts the metrics need (about 10 bytes a row), so the client never reads the output back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from utils.batch.readers import SEVERITIES, evaluate

if TYPE_CHECKING:
    from utils.batch.pieces import Piece

TOP_HOSTS = 10


@dataclass
class Tally:
    piece: Piece
    rows: int = 0
    anomalies: int = 0
    allowlisted: int = 0
    severity: dict[str, int] = field(default_factory=dict)
    by_day: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # rows, anom., allowed
    sources: dict[str, int] = field(default_factory=dict)
    destinations: dict[str, int] = field(default_factory=dict)
    labels: tuple[np.ndarray, list[str]] | None = None  # codes (-1 unknown), values
    scores: np.ndarray | None = None
    flags: np.ndarray | None = None
    written: list[str] = field(default_factory=list)


def tally(piece: Piece, frame: pd.DataFrame, written: list[str], *,
          sensor: str | None = None) -> Tally:
    """The tally of one scored piece's output ``frame``."""
    result = Tally(piece, written=written)
    if frame.empty:
        return result
    flags = frame["is_anomaly"].to_numpy(bool)
    result.rows = len(frame)
    result.anomalies = int(flags.sum())
    result.allowlisted = int(frame["allowlisted"].to_numpy(bool).sum())
    counts = frame["severity"].value_counts()
    result.severity = {name: int(counts.get(name, 0)) for name in SEVERITIES}
    if sensor is not None:
        grouped = frame.groupby("day", sort=True).agg(
            rows=("is_anomaly", "size"), anomalies=("is_anomaly", "sum"),
            allowlisted=("allowlisted", "sum"))
        result.by_day = {(sensor, str(day)): [int(row["rows"]), int(row["anomalies"]),
                                              int(row["allowlisted"])]
                         for day, row in grouped.iterrows()}
        flagged = frame[flags]
        result.sources = flagged["orig_h"].value_counts().astype(int).to_dict()
        result.destinations = flagged["resp_h"].value_counts().astype(int).to_dict()
    if "label" in frame:
        codes, values = pd.factorize(frame["label"].to_numpy(dtype=object))
        result.labels = (codes.astype(np.int32), [str(v) for v in values])
        result.scores = frame["score"].to_numpy(np.float64)
        result.flags = flags
    return result


class Summary:
    """The tallies of a job, added as pieces finish."""

    def __init__(self) -> None:
        self.rows = 0
        self.anomalies = 0
        self.allowlisted = 0
        self.severity: Counter[str] = Counter()
        self.by_day: dict[tuple[str, str], list[int]] = {}
        self.by_file: dict[str, list[int]] = {}
        self.sources: Counter[str] = Counter()
        self.destinations: Counter[str] = Counter()
        self._labels: list[pd.Series] = []
        self._scores: list[np.ndarray] = []
        self._flags: list[np.ndarray] = []

    def add(self, part: Tally) -> None:
        self.rows += part.rows
        self.anomalies += part.anomalies
        self.allowlisted += part.allowlisted
        self.severity.update(part.severity)
        for key, counts in part.by_day.items():
            _add(self.by_day.setdefault(key, [0, 0, 0]), counts)
        _add(self.by_file.setdefault(part.piece.path, [0, 0, 0]),
             [part.rows, part.anomalies, part.allowlisted])
        self.sources.update(part.sources)
        self.destinations.update(part.destinations)
        if part.labels is not None:
            codes, values = part.labels
            self._labels.append(pd.Series(pd.Categorical.from_codes(codes, values)))
            self._scores.append(part.scores)
            self._flags.append(part.flags)

    def metrics(self) -> dict[str, Any] | None:
        """Detection metrics over every labelled row (unknown labels left out)."""
        if not self._labels:
            return None
        labels = pd.Series(pd.Categorical(
            pd.concat([s.astype(object) for s in self._labels], ignore_index=True)))
        if not labels.notna().any():
            return None
        return evaluate(labels, np.concatenate(self._flags), np.concatenate(self._scores))

    def as_json(self, **extra: Any) -> dict[str, Any]:
        return {
            "rows": self.rows,
            **_counts(self.anomalies, self.allowlisted),
            "severity_counts": {name: int(self.severity.get(name, 0)) for name in SEVERITIES},
            "by_sensor_day": [
                {"sensor": sensor, "day": day, "rows": rows, **_counts(anomalies, allowed)}
                for (sensor, day), (rows, anomalies, allowed) in sorted(self.by_day.items())],
            "by_file": [{"file": path, "rows": rows, **_counts(anomalies, allowed)}
                        for path, (rows, anomalies, allowed) in self.by_file.items()],
            "top_source_hosts": _top(self.sources),
            "top_destination_hosts": _top(self.destinations),
            "metrics": self.metrics(),
            **extra,
        }


def _add(total: list[int], counts: list[int]) -> None:
    for i, n in enumerate(counts):
        total[i] += n


def _counts(anomalies: int, allowlisted: int) -> dict[str, int]:
    """The model's anomalies, those an allow-list entry allows, and the rest: the alerts."""
    return {"anomalies": anomalies, "alerts": anomalies - allowlisted,
            "allowlisted": allowlisted}


def _top(counts: Counter[str]) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_HOSTS]
    return [{"host": host, "anomalies": int(n)} for host, n in ranked]
