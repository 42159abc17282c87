"""Batch scoring's test material: logs written the way Zeek archives them, and in-process
scoring of the whole stream, which a batch job must reproduce."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from tests.helpers.repo import REPO_ROOT
from tests.helpers.zeek_logs import conn_rows
from utils.batch.readers import explain, kdd_records, score_records

MODEL_DIR = REPO_ROOT / "models"
COMPARED = ["score", "is_anomaly", "severity", "confidence", "votes", "top_features"]


def in_process(model, data: bytes) -> pd.DataFrame:
    """One process scores the whole text at once: what a batch job must reproduce."""
    import orjson

    records = kdd_records(data)
    scored = score_records(model, records)
    frame = pd.DataFrame({
        "score": scored.anomaly_score, "is_anomaly": scored.is_anomaly,
        "severity": scored.severity.astype(object), "confidence": scored.confidence,
        "votes": scored.votes.sum(axis=1).astype(np.int16)})
    flagged = np.flatnonzero(scored.is_anomaly)
    top = np.full(len(frame), None, dtype=object)
    top[flagged] = [orjson.dumps(entry).decode()
                    for entry in explain(model, records.features.iloc[flagged])]
    frame["top_features"] = top
    return frame


def scored_output(folder: Path, files: list[Path]) -> pd.DataFrame:
    """The job's Parquet rows in stream order: the files in ``files`` order, rows in order."""
    frame = pd.read_parquet(folder)
    rank = {str(path): i for i, path in enumerate(files)}
    frame["_file"] = frame["file"].map(rank)
    assert frame["_file"].notna().all(), set(frame["file"]) - set(rank)
    return frame.sort_values(["_file", "row"]).reset_index(drop=True)


def zeek_lines(count: int, seed: int) -> tuple[list[str], list[str]]:
    """A TSV conn.log's header lines and data lines (rows in Zeek's write order: fast
    connections to 3 hosts, so 2-second and 255-connection windows span ~800 rows)."""
    from tests.helpers.zeek_logs import tsv_log

    text = tsv_log(conn_rows(count, seed=seed, rate=400, long_share=0.02,
                             long_seconds=20)).decode()
    lines = text.splitlines()
    header = [line for line in lines if line.startswith("#") and not line.startswith("#close")]
    return header, [line for line in lines if not line.startswith("#")]


def write_log(path: Path, header: list[str], rows: list[str], *, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\n".join([*header, *rows]) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path
