"""The watcher as a real process, following a log a real writer process appends to and
rotates: its alerts are those batch scoring of the whole log gives, once each, through a
restart in the middle."""

from __future__ import annotations

import signal
import time

import pytest

from tests.helpers.waiting import poll
from tests.helpers.watch_processes import (
    batch_alerts,
    comparable,
    concatenation,
    read_alerts,
    shared_zeek_log,
    start_watcher,
    start_writer,
    stop,
    wait_until_watching,
)

pytestmark = pytest.mark.e2e  # the watcher and the writer run as real processes


def test_watched_log_gives_the_batch_alerts_through_rotations_and_a_restart(
        log_folder, tmp_path):
    source = shared_zeek_log("ctu-botnet-4.conn.log.labeled")
    state = tmp_path / "state"
    alerts_file = tmp_path / "alerts.ndjson"
    watcher = start_watcher(log_folder, state, "--alerts-file", str(alerts_file),
                            "--no-metrics")
    wait_until_watching(state)
    writer = start_writer(source, log_folder, rate=1500, rotate_every=4000)
    try:
        time.sleep(5)
        stop(watcher)  # SIGTERM while records keep coming
        assert watcher.returncode == 0
        watcher = start_watcher(log_folder, state, "--alerts-file", str(alerts_file),
                                "--no-metrics")
        assert writer.wait(timeout=120) == 0
        expected = batch_alerts(concatenation(log_folder, tmp_path / "all.log"))
        poll(lambda: len(read_alerts(alerts_file)) >= len(expected), "every alert",
             deadline=180, interval=0.5)
        time.sleep(1)  # nothing more may come
    finally:
        stop(writer)
        stop(watcher)
    assert len(list(log_folder.glob("conn.*.log"))) == 5
    got = read_alerts(alerts_file)
    rows = [alert["anomalyze"]["row"] for alert in got]
    assert len(rows) == len(set(rows)), "an alert was written twice"
    assert {alert["anomalyze"]["row"]: comparable(alert) for alert in got} == expected


def test_a_killed_watcher_resumes_without_losing_or_repeating_an_alert(log_folder, tmp_path):
    source = shared_zeek_log("ctu-botnet-4.conn.log.labeled")
    state = tmp_path / "state"
    alerts_file = tmp_path / "alerts.ndjson"
    watcher = start_watcher(log_folder, state, "--alerts-file", str(alerts_file),
                            "--no-metrics")
    wait_until_watching(state)
    writer = start_writer(source, log_folder, rate=2000, rotate_every=10_000)
    try:
        time.sleep(4)
        stop(watcher, signal.SIGKILL)  # no chance to save anything more
        watcher = start_watcher(log_folder, state, "--alerts-file", str(alerts_file),
                                "--no-metrics")
        assert writer.wait(timeout=120) == 0
        expected = batch_alerts(concatenation(log_folder, tmp_path / "all.log"))
        poll(lambda: len(read_alerts(alerts_file)) >= len(expected), "every alert",
             deadline=180, interval=0.5)
        time.sleep(1)
    finally:
        stop(writer)
        stop(watcher)
    got = read_alerts(alerts_file)
    rows = [alert["anomalyze"]["row"] for alert in got]
    assert len(rows) == len(set(rows)), "an alert was written twice"
    assert {alert["anomalyze"]["row"]: comparable(alert) for alert in got} == expected
