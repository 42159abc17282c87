"""End-to-end runs of the training, threshold and evaluation scripts on real NSL-KDD data."""

import json
import subprocess
import sys

import pytest

from tests.helpers.repo import REPO_ROOT

pytestmark = pytest.mark.e2e  # the scripts run as real processes

# Floors for a model trained on KDDTrain+_20Percent and scored on KDDTest+. Measured on the
# development machine: accuracy 0.910, F1 0.923, AUROC 0.969 (seed 0); the floors leave room
# for BLAS differences between machines, not for a worse method.
FLOOR = {"accuracy": 0.89, "f1": 0.90, "auroc": 0.95}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, kdd_train20_path):
    folder = tmp_path_factory.mktemp("model20")
    done = run("train_model.py", "--train", str(kdd_train20_path), "--model-dir", str(folder))
    assert done.returncode == 0, done.stderr
    assert "validation (held-out rows of KDDTrain+_20Percent.txt" in done.stdout
    return folder


@pytest.mark.slow
def test_model_trained_on_20_percent_clears_the_floor_on_kddtest(model_dir, kdd_test_path):
    done = run("test_performance.py", "--model-dir", str(model_dir), "--data",
               str(kdd_test_path), "--json", "--repeat", "1")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"accuracy", "precision", "recall", "f1", "auroc",
                           "samples_per_second", "rows"}
    assert result["rows"] == 22544
    for key, floor in FLOOR.items():
        assert result[key] >= floor, (key, result[key])


@pytest.mark.slow
def test_training_is_deterministic(model_dir, kdd_train20_path, tmp_path):
    done = run("train_model.py", "--train", str(kdd_train20_path), "--model-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    first = json.loads((model_dir / "model_card.json").read_text())
    second = json.loads((tmp_path / "model_card.json").read_text())
    assert first["model_version"].split("-")[-1] == second["model_version"].split("-")[-1]
    assert first["threshold"] == second["threshold"]


def test_optimize_threshold_refuses_the_test_set(model_dir, kdd_test_path):
    done = run("optimize_threshold.py", "--model-dir", str(model_dir), "--data",
               str(kdd_test_path))
    assert done.returncode == 2
    assert "refusing KDDTest+" in done.stderr


@pytest.mark.slow
def test_optimize_threshold_by_target_fpr_updates_the_model(model_dir, kdd_train20_path,
                                                            tmp_path):
    import shutil
    folder = tmp_path / "m"
    shutil.copytree(model_dir, folder)
    done = run("optimize_threshold.py", "--model-dir", str(folder), "--data",
               str(kdd_train20_path), "--target-fpr", "0.02")
    assert done.returncode == 0, done.stderr
    assert "<- chosen" in done.stdout
    card = json.loads((folder / "model_card.json").read_text())
    assert card["threshold_rule"] == "fpr" and card["target_fpr"] == 0.02
    assert card["validation_metrics"]["false_positive_rate"] <= 0.02
    assert card["model_version"] != json.loads(
        (model_dir / "model_card.json").read_text())["model_version"]


def test_scripts_report_a_missing_file_without_a_traceback(tmp_path):
    done = run("train_model.py", "--train", str(tmp_path / "nope.txt"), "--model-dir",
               str(tmp_path))
    assert done.returncode == 2
    assert "not found" in done.stderr and "Traceback" not in done.stderr
