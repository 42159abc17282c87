"""The live watcher (watch_zeek.py) as a real process, fed by a writer process.

- rates: a writer appends conn.log records at a steady rate (``ts`` = the write time, as a
  live sensor's records carry), rotating every 500,000 records; the watcher follows it with
  a reorder horizon of 0 s (records come in time order here: what is measured is the
  watcher's own delay, to which a real sensor adds the horizon) and writes alerts to a
  rotated file. Sustained rate: records scored per second while writing; lag: the
  watcher's record-age histogram (verdict time minus the connection's end, ts + duration,
  which here is its write time), p50/p99 interpolated within buckets as Prometheus'
  histogram_quantile does.
- capacity: a file of records written in advance, scored as fast as the watcher can.
- memory: records written as fast as the watcher takes them (at most 300,000 ahead); the
  watcher's RSS after each of ``memory_rows`` (1 M and 10 M in make bench).

    python -m benchmarks.watch_bench --seconds 20 --rates 1000,20000 --memory-rows 1e6,1e7
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import requests

from utils.cli import progress

REPO_ROOT = Path(__file__).resolve().parents[1]
ROTATE_EVERY = 500_000
FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
          "duration", "orig_bytes", "resp_bytes", "conn_state")
HEADER = ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
          "#path\tconn\n#fields\t" + "\t".join(FIELDS) + "\n#types\t"
          + "\t".join("string" for _ in FIELDS) + "\n").encode()
_STATES = np.array(["SF", "SF", "SF", "SF", "S0", "REJ", "RSTO", "SH"])
_PROTOS = np.array(["tcp", "tcp", "tcp", "udp", "icmp"])
_PORTS = np.array([80, 443, 22, 53, 8080, 25])


def records(count: int, end_times: np.ndarray, rng: np.random.Generator, first: int) -> bytes:
    """``count`` conn.log lines of connections ending at ``end_times``."""
    duration = np.round(rng.exponential(0.05, count), 6)
    proto = _PROTOS[rng.integers(0, len(_PROTOS), count)]
    port = _PORTS[rng.integers(0, len(_PORTS), count)]
    state = _STATES[rng.integers(0, len(_STATES), count)]
    orig = rng.integers(1, 250, count)
    resp = rng.integers(1, 60, count)
    sport = rng.integers(1024, 65536, count)
    sent = rng.integers(0, 5000, count)
    received = rng.integers(0, 50000, count)
    lines = []
    for i in range(count):
        icmp = proto[i] == "icmp"
        lines.append(
            f"{end_times[i] - duration[i]:.6f}\tC{first + i}\t10.1.0.{orig[i]}\t"
            f"{8 if icmp else sport[i]}\t10.0.0.{resp[i]}\t{0 if icmp else port[i]}\t"
            f"{proto[i]}\t{'http' if port[i] == 80 and proto[i] == 'tcp' else '-'}\t"
            f"{duration[i]}\t{sent[i]}\t{received[i]}\t{state[i]}\n")
    return "".join(lines).encode()


def _writer(folder: str, rate: float, total: int, started_at, limit_ahead, processed) -> None:
    """Append ``total`` records at ``rate`` a second (0: as fast as allowed), rotating; with
    ``limit_ahead``, never more than that many records ahead of ``processed``."""
    rng = np.random.default_rng(0)
    path = Path(folder) / "conn.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, HEADER)
    written, in_file, rotations = 0, 0, 0
    started = time.time()
    started_at.value = started
    while written < total:
        now = time.time()
        due = total if rate <= 0 else min(total, int((now - started) * rate))
        if limit_ahead.value:
            due = min(due, processed.value + limit_ahead.value)
        count = min(due - written, 20_000, ROTATE_EVERY - in_file)
        if count <= 0:
            time.sleep(0.005)
            continue
        os.write(fd, records(count, np.full(count, now), rng, written))
        written += count
        in_file += count
        if in_file == ROTATE_EVERY and written < total:
            os.close(fd)
            rotations += 1
            rotated = Path(folder) / f"conn.{rotations:04d}.log"
            os.rename(path, rotated)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, HEADER)
            in_file = 0
            for old in sorted(Path(folder).glob("conn.*.log"))[:-2]:
                old.unlink()  # the watcher holds it open if it still reads it
    os.close(fd)


class Metrics:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"

    def scrape(self) -> dict[str, float]:
        values = {}
        for line in requests.get(self.url, timeout=10).text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values


def histogram_quantile(values: dict[str, float], name: str, q: float) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket holding the quantile."""
    buckets = sorted((float(key.split('le="')[1].rstrip('"}')), count)
                     for key, count in values.items() if key.startswith(f"{name}_bucket{{"))
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _watcher(folder: Path, state: Path, port: int, model_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "ANOMALYZE_MODEL_DIR": str(model_dir),
           "ANOMALYZE_WATCH_STATE_DIR": str(state), "ANOMALYZE_WATCH_REORDER_SECONDS": "0",
           "ANOMALYZE_WATCH_SUPPRESS_SECONDS": "0", "ANOMALYZE_WATCH_POLL_SECONDS": "0.05",
           "ANOMALYZE_WATCH_IDLE_FLUSH_SECONDS": "1", "ANOMALYZE_WATCH_METRICS_PORT": str(port)}
    return subprocess.Popen(
        [sys.executable, "watch_zeek.py", str(folder), "--alerts-file",
         str(state.parent / "alerts.ndjson"), "--alerts-file-mb", "64"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_ready(metrics: Metrics, process: subprocess.Popen) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError("the watcher exited at start-up")
        try:
            metrics.scrape()
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("the watcher did not start")


def _rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


class _Run:
    """A watcher process and a writer process in a fresh folder."""

    def __init__(self, model_dir: Path) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="watch-bench-"))
        (self.tmp / "current").mkdir()
        self.port = _free_port()
        self.metrics = Metrics(self.port)
        self.watcher = _watcher(self.tmp / "current", self.tmp / "state", self.port, model_dir)
        _wait_ready(self.metrics, self.watcher)
        context = multiprocessing.get_context("spawn")
        self.started_at = context.Value("d", 0.0)
        self.ahead = context.Value("q", 0)
        self.processed = context.Value("q", 0)
        self.context = context
        self.writer = None

    def write(self, rate: float, total: int, ahead: int = 0) -> None:
        self.ahead.value = ahead
        self.writer = self.context.Process(
            target=_writer, args=(str(self.tmp / "current"), rate, total, self.started_at,
                                  self.ahead, self.processed))
        self.writer.start()

    def rows(self) -> float:
        value = self.metrics.scrape().get("anomalyze_watch_rows_total", 0.0)
        self.processed.value = int(value)
        return value

    def close(self) -> None:
        if self.writer is not None and self.writer.is_alive():
            self.writer.terminate()
        self.watcher.terminate()
        self.watcher.wait(60)
        shutil.rmtree(self.tmp, ignore_errors=True)


def at_rate(model_dir: Path, rate: float, seconds: float, report: Callable) -> dict:
    run = _Run(model_dir)
    try:
        total = int(rate * seconds)
        first_rows = run.rows()
        run.write(rate, total)
        run.writer.join()
        ended = time.time()
        scored_while_writing = run.rows() - first_rows
        started = run.started_at.value
        deadline = time.time() + 600
        while run.rows() < total and time.time() < deadline:
            time.sleep(0.1)
        caught_up = time.time() - started
        writing = ended - started
        values = run.metrics.scrape()
        result = {
            "rate_written": rate, "records": total, "writing_seconds": round(writing, 2),
            "scored_per_second_while_writing": round(scored_while_writing / writing, 1),
            "seconds_until_all_scored": round(caught_up, 2),
            "sustained_per_second": round(total / caught_up, 1),
            "lag_p50_seconds": histogram_quantile(values, "anomalyze_watch_record_age_seconds",
                                                  0.5),
            "lag_p99_seconds": histogram_quantile(values, "anomalyze_watch_record_age_seconds",
                                                  0.99),
            "alerts": values.get("anomalyze_watch_alerts_total"),
            "watcher_rss_mb": round(_rss_mb(run.watcher.pid), 1),
        }
        report(f"watch: {rate:,.0f}/s written for {seconds:.0f} s: "
               f"{result['scored_per_second_while_writing']:,.0f}/s scored while writing, all "
               f"scored after {caught_up:.1f} s, lag p50 {result['lag_p50_seconds']:.3f} s "
               f"p99 {result['lag_p99_seconds']:.3f} s")
        return result
    finally:
        run.close()


def memory(model_dir: Path, checkpoints: list[int], report: Callable) -> dict:
    run = _Run(model_dir)
    try:
        run.write(0, max(checkpoints), ahead=300_000)
        results = []
        started = time.time()
        for checkpoint in sorted(checkpoints):
            while run.rows() < checkpoint:
                time.sleep(0.5)
            rss = _rss_mb(run.watcher.pid)
            elapsed = time.time() - started
            results.append({"records": checkpoint, "rss_mb": round(rss, 1),
                            "seconds": round(elapsed, 1),
                            "per_second": round(checkpoint / elapsed, 1)})
            report(f"watch memory: RSS {rss:.0f} MB after {checkpoint:,} records "
                   f"({checkpoint / elapsed:,.0f}/s)")
        return {"checkpoints": results,
                "rss_ratio_last_to_first": round(results[-1]["rss_mb"] / results[0]["rss_mb"],
                                                 3)}
    finally:
        run.close()


def own_traffic_model(folder: Path, report: Callable, rows: int = 50_000) -> Path:
    """A model trained on this generator's traffic, as README advises for a real network:
    it flags few records, as a deployed model should. (The NSL-KDD model flags nearly all of
    these synthetic records, and every alert costs far more than a verdict.)"""
    from utils.model_store import save_model
    from utils.readers import read_records
    from utils.training import train

    rng = np.random.default_rng(1)
    end = 1.7e9 + np.sort(rng.uniform(0, rows / 1000, rows))
    log = folder / "train.log"
    log.write_bytes(HEADER + records(rows, end, rng, 0))
    started = time.time()
    result = train(read_records(log), n_clusters=OWN_MODEL_K, random_state=0,
                   source={"file": "watch-bench-synthetic.log"})
    save_model(result.pipeline, result.card, folder / "model")
    report(f"watch: own-traffic model trained on {rows:,} records in "
           f"{time.time() - started:.0f} s")
    return folder / "model"


OWN_MODEL_K = (10, 12, 14, 16, 18)


def run_watch(model_dir: Path, report: Callable = progress, *,
              rates: tuple[float, ...] = (1000, 20000), seconds: float = 20.0,
              memory_rows: tuple[int, ...] = (1_000_000, 10_000_000)) -> dict:
    """``model_dir``: the NSL-KDD model, run at the first rate for comparison."""
    with tempfile.TemporaryDirectory(prefix="watch-model-") as folder:
        own = own_traffic_model(Path(folder), report)
        return {
            "protocol": {"reorder_seconds": 0, "suppress_seconds": 0, "poll_seconds": 0.05,
                         "rotate_every": ROTATE_EVERY, "seconds_per_rate": seconds,
                         "sink": "rotated NDJSON file (64 MB)",
                         "own_traffic_model_k": list(OWN_MODEL_K)},
            "rates": [at_rate(own, rate, seconds, report) for rate in rates],
            "nslkdd_model": at_rate(model_dir, rates[0], seconds, report) if rates else None,
            "memory": memory(own, list(memory_rows), report) if memory_rows else None,
        }


def main(argv: list[str] | None = None) -> int:
    from settings import script_settings

    config = script_settings()  # a mistyped setting stops here, as in every script
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="1000,20000")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--memory-rows", default="1e6,1e7",
                        help="comma-separated record counts; empty: no memory run")
    args = parser.parse_args(argv)
    result = run_watch(
        config["MODEL_DIR"], rates=tuple(float(r) for r in args.rates.split(",") if r),
        seconds=args.seconds,
        memory_rows=tuple(int(float(n)) for n in args.memory_rows.split(",") if n))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
