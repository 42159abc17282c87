"""The watcher scores with the Zeek baseline of this network once one is promoted, as the API
does for an uploaded conn.log, and with the KDD model (saying so) until then."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers.models import train_zeek_model
from tests.helpers.repo import REPO_ROOT
from tests.helpers.waiting import poll
from tests.helpers.watch_processes import read_alerts, start_watcher, stop, wait_until_watching
from tests.helpers.zeek_logs import conn_rows, tsv_log

pytestmark = pytest.mark.e2e  # the watcher runs as a real process


def test_the_watcher_moves_to_a_zeek_model_promoted_while_it_runs(log_folder, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(REPO_ROOT / "models", models)
    kdd_version = json.loads((models / "model_card.json").read_text())["model_version"]
    state = tmp_path / "state"
    alerts_file = tmp_path / "alerts.ndjson"
    watcher = start_watcher(log_folder, state, "--alerts-file", str(alerts_file),
                            "--no-metrics", ANOMALYZE_MODEL_DIR=str(models),
                            ANOMALYZE_MODEL_CHECK_INTERVAL="0.2")
    log = state.parent / f"watcher-{state.name}.log"
    rows = conn_rows(4000, seed=3, rate=50.0)
    try:
        wait_until_watching(state)
        assert b"no Zeek model of this network yet" in log.read_bytes()
        (log_folder / "conn.log").write_bytes(tsv_log(rows[:2000], close=False))
        poll(lambda: read_alerts(alerts_file), "alerts from the KDD model", deadline=60,
             interval=0.2)

        zeek_version = json.loads((train_zeek_model(models, seed=1) / "model_card.json")
                                  .read_text())["model_version"]
        before = len(read_alerts(alerts_file))
        with open(log_folder / "conn.log", "ab") as handle:  # the same log goes on
            handle.write(b"".join(line + b"\n" for line in
                                  tsv_log(rows[2000:]).splitlines() if not line.startswith(b"#")))
        poll(lambda: f"model {zeek_version} swapped in".encode() in log.read_bytes(),
             "the Zeek model to be swapped in", deadline=60, interval=0.2)
        poll(lambda: len(read_alerts(alerts_file)) > before, "alerts from the Zeek model",
             deadline=60, interval=0.2)
    finally:
        stop(watcher)
    alerts = read_alerts(alerts_file)
    versions = [alert["anomalyze"]["model_version"] for alert in alerts]
    assert versions[:before] == [kdd_version] * before
    assert set(versions[before:]) == {zeek_version}
    assert {alert["anomalyze"]["input_kind"] for alert in alerts} == {"zeek"}
