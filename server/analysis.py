"""One scoring run over an upload, with memory bounded however large the upload is.

The records are parsed and scored chunk by chunk (utils.scoring.iter_scored_chunks). Only small
per-row arrays (score, verdict, confidence, severity, votes, label) are kept for every row;
full feature rows (and Zeek identity) are kept only for the current top-``limit`` anomalies,
which are the only rows the response describes (and explains) in detail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from server.zeek_overview import ZeekOverview
from utils.allowlist import AllowList
from utils.model_store import LoadedModel
from utils.readers import ParsedRecords
from utils.schema import LABEL_COLUMN, SEVERITIES
from utils.scoring import CHUNK_ROWS, ScoredRecords, iter_scored_chunks, score_records


@dataclass
class Analysis:
    """Per-row results of the whole input plus the rows of the top anomalies.

    Row arrays are in input order (position = the record's 0-based index). ``top_index`` lists
    the flagged rows to describe, highest score first (ties: lower index first);
    ``top_features`` holds their feature rows and ``top_identity`` (Zeek input, else None)
    their identity columns, both indexed by the same row numbers. Identity is not kept for
    every row (for a large Zeek log it would cost more than everything else):
    utils.readers.iter_identity reads it again for per-row output.
    """

    input_kind: str
    threshold: float
    anomaly_score: np.ndarray
    is_anomaly: np.ndarray
    confidence: np.ndarray
    severity: pd.Categorical
    votes: np.ndarray
    labels: pd.Series | None  # categorical
    top_index: np.ndarray
    top_features: pd.DataFrame
    top_identity: pd.DataFrame | None
    overview: ZeekOverview | None = None  # Zeek input, when asked for: hosts and timeline
    # Per row: the id of the allow-list entry a flagged row matches, 0 for none.
    allowlisted: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.anomaly_score)

    @property
    def alerts(self) -> np.ndarray:
        """Flagged rows that are alerts (not allow-listed)."""
        if self.allowlisted is None:
            return self.is_anomaly
        return self.is_anomaly & (self.allowlisted == 0)

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
    overview: bool = False,
    allowlist: AllowList | None = None,
) -> Analysis:
    """Parse and score a file; InputFormatError if any of it is invalid (nothing partial).

    ``threads`` and ``max_decompressed_bytes``: see utils.scoring.iter_scored_chunks;
    ``overview``: also count a Zeek upload's anomalies per host and over time; ``allowlist``:
    mark the flagged rows it allows.
    """
    chunks = iter_scored_chunks(model, path, chunk_rows=chunk_rows, threads=threads,
                                max_decompressed_bytes=max_decompressed_bytes)
    return analyse_chunks(allowlisted(chunks, allowlist), limit, overview=overview)


def analyse_records(model: LoadedModel, records: ParsedRecords, limit: int,
                    allowlist: AllowList | None = None) -> Analysis:
    return analyse_chunks(allowlisted([(records, score_records(model, records))], allowlist),
                          limit)


def allowlisted(chunks: Iterable[tuple[ParsedRecords, ScoredRecords]],
                allowlist: AllowList | None) -> Iterable[tuple[ParsedRecords, ScoredRecords]]:
    """The scored chunks with the allow-list applied (AllowList.apply), as they come."""
    if not allowlist:
        return chunks
    return ((records, allowlist.apply(records, scored)) for records, scored in chunks)


_ROW_ARRAYS = ("anomaly_score", "is_anomaly", "confidence", "votes")


def analyse_chunks(
    chunks: Iterable[tuple[ParsedRecords, ScoredRecords]], limit: int, *,
    overview: bool = False,
) -> Analysis:
    """Gather chunks whose rows together are 0..n-1 once each, in any order (a large Zeek
    log's come in time order): every per-row array is put in input order at the end.

    Labels and severities are kept as small codes (pandas Categoricals in the result): an
    upload can hold millions of rows.
    """
    scored_parts: list[dict[str, np.ndarray]] = []
    row_parts: list[pd.Index | np.ndarray] = []
    severity_parts: list[np.ndarray] = []
    labels = _LabelCodes()
    input_kind = "kdd"
    has_labels = False
    top: list[pd.DataFrame] | None = None
    top_scores = np.empty(0)
    hosts_and_times: ZeekOverview | None = None
    for records, scored in chunks:
        input_kind = records.input_kind
        has_labels = records.has_labels
        index = records.features.index
        row_parts.append(index if isinstance(index, pd.RangeIndex) else _compact(index))
        severity_codes = _severity_codes(scored.severity)
        severity_parts.append(severity_codes)
        if overview and records.identity is not None:
            hosts_and_times = hosts_and_times or ZeekOverview()
            hosts_and_times.add(records.identity, scored.is_anomaly, severity_codes)
        if records.labels is not None:
            labels.add(records.labels)
        if limit > 0:
            frames = [records.features]
            if records.identity is not None:
                frames.append(records.identity)
            top, top_scores = _keep_top(top, top_scores, frames, scored, limit)
        part = {name: getattr(scored, name) for name in _ROW_ARRAYS}
        part["allowlisted"] = (np.zeros(len(scored), dtype=np.int32)
                               if scored.allowlisted is None
                               else scored.allowlisted.astype(np.int32))
        scored_parts.append(part)
        threshold = float(scored.threshold)
    if not scored_parts:
        raise ValueError("no records to analyse")  # the parser refuses empty input first
    rows = sum(len(part) for part in row_parts)
    arrays = {name: _in_row_order([part.pop(name) for part in scored_parts], row_parts, rows)
              for name in (*_ROW_ARRAYS, "allowlisted")}
    del scored_parts
    severity = pd.Categorical.from_codes(_in_row_order(severity_parts, row_parts, rows),
                                         categories=SEVERITIES)
    if top is None:  # no row kept
        top = [pd.DataFrame(columns=records.features.columns)]
        if records.identity is not None:
            top.append(pd.DataFrame(columns=records.identity.columns))
    top_index = _ranked(top[0].index.to_numpy(dtype=np.int64), top_scores)
    return Analysis(
        input_kind=input_kind,
        threshold=threshold,
        anomaly_score=arrays["anomaly_score"],
        is_anomaly=np.asarray(arrays["is_anomaly"], dtype=bool),
        confidence=arrays["confidence"],
        severity=severity,
        votes=arrays["votes"],
        labels=labels.series(row_parts, rows) if has_labels else None,
        top_index=top_index,
        top_features=top[0].loc[top_index],
        top_identity=top[1].loc[top_index] if len(top) > 1 else None,
        overview=hosts_and_times,
        allowlisted=arrays["allowlisted"],
    )


# Object dtype on both sides: with an inferred string dtype, every lookup would first convert
# the chunk's severities to Arrow strings (60 ms of a 494,021-row upload, against 10).
_SEVERITY_INDEX = pd.Index(SEVERITIES, dtype=object)


def _severity_codes(severity: np.ndarray) -> np.ndarray:
    """Positions in SEVERITIES (-1: none of them), as the codes of a Categorical."""
    values = pd.Index(severity, dtype=object, copy=False)
    return _SEVERITY_INDEX.get_indexer(values).astype(np.int8)


class _LabelCodes:
    """Labels of the parts as small integer codes into one list of distinct labels."""

    def __init__(self) -> None:
        self._code: dict[str, int] = {}
        self.parts: list[np.ndarray] = []

    def add(self, labels: pd.Series) -> None:
        codes, uniques = pd.factorize(labels.to_numpy(dtype=object))
        for name in uniques:
            self._code.setdefault(name, len(self._code))
        mapping = np.array([self._code[name] for name in uniques] + [-1], dtype=np.int32)
        self.parts.append(mapping[codes])  # code -1 (unknown) maps to the last entry, -1

    def series(self, rows: list, total: int) -> pd.Series:
        names = list(self._code)
        codes = _in_row_order(self.parts, rows, total)
        dtype = np.min_scalar_type(-len(names) - 1)
        categorical = pd.Categorical.from_codes(codes.astype(dtype), categories=names)
        return pd.Series(categorical, name=LABEL_COLUMN)


def _compact(index: pd.Index) -> np.ndarray:
    """Row numbers in 4 bytes each where they fit."""
    rows = index.to_numpy()
    return rows.astype(np.int32) if len(rows) and rows.max() < 2**31 else rows


def _in_row_order(parts: list[np.ndarray], rows: list, total: int) -> np.ndarray:
    """One array of ``total`` rows from parts holding the given rows (RangeIndex or row
    numbers). Parts are released as they are copied, so the peak is one array more than the
    parts, not twice them."""
    first = parts[0]
    out = np.empty((total, *first.shape[1:]), dtype=first.dtype)
    for i, index in enumerate(rows):
        part, parts[i] = parts[i], None
        if isinstance(index, pd.RangeIndex) and index.step == 1:
            out[index.start:index.stop] = part
        else:
            out[index] = part
    return out


def _keep_top(
    kept: list[pd.DataFrame] | None,
    kept_scores: np.ndarray,
    frames: list[pd.DataFrame],
    scored: ScoredRecords,
    limit: int,
) -> tuple[list[pd.DataFrame] | None, np.ndarray]:
    """The best ``limit`` flagged rows so far (of each frame, same rows): the kept ones merged
    with this chunk's. Ties go to the lower row number (the frames' index), also within a
    chunk whose rows are not in row order."""
    flagged = np.flatnonzero(scored.is_anomaly)
    scores = scored.anomaly_score[flagged]
    numbers = frames[0].index.to_numpy()[flagged]
    if kept is not None and len(kept_scores) >= limit:
        # only a row ranked before the last kept one can enter: the others' feature rows are
        # never taken (most rows of a large upload, once the kept rows score high)
        kept_numbers = kept[0].index.to_numpy()
        last = np.lexsort((-kept_numbers, kept_scores))[0]  # lowest score, then highest row
        enters = (scores > kept_scores[last]) | (
            (scores == kept_scores[last]) & (numbers < kept_numbers[last]))
        flagged, scores, numbers = flagged[enters], scores[enters], numbers[enters]
    if flagged.size == 0:
        return kept, kept_scores
    if flagged.size > limit:
        best = np.lexsort((numbers, -scores))[:limit]
        flagged, scores = flagged[best], scores[best]
    rows = [frame.iloc[flagged] for frame in frames]
    if kept is None:
        return rows, scores
    merged = [pd.concat([old, new]) for old, new in zip(kept, rows, strict=True)]
    merged_scores = np.concatenate([kept_scores, scores])
    if len(merged_scores) > limit:
        best = np.lexsort((merged[0].index.to_numpy(), -merged_scores))[:limit]
        merged, merged_scores = [frame.iloc[best] for frame in merged], merged_scores[best]
    return merged, merged_scores


def _ranked(index: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Row numbers by descending score, ties broken by row number (stable across chunkings)."""
    return index[np.lexsort((index, -scores))]
