"""Baselines on the shared ctu-botnet-4 capture (real traffic of a host infected by a
botnet): its report names the infected host, the split follows ts, and a baseline too
small for the KDD model's k set, which train_model.py refused before the k rule, trains."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers.repo import REPO_ROOT, require_file
from utils.baseline.health import health_report
from utils.baseline.k_rule import K_MAX, baseline_k_values
from utils.baseline.training import train_baseline
from utils.readers import read_records
from utils.training import train

CTU = REPO_ROOT.parent / "shared" / "data" / "zeek" / "ctu-botnet-4.conn.log.labeled"
INFECTED = "10.0.2.19"
# Data rows of the small baseline: about 700 benign rows, too few for k=600 after the KDD
# protocol's 20% validation split and the detector's 20% calibration hold-out (750 needed).
SMALL_ROWS = 900


@pytest.fixture(scope="module")
def ctu_bytes():
    return require_file(CTU, "../shared/data/zeek beside the repository").read_bytes()


@pytest.fixture(scope="module")
def small_log(ctu_bytes, tmp_path_factory):
    """The capture's first SMALL_ROWS records (file order) as a log of their own, written to
    a temp folder only."""
    lines = ctu_bytes.split(b"\n")
    header = [line for line in lines if line.startswith(b"#") and not line.startswith(
        b"#close")]
    body = [line for line in lines if line and not line.startswith(b"#")]
    path = tmp_path_factory.mktemp("ctu") / "ctu-small.conn.log"
    path.write_bytes(b"\n".join(header + body[:SMALL_ROWS]) + b"\n")
    return path


def test_the_report_names_the_infected_host_as_a_possible_scanner(ctu_bytes):
    report = health_report(read_records(ctu_bytes))
    assert report["rows"] == 22913
    assert report["labels"] == {"normal": 19460, "malicious": 3453, "unlabeled": 0}
    assert report["top_talkers"][0]["host"] == INFECTED
    assert report["top_talkers"][0]["destinations"] > 1000
    warnings = {w["code"]: w for w in report["warnings"]}
    assert warnings["possible_scanner"]["hosts"] == [INFECTED]
    assert "labeled_malicious" in warnings


def test_a_small_baseline_refused_by_the_kdd_protocol_trains_with_the_k_rule(small_log):
    records = read_records(small_log)
    with pytest.raises(ValueError, match="to fit k=600"):
        train(records)  # what train_model.py ran for a conn.log before baselines
    result = train_baseline(records)
    card = result.card
    fit_rows = card["training_data"]["fit_rows"]
    assert tuple(card["k_values"]) == baseline_k_values(fit_rows)
    assert max(card["k_values"]) < K_MAX
    assert card["baseline"]["k_rule"]["n_fit_rows"] == fit_rows
    assert result.figures["false_alarm_rate"] is not None


@pytest.mark.slow
def test_train_model_py_trains_the_small_baseline_split_in_time(small_log, tmp_path):
    done = subprocess.run([sys.executable, "train_model.py", "--train", str(small_log),
                           "--model-dir", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.index("WARNING [possible_scanner]") < done.stdout.index("zeek model")
    card = json.loads((tmp_path / "zeek" / "model_card.json").read_text())
    slices = card["baseline"]["slices"]
    assert slices["fit"]["end"] <= slices["threshold"]["start"]
    assert slices["threshold"]["end"] <= slices["newest"]["start"]
    assert sum(slices[name]["rows"] for name in ("fit", "threshold", "newest")) == SMALL_ROWS
    # malicious rows left out of the fit and the threshold, measured on the newest slice
    data = card["training_data"]
    assert data["fit_rows"] == slices["fit"]["rows"] - slices["fit"]["malicious_rows"]
    figures = card["baseline"]["figures"]
    assert figures["malicious_rows"] == slices["newest"]["malicious_rows"] > 0
    assert figures["recall"] is not None and figures["auroc"] is not None
    assert np.isclose(figures["threshold"], card["threshold"])
