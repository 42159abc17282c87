"""Scoring parsed records with a loaded model: the one path the API, scripts and tests share."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from utils.metrics import evaluate
from utils.model_store import LoadedModel
from utils.parallel import ordered_map, scoring_threads
from utils.readers import (
    ParsedRecords,
    ParseTask,
    iter_parse_tasks,
    number_rows,
    read_records,
)
from utils.schema import CATEGORICAL_FEATURES, FEATURE_NAMES, NUMERIC_FEATURES

# Rows parsed and scored at a time. Small enough that a chunk's intermediate arrays stay
# small (a 494,021-row file: peak RSS +121 MB in 25,000-row chunks, +290 MB in 100,000-row
# ones, and 8% less CPU time), large enough that KDDTest+ is one chunk, cut in one piece per
# thread.
CHUNK_ROWS = 25_000


@dataclass
class ScoredRecords:
    anomaly_score: np.ndarray
    is_anomaly: np.ndarray
    confidence: np.ndarray
    severity: np.ndarray
    votes: np.ndarray  # (n, n_models) bool: which models call the record anomalous
    threshold: float
    # Entry id of the allow-list entry each flagged row matches, 0 for none (None: no list
    # applied); utils.allowlist.AllowList.apply sets it.
    allowlisted: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.anomaly_score)

    @property
    def alerts(self) -> np.ndarray:
        """The flagged rows that are alerts: flagged and not allow-listed."""
        if self.allowlisted is None:
            return self.is_anomaly
        return self.is_anomaly & (self.allowlisted == 0)

    @classmethod
    def concat(cls, parts: list[ScoredRecords]) -> ScoredRecords:
        if not parts:
            raise ValueError("nothing to concatenate")
        return cls(
            anomaly_score=np.concatenate([p.anomaly_score for p in parts]),
            is_anomaly=np.concatenate([p.is_anomaly for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            severity=np.concatenate([p.severity for p in parts]),
            votes=np.concatenate([p.votes for p in parts]),
            threshold=parts[0].threshold,
            allowlisted=(np.concatenate([p.allowlisted for p in parts])
                         if all(p.allowlisted is not None for p in parts) else None),
        )


def score_features(model: LoadedModel, features: pd.DataFrame) -> ScoredRecords:
    X = model.features.transform(features)
    result = model.detector.analyse(X)
    return ScoredRecords(threshold=model.detector.threshold_, **result)


def score_records(model: LoadedModel, records: ParsedRecords) -> ScoredRecords:
    if records.arrays is None:
        return score_features(model, records.features)
    X = model.features.transform_arrays(records.arrays)
    result = model.detector.analyse(X, check_input=False)  # the transformer's own matrix
    return ScoredRecords(threshold=model.detector.threshold_, **result)


def iter_scored_chunks(
    model: LoadedModel,
    source,
    *,
    chunk_rows: int = CHUNK_ROWS,
    max_decompressed_bytes=None,
    threads: int | None = None,
) -> Iterator[tuple[ParsedRecords, ScoredRecords]]:
    """Parse and score chunk by chunk, so memory stays bounded for very large uploads.

    Each chunk is cut into ``threads`` pieces (default utils.parallel.scoring_threads()),
    parsed and scored on that many threads; the pieces come back in input order.
    """
    threads = scoring_threads() if threads is None else threads
    tasks = iter_parse_tasks(source, chunk_rows=chunk_rows,
                             max_decompressed_bytes=max_decompressed_bytes, pieces=threads)

    def parse_and_score(task: ParseTask) -> tuple[ParsedRecords, ScoredRecords]:
        records = task()
        return records, score_records(model, records)

    rows = 0
    for records, scored in ordered_map(parse_and_score, tasks, threads):
        number_rows(records, rows)
        rows += len(records)
        yield records, scored


def warm_up(model: LoadedModel) -> None:
    """Parse, score, explain and evaluate two generated records once.

    The first call of a process otherwise pays one-time costs on top of its work: the feature
    vocabulary index, the float64 centroids of explanations, the first touch of pandas' and
    numpy's machinery. A server that loads its model before forking its workers runs this
    once, and every worker inherits the result.
    """
    values = dict.fromkeys(NUMERIC_FEATURES, "0") | {
        "protocol_type": "tcp", "service": "http", "flag": "SF"}
    line = ",".join(values[name] for name in FEATURE_NAMES)
    records = read_records(f"{line},normal\n{line.replace('http', 'private')},neptune\n"
                           .encode())
    scored = score_records(model, records)
    explain(model, records.features)
    evaluate(records.labels, scored.is_anomaly, scored.anomaly_score)


def explain(model: LoadedModel, features: pd.DataFrame, top: int = 3) -> list[list[dict]]:
    """Top contributing features per row: which input features push it furthest from its
    nearest normal centroid (in the finest model), as shares of the squared distance."""
    if len(features) == 0:
        return []
    transformer = model.features
    X = transformer.transform(features)
    diff = (X - model.detector.nearest_centroids(X, check_input=False)) ** 2
    names, starts, alphabetical = _source_groups(transformer.output_sources_)
    # a category never seen in training encodes as an all-zero one-hot block
    ends = [*starts[1:].tolist(), X.shape[1]]
    unseen = {str(name): ~X[:, start:end].any(axis=1)
              for name, start, end in zip(names, starts, ends, strict=True)
              if name in CATEGORICAL_FEATURES}
    if transformer.categorical_weight == 0:  # then every block is zero: look the values up
        unseen = transformer.unseen_categories(features)
    # output columns of one input feature are adjacent: sum each run, then order the input
    # features by name (ties in the ranking below are broken in that order)
    per_feature = np.add.reduceat(diff, starts, axis=1)[:, alphabetical]
    names = names[alphabetical]
    totals = np.maximum(per_feature.sum(axis=1, keepdims=True), 1e-12)
    shares = per_feature / totals
    order = np.argsort(-shares, axis=1)[:, :top]
    top_shares = np.take_along_axis(shares, order, axis=1)
    # per-row values only of the features that are named somewhere, as Python objects
    named = [str(names[j]) for j in np.unique(order[top_shares > 0])]
    values = {name: _plain_values(features[name].to_numpy()) for name in named}
    unseen = {name: mask.tolist() for name, mask in unseen.items()
              if name in values and mask.any()}
    names_list = names.tolist()
    out = []
    for i, (picked, picked_shares) in enumerate(zip(order.tolist(), top_shares.tolist(),
                                                    strict=True)):
        row = []
        for j, share in zip(picked, picked_shares, strict=True):
            if share <= 0:
                break
            name = names_list[j]
            entry = {"feature": name, "value": values[name][i], "contribution": round(share, 4)}
            if name in unseen and unseen[name][i]:
                entry["unseen_category"] = True
            row.append(entry)
        out.append(row)
    return out


def _plain_values(column: np.ndarray) -> list:
    """The column as Python values: str as they are, anything else as float."""
    if column.dtype.kind == "f":
        return column.tolist()
    return [value if isinstance(value, str) else float(value) for value in column.tolist()]


def _source_groups(sources: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The input feature of each run of adjacent output columns, where each run starts, and
    the runs' order by feature name."""
    starts = np.flatnonzero(np.r_[True, sources[1:] != sources[:-1]])
    names = sources[starts]
    if len(set(names.tolist())) != len(names):
        raise ValueError("the output columns of an input feature must be adjacent")
    return names, starts, np.argsort(names, kind="stable")


_HISTOGRAM_BLOCK = 1 << 20


def score_histogram(scores: np.ndarray, threshold: float, bins: int = 40) -> dict:
    """Histogram over log-spaced bins (scores span orders of magnitude); edges in score units.

    Counted a block at a time, so millions of scores need no array of their logs.
    """
    scores = np.asarray(scores, dtype=np.float64)
    t = float(np.log10(max(threshold, 1e-6)))
    lo, hi = t, t
    if scores.size:  # log10 is monotone: the logs' extremes are the extremes' logs
        lo = min(float(np.log10(max(scores.min(), 1e-6))), t)
        hi = max(float(np.log10(max(scores.max(), 1e-6))), t)
    if hi - lo < 1e-9:
        hi = lo + 1.0
    counts = np.zeros(bins, dtype=np.int64)
    edges = np.histogram_bin_edges(np.empty(0), bins=bins, range=(lo, hi))
    for start in range(0, scores.size, _HISTOGRAM_BLOCK):
        logs = np.log10(np.maximum(scores[start:start + _HISTOGRAM_BLOCK], 1e-6))
        counts += np.histogram(logs, bins=bins, range=(lo, hi))[0]
    return {"scale": "log", "bin_edges": [float(f"{10 ** e:.6g}") for e in edges],
            "counts": [int(c) for c in counts], "threshold": float(threshold)}
