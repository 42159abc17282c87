"""Where a ``POST /api/predict`` spends its time, stage by stage, in wall-clock and CPU time.

``benchmarks.stages`` splits the scoring of one file; this splits a whole request the way the
server runs it, for three uploads: a new 1,000-row file (a different slice of KDDTrain+ each
round), KDDTest+ (posted again and again, as ``make bench`` does: a duplicate after the first,
and once more with its lines rotated each round, so every upload is new), and a 494,021-row
KDD Cup 1999 file made as ``benchmarks.bench_http`` makes it (new each round).

In-process part: the app (``server.create_app``, the server's default scoring threads, a temp
data folder, automatic retraining off) is called as a WSGI application with a prepared
multipart body, read through gunicorn's own body reader from a loopback TCP connection (a
thread sends it), so no test client or HTTP parsing is timed but the body is received as in a
worker. For the duration of the run only, the server functions below are wrapped with a clock
(nothing in the product is changed), which adds each call's wall-clock time and the request
thread's CPU time to its stage, less the time of the wrapped calls inside it (the CPU of the
scoring threads is a stage of its own):

- receive: multipart decoding (``UploadFormParser._read_multipart``), the spool's file writes
  and its SHA-256 updates (``HashingSpool`` hashes while it receives), and the final flush
  (``UploadSink.receive``);
- parse + score: the time the request waits for ``iter_scored_chunks``; analysis: the rest of
  ``analyse_file`` (gathering per-row arrays, the top anomalies);
- keep: ``keep_upload`` with the registry's fsync of the file, of the folder, its SQLite
  look-up and its transaction (rename + insert + commit) split out;
- the answer: explanations, metrics, the score histogram, the per-row columns of the described
  anomalies (``anomaly_records``), the summary (``prediction``) and the JSON (``jsonify``);
- rest: Flask and werkzeug (routing, request and response objects, the request log line,
  written to stderr as the server writes it).

Rounds are interleaved (each round posts every upload once) and each stage's figure is its
best over the rounds. ``--gunicorn`` then posts the same uploads to a real gunicorn on
127.0.0.1 (``gunicorn.conf.py``, the bench's 2 workers), one at a time, to show what the server
and the network add (client's wall time against the in-process one), and the CPU time a
request costs the server's workers and the client; and finally 1 and 4 clients posting new
1,000-row files for ``--concurrent-seconds`` each, with the CPU the workers and the clients
spend per request (and 4 clients posting one file again and again: a duplicate is not kept);
on a 2-core machine, rows/s can be no more than 2 s of CPU per second over the CPU a request
costs.

    python -m benchmarks.http_stages [--rounds 15] [--gunicorn] [--out results.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROUNDS = 15
KDD99_ROWS = 494_021
SMALL_ROWS = 1_000
OTHER_THREADS = "parse + score: scoring threads"
# Every new upload is kept, however many rounds: the quotas would otherwise refuse the large
# ones once a few have been kept (the kept files are deleted between rounds, not their rows).
QUOTAS = ("UPLOAD_QUOTA_MB", "UPLOAD_CLIENT_QUOTA_MB")
NO_QUOTA_MB = 1e9

# (stage, what it is), in the order of a request
STAGES = (
    ("receive: multipart decoding", "werkzeug's MultipartDecoder in server/multipart.py"),
    ("receive: spool write", "the upload written to the spool file as it arrives"),
    ("receive: SHA-256", "hashing while it arrives (HashingSpool.write)"),
    ("receive: flush", "UploadSink.receive: the spool's last buffered bytes"),
    ("parse + score", "waiting for iter_scored_chunks (parse, features, distances, verdicts)"),
    (OTHER_THREADS, "CPU of the scoring threads (no wall time of its own: "
     "the request thread waits for them in parse + score, or works on in analysis)"),
    ("analysis", "analyse_chunks: per-row arrays in row order, the top anomalies"),
    ("keep: SQLite look-up", "is this SHA-256 kept already?"),
    ("keep: fsync file", "the upload's bytes on disk before a row names them"),
    ("keep: SQLite transaction", "quota check, rename, insert, counter, commit (WAL fsync)"),
    ("keep: fsync folder", "the rename on disk"),
    ("keep: other", "disk space check, file name, quota pre-check"),
    ("explanations", "utils.scoring.explain for the described anomalies"),
    ("per-row answer", "anomaly_records: columns of the described anomalies"),
    ("metrics", "server.responses.metrics (labels against verdicts)"),
    ("score histogram", "utils.scoring.score_histogram"),
    ("summary", "server.responses.prediction: counts, severities, warnings"),
    ("JSON", "jsonify with orjson"),
    ("rest", "Flask and werkzeug around the view, the request log line"),
)


class StageClock:
    """Exclusive wall-clock and CPU seconds of the calling thread in wrapped calls, per stage.

    Calls nest on the calling thread; a call's time less the time of the wrapped calls made
    inside it goes to its stage. The CPU is the calling thread's own: other threads (the
    scoring threads) work while it waits or does something else.
    """

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self._local = threading.local()

    def _stack(self) -> list[list[float]]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        stack = self._stack()
        frame = [time.perf_counter(), time.thread_time(), 0.0, 0.0]
        stack.append(frame)
        try:
            yield
        finally:
            stack.pop()
            wall = time.perf_counter() - frame[0]
            cpu = time.thread_time() - frame[1]
            self.wall[name] += wall - frame[2]
            self.cpu[name] += cpu - frame[3]
            if stack:
                stack[-1][2] += wall
                stack[-1][3] += cpu

    def wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.stage(name):
                return fn(*args, **kwargs)

        timed.__wrapped__ = fn  # type: ignore[attr-defined]
        return timed

    def wrap_generator(self, name: str, fn: Callable) -> Callable:
        """``fn`` returns an iterator: each ``next`` on it is timed."""

        def timed(*args: Any, **kwargs: Any) -> Iterator:
            iterator = iter(fn(*args, **kwargs))
            while True:
                with self.stage(name):
                    try:
                        item = next(iterator)
                    except StopIteration:
                        return
                yield item

        return timed

    def take(self) -> tuple[dict[str, float], dict[str, float]]:
        wall, cpu = dict(self.wall), dict(self.cpu)
        self.wall.clear()
        self.cpu.clear()
        return wall, cpu


class _TimedCalls:
    """``inner`` with one method timed as a stage; everything else passed through."""

    def __init__(self, inner: Any, method: str, clock: StageClock, stage: str) -> None:
        self._inner = inner
        setattr(self, method, clock.wrap(stage, getattr(inner, method)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __iter__(self) -> Iterator:
        return iter(self._inner)


@contextmanager
def instrumented(clock: StageClock) -> Iterator[None]:
    """The server's request path with each stage's functions wrapped by ``clock``."""
    import server.analysis
    import server.multipart
    import server.predict
    import server.responses
    import server.uploads
    import utils.registry.sqlite
    import utils.registry.sqlite_connection

    open_spool = server.uploads.UploadSink.open_spool

    def timed_spool(self: server.uploads.UploadSink) -> server.uploads.HashingSpool:
        spool = open_spool(self)
        spool._sha = _TimedCalls(spool._sha, "update", clock, "receive: SHA-256")
        spool._file = _TimedCalls(spool._file, "write", clock, "receive: spool write")
        return spool

    database = utils.registry.sqlite_connection.SQLiteDatabase
    patches: list[tuple[object, str, Callable]] = [
        (server.multipart.UploadFormParser, "_read_multipart",
         clock.wrap("receive: multipart decoding",
                    server.multipart.UploadFormParser._read_multipart)),
        (server.uploads.UploadSink, "open_spool", timed_spool),
        (server.uploads.UploadSink, "receive",
         clock.wrap("receive: flush", server.uploads.UploadSink.receive)),
        (server.analysis, "iter_scored_chunks",
         clock.wrap_generator("parse + score", server.analysis.iter_scored_chunks)),
        (server.predict, "analyse_file", clock.wrap("analysis", server.predict.analyse_file)),
        (server.predict, "keep_upload", clock.wrap("keep: other", server.predict.keep_upload)),
        (database, "read", clock.wrap("keep: SQLite look-up", database.read)),
        (database, "write", clock.wrap("keep: SQLite transaction", database.write)),
        (utils.registry.sqlite, "fsync_file",
         clock.wrap("keep: fsync file", utils.registry.sqlite.fsync_file)),
        (utils.registry.sqlite, "fsync_dir",
         clock.wrap("keep: fsync folder", utils.registry.sqlite.fsync_dir)),
        (server.responses, "explain", clock.wrap("explanations", server.responses.explain)),
        (server.responses, "anomaly_records",
         clock.wrap("per-row answer", server.responses.anomaly_records)),
        (server.responses, "metrics", clock.wrap("metrics", server.responses.metrics)),
        (server.responses, "score_histogram",
         clock.wrap("score histogram", server.responses.score_histogram)),
        (server.predict, "prediction", clock.wrap("summary", server.predict.prediction)),
        (server.predict, "jsonify", clock.wrap("JSON", server.predict.jsonify)),
    ]
    with ExitStack() as undo:
        for owner, name, replacement in patches:
            original = owner.__dict__[name]
            setattr(owner, name, replacement)
            undo.callback(setattr, owner, name, original)
        yield


# --- the uploads ------------------------------------------------------------------------------

def rotated(lines: list[bytes], shift: int) -> bytes:
    """The same records in another order: new content (a new SHA-256), the same work."""
    shift %= len(lines)
    return b"\n".join(lines[shift:] + lines[:shift]) + b"\n"


def uploads(test_file: Path, train_file: Path, kdd99_rows: int) -> dict[str, Callable]:
    """Upload name -> (round number -> (file name, bytes))."""
    from benchmarks.bench_http import kdd99_file, small_files

    small = small_files(train_file, SMALL_ROWS)
    test = test_file.read_bytes()
    test_lines = test.splitlines()
    scenarios: dict[str, Callable[[int], tuple[str, bytes]]] = {
        "1,000 rows, new": lambda i: (f"small-{i}.txt", small(i)),
        "KDDTest+ (same file)": lambda i: (test_file.name, test),
        "KDDTest+, new": lambda i: (f"test-{i}.txt", rotated(test_lines, i + 1)),
    }
    if kdd99_rows:
        kdd99_lines = kdd99_file(train_file, kdd99_rows, header=False).splitlines()
        scenarios[f"KDD Cup 99, {kdd99_rows:,} rows, new"] = (
            lambda i: (f"kddcup99-{i}.csv", rotated(kdd99_lines, i + 1)))
    return scenarios


def multipart_body(name: str, data: bytes) -> tuple[bytes, str]:
    """(body, content type) of a form with the one file part ``file``."""
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    boundary, body = encode_multipart({"file": FileStorage(io.BytesIO(data), filename=name)})
    return body, f"multipart/form-data; boundary={boundary}"


# --- in process -------------------------------------------------------------------------------

class BodySender:
    """The request body through gunicorn's own body reader: a thread sends it over a TCP
    connection on 127.0.0.1, ``stream`` reads it as gunicorn's worker does (its reader copies
    what it holds beyond each read, which costs the request thread CPU). TCP, not a socket
    pair: on loopback TCP a read returns up to 1 MiB, on a socket pair about 200 KiB, and the
    reader's copies depend on it."""

    def __init__(self, body: bytes) -> None:
        from gunicorn.http.body import Body, LengthReader
        from gunicorn.http.unreader import SocketUnreader

        with socket.create_server(("127.0.0.1", 0)) as listener:
            self._out = socket.create_connection(listener.getsockname())
            self._in, _ = listener.accept()
        self.cpu = 0.0  # the sending thread's: the client's work, not the server's
        self.stream = Body(LengthReader(SocketUnreader(self._in), len(body)))
        self._thread = threading.Thread(target=self._send, args=(body,), daemon=True)
        self._thread.start()

    def _send(self, body: bytes) -> None:
        began = time.thread_time()
        try:
            self._out.sendall(body)
        except OSError:  # the server stopped reading (an error answer)
            pass
        finally:
            self._out.close()
            self.cpu = time.thread_time() - began

    def close(self) -> None:
        self._in.close()
        self._thread.join()


def wsgi_post(app: Any, body: bytes, content_type: str) -> tuple[int, int, float]:
    """POST /api/predict straight to the WSGI app, the body read through gunicorn's reader:
    (status, response bytes, the sending thread's CPU seconds)."""
    sender = BodySender(body)
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/predict", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": sender.stream,
        "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    status: list[str] = []
    try:
        result = app(environ, lambda s, headers, exc_info=None: status.append(s))
        try:
            size = sum(len(block) for block in result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    finally:
        sender.close()
    return int(status[0].split()[0]), size, sender.cpu


def measure_in_process(model_dir: Path, scenarios: dict[str, Callable], rounds: int,
                       threads: int | None = None) -> dict:
    from server import create_app

    work = Path(tempfile.mkdtemp(prefix="anomalyze-http-stages-"))
    config = {"MODEL_DIR": model_dir, "DATA_DIR": work, "RETRAIN_THRESHOLD": 0,
              **{name: NO_QUOTA_MB for name in QUOTAS}}
    if threads is not None:
        config["SCORING_THREADS"] = threads
    try:
        app = create_app(config)
        clock = StageClock()
        runs: dict[str, list[dict]] = {name: [] for name in scenarios}
        with instrumented(clock):
            for number in range(-1, rounds):  # round -1 warms every path up, untimed
                for name, upload in scenarios.items():
                    body, content_type = multipart_body(*upload(number + 1))
                    clock.take()
                    process_cpu = time.process_time()
                    with clock.stage("rest"):
                        status, size, sending = wsgi_post(app, body, content_type)
                    process_cpu = time.process_time() - process_cpu - sending
                    if status != 200:
                        raise RuntimeError(f"{name}: POST /api/predict answered {status}")
                    wall, cpu = clock.take()
                    cpu[OTHER_THREADS] = max(process_cpu - sum(cpu.values()), 0.0)
                    if number >= 0:
                        runs[name].append({"wall": wall, "cpu": cpu, "response_bytes": size,
                                           "upload_bytes": len(body)})
                    shutil.rmtree(work / "uploaded_logs", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {name: summarise(found) for name, found in runs.items()}


def summarise(runs: list[dict]) -> dict:
    """Each stage's best over the runs; the request's best total."""
    names = [name for name, _ in STAGES]
    best = {kind: {name: min(run[kind].get(name, 0.0) for run in runs) for name in names}
            for kind in ("wall", "cpu")}
    # the waits on the disk (fsync) vary widely from one request to the next: their median
    # says more than their best
    median_stage = {name: statistics.median(run["wall"].get(name, 0.0) for run in runs)
                    for name in names}
    total = {kind: min(sum(run[kind].values()) for run in runs) for kind in ("wall", "cpu")}
    median_wall = sorted(sum(run["wall"].values()) for run in runs)[len(runs) // 2]
    return {"rounds": len(runs), "best_seconds": best, "median_wall_seconds": median_stage,
            "request_best_seconds": total,
            "request_median_wall_seconds": median_wall,
            "response_bytes": runs[-1]["response_bytes"],
            "upload_bytes": runs[-1]["upload_bytes"]}


# --- a real gunicorn --------------------------------------------------------------------------

def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _workers_cpu(master: int) -> float:
    from benchmarks.bench_http import worker_pids

    return sum(_cpu_seconds(pid) for pid in worker_pids(master))


def measure_gunicorn(scenarios: dict[str, Callable], rounds: int, concurrent_seconds: float,
                     workers: int, threads: int, env: dict[str, str] | None = None) -> dict:
    """``env``: more variables for the server (the bench's model and settings by default)."""
    import requests

    from benchmarks.bench_http import gunicorn, percentile, post_summary

    tmp = Path(tempfile.mkdtemp(prefix="anomalyze-http-stages-"))
    result: dict = {"workers": workers, "threads": threads, "sequential": {},
                    "concurrent": []}
    try:
        env = {**{f"ANOMALYZE_{name}": str(NO_QUOTA_MB) for name in QUOTAS}, **(env or {})}
        with gunicorn(workers, threads, tmp / "data", tmp / "gunicorn.log", env) as (
                url, master):
            runs: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
            with requests.Session() as session:
                for number in range(-2, rounds):  # two untimed rounds: each worker's first
                    for name, upload in scenarios.items():
                        file_name, data = upload(number + 2)
                        server_cpu = _workers_cpu(master.pid)
                        client_cpu = time.process_time()
                        elapsed, summary = post_summary(session, url, file_name, data)
                        client_cpu = time.process_time() - client_cpu
                        server_cpu = _workers_cpu(master.pid) - server_cpu
                        if number >= 0:
                            runs[name].append((elapsed, summary["processing_time"],
                                               server_cpu, client_cpu))
                        shutil.rmtree(tmp / "data" / "uploaded_logs", ignore_errors=True)
            for name, found in runs.items():
                result["sequential"][name] = {
                    "client_wall_best_s": min(r[0] for r in found),
                    "client_wall_p50_s": percentile([r[0] for r in found], 0.5),
                    "view_best_s": min(r[1] for r in found),
                    # /proc counts CPU in clock ticks (10 ms): a mean, not a best
                    "server_cpu_mean_s": sum(r[2] for r in found) / len(found),
                    "client_cpu_mean_s": sum(r[3] for r in found) / len(found)}
            small = scenarios["1,000 rows, new"]
            offset = [10_000]
            for clients, files in ((1, "new"), (4, "new"), (4, "same file")):
                upload = small if files == "new" else (lambda _: small(0))
                row = concurrent(url, master.pid, upload, clients, concurrent_seconds, offset)
                result["concurrent"].append({"files": files, **row})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def concurrent(url: str, master: int, upload: Callable, clients: int, seconds: float,
               offset: list[int]) -> dict:
    """``clients`` clients posting new files for ``seconds``: rate, latency, CPU per request."""
    import requests

    from benchmarks.bench_http import percentile, post_summary

    lock = threading.Lock()
    times: list[float] = []
    views: list[float] = []
    deadline = time.monotonic() + seconds

    def client() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                with lock:
                    number = offset[0]
                    offset[0] += 1
                file_name, data = upload(number)
                elapsed, summary = post_summary(session, url, file_name, data)
                with lock:
                    times.append(elapsed)
                    views.append(summary["processing_time"])

    server_cpu = _workers_cpu(master)
    client_cpu = time.process_time()
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    wall = time.perf_counter() - started
    client_cpu = time.process_time() - client_cpu
    server_cpu = _workers_cpu(master) - server_cpu
    count = len(times)
    return {"clients": clients, "requests": count, "seconds": wall,
            "rows_per_s": count * SMALL_ROWS / wall, "p50_s": percentile(times, 0.5),
            "p99_s": percentile(times, 0.99), "view_p50_s": percentile(views, 0.5),
            "server_cpu_per_request_s": server_cpu / count,
            "client_cpu_per_request_s": client_cpu / count,
            "cpu_busy_share": (server_cpu + client_cpu) / wall / (os.cpu_count() or 1)}


# --- the report -------------------------------------------------------------------------------

def table(result: dict) -> str:
    lines = []
    if "command" in result:
        load = [f"{x:.2f}" for x in (*result["loadavg_before"][:1], *result["loadavg_after"][:1])]
        lines += [f"`{result['command']}` at {result['when']}, git {result['commit']}; "
                  f"load average {load[0]} at the start, {load[1]} at the end."]
    for name, found in result["in_process"].items():
        best, total = found["best_seconds"], found["request_best_seconds"]
        lines += ["", f"### {name}", "",
                  f"Upload {found['upload_bytes']:,} bytes, answer "
                  f"{found['response_bytes']:,} bytes; best of {found['rounds']} rounds: "
                  f"{total['wall'] * 1000:.1f} ms wall, {total['cpu'] * 1000:.1f} ms CPU "
                  f"(median wall {found['request_median_wall_seconds'] * 1000:.1f} ms).", "",
                  "| stage | wall (ms) | share | CPU (ms) | share | median wall (ms) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for stage, _ in STAGES:
            wall, cpu = best["wall"][stage], best["cpu"][stage]
            lines.append(f"| {stage} | {wall * 1000:.1f} | {wall / total['wall']:.1%} | "
                         f"{cpu * 1000:.1f} | {cpu / total['cpu']:.1%} | "
                         f"{found['median_wall_seconds'][stage] * 1000:.1f} |")
    real = result.get("gunicorn")
    if real:
        lines += ["", f"### gunicorn ({real['workers']} workers x {real['threads']} threads, "
                      "127.0.0.1), one request at a time", "",
                  "| upload | in-process wall (ms) | client wall best / p50 (ms) | "
                  "in the view (ms) | in-process CPU (ms) | workers' CPU, mean (ms) | "
                  "client CPU, mean (ms) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, found in real["sequential"].items():
            inner = result["in_process"][name]["request_best_seconds"]
            lines.append(
                f"| {name} | {inner['wall'] * 1000:.1f} | "
                f"{found['client_wall_best_s'] * 1000:.1f} / "
                f"{found['client_wall_p50_s'] * 1000:.1f} | {found['view_best_s'] * 1000:.1f} | "
                f"{inner['cpu'] * 1000:.1f} | {found['server_cpu_mean_s'] * 1000:.1f} | "
                f"{found['client_cpu_mean_s'] * 1000:.1f} |")
        lines += ["", "1,000-row files (each new, or one file again and again), clients "
                      "posting at once:", "",
                  "| files | clients | requests | rows/s | p50 (ms) | p99 (ms) | "
                  "in the view p50 (ms) | workers' CPU per request (ms) | "
                  "clients' CPU per request (ms) | CPUs busy |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in real["concurrent"]:
            lines.append(
                f"| {row['files']} | {row['clients']} | {row['requests']} | "
                f"{row['rows_per_s']:,.0f} | "
                f"{row['p50_s'] * 1000:.0f} | {row['p99_s'] * 1000:.0f} | "
                f"{row['view_p50_s'] * 1000:.0f} | "
                f"{row['server_cpu_per_request_s'] * 1000:.1f} | "
                f"{row['client_cpu_per_request_s'] * 1000:.1f} | {row['cpu_busy_share']:.0%} |")
    return "\n".join(lines)


def _commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    from settings import script_settings

    config = script_settings()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--test-file", type=Path,
                        default=config["NSLKDD_DIR"] / "KDDTest+.txt")
    parser.add_argument("--train-file", type=Path,
                        default=config["NSLKDD_DIR"] / "KDDTrain+.txt")
    parser.add_argument("--model-dir", type=Path, default=config["MODEL_DIR"])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--kdd99-rows", type=int, default=KDD99_ROWS, help="0: leave it out")
    parser.add_argument("--threads", type=int, default=None,
                        help="scoring threads (default: the server's)")
    parser.add_argument("--gunicorn", action="store_true",
                        help="also post the uploads to a real gunicorn")
    parser.add_argument("--concurrent-seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gunicorn-threads", type=int, default=config["GUNICORN_THREADS"])
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    scenarios = uploads(args.test_file, args.train_file, args.kdd99_rows)
    result: dict = {"command": " ".join(["python -m benchmarks.http_stages",
                                         *(sys.argv[1:] if argv is None else argv)]),
                    "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "commit": _commit(), "loadavg_before": os.getloadavg(),
                    "in_process": measure_in_process(args.model_dir, scenarios, args.rounds,
                                                     args.threads)}
    if args.gunicorn:
        result["gunicorn"] = measure_gunicorn(scenarios, args.rounds, args.concurrent_seconds,
                                              args.workers, args.gunicorn_threads)
    result["loadavg_after"] = os.getloadavg()
    print(table(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
