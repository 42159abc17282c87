"""Input builders and small computations of the benchmark (tiny generated inputs)."""

import numpy as np
import pandas as pd
import pytest

import benchmarks.throughput as throughput
from benchmarks.quality import thin_roc
from benchmarks.throughput import linearity, measure_one_size, repeated_payload
from benchmarks.zeek_bench import subset, synthetic_log, temporal_split
from tests.helpers.repo import REPO_ROOT
from utils.readers import ParsedRecords
from utils.readers.zeek import read_connections

HEADER = (b"#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\t"
          b"proto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlabel\n")
ROWS = [b"5.0\tC1\t10.0.0.1\t4000\t10.0.0.2\t80\ttcp\thttp\t1.5\t100\t200\tSF\tBenign",
        b"1.0\tC2\t10.0.0.1\t4001\t10.0.0.3\t53\tudp\tdns\t-\t-\t-\tS0\tMalicious",
        b"3.0\tC3\t10.0.0.4\t4002\t10.0.0.2\t22\ttcp\t-\t0.1\t10\t0\tREJ\tBenign"]
LOG = HEADER + b"\n".join(ROWS) + b"\n#close\t2026\n"


@pytest.mark.parametrize("rows", [1, 3, 7, 10])
def test_repeated_payload_has_exactly_the_rows_asked_for(rows):
    lines = [b"a,1", b"b,2", b"c,3"]
    payload = repeated_payload(lines, rows)
    assert payload.count(b"\n") == rows
    assert payload.split(b"\n")[:rows] == [lines[i % 3] for i in range(rows)]


def test_small_inputs_get_every_repeat_and_large_ones_stop_at_the_time_budget(
        kdd_test_path, monkeypatch):
    small = measure_one_size(50, kdd_test_path, REPO_ROOT / "models", repeats=6)
    assert len(small["runs_seconds"]) == 6
    assert small["best_seconds"] == min(small["runs_seconds"])
    monkeypatch.setattr(throughput, "REPEAT_BUDGET_SECONDS", 0.0)
    budgeted = measure_one_size(50, kdd_test_path, REPO_ROOT / "models", repeats=6)
    assert len(budgeted["runs_seconds"]) == throughput.MIN_REPEATS


def test_linearity_ratio_and_verdict():
    sizes = [{"rows": 22_544, "best_seconds": 1.0, "best_cpu_seconds": 2.0},
             {"rows": 500_000, "best_seconds": 26.0, "best_cpu_seconds": 44.0}]
    result = linearity(sizes)
    assert result["time_ratio"] == 26.0 and not result["passed"]  # the verdict is wall time
    assert result["cpu_time_ratio"] == 22.0
    assert linearity(sizes[:1]) is None


def test_thin_roc_keeps_the_curve_exact_at_its_points():
    rng = np.random.RandomState(0)
    y = np.r_[np.zeros(500), np.ones(500)].astype(bool)
    scores = np.r_[rng.normal(0, 1, 500), rng.normal(1.5, 1, 500)]
    roc = thin_roc(y, scores, points=50)
    fpr, tpr = np.array(roc["fpr"]), np.array(roc["tpr"])
    assert fpr[0] == 0.0 and fpr[-1] == 1.0 and tpr[-1] == 1.0
    assert np.all(np.diff(fpr) > 0) and np.all(np.diff(tpr) >= 0)
    t = np.quantile(scores[~y], 0.9)  # a threshold with FPR 10%: TPR there is on the curve
    assert tpr[np.searchsorted(fpr, 0.1)] >= (scores[y] > t).mean() - 1e-9


def test_the_benchmark_derives_from_the_zeek_readers_typed_columns():
    conns = read_connections(LOG)  # what derivation_speed times derive_kdd_features on
    assert len(conns) == 3
    assert conns["id.resp_p"].tolist() == [80, 53, 22]
    assert np.isnan(conns["orig_bytes"].iloc[1]) and conns["ts"].iloc[0] == 5.0
    assert pd.isna(conns["service"].iloc[2])


def test_synthetic_log_repeats_rows_later_in_time():
    data = synthetic_log(LOG, 7)
    assert b"#close" not in data and data.startswith(b"#separator")
    conns = read_connections(data)
    assert len(conns) == 7
    span = 5.0 - 1.0 + 10.0
    np.testing.assert_allclose(conns["ts"], [5, 1, 3, 5 + span, 1 + span, 3 + span, 5 + 2 * span])
    assert conns["id.resp_h"].tolist()[3:6] == conns["id.resp_h"].tolist()[:3]


def test_temporal_split_and_subset():
    identity = pd.DataFrame({"ts": [5.0, 1.0, 3.0, 2.0, 2.0]})
    features = pd.DataFrame({"x": [0, 1, 2, 3, 4]})
    labels = pd.Series(["normal", "a", "normal", "b", "normal"], dtype=object)
    records = ParsedRecords(features=features, labels=labels, difficulty=None,
                            identity=identity, input_kind="zeek")
    first, second = temporal_split(records)
    assert first.tolist() == [1, 3] and second.tolist() == [4, 2, 0]  # ties keep file order
    part = subset(records, second)
    assert part.features["x"].tolist() == [4, 2, 0] and part.labels.tolist()[0] == "normal"
    assert list(part.features.index) == [0, 1, 2] and part.input_kind == "zeek"


def test_the_benchmarks_connection_table_gives_the_features_the_zeek_reader_does():
    from utils.readers import read_records
    from utils.zeek_features import derive_kdd_features

    pd.testing.assert_frame_equal(derive_kdd_features(read_connections(LOG))
                                  .reset_index(drop=True),
                                  read_records(LOG).features.reset_index(drop=True))
