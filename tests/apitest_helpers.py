"""Helpers for the ML API tests: synthetic KDD and Zeek uploads, a small trained model.

A module of its own (not conftest.py) so test files can import it by a name no other test
folder uses.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from server.request_log import LOGGER_NAME
from utils.model_store import save_model
from utils.readers import read_records
from utils.schema import FEATURE_NAMES
from utils.training import train

REPO_ROOT = Path(__file__).resolve().parents[1]


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


def train_model(model_dir: Path, seed: int) -> Path:
    """A three-model ensemble on synthetic records, saved like `make train` saves one."""
    records = read_records(synthetic_kdd(600, 200, seed=seed))
    result = train(records, n_clusters=(3, 4, 5), random_state=seed,
                   source={"file": "synthetic.txt"})
    save_model(result.pipeline, result.card, model_dir)
    return model_dir


def upload(client, data: bytes, name: str = "traffic.txt", query: str = "", **kwargs):
    """POST ``data`` as the multipart field ``file`` to /api/predict."""
    return client.post(f"/api/predict{query}", data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data", **kwargs)


class LogLines(logging.Handler):
    """Collects the JSON lines the service logs."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def log_lines(app) -> Iterator[list[dict]]:
    """The service's JSON log lines written while the test runs (conftests import this)."""
    logger = logging.getLogger(LOGGER_NAME)
    handler = LogLines()
    handler.setFormatter(logger.handlers[0].formatter)
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


ZEEK_FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
               "service", "duration", "orig_bytes", "resp_bytes", "conn_state", "label"]


def zeek_tsv(rows: list[list[str]]) -> bytes:
    lines = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)",
             "#unset_field\t-", "#path\tconn", "#fields\t" + "\t".join(ZEEK_FIELDS),
             "#types\t" + "\t".join("string" for _ in ZEEK_FIELDS)]
    lines += ["\t".join(row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def zeek_sample() -> bytes:
    """30 connections: web traffic, and every third one a SYN to an odd port whose uid looks
    like a spreadsheet formula."""
    rows = []
    for i in range(30):
        port = 40000 + i
        if i % 3:
            rows.append([f"{1700000000 + i}.5", f"C{i}", "10.0.0.1", str(port), "10.0.0.2",
                         "80", "tcp", "http", "1.2", "300", "4000", "SF", "Benign"])
        else:
            rows.append([f"{1700000000 + i}.5", f"=cmd{i}", "10.0.0.9", str(port), "10.0.0.2",
                         str(1000 + i), "tcp", "-", "-", "-", "-", "S0", "Malicious"])
    return zeek_tsv(rows)
