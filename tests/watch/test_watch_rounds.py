"""The watcher's rounds in-process, on generated logs: bad and half-written lines, a model
promoted meanwhile, duplicate suppression, the allow-list, and the /metrics endpoint."""

from __future__ import annotations

import itertools
import logging
import shutil
import urllib.request
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from server.model_holder import ModelHolder
from tests.helpers.ecs_fields import alert_problems
from tests.helpers.models import train_model
from tests.helpers.repo import REPO_ROOT
from tests.helpers.waiting import poll
from tests.helpers.watch_processes import batch_alerts, comparable
from tests.helpers.zeek_logs import conn_rows, tsv_log
from utils.allowlist import parse_entry
from utils.model_store import load_model
from utils.registry import SQLiteRegistry
from utils.watch.allowed import RefreshingAllowList
from utils.watch.metrics import WatchMetrics
from utils.watch.sinks import FileSink
from utils.watch.suppression import alert_key
from utils.watch.watcher import WatchConfig, Watcher


@pytest.fixture(scope="module")
def model():
    return load_model(REPO_ROOT / "models")


def _watcher(tmp_path: Path, source, allowlist=None, **config) -> tuple[Watcher, Path]:
    alerts = tmp_path / "alerts.ndjson"
    settings = {"reorder_seconds": 30.0, "suppress_seconds": 0.0, **config}
    watcher = Watcher(tmp_path / "conn.log", tmp_path / "state", source,
                      [FileSink(alerts)], WatchConfig(**settings), WatchMetrics(), allowlist)
    return watcher, alerts


def _drain(watcher: Watcher) -> None:
    """Rounds until the log is read and every held record scored, then deliver."""
    while watcher.poll_once():
        pass
    watcher.window.reorder_seconds = -1e12  # the log has ended: every record is final
    watcher.poll_once()
    watcher.commit()
    for runner in watcher.runners:
        runner.start()
    poll(watcher.delivered, "the sinks to deliver everything", deadline=60, interval=0.05)
    watcher.close()


def _alerts(path: Path) -> dict[int, dict]:
    return {alert["anomalyze"]["row"]: alert
            for alert in map(orjson.loads, path.read_bytes().splitlines())}


def test_a_malformed_line_is_skipped_counted_and_named_by_file_and_line(tmp_path, model,
                                                                       caplog):
    rows = conn_rows(600, seed=3)
    good = tsv_log(rows)
    lines = good.splitlines(keepends=True)
    bad_line = 7 + 300 + 1  # seven header lines, 300 records, then the bad one
    lines.insert(bad_line - 1, b"1700000000.0\tCbad\t10.0.0.1\n")
    (tmp_path / "conn.log").write_bytes(b"".join(lines))
    (tmp_path / "good.log").write_bytes(good)
    watcher, alerts = _watcher(tmp_path, lambda: model)
    with caplog.at_level(logging.WARNING, "anomalyze.watch"):
        _drain(watcher)
    assert watcher.metrics.malformed._value.get() == 1
    assert f"conn.log line {bad_line} skipped" in caplog.text
    assert watcher.next_row == 600
    got = {row: comparable(alert) for row, alert in _alerts(alerts).items()}
    assert got == batch_alerts(tmp_path / "good.log")


def test_a_half_written_line_waits_for_the_rest(tmp_path, model):
    data = tsv_log(conn_rows(50, seed=4))
    cut = data.index(b"\n", len(data) // 2) + 10  # ten bytes into a record
    path = tmp_path / "conn.log"
    path.write_bytes(data[:cut])
    watcher, _ = _watcher(tmp_path, lambda: model)
    first = watcher.poll_once()
    assert watcher.poll_once() == 0  # the half line is not a record yet
    with open(path, "ab") as handle:
        handle.write(data[cut:])
    assert first + watcher.poll_once() == 50
    assert watcher.metrics.malformed._value.get() == 0
    watcher.close()


def test_a_model_promoted_while_watching_scores_the_records_after_it(tmp_path):
    model_dir = tmp_path / "models"
    shutil.copytree(REPO_ROOT / "models", model_dir)
    holder = ModelHolder(model_dir, check_interval=0.0)
    holder.refresh(force=True)
    first = holder.current().version
    rows = conn_rows(400, seed=5)
    path = tmp_path / "conn.log"
    path.write_bytes(tsv_log(rows[:200]))
    watcher, alerts = _watcher(tmp_path, holder.current, reorder_seconds=0.0)
    while watcher.poll_once():
        pass
    train_model(model_dir, seed=1)  # promoted: model.joblib replaced atomically
    with open(path, "ab") as handle:
        handle.write(b"\n".join(b"\t".join(v.encode() for v in row) for row in rows[200:])
                     + b"\n")
    _drain(watcher)
    second = holder.current().version
    assert second != first
    versions = {alert["anomalyze"]["model_version"] for alert in _alerts(alerts).values()}
    assert versions == {first, second}
    assert watcher.metrics.model_swaps._value.get() == 1


def test_duplicates_are_suppressed_per_flow_key_and_counted_in_the_next_alert(tmp_path, model):
    log = tsv_log(conn_rows(800, seed=6, resp_hosts=2))
    runs = {}
    for name, interval in (("all", 0.0), ("suppressed", 0.5)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "conn.log").write_bytes(log)
        watcher, alerts = _watcher(folder, lambda: model, suppress_seconds=interval)
        _drain(watcher)
        runs[name] = (watcher, list(_alerts(alerts).values()))
    full = runs["all"][1]
    watcher, kept = runs["suppressed"]
    for alert in kept:
        assert alert_problems(alert) == [], alert
    suppressed = watcher.metrics.suppressed._value.get()
    assert suppressed > 0 and len(kept) + suppressed == len(full)
    assert 0 < sum(alert["anomalyze"].get("suppressed", 0) for alert in kept) <= suppressed
    times: dict[tuple, list[float]] = {}
    for alert in kept:
        times.setdefault(alert_key(alert), []).append(
            datetime.fromisoformat(alert["@timestamp"]).timestamp())
    for moments in times.values():
        moments.sort()
        assert all(later - earlier >= 0.5 for earlier, later in itertools.pairwise(moments))


def test_metrics_endpoint_speaks_prometheus_text(tmp_path, model):
    (tmp_path / "conn.log").write_bytes(tsv_log(conn_rows(300, seed=7)))
    metrics = WatchMetrics()
    server = metrics.serve(0)
    watcher = Watcher(tmp_path / "conn.log", tmp_path / "state", lambda: model,
                      [FileSink(tmp_path / "alerts.ndjson")],
                      WatchConfig(reorder_seconds=0.0, suppress_seconds=0.0), metrics)
    _drain(watcher)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics") as reply:
            text = reply.read().decode()
            assert reply.headers["Content-Type"].startswith("text/plain")
    finally:
        server.shutdown()
        server.server_close()
    for name in ("anomalyze_watch_rows_total", "anomalyze_watch_alerts_total",
                 "anomalyze_watch_suppressed_total", "anomalyze_watch_malformed_total",
                 "anomalyze_watch_lag_seconds_bucket", "anomalyze_watch_held_rows"):
        assert name in text
    assert "anomalyze_watch_rows_total 300.0" in text
    assert 'anomalyze_watch_sent_alerts_total{sink="file"}' in text


def test_a_record_later_than_the_reorder_horizon_is_scored_and_counted_late(tmp_path, model):
    rows = conn_rows(300, seed=8, rate=20.0, long_share=0.0)  # 15 s of log
    late = list(rows[10])
    late[0] = f"{float(rows[0][0]) - 100:.3f}"  # began 100 s before anything read so far
    late[1] = "Clate"
    path = tmp_path / "conn.log"
    path.write_bytes(tsv_log(rows))
    watcher, _ = _watcher(tmp_path, lambda: model, reorder_seconds=5.0)
    while watcher.poll_once():
        pass
    with open(path, "ab") as handle:
        handle.write("\t".join(late).encode() + b"\n")
    _drain(watcher)
    assert watcher.next_row == 301
    assert watcher.metrics.late._value.get() == 1
    assert watcher.metrics.rows._value.get() == 301


def test_allowlisted_anomalies_are_counted_and_never_sent(tmp_path, model):
    log = tsv_log(conn_rows(900, seed=9))
    runs = {}
    for name in ("plain", "allowed"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "conn.log").write_bytes(log)
        allowlist = None
        if name == "allowed":
            registry = SQLiteRegistry(folder / "data")
            registry.add_allow_entry(parse_entry({"destination": "10.0.0.1",
                                                  "reason": "backup server"}, added_by="t"))
            allowlist = RefreshingAllowList(registry).current
        watcher, alerts = _watcher(folder, lambda: model, allowlist)
        _drain(watcher)
        runs[name] = (watcher, _alerts(alerts))
    plain = runs["plain"][1]
    watcher, sent = runs["allowed"]
    allowed = {row for row, alert in plain.items() if alert["destination"]["ip"] == "10.0.0.1"}
    assert allowed and len(allowed) < len(plain)
    assert set(sent) == set(plain) - allowed
    assert watcher.metrics.allowlisted._value.get() == len(allowed)
    assert watcher.metrics.alerts._value.get() == len(sent)


def test_the_allow_list_is_read_again_after_a_while_and_kept_when_unreadable(tmp_path):
    registry = SQLiteRegistry(tmp_path)
    now = [0.0]
    source = RefreshingAllowList(registry, every=30.0, clock=lambda: now[0])
    assert len(source.current()) == 0
    registry.add_allow_entry(parse_entry({"host": "10.0.0.0/24", "reason": "lab"},
                                         added_by="t"))
    assert len(source.current()) == 0  # read 0 s ago
    now[0] = 30.0
    assert len(source.current()) == 1

    def unreadable(include_expired: bool = False):
        raise OSError("disk I/O error")

    registry.allow_entries = unreadable
    now[0] = 60.0
    assert len(source.current()) == 1  # the last list read stays in force
