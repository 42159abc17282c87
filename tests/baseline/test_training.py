"""Baseline training: split by time, malicious rows left out, the threshold from the next
slice, figures on the newest slice, and a card that says how."""

import json

import numpy as np
import pytest

from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.zeek_logs import FIELDS_UNLABELED, baseline_rows, tsv_log
from utils.baseline.exclusions import Exclusions
from utils.baseline.k_rule import MIN_FIT_ROWS, baseline_k_values
from utils.baseline.slices import FIT_FRACTION, THRESHOLD_FRACTION, temporal_slices
from utils.baseline.training import slice_figures, train_baseline
from utils.readers import read_records
from utils.retraining.gate import pipeline_scores


def scanner_labeled_malicious(rows):
    """The scanner's rows (10.9.9.9) labeled Malicious, the rest Benign."""
    for row in rows:
        row[-1] = "Malicious" if row[2] == "10.9.9.9" else "Benign"
    return rows


@pytest.fixture(scope="module")
def labeled():
    rows = scanner_labeled_malicious(baseline_rows(3000, hours=72, scanner="10.9.9.9",
                                                   scan_targets=300))
    return read_records(tsv_log(rows))


@pytest.fixture(scope="module")
def result(labeled):
    return train_baseline(labeled, random_state=0, source={"file": "conn.log"})


def test_the_card_says_zeek_and_how_the_baseline_was_trained(result):
    card = result.card
    assert card["input_kind"] == "zeek"
    assert card["threshold_rule"] == "fpr" and card["target_fpr"] == 0.01
    baseline = card["baseline"]
    assert set(baseline) == {"period", "slices", "k_rule", "exclusions", "health", "figures"}
    assert baseline["k_rule"]["k_values"] == card["k_values"]
    assert tuple(card["k_values"]) == baseline_k_values(card["training_data"]["fit_rows"])
    assert baseline["health"]["warnings"] == [w["code"] for w in result.health["warnings"]]
    assert baseline["figures"] == result.figures
    assert card["training_data"]["file"] == "conn.log"
    assert json.loads(json.dumps(card)) == card


def test_the_slices_follow_each_other_in_time(labeled, result):
    slices = result.card["baseline"]["slices"]
    assert [slices[name]["rows"] for name in ("fit", "threshold", "newest")] == [
        1980, 660, 660]
    assert slices["fit"]["end"] <= slices["threshold"]["start"]
    assert slices["threshold"]["end"] <= slices["newest"]["start"]
    newest_ts = result.newest.identity["ts"]
    assert newest_ts.min() >= np.sort(labeled.identity["ts"])[round(3300 * 0.8) - 1]
    assert len(result.newest) == 660


def test_malicious_rows_are_left_out_of_the_fit_and_counted(labeled, result):
    data = result.card["training_data"]
    slices = temporal_slices(labeled.identity["ts"])
    malicious = (labeled.labels != "normal").to_numpy()
    assert data["malicious_rows"] == 300
    assert data["fit_rows"] == int(np.sum(~malicious[slices["fit"]]))
    assert data["threshold_rows"] == int(np.sum(~malicious[slices["threshold"]]))
    assert data["normal_rows"] == 3000 and data["unlabeled_rows"] == 0
    fit = result.card["baseline"]["slices"]["fit"]
    assert fit["malicious_rows"] == int(malicious[slices["fit"]].sum()) > 0


def test_the_threshold_flags_the_target_share_of_the_next_slice(labeled, result):
    slices = temporal_slices(labeled.identity["ts"])
    rows = slices["threshold"][(labeled.labels == "normal").to_numpy()[slices["threshold"]]]
    scores = pipeline_scores(result.pipeline, labeled.features.iloc[rows])
    flagged = np.mean(scores > result.pipeline[-1].threshold_)
    assert flagged <= 0.01
    assert flagged >= 0.01 - 1 / len(rows)


def test_figures_on_the_newest_slice_measure_false_alarms_and_the_scanner(result):
    figures = result.figures
    assert figures["rows"] == 660
    assert figures["malicious_rows"] == figures["rows"] - figures["normal_rows"] > 0
    assert figures["false_alarm_rate"] < 0.05
    assert figures["recall"] > 0.9  # failed connections to odd ports: unlike the office
    assert figures["auroc"] > 0.95


def test_an_unlabeled_baseline_counts_every_row_as_normal():
    records = read_records(tsv_log(baseline_rows(1500, hours=48, label=False),
                                   FIELDS_UNLABELED))
    result = train_baseline(records)
    data = result.card["training_data"]
    assert data["unlabeled_rows"] == 1500 and data["malicious_rows"] == 0
    assert data["fit_rows"] == round(1500 * FIT_FRACTION)
    assert result.figures["recall"] is None and result.figures["auroc"] is None
    assert result.figures["false_alarm_rate"] is not None
    assert result.health["labels"] is None


def test_exclusions_apply_before_the_report_and_the_split(labeled):
    result = train_baseline(labeled, exclusions=Exclusions(hosts=("10.9.9.9",)),
                            n_clusters=(4, 5))
    assert result.card["training_data"]["excluded_rows"] == 300
    assert result.exclusions["by_host"] == {"10.9.9.9": 300}
    assert result.health["rows"] == 3000
    assert "possible_scanner" not in [w["code"] for w in result.health["warnings"]]
    assert result.card["baseline"]["exclusions"]["hosts"] == ["10.9.9.9"]
    assert result.figures["malicious_rows"] == 0
    assert result.card["baseline"]["k_rule"]["rule"] == "explicit k"
    assert result.card["k_values"] == [4, 5]


def test_the_same_seed_trains_the_same_model(labeled, result):
    again = train_baseline(labeled, random_state=0)
    assert again.card["model_version"].split("-")[-1] == result.card["model_version"].split(
        "-")[-1]
    assert again.card["threshold"] == result.card["threshold"]


def test_a_baseline_too_small_to_fit_is_refused_with_the_reason():
    records = read_records(tsv_log(baseline_rows(40, hours=48)))
    with pytest.raises(ValueError, match=f"at least {MIN_FIT_ROWS}"):
        train_baseline(records)


def test_kdd_records_are_not_a_baseline():
    with pytest.raises(ValueError, match="Zeek"):
        train_baseline(read_records(synthetic_kdd(200, 20)))


@pytest.mark.parametrize("target", [0.0, 1.0, -0.1])
def test_the_false_alarm_budget_must_be_a_share(labeled, target):
    with pytest.raises(ValueError, match="target_fpr"):
        train_baseline(labeled, target_fpr=target)


def test_slice_figures_count_false_alarms_among_normal_rows_only():
    scores = np.array([0.1, 0.2, 5.0, 6.0, 0.3, 7.0])
    malicious = np.array([False, False, False, True, True, True])
    figures = slice_figures(scores, 1.0, malicious)
    assert figures["false_alarms"] == 1 and figures["false_alarm_rate"] == pytest.approx(1 / 3)
    assert figures["recall"] == pytest.approx(2 / 3)
    assert figures["auroc"] == pytest.approx(8 / 9)
    assert slice_figures(scores, 1.0, np.zeros(6, dtype=bool))["auroc"] is None


def test_split_shares_add_up():
    assert FIT_FRACTION + THRESHOLD_FRACTION < 1
    parts = temporal_slices(np.array([5.0, 1.0, 3.0, 2.0, 4.0]))
    assert [list(parts[name]) for name in ("fit", "threshold", "newest")] == [
        [1, 3, 2], [4], [0]]
