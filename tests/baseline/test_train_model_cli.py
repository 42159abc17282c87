"""train_model.py with a Zeek conn.log: the health report first, exclusions, --report-only,
and the model written into the Zeek kind's folder; KDD options stay KDD's."""

import json

import pytest

import train_model
from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.zeek_logs import baseline_rows, tsv_log
from utils.model_store import CARD_FILE, MODEL_FILE, VERSIONS_DIR, kind_model_dir


@pytest.fixture(scope="module")
def conn_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("logs") / "conn.log"
    path.write_bytes(tsv_log(baseline_rows(2000, hours=48, scanner="10.9.9.9",
                                           scan_targets=120)))
    return path


def run(capsys, *args):
    code = train_model.main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_report_only_prints_the_health_report_and_writes_nothing(conn_log, tmp_path, capsys):
    code, out, _ = run(capsys, "--train", conn_log, "--model-dir", tmp_path, "--report-only")
    assert code == 0
    assert "baseline: 2,120 connections" in out
    assert "WARNING [possible_scanner]" in out and "10.9.9.9" in out
    assert not any(tmp_path.iterdir())


def test_a_zeek_baseline_goes_to_the_zeek_folder_after_its_report(conn_log, tmp_path, capsys):
    code, out, _ = run(capsys, "--train", conn_log, "--model-dir", tmp_path,
                       "--exclude-host", "10.9.9.9", "--exclude-range", "0/1")
    assert code == 0
    assert out.index("excluded 120 of 2,120 rows") < out.index("baseline: 2,000 connections")
    assert out.index("no warnings") < out.index("zeek model ")
    assert "gate: first zeek model: promoted" in out
    folder = kind_model_dir(tmp_path, "zeek")
    assert (folder / MODEL_FILE).is_file()
    assert not (tmp_path / MODEL_FILE).exists()  # the KDD model's place is untouched
    card = json.loads((folder / CARD_FILE).read_text())
    assert card["input_kind"] == "zeek"
    assert card["baseline"]["exclusions"]["hosts"] == ["10.9.9.9"]
    assert card["baseline"]["exclusions"]["counts"]["by_host"] == {"10.9.9.9": 120}
    assert card["training_data"]["file"] == "conn.log"

    code, out, _ = run(capsys, "--train", conn_log, "--model-dir", tmp_path, "--seed", "1")
    assert code == 0
    assert "gate: candidate" in out
    kept = {entry.name for entry in (folder / VERSIONS_DIR).iterdir()}
    assert card["model_version"] in kept and len(kept) == 2


@pytest.mark.parametrize(("option", "value"), [("--exclude-host", "10.0.0.300"),
                                               ("--exclude-range", "tomorrow/later")])
def test_a_bad_exclusion_is_refused_naming_it(conn_log, tmp_path, capsys, option, value):
    code, _, err = run(capsys, "--train", conn_log, "--model-dir", tmp_path, option, value)
    assert code == 2
    assert value.split("/")[0] in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_kdd_only_options_are_refused_for_a_conn_log(conn_log, tmp_path, capsys):
    code, _, err = run(capsys, "--train", conn_log, "--model-dir", tmp_path,
                       "--threshold-rule", "f1")
    assert code == 2 and "--threshold-rule does not apply to zeek input" in err


def test_zeek_only_options_are_refused_for_kdd_records(tmp_path, capsys):
    path = tmp_path / "train.txt"
    path.write_bytes(synthetic_kdd(100, 20))
    for option in (["--exclude-host", "10.0.0.1"], ["--report-only"]):
        code, _, err = run(capsys, "--train", path, "--model-dir", tmp_path / "m", *option)
        assert code == 2 and f"{option[0]} does not apply to kdd input" in err


def test_a_baseline_too_small_to_train_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "tiny.log"
    path.write_bytes(tsv_log(baseline_rows(40, hours=48)))
    code, out, err = run(capsys, "--train", path, "--model-dir", tmp_path / "m")
    assert code == 2
    assert "WARNING [too_few_rows]" in out
    assert "at least 30 are needed" in err and "Traceback" not in err
