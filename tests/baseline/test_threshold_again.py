"""Choosing a Zeek baseline's threshold again (optimize_threshold.py): on its own file only
the rows it never fitted and the newest slice does not hold, as when it was trained."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers.repo import REPO_ROOT
from tests.helpers.zeek_logs import baseline_rows, tsv_log
from utils.baseline.slices import held_out_mask, temporal_slices
from utils.baseline.training import train_baseline
from utils.model_store import save_model
from utils.readers import read_records


@pytest.fixture(scope="module")
def log_bytes() -> bytes:
    rows = baseline_rows(3000, hours=72, scanner="10.9.9.9", scan_targets=300)
    for row in rows:  # the scanner's connections are the attacks a threshold should catch
        row[-1] = "Malicious" if row[2] == "10.9.9.9" else "Benign"
    return tsv_log(rows)


@pytest.fixture(scope="module")
def trained(log_bytes, tmp_path_factory):
    records = read_records(log_bytes)
    digest = hashlib.sha256(log_bytes).hexdigest()
    result = train_baseline(records, random_state=0,
                            source={"file": "conn.log", "sha256": digest})
    folder = tmp_path_factory.mktemp("zeek-model")
    save_model(result.pipeline, result.card, folder)
    path = folder / "conn.log"
    path.write_bytes(log_bytes)
    return records, result.card, digest, folder, path


def test_on_its_own_file_only_the_threshold_slice_is_held_out(trained):
    records, card, digest, _, _ = trained
    mask = held_out_mask(records, card, digest)
    slices = temporal_slices(records.identity["ts"].to_numpy(dtype=float))
    expected = np.zeros(len(records), dtype=bool)
    expected[slices["threshold"]] = True
    assert mask.sum() == card["baseline"]["slices"]["threshold"]["rows"] == 660
    assert np.array_equal(mask, expected)  # no fitted row, no newest row


def test_another_labeled_file_is_held_out_whole(trained):
    records, card, _, _, _ = trained
    assert held_out_mask(records, card, "0" * 64).all()


def test_a_card_without_slice_times_says_so(trained):
    records, card, digest, _, _ = trained
    old = {**card, "baseline": {"slices": {"fit": {"end": "2026-01-01T00:00:00Z"}}}}
    with pytest.raises(ValueError, match="does not record its slices' times"):
        held_out_mask(records, old, digest)


def test_optimize_threshold_chooses_on_the_threshold_slice_of_a_zeek_baseline(trained):
    _, _, _, folder, path = trained
    done = subprocess.run([sys.executable, "optimize_threshold.py", "--model-dir", str(folder),
                           "--data", str(path), "--target-fpr", "0.02", "--dry-run"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "660 validation rows (threshold slice of the baseline period)" in done.stderr
    assert "rule fpr: threshold" in done.stdout
