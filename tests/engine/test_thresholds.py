import numpy as np
import pytest

from utils.thresholds import balanced_f1, category_weights, choose_threshold, tradeoff_table


def scored(seed: int = 0):
    rng = np.random.RandomState(seed)
    normal = rng.normal(1.0, 0.2, 1000)
    dos = rng.normal(5.0, 0.5, 900)  # many, easy
    r2l = rng.normal(1.4, 0.1, 20)  # few, close to normal
    scores = np.r_[normal, dos, r2l]
    cats = np.array(["Normal"] * 1000 + ["DoS"] * 900 + ["R2L"] * 20, dtype=object)
    return scores, cats


def test_category_weights_give_each_category_the_same_total():
    _, cats = scored()
    w = category_weights(cats)
    assert w[cats == "DoS"].sum() == pytest.approx(w[cats == "R2L"].sum())
    assert w[cats != "Normal"].sum() == pytest.approx((cats != "Normal").sum())
    assert (w[cats == "Normal"] == 1).all()


def test_balanced_f1_lowers_the_threshold_to_catch_the_rare_category():
    scores, cats = scored()
    plain = choose_threshold(scores, cats, "f1")
    balanced = choose_threshold(scores, cats, "balanced-f1")
    assert balanced < plain
    assert (scores[cats == "R2L"] > balanced).mean() > (scores[cats == "R2L"] > plain).mean()


def test_fpr_rule_respects_the_target_on_normal_rows():
    scores, cats = scored()
    for target in (0.01, 0.05, 0.2):
        t = choose_threshold(scores, cats, "fpr", target_fpr=target)
        assert (scores[cats == "Normal"] > t).mean() <= target


@pytest.mark.parametrize(("rule", "kwargs"), [("fpr", {}), ("nonsense", {}),
                                              ("fpr", {"target_fpr": 1.5})])
def test_bad_rule_arguments_are_refused(rule, kwargs):
    scores, cats = scored()
    with pytest.raises(ValueError):
        choose_threshold(scores, cats, rule, **kwargs)


def test_f1_rules_need_both_classes():
    with pytest.raises(ValueError, match="both normal and attack"):
        choose_threshold(np.ones(5), np.array(["Normal"] * 5, dtype=object), "f1")


def test_tradeoff_table_reports_recall_per_category():
    scores, cats = scored()
    rows = tradeoff_table(scores, cats, np.array([-10.0, 3.0, 100.0]))
    assert rows[0]["fpr"] == 1.0 and rows[0]["recall"] == 1.0
    assert rows[1]["recall_DoS"] == 1.0 and rows[1]["recall_R2L"] == 0.0
    assert rows[2]["recall"] == 0.0 and rows[2]["f1"] == 0.0


def test_balanced_f1_at_a_threshold_weights_each_attack_category_alike():
    """Written out: TP, FP and FN weighted so each present attack category counts the same."""
    rng = np.random.RandomState(5)
    cats = rng.choice(np.array(["Normal", "DoS", "Probe", "R2L", "U2R"], dtype=object), 2000,
                      p=[0.5, 0.35, 0.1, 0.04, 0.01])
    scores = rng.gamma(2.0, size=2000) + (cats != "Normal") * rng.uniform(0, 3, size=2000)
    y = cats != "Normal"
    weights = category_weights(cats)
    for threshold in (0.5, 2.0, 4.0, float(np.median(scores))):
        flagged = scores > threshold
        tp, fp = weights[flagged & y].sum(), weights[flagged & ~y].sum()
        fn = weights[~flagged & y].sum()
        assert balanced_f1(scores, cats, threshold) == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert balanced_f1(np.empty(0), np.empty(0, dtype=object), 1.0) == 0.0
