"""ModelHolder: cheap change checks, hot reload, and keeping the old model when a reload fails."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from apitest_helpers import synthetic_kdd, upload

from server import create_app
from server.model_holder import ModelHolder, ModelUnavailable
from utils.detector import KMeansEnsembleDetector
from utils.model_store import MODEL_FILE, ModelLoadError, load_model


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingLoader:
    """load_model, counting calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, model_dir: Path):
        self.calls += 1
        return load_model(model_dir)


def replace_model(source_dir: Path, target_dir: Path) -> None:
    """Swap the model file in atomically, as save_model does."""
    tmp = target_dir / f".{MODEL_FILE}.incoming"
    shutil.copyfile(source_dir / MODEL_FILE, tmp)
    os.replace(tmp, target_dir / MODEL_FILE)


@pytest.fixture
def folder(tmp_path, model_dir) -> Path:
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


def test_current_returns_the_loaded_model_without_reloading(folder):
    loader = CountingLoader()
    holder = ModelHolder(folder, check_interval=0.0, loader=loader)
    first = holder.current()
    assert holder.current() is first
    assert loader.calls == 1


def test_replaced_file_is_loaded_only_after_the_check_interval(folder, other_model_dir):
    clock = FakeClock()
    holder = ModelHolder(folder, check_interval=1.0, clock=clock)
    old = holder.current()
    replace_model(other_model_dir, folder)
    assert holder.current() is old  # checked less than a second ago
    clock.now += 1.0
    new = holder.current()
    assert new.version == load_model(other_model_dir).version != old.version


def test_no_stat_between_checks(folder, monkeypatch):
    clock = FakeClock()
    holder = ModelHolder(folder, check_interval=1.0, clock=clock)
    holder.current()
    calls = []
    monkeypatch.setattr("utils.model_store.local.os.stat",
                        lambda *a, **k: calls.append(a) or os.lstat(*a))
    for _ in range(50):
        holder.current()
    assert calls == []
    clock.now += 2
    holder.current()
    assert len(calls) == 1


def test_failed_reload_keeps_the_old_model_and_reports_the_error(folder):
    holder = ModelHolder(folder, check_interval=0.0)
    old = holder.current()
    (folder / MODEL_FILE).write_bytes(b"garbage")
    assert holder.current() is old
    model, error = holder.status()
    assert model is old and "corrupt" in error


def test_corrupt_file_is_not_retried_until_it_changes_again(folder, model_dir):
    loader = CountingLoader()
    holder = ModelHolder(folder, check_interval=0.0, loader=loader)
    holder.current()
    (folder / MODEL_FILE).write_bytes(b"garbage")
    for _ in range(5):
        holder.current()
    assert loader.calls == 2
    replace_model(model_dir, folder)
    holder.current()
    assert loader.calls == 3
    assert holder.status()[1] is None  # repaired: the error is cleared


def test_deleted_model_file_keeps_serving_and_is_reported(folder):
    holder = ModelHolder(folder, check_interval=0.0)
    old = holder.current()
    (folder / MODEL_FILE).unlink()
    assert holder.current() is old
    assert "disappeared" in holder.status()[1]


def test_without_any_model_current_raises(tmp_path):
    holder = ModelHolder(tmp_path, check_interval=0.0)
    with pytest.raises(ModelUnavailable, match=r"model\.joblib"):
        holder.current()


def test_unexpected_loader_error_is_reported_without_its_text(tmp_path):
    def loader(_dir):
        raise OSError("/very/secret/path")

    holder = ModelHolder(tmp_path, check_interval=0.0, loader=loader)
    assert holder.status() == (None, "the model could not be loaded (OSError)")


def test_model_load_error_text_is_reported(tmp_path):
    def loader(_dir):
        raise ModelLoadError("the model was written by scikit-learn 0.1")

    holder = ModelHolder(tmp_path, check_interval=0.0, loader=loader)
    assert holder.status()[1] == "the model was written by scikit-learn 0.1"


def test_app_answers_with_the_new_model_after_a_swap(folder, other_model_dir, tmp_path):
    app = create_app({"TESTING": True, "MODEL_DIR": folder, "DATA_DIR": tmp_path / "data",
                      "MODEL_CHECK_INTERVAL": 0.0})
    client = app.test_client()
    data = synthetic_kdd(10, 5)
    before = upload(client, data).get_json()["summary"]["model_version"]
    replace_model(other_model_dir, folder)
    after = upload(client, data).get_json()["summary"]["model_version"]
    assert before != after == load_model(other_model_dir).version
    assert client.get("/health").get_json()["model_version"] == after


def test_a_request_finishes_on_the_model_it_started_with(folder, other_model_dir, tmp_path,
                                                          monkeypatch):
    """The model is swapped while the request is scoring; its answer stays one model's."""
    app = create_app({"TESTING": True, "MODEL_DIR": folder, "DATA_DIR": tmp_path / "data",
                      "MODEL_CHECK_INTERVAL": 0.0})
    first_model = load_model(folder)
    first = first_model.version
    second_threshold = load_model(other_model_dir).detector.threshold_
    assert first_model.detector.threshold_ != second_threshold
    import server.predict as predict

    real = predict.analyse_file

    def swap_then_analyse(model, path, limit, **options):
        replace_model(other_model_dir, folder)
        app.extensions["anomalyze.model"].refresh()
        return real(model, path, limit, **options)

    monkeypatch.setattr(predict, "analyse_file", swap_then_analyse)
    response = upload(app.test_client(), synthetic_kdd(10, 5))
    body = response.get_json()
    assert body["summary"]["model_version"] == first
    assert response.headers["X-Model-Version"] == first
    assert body["summary"]["threshold"] == first_model.detector.threshold_
    assert app.extensions["anomalyze.model"].current().version != first


def test_the_default_loader_scores_once_and_refuses_a_model_that_cannot(folder, monkeypatch):
    """Warmed up at load (so workers forked after it skip one-time costs); a model that
    cannot score is refused then, not on a request."""
    model = ModelHolder(folder).current()
    assert model.features.__dict__.get("_vocabulary_cache")  # built by the warm-up run

    def broken(self, X, **kwargs):
        raise RuntimeError("cannot score")

    monkeypatch.setattr(KMeansEnsembleDetector, "analyse", broken)
    with pytest.raises(ModelUnavailable):
        ModelHolder(folder).current()
