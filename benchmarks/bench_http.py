"""HTTP benchmark of the ML API under real gunicorn on 127.0.0.1.

Starts ``gunicorn api_server:app -c gunicorn.conf.py`` on a free loopback port (uploads go to a
temp ANOMALYZE_DATA_DIR; automatic retraining is off, so the unique uploads below do not start a
background retrain that would share the CPU), then measures POST /api/predict:
- the first requests of the fresh server (each worker loads nothing more, but runs its first
  request), then latency p50/p95 over ``--requests`` sequential requests with KDDTest+;
- throughput (samples/s) with 1, 4 and 8 concurrent clients posting KDDTest+, each level bounded
  by a request count and a time budget;
- small requests: ``--small-clients`` clients posting ``--small-rows``-row files, each a
  different slice of KDDTrain+ (so each upload is new: hashed, written, fsynced and registered),
  then the same with one file posted again and again (a duplicate after the first);
- a KDD Cup 1999 file of ``--kdd99-rows`` rows (KDDTrain+ rows in the KDD Cup 99 layout: no
  difficulty column, labels ending in "."), without and with a header line: time and the peak
  RSS of the gunicorn workers during that upload (their peak is reset just before it);
- optionally (``--large-rows N``) one upload of N rows made by repeating KDDTest+ rows.
Prints a table and writes the figures as JSON to ``--out``.

    .venv/bin/python -m benchmarks.bench_http --out benchmarks/results/http.json
    .venv/bin/python -m benchmarks.bench_http --large-rows 500000 --out /tmp/large.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import orjson
import requests

from settings import script_settings
from utils.local_server import ServerProcess, ServerStartError, gunicorn_command
from utils.schema import FEATURE_NAMES

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
TIMEOUT = (5, 300)  # connect, read (seconds)


@contextmanager
def gunicorn(workers: int, threads: int, data_dir: Path, log_path: Path,
             env: dict[str, str] | None = None) -> Iterator[tuple]:
    """A running server (``env``: more variables): yields (base URL, master Popen); SIGTERM
    on exit."""
    env = {"ANOMALYZE_DATA_DIR": str(data_dir), "WEB_CONCURRENCY": str(workers),
           "GUNICORN_THREADS": str(threads), "ANOMALYZE_RETRAIN_THRESHOLD": "0",
           **(env or {})}
    server = ServerProcess(gunicorn_command(), log_path=log_path, env=env, start_timeout=90)
    try:
        server.start()
    except ServerStartError as exc:
        raise SystemExit(f"gunicorn did not start (is there a model in models/?): {exc}") from None
    try:
        yield server.url, server.process
    finally:
        server.stop()


def worker_pids(master: int) -> list[int]:
    pids = []
    for task in Path(f"/proc/{master}/task").iterdir():
        children = (task / "children").read_text().split()
        pids.extend(int(pid) for pid in children)
    return pids


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set since it started (shared model pages included)."""
    return _status_mb(pid, "VmHWM:")


def rss_mb(pid: int) -> float:
    """VmRSS: the process's resident set now."""
    return _status_mb(pid, "VmRSS:")


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return float("nan")


def post(session: requests.Session, url: str, name: str, data: bytes) -> tuple[float, int]:
    """(seconds, rows) of one POST /api/predict."""
    elapsed, summary = post_summary(session, url, name, data)
    return elapsed, summary["total_samples"]


def post_summary(session: requests.Session, url: str, name: str,
                 data: bytes) -> tuple[float, dict]:
    started = time.perf_counter()
    response = session.post(f"{url}/api/predict", files={"file": (name, data)}, timeout=TIMEOUT)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"POST /api/predict answered {response.status_code}: "
                         f"{response.text[:300]}")
    # orjson: the client shares the CPUs with the server, so it parses the answer (about
    # 220 kB for 1,000 rows) as cheaply as it can
    return elapsed, orjson.loads(response.content)["summary"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def reset_peak_rss(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux 4.0+), so the next peak is the next request's."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def first_requests(url: str, data: bytes, count: int) -> dict:
    """The first ``count`` requests of a fresh server, one after the other (each worker's
    first request pays what was not done before the fork), then the same file once more."""
    with requests.Session() as session:
        runs = [post_summary(session, url, "KDDTest+.txt", data) for _ in range(count)]
    return {"seconds": [elapsed for elapsed, _ in runs],
            "server_seconds": [summary["processing_time"] for _, summary in runs]}


def latency(url: str, data: bytes, count: int) -> dict:
    with requests.Session() as session:
        runs = [post_summary(session, url, "KDDTest+.txt", data) for _ in range(count)]
    times = [elapsed for elapsed, _ in runs]
    server = [summary["processing_time"] for _, summary in runs]
    return {"requests": count, "p50_s": percentile(times, 0.5), "p95_s": percentile(times, 0.95),
            "mean_s": statistics.fmean(times), "min_s": min(times), "max_s": max(times),
            # the part spent in the view (parse, score, build the JSON), as the API reports it
            "server_processing_p50_s": percentile(server, 0.5)}


def throughput(url: str, data: bytes, clients: int, max_requests: int, budget: float) -> dict:
    """Each client posts until the shared request count or the time budget runs out."""
    lock = threading.Lock()
    issued = 0
    rows = 0
    times: list[float] = []
    deadline = time.monotonic() + budget

    def client() -> None:
        nonlocal issued, rows
        with requests.Session() as session:
            while True:
                with lock:
                    if issued >= max_requests or time.monotonic() > deadline:
                        return
                    issued += 1
                elapsed, n = post(session, url, "KDDTest+.txt", data)
                with lock:
                    rows += n
                    times.append(elapsed)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    wall = time.perf_counter() - started
    return {"clients": clients, "requests": len(times), "seconds": wall,
            "samples_per_s": rows / wall, "requests_per_s": len(times) / wall,
            "p50_s": percentile(times, 0.5), "p95_s": percentile(times, 0.95)}


def small_requests(url: str, payload_for: Callable[[int], bytes], clients: int,
                   budget: float, max_requests: int) -> dict:
    """``clients`` clients post ``payload_for(i)`` (i = 0, 1, ...) for ``budget`` seconds."""
    lock = threading.Lock()
    issued = 0
    rows = 0
    times: list[float] = []
    server: list[float] = []
    deadline = time.monotonic() + budget

    def client() -> None:
        nonlocal issued, rows
        with requests.Session() as session:
            while True:
                with lock:
                    if issued >= max_requests or time.monotonic() > deadline:
                        return
                    number = issued
                    issued += 1
                elapsed, summary = post_summary(session, url, f"small-{number}.txt",
                                                payload_for(number))
                with lock:
                    rows += summary["total_samples"]
                    times.append(elapsed)
                    server.append(summary["processing_time"])

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    wall = time.perf_counter() - started
    return {"clients": clients, "requests": len(times), "seconds": wall,
            "samples_per_s": rows / wall, "requests_per_s": len(times) / wall,
            "p50_s": percentile(times, 0.5), "p95_s": percentile(times, 0.95),
            "p99_s": percentile(times, 0.99), "max_s": max(times),
            "server_processing_p50_s": percentile(server, 0.5),
            "server_processing_p99_s": percentile(server, 0.99)}


def small_files(source: Path, rows: int) -> Callable[[int], bytes]:
    """File number i: ``rows`` consecutive lines of ``source`` from a start that differs for
    every i below the file's line count, so every file is a new upload."""
    lines = [line for line in source.read_bytes().splitlines() if line.strip()]
    span = len(lines) - rows
    if span <= 0:
        raise ValueError(f"{source} has fewer than {rows} lines")

    def payload(number: int) -> bytes:
        start = (number * 7919) % span  # 7919 is prime: distinct starts for a long while
        return b"\n".join(lines[start:start + rows]) + b"\n"

    return payload


def kdd99_file(source: Path, rows: int, header: bool) -> bytes:
    """``rows`` KDD Cup 1999 records: NSL-KDD lines (repeated as needed) without their
    difficulty column, labels ending in "." as KDD Cup 99 writes them."""
    lines = []
    for line in source.read_bytes().splitlines():
        fields = line.split(b",")
        if len(fields) == len(FEATURE_NAMES) + 2:
            lines.append(b",".join(fields[:-1]) + b".")
    if not lines:
        raise ValueError(f"{source} has no NSL-KDD records")
    full, rest = divmod(rows, len(lines))
    body = lines * full + lines[:rest]
    top = [",".join([*FEATURE_NAMES, "label"]).encode()] if header else []
    return b"\n".join(top + body) + b"\n"


def kdd99_upload(url: str, master: int, data: bytes, name: str) -> dict:
    """One upload of ``data``: client time, the view's time, the workers' peak RSS."""
    pids = worker_pids(master)
    rss = {pid: rss_mb(pid) for pid in pids}
    for pid in pids:
        reset_peak_rss(pid)
    with requests.Session() as session:
        elapsed, summary = post_summary(session, url, name, data)
    return {"rows": summary["total_samples"], "file_mb": len(data) / (1 << 20),
            "seconds": elapsed, "server_processing_s": summary["processing_time"],
            "worker_rss_mb_before": max(rss.values()),
            "worker_peak_rss_mb": max(peak_rss_mb(pid) for pid in pids)}


def large_upload(url: str, master: int, source: Path, rows: int, tmp: Path) -> dict:
    """One upload of ``rows`` rows (KDDTest+ repeated); time and workers' peak RSS."""
    lines = source.read_bytes().splitlines(keepends=True)
    path = tmp / f"large-{rows}.txt"
    with open(path, "wb") as handle:
        for start in range(0, rows, len(lines)):
            handle.writelines(lines[: min(len(lines), rows - start)])
    size_mb = path.stat().st_size / (1 << 20)
    before = {pid: peak_rss_mb(pid) for pid in worker_pids(master)}
    data = path.read_bytes()
    with requests.Session() as session:
        elapsed, total = post(session, url, path.name, data)
    after = {pid: peak_rss_mb(pid) for pid in worker_pids(master)}
    path.unlink()
    return {"rows": total, "file_mb": size_mb, "seconds": elapsed,
            "worker_peak_rss_mb_before": max(before.values()),
            "worker_peak_rss_mb_after": max(after.values())}


def main(argv: list[str] | None = None) -> int:
    config = script_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=config["NSLKDD_DIR"] / "KDDTest+.txt")
    parser.add_argument("--requests", type=int, default=30, help="sequential latency requests")
    parser.add_argument("--concurrency", default="1,4,8", help="client counts, comma-separated")
    parser.add_argument("--max-requests", type=int, default=40, help="per concurrency level")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per level")
    parser.add_argument("--workers", type=int, default=config["WEB_CONCURRENCY"])
    parser.add_argument("--threads", type=int, default=config["GUNICORN_THREADS"])
    parser.add_argument("--large-rows", type=int, default=0,
                        help="also time one upload of this many rows (e.g. 500000)")
    parser.add_argument("--train", type=Path, default=config["NSLKDD_DIR"] / "KDDTrain+.txt",
                        help="rows for the small requests and the KDD Cup 99 file")
    parser.add_argument("--small-rows", type=int, default=1000, help="0: no small requests")
    parser.add_argument("--small-clients", type=int, default=4)
    parser.add_argument("--small-budget", type=float, default=20.0, help="seconds per run")
    parser.add_argument("--kdd99-rows", type=int, default=494_021,
                        help="rows of the KDD Cup 99 file (0: none)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        raise SystemExit(f"{args.file} not found: run `make data` or set ANOMALYZE_NSLKDD_DIR")
    data = args.file.read_bytes()
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]

    result: dict = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_before": os.getloadavg()},
        "server": {"workers": args.workers, "threads": args.threads},
        "file": {"name": args.file.name, "bytes": len(data)},
    }
    tmp = Path(tempfile.mkdtemp(prefix="anomalyze-bench-"))
    try:
        with gunicorn(args.workers, args.threads, tmp / "data", tmp / "gunicorn.log") as (
                url, master):
            result["first_requests"] = first_requests(url, data, 2 * args.workers)
            result["latency"] = latency(url, data, args.requests)
            if not args.skip_throughput:
                result["throughput"] = [throughput(url, data, c, args.max_requests, args.budget)
                                        for c in levels]
            if args.small_rows and args.train.is_file():
                files = small_files(args.train, args.small_rows)
                one = files(0)
                result["small_requests"] = {
                    "rows": args.small_rows,
                    "distinct": small_requests(url, files, args.small_clients,
                                               args.small_budget, 100_000),
                    "same_file": small_requests(url, lambda _: one, args.small_clients,
                                                args.small_budget, 100_000)}
            if args.kdd99_rows and args.train.is_file():
                result["kdd99"] = [
                    {"header": header, **kdd99_upload(
                        url, master.pid, kdd99_file(args.train, args.kdd99_rows, header),
                        f"kddcup99{'-header' if header else ''}.csv")}
                    for header in (False, True)]
            if args.large_rows:
                result["large_upload"] = large_upload(url, master.pid, args.file,
                                                      args.large_rows, tmp)
            result["worker_peak_rss_mb"] = max(peak_rss_mb(p) for p in worker_pids(master.pid))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["machine"]["loadavg_after"] = os.getloadavg()

    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


def print_table(result: dict) -> None:
    lat = result["latency"]
    server = result["server"]
    print(f"POST /api/predict, {result['file']['name']} ({result['file']['bytes']:,} bytes), "
          f"gunicorn {server['workers']} workers x {server['threads']} threads, "
          f"{result['machine']['cpus']} CPUs, load {result['machine']['loadavg_before'][0]:.2f}")
    print(f"latency over {lat['requests']} sequential requests: p50 {lat['p50_s']:.3f} s, "
          f"p95 {lat['p95_s']:.3f} s (min {lat['min_s']:.3f}, max {lat['max_s']:.3f}); "
          f"in the view p50 {lat['server_processing_p50_s']:.3f} s")
    if "throughput" in result:
        print(f"\n{'clients':>7} {'requests':>8} {'seconds':>8} {'samples/s':>10} "
              f"{'p50 s':>7} {'p95 s':>7}")
        for row in result["throughput"]:
            print(f"{row['clients']:>7} {row['requests']:>8} {row['seconds']:>8.1f} "
                  f"{row['samples_per_s']:>10,.0f} {row['p50_s']:>7.3f} {row['p95_s']:>7.3f}")
    if "first_requests" in result:
        first = result["first_requests"]["seconds"]
        print(f"\nfirst requests of the fresh server: {', '.join(f'{t:.3f}' for t in first)} s")
    if "small_requests" in result:
        small = result["small_requests"]
        for kind in ("distinct", "same_file"):
            row = small[kind]
            print(f"small requests ({small['rows']:,} rows, {kind}): {row['clients']} clients, "
                  f"{row['requests']} requests, {row['samples_per_s']:,.0f} samples/s, p50 "
                  f"{row['p50_s']:.3f} s, p99 {row['p99_s']:.3f} s (in the view: p50 "
                  f"{row['server_processing_p50_s']:.3f} s)")
    for big in result.get("kdd99", []):
        print(f"KDD Cup 99 file {'with' if big['header'] else 'without'} header: "
              f"{big['rows']:,} rows ({big['file_mb']:.0f} MB) in {big['seconds']:.2f} s (view "
              f"{big['server_processing_s']:.2f} s); worker peak RSS "
              f"{big['worker_peak_rss_mb']:.0f} MB (before: {big['worker_rss_mb_before']:.0f})")
    if "large_upload" in result:
        big = result["large_upload"]
        print(f"\nlarge upload: {big['rows']:,} rows ({big['file_mb']:.1f} MB) in "
              f"{big['seconds']:.1f} s; worker peak RSS {big['worker_peak_rss_mb_after']:.0f} MB "
              f"(before: {big['worker_peak_rss_mb_before']:.0f} MB)")


if __name__ == "__main__":
    sys.exit(main())
