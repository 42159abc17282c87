"""One scoring run over an upload, with memory bounded however large the upload is.

The records are parsed and scored chunk by chunk (utils.scoring.iter_scored_chunks). Only small
per-row arrays (score, verdict, confidence, severity, votes, label) are kept for every row;
full feature rows are kept only for the current top-``limit`` anomalies, which are the only
rows the response describes (and explains) in detail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from utils.model_store import LoadedModel
from utils.preprocessing import ParsedRecords
from utils.scoring import CHUNK_ROWS, ScoredRecords, iter_scored_chunks, score_records


@dataclass
class Analysis:
    """Per-row results of the whole input plus the feature rows of the top anomalies.

    Row arrays are in input order (position = the record's 0-based index). ``top_index`` lists
    the flagged rows to describe, highest score first (ties: lower index first), and
    ``top_features`` holds their feature rows, indexed by the same row numbers.
    """

    input_kind: str
    threshold: float
    anomaly_score: np.ndarray
    is_anomaly: np.ndarray
    confidence: np.ndarray
    severity: np.ndarray
    votes: np.ndarray
    labels: pd.Series | None
    identity: pd.DataFrame | None
    top_index: np.ndarray
    top_features: pd.DataFrame

    def __len__(self) -> int:
        return len(self.anomaly_score)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None


def analyse_file(
    model: LoadedModel,
    path: Path,
    limit: int,
    *,
    chunk_rows: int = CHUNK_ROWS,
    threads: int | None = None,
    max_decompressed_bytes: int | None = None,
) -> Analysis:
    """Parse and score a file; InputFormatError if any of it is invalid (nothing partial).

    ``threads`` and ``max_decompressed_bytes``: see utils.scoring.iter_scored_chunks.
    """
    chunks = iter_scored_chunks(model, path, chunk_rows=chunk_rows, threads=threads,
                                max_decompressed_bytes=max_decompressed_bytes)
    return analyse_chunks(chunks, limit)


def analyse_records(model: LoadedModel, records: ParsedRecords, limit: int) -> Analysis:
    return analyse_chunks([(records, score_records(model, records))], limit)


def analyse_chunks(
    chunks: Iterable[tuple[ParsedRecords, ScoredRecords]], limit: int
) -> Analysis:
    scored_parts: list[ScoredRecords] = []
    label_parts: list[pd.Series] = []
    identity_parts: list[pd.DataFrame] = []
    input_kind = "kdd"
    has_labels = False
    top_features: pd.DataFrame | None = None
    top_scores = np.empty(0)
    for records, scored in chunks:
        input_kind = records.input_kind
        has_labels = records.has_labels
        scored_parts.append(scored)
        if records.labels is not None:
            label_parts.append(records.labels)
        if records.identity is not None:
            identity_parts.append(records.identity)
        if limit > 0:
            top_features, top_scores = _keep_top(
                top_features, top_scores, records.features, scored, limit)
    if not scored_parts:
        raise ValueError("no records to analyse")  # the parser refuses empty input first
    scored = ScoredRecords.concat(scored_parts)
    del scored_parts
    if top_features is None:
        top_features = pd.DataFrame(columns=records.features.columns)  # no row kept
    top_index = _ranked(top_features.index.to_numpy(dtype=np.int64), top_scores)
    return Analysis(
        input_kind=input_kind,
        threshold=float(scored.threshold),
        anomaly_score=scored.anomaly_score,
        is_anomaly=np.asarray(scored.is_anomaly, dtype=bool),
        confidence=scored.confidence,
        severity=scored.severity,
        votes=scored.votes,
        labels=_concat(label_parts) if has_labels else None,
        identity=_concat(identity_parts) if identity_parts else None,
        top_index=top_index,
        top_features=top_features.loc[top_index],
    )


def _keep_top(
    kept: pd.DataFrame | None,
    kept_scores: np.ndarray,
    features: pd.DataFrame,
    scored: ScoredRecords,
    limit: int,
) -> tuple[pd.DataFrame | None, np.ndarray]:
    """The best ``limit`` flagged rows so far: the kept ones merged with this chunk's."""
    flagged = np.flatnonzero(scored.is_anomaly)
    if flagged.size == 0:
        return kept, kept_scores
    scores = scored.anomaly_score[flagged]
    if flagged.size > limit:
        best = np.lexsort((flagged, -scores))[:limit]
        flagged, scores = flagged[best], scores[best]
    rows = features.iloc[flagged]
    if kept is None or kept.empty:
        return rows, scores
    merged = pd.concat([kept, rows])
    merged_scores = np.concatenate([kept_scores, scores])
    if len(merged) > limit:
        best = np.lexsort((merged.index.to_numpy(), -merged_scores))[:limit]
        merged, merged_scores = merged.iloc[best], merged_scores[best]
    return merged, merged_scores


def _ranked(index: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Row numbers by descending score, ties broken by row number (stable across chunkings)."""
    return index[np.lexsort((index, -scores))]


def _concat(parts: list) -> pd.Series | pd.DataFrame:
    joined = parts[0] if len(parts) == 1 else pd.concat(parts)
    return joined.reset_index(drop=True)
