"""Small trained models for tests, saved the way `make train` saves one."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.zeek_logs import conn_rows, tsv_log
from utils.model_store import kind_model_dir, save_model
from utils.readers import read_records
from utils.training import file_digest, train

SMALL_K = (4, 6, 8, 10, 12)
SMALL_K_TEXT = ",".join(map(str, SMALL_K))


def train_model(model_dir: Path, seed: int) -> Path:
    """A three-model ensemble on synthetic records (seconds, not minutes)."""
    records = read_records(synthetic_kdd(600, 200, seed=seed))
    result = train(records, n_clusters=(3, 4, 5), random_state=seed,
                   source={"file": "synthetic.txt"})
    save_model(result.pipeline, result.card, model_dir)
    return model_dir


def train_zeek_model(model_dir: Path, seed: int) -> Path:
    """A three-model ensemble on a generated Zeek conn.log (seconds), saved as the current
    Zeek model of ``model_dir`` (its ``zeek/`` folder) and kept among its versions; the
    Zeek folder is returned."""
    records = read_records(tsv_log(conn_rows(1500, seed=seed, rate=5.0)))
    result = train(records, n_clusters=(3, 4, 5), random_state=seed,
                   source={"file": "conn.log"})
    folder = kind_model_dir(model_dir, "zeek")
    save_model(result.pipeline, result.card, folder, archive=True)
    return folder


def train_small(base: Path, model_dir: Path, seed: int = 0) -> Path:
    """A model trained on ``base`` as train_model.py trains one, with small k values."""
    content = base.read_bytes()
    result = train(read_records(content), n_clusters=SMALL_K, random_state=seed,
                   source={"file": base.name, "sha256": file_digest(content)})
    save_model(result.pipeline, result.card, model_dir)
    return model_dir


def copy_model(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
