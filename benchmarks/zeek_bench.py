"""Zeek conn.log figures: KDD feature derivation speed, and detection on a temporal split.

Quality uses ctu-botnet-4 honestly in time: a model is trained on the first half of the
connections by ``ts`` (Benign -> normal, Malicious -> attack) and evaluated on the second
half, which it never saw. The first half holds Malicious rows too, so utils.training.train
makes its usual stratified 80/20 split *of the first half* and picks the threshold on that
20% by the balanced-F1 rule; the second half decides nothing. The NSL-KDD model from models/
is scored on the same second half for comparison.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.quality import thin_roc
from utils.metrics import evaluate
from utils.model_store import LoadedModel
from utils.preprocessing import ParsedRecords, read_records
from utils.scoring import score_records
from utils.training import DEFAULT_N_CLUSTERS, train
from utils.zeek_features import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, derive_kdd_features

SYNTHETIC_ROWS = 500_000
REPEATS = 3
SEED = 0
_NUMERIC = ("ts", "duration", "orig_bytes", "resp_bytes")
_PORTS = ("id.orig_p", "id.resp_p")

Progress = Callable[[str], None]


def read_conns(data: bytes) -> pd.DataFrame:
    """The conn.log columns derive_kdd_features needs, typed as utils.zeek passes them."""
    lines = data.split(b"\n")
    header = next(line for line in lines if line.startswith(b"#fields"))
    fields = header.decode().split("\t")[1:]
    body = b"\n".join(line for line in lines if line and not line.startswith(b"#"))
    wanted = [f for f in fields if f in REQUIRED_COLUMNS or f in OPTIONAL_COLUMNS]
    table = pd.read_csv(io.BytesIO(body), sep="\t", header=None, names=fields, usecols=wanted,
                        dtype=object, keep_default_na=False, na_values=["-", "(empty)"],
                        quoting=csv.QUOTE_NONE)
    for column in _NUMERIC:
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    for column in _PORTS:
        table[column] = pd.to_numeric(table[column]).astype(np.int64)
    return table


def synthetic_log(data: bytes, rows: int) -> bytes:
    """A conn.log of ``rows`` rows: the input's rows repeated, each copy shifted later in time
    by the input's time span (plus a gap), so windows never mix copies."""
    lines = data.split(b"\n")
    header = [line for line in lines if line.startswith(b"#") and not line.startswith(b"#close")]
    body = [line.split(b"\t", 1) for line in lines if line and not line.startswith(b"#")]
    times = np.array([float(ts) for ts, _ in body])
    span = float(times.max() - times.min()) + 10.0
    out = list(header)
    for i in range(rows):
        copy, row = divmod(i, len(body))
        out.append(b"%.6f\t%s" % (times[row] + copy * span, body[row][1]))
    return b"\n".join(out) + b"\n"


def _best_of(repeats: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def derivation_speed(name: str, data: bytes, repeats: int = REPEATS) -> dict:
    """Best-of-``repeats`` time of derive_kdd_features alone and of the whole Zeek reader."""
    conns = read_conns(data)
    derive = _best_of(repeats, lambda: derive_kdd_features(conns))
    reader = _best_of(repeats, lambda: read_records(data))
    return {"input": name, "rows": len(conns), "log_mb": len(data) / 2**20,
            "derive_seconds": derive, "derive_rows_per_second": len(conns) / derive,
            "reader_seconds": reader, "reader_rows_per_second": len(conns) / reader}


def subset(records: ParsedRecords, rows: np.ndarray) -> ParsedRecords:
    """The given row positions of ``records`` (renumbered from 0)."""

    def take(frame):
        return None if frame is None else frame.iloc[rows].reset_index(drop=True)

    return ParsedRecords(features=take(records.features), labels=take(records.labels),
                         difficulty=take(records.difficulty), identity=take(records.identity),
                         input_kind=records.input_kind)


def temporal_split(records: ParsedRecords) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the earlier and the later half by ``ts`` (ties keep file order)."""
    order = np.argsort(records.identity["ts"].to_numpy(), kind="stable")
    half = len(order) // 2
    return order[:half], order[half:]


def _label_counts(records: ParsedRecords) -> dict[str, int]:
    counts = records.labels.fillna("(unknown)").map(
        lambda label: "normal" if label == "normal" else label if label == "(unknown)"
        else "attack").value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def temporal_quality(path: Path, nslkdd_model: LoadedModel, progress: Progress = print) -> dict:
    records = read_records(path)
    first_rows, second_rows = temporal_split(records)
    first, second = subset(records, first_rows), subset(records, second_rows)
    ts = records.identity["ts"].to_numpy()
    progress(f"zeek: training on the first half ({len(first):,} rows, ts <= "
             f"{ts[first_rows].max():,.0f} s)")
    started = time.perf_counter()
    result = train(first, n_clusters=DEFAULT_N_CLUSTERS, random_state=SEED,
                   source={"file": path.name, "part": "first half by ts"})
    train_seconds = time.perf_counter() - started
    pipeline = result.pipeline
    zeek_scores = pipeline[-1].anomaly_score(pipeline[0].transform(second.features))
    zeek_flagged = zeek_scores > pipeline[-1].threshold_
    nsl = score_records(nslkdd_model, second)
    known = second.labels.notna().to_numpy()
    y = (second.labels[known].astype(str) != "normal").to_numpy()
    card = result.card
    return {
        "file": path.name,
        "split": "rows sorted by ts (stable); first half trains, second half evaluates",
        "unknown_label_rows": int(records.labels.isna().sum()),
        "first_half": {"rows": len(first), "labels": _label_counts(first),
                       "ts_max": float(ts[first_rows].max())},
        "second_half": {"rows": len(second), "labels": _label_counts(second),
                        "ts_min": float(ts[second_rows].min())},
        "zeek_model": {
            "k_values": card["k_values"], "threshold": card["threshold"],
            "threshold_rule": card["threshold_rule"],
            "threshold_from": "20% stratified validation split of the first half",
            "fit_rows": card["training_data"]["fit_rows"],
            "validation_rows": card["training_data"]["validation_rows"],
            "train_seconds": train_seconds,
            "validation_metrics": card["validation_metrics"],
            "second_half": evaluate(second.labels, zeek_flagged, zeek_scores),
            "roc": thin_roc(y, zeek_scores[known]),
        },
        "nslkdd_model": {
            "model_version": nslkdd_model.version, "threshold": nslkdd_model.detector.threshold_,
            "second_half": evaluate(second.labels, nsl.is_anomaly, nsl.anomaly_score),
            "roc": thin_roc(y, nsl.anomaly_score[known]),
        },
    }


def run_zeek(path: Path, nslkdd_model: LoadedModel, progress: Progress = print) -> dict:
    data = path.read_bytes()
    progress(f"zeek: derivation speed on {path.name}")
    speed = [derivation_speed(path.name, data)]
    progress(f"zeek: building a {SYNTHETIC_ROWS:,}-row synthetic conn.log in memory")
    synthetic = synthetic_log(data, SYNTHETIC_ROWS)
    progress("zeek: derivation speed on the synthetic log")
    speed.append(derivation_speed(f"synthetic ({path.name} repeated, shifted in time)",
                                  synthetic))
    del synthetic
    return {"speed": speed, "quality": temporal_quality(path, nslkdd_model, progress)}
