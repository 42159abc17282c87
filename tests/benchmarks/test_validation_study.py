"""The validation study's decision rule, on hand-made per-seed figures (no fitting)."""

import numpy as np
import pytest

from benchmarks import validation_study as study

SEEDS = [0, 1, 2, 3, 4]
CHEAP, MIDDLE, DEAR = (100, 150, 200, 250, 300), (200, 250, 300, 350, 400), (300, 350, 400,
                                                                              450, 500)


def figures(aurocs: dict[str, list[float]], fpr: float = 0.1, bacc: float = 0.94) -> dict:
    """Per-seed results of one k set: ``aurocs`` per combination, the rest equal to k^2's."""
    base = aurocs["weights_k2"]
    out = {}
    for seed in SEEDS:
        out[seed] = {}
        for name in [*study.COMBINATIONS, "finest_alone"]:
            value = aurocs.get(name, base)[seed]
            out[seed][name] = {"macro_auroc": value, "auroc_by_category": {"R2L": value},
                               "fpr": fpr, "balanced_accuracy": bacc}
    return out


def run(per_set: dict[tuple[int, ...], dict]) -> dict:
    per_seed = {study.set_name(ks): results for ks, results in per_set.items()}
    return study.summarise(per_seed, SEEDS, list(per_set),
                           {study.set_name(ks): [1.0] for ks in per_set})


def steady(level: float) -> list[float]:
    return [level + 0.0001 * s for s in SEEDS]


def test_a_dearer_set_needs_a_paired_gain_beyond_two_standard_errors():
    noisy = [0.9850, 0.9790, 0.9870, 0.9780, 0.9860]  # higher mean, gain within the noise
    summary = run({
        CHEAP: figures({"geometric": steady(0.975), "weights_k2": steady(0.976)}),
        MIDDLE: figures({"geometric": steady(0.980), "weights_k2": steady(0.981)}),
        DEAR: figures({"geometric": noisy, "weights_k2": noisy}),
    })
    rows = {row["set"]: row for row in summary["step1_sets"]}
    assert [rows[study.set_name(ks)]["qualifies"] for ks in (CHEAP, MIDDLE, DEAR)] == [
        True, True, False]
    assert np.mean(noisy) > 0.980
    assert summary["chosen_set"] == list(MIDDLE)


def test_the_set_is_judged_by_the_plain_geometric_mean():
    summary = run({
        CHEAP: figures({"geometric": steady(0.975), "weights_k2": steady(0.970)}),
        MIDDLE: figures({"geometric": steady(0.974), "weights_k2": steady(0.990)}),
    })
    assert summary["chosen_set"] == list(CHEAP)


@pytest.mark.parametrize(("rival", "rival_fpr", "expected"), [
    ("weights_k", 0.10, "weights_k"),     # beats k^2 beyond 2 SE, no worse at the threshold
    ("weights_k", 0.12, "weights_k2"),    # beats it, but more false alarms: k^2 stays
    ("minimum", 0.10, "weights_k2"),      # every flagged record gets all votes: excluded
])
def test_the_k2_weights_stay_unless_a_rival_wins_by_the_written_rule(rival, rival_fpr,
                                                                      expected):
    per_seed = figures({"geometric": steady(0.975), "weights_k2": steady(0.976),
                        rival: steady(0.980)})
    for seed in SEEDS:
        per_seed[seed][rival]["fpr"] = rival_fpr
    summary = run({CHEAP: per_seed})
    assert summary["chosen_combination"] == expected


def test_combinations_agree_with_their_definitions():
    ratios = np.array([[1.0, 2.0, 4.0], [0.5, 0.5, 4.0]])
    ks = np.array([1, 2, 3])
    np.testing.assert_allclose(study.COMBINATIONS["geometric"](ratios, ks), [2.0, 1.0])
    np.testing.assert_allclose(study.COMBINATIONS["minimum"](ratios, ks), [1.0, 0.5])
    weights = ks**2 / np.sum(ks**2)
    np.testing.assert_allclose(study.COMBINATIONS["weights_k2"](ratios, ks),
                               np.exp(np.log(ratios) @ weights))


def test_the_study_refuses_any_file_but_kddtrain(tmp_path, capsys):
    other = tmp_path / "KDDTrain+.txt"
    other.write_text("0,tcp,http,SF\n")
    assert study.main(["--train", str(other), "--out-dir", str(tmp_path)]) == 2
    assert "not KDDTrain+" in capsys.readouterr().err
