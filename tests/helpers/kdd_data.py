"""KDD uploads for tests: synthetic records (normal web traffic, SYN floods) and uploads cut
from NSL-KDD files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from utils.schema import FEATURE_NAMES

BASE_ROWS = 3000  # rows of the small training file cut from NSL-KDD


def kdd_line(values: dict, label: str | None = "normal", difficulty: int | None = 20) -> str:
    """One NSL-KDD line: the given feature values, 0 for the others, then label, difficulty."""
    fields = [str(values.get(name, 0)) for name in FEATURE_NAMES]
    if label is not None:
        fields.append(label)
        if difficulty is not None:
            fields.append(str(difficulty))
    return ",".join(fields)


def normal_values(rng: np.random.Generator) -> dict:
    return {"protocol_type": "tcp", "service": "http", "flag": "SF",
            "src_bytes": int(rng.integers(150, 400)), "dst_bytes": int(rng.integers(500, 6000)),
            "logged_in": 1, "count": int(rng.integers(1, 12)),
            "srv_count": int(rng.integers(1, 12)), "same_srv_rate": 1,
            "dst_host_count": int(rng.integers(20, 255)),
            "dst_host_srv_count": int(rng.integers(20, 255)), "dst_host_same_srv_rate": 1}


def attack_values(rng: np.random.Generator) -> dict:
    return {"protocol_type": "tcp", "service": "private", "flag": "S0",
            "count": int(rng.integers(100, 300)), "srv_count": int(rng.integers(1, 20)),
            "serror_rate": 1, "srv_serror_rate": 1, "same_srv_rate": 0.05,
            "diff_srv_rate": 0.07, "dst_host_count": 255,
            "dst_host_srv_count": int(rng.integers(1, 20)), "dst_host_serror_rate": 1,
            "dst_host_srv_serror_rate": 1}


def synthetic_kdd(n_normal: int, n_attack: int, *, seed: int = 0, labels: bool = True) -> bytes:
    """A KDD file of normal web traffic and SYN-flood rows, interleaved deterministically."""
    rng = np.random.default_rng(seed)
    kinds = ["normal"] * n_normal + ["neptune"] * n_attack
    rng.shuffle(kinds)
    lines = []
    for kind in kinds:
        values = normal_values(rng) if kind == "normal" else attack_values(rng)
        lines.append(kdd_line(values, kind if labels else None))
    return ("\n".join(lines) + "\n").encode()


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def kdd_bytes(lines: list[str], *, relabel: str | None = None, labels: bool = True) -> bytes:
    """NSL-KDD lines as an upload: optionally relabeled, or with label and difficulty cut."""
    out = []
    for line in lines:
        fields = line.split(",")
        if relabel is not None:
            fields[41] = relabel
        out.append(",".join(fields if labels else fields[:41]))
    return ("\n".join(out) + "\n").encode()


def write_base(source: Path, target: Path, rows: int = BASE_ROWS) -> Path:
    """The first ``rows`` lines of an NSL-KDD file: a training file small enough for tests."""
    target.write_text("\n".join(lines_of(source)[:rows]) + "\n")
    return target


def row_keys(features: pd.DataFrame) -> set[int]:
    """The distinct rows of a feature frame as hashes: which rows a run used, in any order."""
    return set(pd.util.hash_pandas_object(features, index=False).tolist())
