"""Every call batch scoring makes into the record readers, feature derivation, scoring and the
model store, in one module: the rest of the package sees only these names, so a reader that
moves needs its import changed here alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from utils.alerts import ecs_alerts, to_ndjson
from utils.metrics import evaluate
from utils.model_store import CARD_FILE, MODEL_FILE, LoadedModel, load_model
from utils.parallel import single_threaded_blas
from utils.readers import (
    FeatureArrays,
    InputFormatError,
    ParsedRecords,
    detect_input_kind,
    read_records,
)
from utils.readers.zeek import ZeekLogReader, zeek_records
from utils.schema import SEVERITIES
from utils.scoring import CHUNK_ROWS, ScoredRecords, explain, score_records
from utils.zeek_features import derive_kdd_features, window_lookback

__all__ = [
    "SEVERITIES", "InputFormatError", "LoadedModel", "ParsedRecords", "ScoredRecords",
    "ZeekLogReader", "detect_input_kind", "ecs_alerts", "evaluate", "explain",
    "explain_in_chunks",
    "kdd_records", "load_scoring_model", "model_card", "model_file", "score_in_chunks",
    "score_records",
    "to_ndjson", "window_lookback", "zeek_context_records",
]


def model_file(model_dir: str | Path) -> Path:
    """The file whose SHA-256 identifies a model folder's model."""
    return Path(model_dir) / MODEL_FILE


def model_card(model_dir: str | Path) -> dict:
    return json.loads((Path(model_dir) / CARD_FILE).read_text())


def load_scoring_model(model_dir: str | Path) -> LoadedModel:
    """The model, ready to score on one thread (BLAS limited to one thread too)."""
    single_threaded_blas()
    return load_model(Path(model_dir))


def kdd_records(data: bytes) -> ParsedRecords:
    """KDD / NSL-KDD records of a whole (decompressed) text; InputFormatError names lines."""
    return read_records(data)


def zeek_context_records(context: pd.DataFrame, wanted: np.ndarray) -> ParsedRecords:
    """Records of the ``wanted`` rows of a connection table, their window features derived
    over all of ``context`` (rows in stream order: the derivation orders them by time and
    breaks ties by position)."""
    features = derive_kdd_features(context)
    if wanted.all():
        return zeek_records(context, features)
    return zeek_records(context[wanted], features[wanted])


def score_in_chunks(model: LoadedModel, records: ParsedRecords,
                    chunk_rows: int = CHUNK_ROWS) -> ScoredRecords:
    """score_records a chunk of rows at a time (each row's score depends on that row only):
    the distance matrices of a whole piece would cost about 5 KB a row at once."""
    if len(records) <= chunk_rows:
        return score_records(model, records)
    parts = [score_records(model, _slice(records, slice(start, start + chunk_rows)))
             for start in range(0, len(records), chunk_rows)]
    return ScoredRecords.concat(parts)


def explain_in_chunks(model: LoadedModel, features: pd.DataFrame,
                      chunk_rows: int = CHUNK_ROWS) -> list[list[dict]]:
    """explain() a chunk of rows at a time, for the same reason."""
    out: list[list[dict]] = []
    for start in range(0, len(features), chunk_rows):
        out.extend(explain(model, features.iloc[start:start + chunk_rows]))
    return out


def _slice(records: ParsedRecords, rows: slice) -> ParsedRecords:
    def part(frame):
        return None if frame is None else frame.iloc[rows]

    arrays = records.arrays
    if arrays is not None:
        arrays = FeatureArrays(numeric=arrays.numeric[rows],
                               codes={name: codes[rows] for name, codes in arrays.codes.items()},
                               values=arrays.values)
    return ParsedRecords(features=part(records.features), labels=part(records.labels),
                         difficulty=part(records.difficulty), identity=part(records.identity),
                         input_kind=records.input_kind, numbered=records.numbered,
                         arrays=arrays)
