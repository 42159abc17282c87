import json

import joblib
import numpy as np
import pandas as pd
import pytest

from tests.helpers.repo import REPO_ROOT
from utils.detector import DEFAULT_N_CLUSTERS, DEFAULT_WEIGHT_POWER
from utils.model_store import (
    CARD_FILE,
    MODEL_FILE,
    ModelLoadError,
    load_model,
    save_model,
)
from utils.readers import ParsedRecords
from utils.schema import FEATURE_NAMES, NUMERIC_FEATURES
from utils.scoring import explain, score_features, score_histogram
from utils.training import train


def synthetic_records(n: int = 1500, attacks: int = 150, seed: int = 0) -> ParsedRecords:
    """Normal rows: small http/smtp transfers; attacks: SYN floods and huge transfers."""
    rng = np.random.RandomState(seed)
    data = {name: np.zeros(n + attacks) for name in NUMERIC_FEATURES}
    data["src_bytes"] = np.r_[rng.randint(100, 2000, n), rng.randint(0, 10, attacks)]
    data["dst_bytes"] = np.r_[rng.randint(100, 9000, n), np.zeros(attacks)]
    data["count"] = np.r_[rng.randint(1, 10, n), rng.randint(200, 511, attacks)]
    data["serror_rate"] = np.r_[np.zeros(n), np.ones(attacks)]
    data["logged_in"] = np.r_[np.ones(n), np.zeros(attacks)]
    data["protocol_type"] = np.array(["tcp"] * (n + attacks), dtype=object)
    data["service"] = np.r_[rng.choice(["http", "smtp"], n), ["private"] * attacks].astype(object)
    data["flag"] = np.array(["SF"] * n + ["S0"] * attacks, dtype=object)
    features = pd.DataFrame(data)[list(FEATURE_NAMES)]
    labels = pd.Series(["normal"] * n + ["neptune"] * attacks, dtype=object)
    return ParsedRecords(features=features, labels=labels, difficulty=None)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    records = synthetic_records()
    result = train(records, n_clusters=(3, 4, 5, 6, 8), source={"file": "synthetic"})
    folder = tmp_path_factory.mktemp("model")
    save_model(result.pipeline, result.card, folder)
    return records, result, folder


def test_round_trip_scores_identically(trained):
    records, result, folder = trained
    model = load_model(folder)
    assert model.version == result.card["model_version"]
    before = result.pipeline[-1].anomaly_score(result.pipeline[0].transform(records.features))
    after = score_features(model, records.features).anomaly_score
    np.testing.assert_allclose(before, after)


def test_card_records_what_a_reader_needs(trained):
    _, _, folder = trained
    card = json.loads((folder / CARD_FILE).read_text())
    for key in ("model_version", "created_at", "k_values", "threshold", "library_versions",
                "training_data", "validation_metrics", "severity_edges", "feature_names"):
        assert key in card
    assert card["library_versions"]["scikit-learn"]
    assert card["n_models"] == 5


def test_model_written_by_another_sklearn_is_refused_with_advice(trained, tmp_path):
    _, result, _ = trained
    card = dict(result.card, library_versions={"scikit-learn": "0.0.1"})
    save_model(result.pipeline, card, tmp_path)
    with pytest.raises(ModelLoadError, match=r"scikit-learn 0\.0\.1.*make train"):
        load_model(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing", "foreign"])
def test_damaged_model_file_gives_a_clear_error(trained, tmp_path, damage):
    _, result, _ = trained
    save_model(result.pipeline, result.card, tmp_path)
    path = tmp_path / MODEL_FILE
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:500])
    elif damage == "garbage":
        path.write_bytes(b"not a model at all")
    elif damage == "missing":
        path.unlink()
    else:
        joblib.dump({"something": "else"}, path)
    with pytest.raises(ModelLoadError):
        load_model(tmp_path)


def test_a_crash_while_writing_leaves_the_previous_model(trained, tmp_path, monkeypatch):
    _, result, _ = trained
    save_model(result.pipeline, result.card, tmp_path)

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(joblib, "dump", explode)
    with pytest.raises(OSError):
        save_model(result.pipeline, dict(result.card, model_version="new"), tmp_path)
    assert load_model(tmp_path).version == result.card["model_version"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_archive_keeps_versions_for_rollback(trained, tmp_path):
    _, result, _ = trained
    save_model(result.pipeline, result.card, tmp_path, archive=True)
    version_dir = tmp_path / "versions" / result.card["model_version"]
    assert load_model(version_dir).version == result.card["model_version"]


def test_explanations_name_the_features_that_differ(trained):
    records, _, folder = trained
    model = load_model(folder)
    attack = records.features.iloc[[-1]]
    top = explain(model, attack)[0]
    assert 1 <= len(top) <= 3
    assert {entry["feature"] for entry in top} & {"count", "serror_rate", "flag", "service",
                                                  "src_bytes", "dst_bytes", "logged_in"}
    assert sum(e["contribution"] for e in top) <= 1.0 + 1e-6


def test_explanations_flag_unseen_categories(trained):
    records, _, folder = trained
    model = load_model(folder)
    row = records.features.iloc[[0]].copy()
    row["service"] = "gopher"
    entries = explain(model, row)[0]
    assert any(e["feature"] == "service" and e.get("unseen_category") for e in entries)


def test_histogram_counts_every_row_and_marks_the_threshold():
    scores = np.array([0.1, 0.5, 1.0, 2.0, 50.0])
    hist = score_histogram(scores, threshold=1.5, bins=10)
    assert sum(hist["counts"]) == 5
    assert hist["bin_edges"][0] <= 0.1 and hist["bin_edges"][-1] >= 50.0 * 0.999
    assert hist["threshold"] == 1.5


def test_the_committed_model_is_what_train_model_py_trains_by_default():
    """models/ holds the code's defaults: k set, weights, split seed and threshold rule."""
    model = load_model(REPO_ROOT / "models")
    card = model.card
    assert tuple(card["k_values"]) == DEFAULT_N_CLUSTERS
    ks = np.asarray(DEFAULT_N_CLUSTERS, dtype=np.float64)
    expected = ks**DEFAULT_WEIGHT_POWER / np.sum(ks**DEFAULT_WEIGHT_POWER)
    np.testing.assert_allclose(card["model_weights"], expected)
    np.testing.assert_allclose(model.detector.model_weights_, expected)
    assert [e.n_clusters for e in model.detector.estimators_] == list(DEFAULT_N_CLUSTERS)
    assert card["threshold_rule"] == "balanced-f1"
    assert card["random_state"] == 0
    assert card["training_data"]["file"] == "KDDTrain+.txt"
    assert card["training_data"]["split_random_state"] == 0
