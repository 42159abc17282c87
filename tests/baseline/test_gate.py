"""The baseline gate: the first model of a kind is promoted; later ones must not raise more
false alarms on the newest slice (nor, with labeled attacks there, catch fewer)."""

import copy
from pathlib import Path

import pytest

from tests.helpers.zeek_logs import baseline_rows, tsv_log
from utils.baseline.gate import FALSE_ALARM_TOLERANCE, baseline_gate
from utils.baseline.training import BaselineResult, train_baseline
from utils.model_store import LoadedModel
from utils.readers import read_records


def loaded(result: BaselineResult) -> LoadedModel:
    return LoadedModel(pipeline=result.pipeline, card=result.card, path=Path("model.joblib"))


def with_threshold(result: BaselineResult, threshold: float) -> BaselineResult:
    pipeline = copy.deepcopy(result.pipeline)
    pipeline[-1].set_threshold(threshold)
    return BaselineResult(pipeline, {**result.card, "threshold": threshold}, result.health,
                          result.figures, result.newest, result.exclusions)


@pytest.fixture(scope="module")
def result():
    rows = baseline_rows(2000, hours=72, scanner="10.9.9.9", scan_targets=200)
    for row in rows:
        row[-1] = "Malicious" if row[2] == "10.9.9.9" else "Benign"
    return train_baseline(read_records(tsv_log(rows)), n_clusters=(20, 25, 30))


def test_the_first_model_of_a_kind_is_promoted(result):
    promote, reason, figures = baseline_gate(None, result, result.newest)
    assert promote and "first zeek model" in reason
    assert figures["current"] is None
    assert figures["candidate"]["false_alarm_rate"] == result.figures["false_alarm_rate"]


def test_an_equal_candidate_is_promoted(result):
    promote, reason, figures = baseline_gate(loaded(result), result, result.newest)
    assert promote, reason
    assert figures["candidate"] == figures["current"]
    assert "false_alarm_rate" in reason and "recall" in reason and "auroc" in reason


def test_a_candidate_with_more_false_alarms_is_held(result):
    # the lowest normal score as threshold flags nearly every normal row of the slice
    noisy = with_threshold(result, 0.0)
    promote, reason, figures = baseline_gate(loaded(result), noisy, result.newest)
    assert not promote
    assert "worse on false_alarm_rate" in reason
    assert (figures["candidate"]["false_alarm_rate"] - figures["current"]["false_alarm_rate"]
            > FALSE_ALARM_TOLERANCE)


def test_a_candidate_that_misses_labeled_attacks_is_held(result):
    blind = with_threshold(result, 1e9)  # no false alarms, but no attack caught either
    promote, reason, figures = baseline_gate(loaded(result), blind, result.newest)
    assert not promote
    assert "recall" in reason.split(":")[0]
    assert figures["candidate"]["false_alarm_rate"] == 0.0


def test_without_labeled_attacks_only_false_alarms_are_compared(result):
    normal_only = result.newest
    normal_only = type(normal_only)(features=normal_only.features, labels=None,
                                    difficulty=None, identity=normal_only.identity,
                                    input_kind="zeek")
    # unlabeled: the scanner's rows now count as normal, so both models have false alarms
    promote, reason, figures = baseline_gate(loaded(result), with_threshold(result, 1e9),
                                             normal_only)
    assert promote, reason
    assert reason.count("->") == 1 and "false_alarm_rate" in reason
    assert figures["candidate"]["recall"] is None


def test_models_of_different_kinds_are_not_compared(result):
    kdd = LoadedModel(pipeline=result.pipeline, card={**result.card, "input_kind": "kdd"},
                      path=Path("model.joblib"))
    with pytest.raises(ValueError, match="one kind"):
        baseline_gate(kdd, result, result.newest)
