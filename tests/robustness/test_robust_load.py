"""A bounded load test against the real server (gunicorn.conf.py: 2 workers x 4 threads, the
committed model) on 127.0.0.1: 8 clients for 60 s upload 1,000-row files cut from KDDTest+,
many of them duplicates, some of them new, some of them bad.

Asserted: no 5xx and no dropped connection, every answer the one its file calls for, no worker
restarted, worker memory not growing without bound, every new upload kept exactly once and
nothing left behind. Reported (printed and written to tests/artifacts/robustness-load.json):
requests, statuses, p50/p99 latency, throughput, worker RSS at start and end.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest
import requests
from robust_helpers import (
    REPO_ROOT,
    Gunicorn,
    leftover_temp_files,
    rss_mb,
    stored_files,
)

from utils.registry import SQLiteRegistry as UploadRegistry

pytestmark = pytest.mark.e2e

CLIENTS = 8
DURATION = 60.0  # seconds of load
MAX_REQUESTS_PER_CLIENT = 10_000  # a bound on the loop besides the clock
ROWS = 1000
POOL = 30  # distinct good files sent again and again (duplicates after the first time)
TIMEOUT = (5, 60)  # connect, read (seconds)
RSS_GROWTH_BOUND_MB = 300  # per worker, end vs start: generous, a leak would keep growing
ARTIFACT = REPO_ROOT / "tests" / "artifacts" / "robustness-load.json"


def kdd_file(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def bad_files(lines: list[str]) -> dict[str, tuple[bytes, str]]:
    """Each bad file with the error_type it must get."""
    rows = lines[:ROWS]
    wrong_value = list(rows)
    fields = wrong_value[500].split(",")
    fields[4] = "lots"
    wrong_value[500] = ",".join(fields)
    short = list(rows)
    short[700] = ",".join(short[700].split(",")[:30])
    mixed = list(rows)
    mixed[300] = mixed[300].replace(",", "\t", 2)
    return {
        "invalid_value": (kdd_file(wrong_value), "invalid_value"),
        "field_count": (kdd_file(short), "field_count"),
        "mixed_separators": (kdd_file(mixed), "mixed_separators"),
        "binary_data": (b"\x00\x01\x02\x03" * 4096, "binary_data"),
        "empty_file": (b"", "empty_file"),
        "encoding": (kdd_file(rows[:10]).replace(b"http", b"htt\xff", 1), "encoding"),
    }


class Client(threading.Thread):
    """One client: a keep-alive session sending a seeded mix until the deadline."""

    def __init__(self, number: int, server: Gunicorn, lines: list[str], pool: list[bytes],
                 bad: dict[str, tuple[bytes, str]], deadline: float) -> None:
        super().__init__(name=f"load-client-{number}", daemon=True)
        self.number = number
        self.server = server
        self.lines = lines
        self.pool = pool
        self.bad = list(bad.values())
        self.deadline = deadline
        self.rng = np.random.default_rng(1000 + number)
        self.results: list[dict] = []

    def pick(self, sequence: int) -> tuple[str, bytes, str | None]:
        """(kind, content, expected error_type): 60% pooled, 20% new, 20% bad."""
        roll = self.rng.random()
        if roll < 0.6:
            return "pooled", self.pool[int(self.rng.integers(len(self.pool)))], None
        if roll < 0.8:
            rows = self.rng.choice(len(self.lines), size=ROWS, replace=False)
            return "new", kdd_file([self.lines[i] for i in rows]), None
        data, error_type = self.bad[int(self.rng.integers(len(self.bad)))]
        return "bad", data, error_type

    def run(self) -> None:
        with requests.Session() as session:
            for sequence in range(MAX_REQUESTS_PER_CLIENT):
                if time.monotonic() >= self.deadline:
                    break
                kind, data, error_type = self.pick(sequence)
                result = {"kind": kind, "sha256": hashlib.sha256(data).hexdigest(),
                          "expected": error_type}
                started = time.perf_counter()
                try:
                    response = session.post(
                        f"{self.server.url}/api/predict", timeout=TIMEOUT,
                        files={"file": (f"c{self.number}-{sequence}.txt", data)})
                    body = response.json()
                    result["status"] = response.status_code
                except (requests.RequestException, ValueError) as exc:
                    result["status"] = None
                    result["error"] = f"{type(exc).__name__}: {exc}"[:300]
                    body = {}
                result["seconds"] = time.perf_counter() - started
                if result["status"] == 200:
                    summary = body["summary"]
                    result.update(rows=summary["total_samples"], stored=summary["stored"],
                                  duplicate=summary["duplicate"], echoed=summary["sha256"])
                elif result["status"] is not None:
                    result["error_type"] = body.get("error_type")
                self.results.append(result)


def worker_rss(pids: list[int]) -> dict[str, float]:
    return {str(pid): round(rss_mb(pid), 1) for pid in pids}


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else float("nan")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust-load")
    server = Gunicorn(root, {
        "ANOMALYZE_MODEL_DIR": str(REPO_ROOT / "models"),
        "ANOMALYZE_DATA_DIR": str(root / "data"),
        "ANOMALYZE_RETRAIN_THRESHOLD": "100000",  # no retrain starts during the load
        "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4"})
    try:
        yield server
    finally:
        server.stop()


def test_eight_clients_for_sixty_seconds_get_no_5xx_and_lose_nothing(server, kdd_test_lines,
                                                                    capsys):
    lines = [line for line in kdd_test_lines if line.strip()]
    rng = np.random.default_rng(7)
    pool = [kdd_file([lines[i] for i in rng.choice(len(lines), size=ROWS, replace=False)])
            for _ in range(POOL)]
    bad = bad_files(lines)
    workers = server.worker_pids()

    # Warm-up: each worker has scored a few files before the start reading.
    with requests.Session() as session:
        for data in pool[:8]:
            session.post(f"{server.url}/api/predict", files={"file": ("w.txt", data)},
                         timeout=TIMEOUT).raise_for_status()
    rss_start = worker_rss(workers)
    load_start = os.getloadavg()
    timeline = [{"t": 0.0, "rss_mb": rss_start}]

    started = time.monotonic()
    deadline = started + DURATION
    clients = [Client(n, server, lines, pool, bad, deadline) for n in range(CLIENTS)]
    for client in clients:
        client.start()
    while any(client.is_alive() for client in clients):
        time.sleep(1.0)
        elapsed = time.monotonic() - started
        if elapsed >= len(timeline) * 10 and elapsed < DURATION:
            timeline.append({"t": round(elapsed, 1), "rss_mb": worker_rss(workers)})
        assert elapsed < DURATION + 120, "the clients did not stop"
    wall = time.monotonic() - started
    for client in clients:
        client.join(timeout=5)
    rss_end = worker_rss(workers)
    timeline.append({"t": round(wall, 1), "rss_mb": rss_end})
    load_end = os.getloadavg()

    results = [r for client in clients for r in client.results]
    statuses = Counter(str(r["status"]) for r in results)
    latencies = [r["seconds"] for r in results if r["status"] is not None]
    good = [r for r in results if r["kind"] != "bad" and r["status"] == 200]
    stored = Counter(r["sha256"] for r in good if r["stored"])
    warmup = {hashlib.sha256(data).hexdigest() for data in pool[:8]}
    distinct = {r["sha256"] for r in good} | warmup  # the warm-up's uploads were kept too
    files = stored_files(server.data_dir)
    figures = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "loadavg_start": [round(x, 2) for x in load_start],
                    "loadavg_end": [round(x, 2) for x in load_end]},
        "server": {"workers": len(workers), "threads": 4, "model": "models/ (committed)"},
        "clients": CLIENTS, "duration_s": round(wall, 1), "rows_per_file": ROWS,
        "requests": len(results),
        "by_kind": dict(Counter(r["kind"] for r in results)),
        "statuses": dict(statuses),
        "errors_5xx": sum(1 for r in results if (r["status"] or 0) >= 500),
        "connection_errors": sum(1 for r in results if r["status"] is None),
        "throughput_rps": round(len(results) / wall, 1),
        "rows_scored": sum(r.get("rows", 0) for r in results),
        "latency_ms": {"p50": percentile(latencies, 50), "p90": percentile(latencies, 90),
                       "p99": percentile(latencies, 99), "max": percentile(latencies, 100)},
        "latency_ms_good": {"p50": percentile([r["seconds"] for r in good], 50),
                            "p99": percentile([r["seconds"] for r in good], 99)},
        "rss_mb_start": rss_start, "rss_mb_end": rss_end, "rss_timeline": timeline,
        "distinct_good_files": len(distinct),
        "duplicates_answered": sum(1 for r in good if r["duplicate"]),
        "stored_files": len(files),
    }
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(figures, indent=2) + "\n")
    with capsys.disabled():
        shown = {key: value for key, value in figures.items() if key != "rss_timeline"}
        print(f"\n[robustness] load: {json.dumps(shown)}")

    # No 5xx, no dropped connection, and each answer the one its file calls for.
    assert figures["errors_5xx"] == 0, [r for r in results if (r["status"] or 0) >= 500][:5]
    assert figures["connection_errors"] == 0, [r for r in results if r["status"] is None][:5]
    for r in results:
        if r["kind"] == "bad":
            assert (r["status"], r["error_type"]) == (400, r["expected"]), r
        else:
            assert r["status"] == 200 and r["rows"] == ROWS and r["echoed"] == r["sha256"], r
    # No worker was killed or restarted (a timeout or a crash would replace it).
    assert server.worker_pids() == workers
    assert "WORKER TIMEOUT" not in server.log_text()
    # Memory: per worker, the end reading within a generous bound of the start reading.
    for pid in workers:
        assert rss_end[str(pid)] <= rss_start[str(pid)] + RSS_GROWTH_BOUND_MB, figures
    # Nothing lost, nothing twice: every distinct good content was kept exactly once, and no
    # temp file is left.
    assert all(count == 1 for count in stored.values()), stored.most_common(3)
    kept = {u.sha256 for u in UploadRegistry(server.data_dir).uploads()}
    assert kept == distinct
    assert len(files) == len(distinct)
    assert leftover_temp_files(server.data_dir) == []
