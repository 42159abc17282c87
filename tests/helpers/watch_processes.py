"""Helpers for the live watcher's tests: the watcher and a Zeek-like writer as real
processes, and the batch scoring a watched log must agree with."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from tests.helpers.repo import REPO_ROOT, require_file
from tests.helpers.waiting import poll
from utils.alerts import ecs_alerts
from utils.model_store import load_model
from utils.scoring import iter_scored_chunks

ZEEK_SAMPLES = REPO_ROOT.parent / "shared" / "data" / "zeek"
WRITER = REPO_ROOT / "tests" / "watch" / "zeek_writer.py"
# ctu-botnet-4: no record arrives more than 318 s (of its log time) behind the newest one
REORDER_SECONDS = "400"


def shared_zeek_log(name: str) -> Path:
    return require_file(ZEEK_SAMPLES / name, "../shared/data/zeek beside the repository")


def start_writer(source: Path, folder: Path, *, rate: float, rotate_every: int
                 ) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WRITER), str(source), str(folder),
                             "--rate", str(rate), "--rotate-every", str(rotate_every)],
                            stdout=subprocess.PIPE, text=True)


def start_watcher(folder: Path, state: Path, *args: str, **env: str) -> subprocess.Popen:
    environment = {**os.environ, "ANOMALYZE_MODEL_DIR": str(REPO_ROOT / "models"),
                   "ANOMALYZE_WATCH_STATE_DIR": str(state),
                   "ANOMALYZE_DATA_DIR": str(state.parent / "data"),  # its registry
                   "ANOMALYZE_WATCH_REORDER_SECONDS": REORDER_SECONDS,
                   "ANOMALYZE_WATCH_IDLE_FLUSH_SECONDS": "3",
                   "ANOMALYZE_WATCH_SUPPRESS_SECONDS": "0",
                   "ANOMALYZE_WATCH_POLL_SECONDS": "0.1", **env}
    with open(state.parent / f"watcher-{state.name}.log", "ab") as log:
        return subprocess.Popen([sys.executable, "watch_zeek.py", str(folder), *args],
                                cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE,
                                stderr=log)


def wait_until_watching(state: Path, runs: int = 1) -> None:
    """Until the watcher started with ``state`` has loaded its model and looks at the log
    (its ``runs``-th start)."""
    log = state.parent / f"watcher-{state.name}.log"
    poll(lambda: log.exists() and log.read_bytes().count(b" watching ") >= runs,
         "the watcher to start", deadline=120, interval=0.2)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        process.wait(timeout=60)


def read_alerts(*paths: Path) -> list[dict]:
    return [orjson.loads(line) for path in paths if path.exists()
            for line in path.read_bytes().splitlines()]


def comparable(alert: dict) -> dict:
    """An alert without what differs between runs: when it was made, which watcher made it."""
    alert = orjson.loads(orjson.dumps(alert))
    alert["event"].pop("created")
    alert["event"].pop("id", None)
    return alert


def batch_alerts(path: Path) -> dict[int, dict]:
    """The alerts batch scoring gives the whole log, by row."""
    model = load_model(REPO_ROOT / "models")
    alerts = {}
    for records, scored in iter_scored_chunks(model, path):
        for alert in ecs_alerts(model, records, scored):
            alerts[alert["anomalyze"]["row"]] = comparable(alert)
    return alerts


def concatenation(folder: Path, out: Path) -> Path:
    """The rotated logs in rotation order, then the current one, as one file."""
    parts = [*sorted(folder.glob("conn.*.log")), folder / "conn.log"]
    out.write_bytes(b"".join(part.read_bytes() for part in parts))
    return out
