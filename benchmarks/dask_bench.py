"""Batch scoring on Dask (score_logs.py): rows/s at 1 and 2 worker processes, scaling
efficiency, Dask's overhead against the same work in one process, peak memory per worker.

    python -m benchmarks.dask_bench [--rows 5000000] [--small-rows 1000000]

Inputs are generated in a temp folder: a Zeek archive replaying the shared sample
(ctu-botnet-4) with shifted times and hosts, in hourly gzip files of HOUR_ROWS rows, and
KDDTrain+ replicated to the same number of rows in one plain file (cut into 64 MB pieces).
The replay keeps the sample's order and labels and compresses its times to 50 M
connections a day, so the window features see a busy sensor's density.

Both start the clock with the model loaded (each worker loads it once before the job).
"In one process" runs the very task functions the workers run (utils/batch/worker.py), one
after the other, on one thread, without Dask: the first pass, then each piece scored and
written (Zeek files with no halo: what scoring each file alone costs). The overhead is
(time with Dask at one worker) / (time in one process) - 1. Peak memory is each worker
process's highest resident memory while a task ran (TaskPeaks); the generated files are the
same size at every row count, so a bound shows as equal peaks at ``--small-rows`` and
``--rows``, and within the larger run as the last fifth of its tasks peaking no higher than
the first.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from settings import script_settings
from utils.batch.inputs import discover
from utils.batch.job import JobOptions, connect, run_job
from utils.batch.pieces import DEFAULT_PIECE_MB, cut
from utils.batch.worker import (
    ModelRef,
    Output,
    ZeekFormat,
    load_zeek,
    probe,
    score_kdd,
    score_zeek,
    sha256_file,
    worker_model,
)
from utils.cli import progress

DEFAULT_ROWS = 5_000_000
SMALL_ROWS = 1_000_000
ROUNDS = 3  # interleaved rounds on the small archives
# Rows per generated log file: a gzip file is read whole, so they are kept smaller than a
# busy sensor's hour (about 2 M connections at RATE).
HOUR_ROWS = 200_000
RATE = 580.0  # connections/s: 50 M a day
KDD_ROW_BYTES = 152  # KDDTrain+'s mean line length
ZEEK_SAMPLE = "ctu-botnet-4.conn.log.labeled"
EPOCH = 1_764_460_800.0  # 2025-11-30 00:00:00 UTC

Say = Callable[[str], None]


def _worker_peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class TaskPeaks:
    """A Dask worker plugin: each task's peak resident memory (VmHWM, reset as the task
    starts: Linux's clear_refs 5), in the order a one-thread worker ran them. Whether memory
    grows with the archive shows as the later tasks' peaks against the earlier ones'."""

    name = "anomalyze-task-peaks"

    def setup(self, worker) -> None:
        self.peaks: list[tuple[str, float]] = []  # (task name, MB)
        worker.anomalyze_task_peaks = self.peaks

    def transition(self, key, start: str, finish: str, **kwargs) -> None:
        if finish == "executing":
            Path("/proc/self/clear_refs").write_text("5")
        elif start == "executing":
            name = key[0] if isinstance(key, tuple) else str(key)
            self.peaks.append((name.split("-", 1)[0], _worker_peak_mb()))


def _task_peaks(dask_worker) -> list[float]:
    """The second pass's task peaks (the first pass's small reads left out)."""
    return [peak for name, peak in getattr(dask_worker, "anomalyze_task_peaks", [])
            if name != "probe"]


def _fifths(peaks: list[float]) -> list[float]:
    """The highest task peak in the first and in the last fifth of the tasks."""
    fifth = max(1, len(peaks) // 5)
    return [round(max(peaks[:fifth]), 1), round(max(peaks[-fifth:]), 1)]


def _cpu_seconds() -> float:
    """User + system CPU time of the calling process (all its threads) so far."""
    times = os.times()
    return times.user + times.system


def write_zeek_archive(sample: Path, folder: Path, rows: int,
                       file_rows: int = HOUR_ROWS) -> Path:
    """``rows`` connections as sensor ``replay``'s archive: the sample over and over, its
    times compressed to a busy sensor's rate (RATE connections/s), each copy later than the
    one before and with its hosts' second octet moved; files of HOUR_ROWS rows named by the
    times they span, in day folders, as Zeek's rotation names them."""
    lines = sample.read_bytes().splitlines()
    header = [line for line in lines if line.startswith(b"#") and not line.startswith(b"#close")]
    body = [line.split(b"\t") for line in lines if line and not line.startswith(b"#")]
    fields = next(line for line in header if line.startswith(b"#fields")).split(b"\t")[1:]
    at = {name.decode(): i for i, name in enumerate(fields)}
    ts = np.array([float(row[at["ts"]]) for row in body])
    span = len(body) / RATE  # seconds one copy lasts at RATE
    ts = (ts - ts.min()) * (span / max(float(ts.max() - ts.min()), 1e-9))
    root = folder / "replay"
    written, copy = 0, 0
    out: list[bytes] = []
    times: list[float] = []

    def flush() -> None:
        nonlocal out, times
        first, last = time.gmtime(EPOCH + min(times)), time.gmtime(EPOCH + max(times))
        name = (f"{time.strftime('%Y-%m-%d', first)}/conn.{time.strftime('%H:%M:%S', first)}-"
                f"{time.strftime('%H:%M:%S', last)}.log.gz")
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(b"\n".join([*header, *out]) + b"\n", compresslevel=1))
        out, times = [], []

    while written < rows:
        shift = copy * (span + 1.0)
        octet = str(copy % 250).encode()
        for row, t in zip(body, ts.tolist(), strict=True):
            if written == rows:
                break
            row = list(row)
            row[at["ts"]] = f"{EPOCH + t + shift:.6f}".encode()
            row[at["uid"]] = row[at["uid"]] + b"r" + str(copy).encode()
            for host in ("id.orig_h", "id.resp_h"):
                parts = row[at[host]].split(b".")
                if len(parts) == 4:
                    parts[1] = octet
                    row[at[host]] = b".".join(parts)
            out.append(b"\t".join(row))
            times.append(t + shift)
            written += 1
            if len(out) == file_rows:
                flush()
        copy += 1
    if out:
        flush()
    return root


def write_kdd(train: Path, path: Path, rows: int) -> Path:
    lines = train.read_bytes().splitlines(keepends=True)
    with open(path, "wb") as handle:
        left = rows
        while left > 0:
            part = lines[:left]
            handle.write(b"".join(part))
            left -= len(part)
    return path


def in_one_process(inputs: list[str], model_dir: Path, out: Path,
                   piece_mb: float) -> tuple[float, float, int]:
    """Seconds (wall, CPU) the job's own task functions take one after the other, without
    Dask, and the rows they scored."""
    found = discover(inputs)
    ref = ModelRef(str(model_dir), sha256_file(model_dir / "model.joblib"))
    output = Output(str(out))
    piece_bytes = int(piece_mb * (1 << 20))
    worker_model(ref)  # as the Dask runs, the model is loaded before the clock starts
    started, cpu = time.perf_counter(), _cpu_seconds()
    total = 0
    for file_id, item in enumerate(found.files):
        pieces = cut(file_id, item, piece_bytes)
        probes = [probe(piece) for piece in pieces]
        line = row = 0
        for piece, result in zip(pieces, probes, strict=True):
            if item.kind == "kdd":
                score_kdd(piece, line + 1, row, result.rows, ref, output)
            else:
                table = load_zeek(piece, ZeekFormat(), row, row)
                score_zeek(table, [], piece, 0, "replay", ref, output)
            line += result.newlines
            row += result.rows
        total += row
    return time.perf_counter() - started, _cpu_seconds() - cpu, total


def dask_run(inputs: list[str], model_dir: Path, out: Path, workers: int,
             piece_mb: float) -> dict:
    with connect(workers=workers) as client:
        ref = ModelRef(str(model_dir), sha256_file(model_dir / "model.joblib"))
        client.run(worker_model, ref)  # imports and the model: once per worker, not per row
        client.register_plugin(_worker_plugin())
        scheduler_apart = client.run_on_scheduler(os.getpid) != os.getpid()
        before = (client.run(_cpu_seconds), client.run_on_scheduler(_cpu_seconds),
                  _cpu_seconds())
        summary = run_job(JobOptions(inputs=inputs, out=out, model_dir=model_dir,
                                     piece_mb=piece_mb), client,
                          progress_stream=open(os.devnull, "w"))  # noqa: SIM115
        task_peaks = client.run(_task_peaks)
        after = (client.run(_cpu_seconds), client.run_on_scheduler(_cpu_seconds),
                 _cpu_seconds())
    cpu = {"workers": sum(after[0][w] - before[0][w] for w in after[0]),
           "client": after[2] - before[2]}  # a LocalCluster's scheduler runs in the client
    if scheduler_apart:
        cpu["scheduler"] = after[1] - before[1]
    return {"workers": workers, "rows": summary["rows"], "seconds": summary["elapsed_seconds"],
            "cpu_seconds": {name: round(value, 2) for name, value in cpu.items()},
            "first_pass_seconds": summary["first_pass_seconds"],
            "rows_per_second": summary["rows"] / summary["elapsed_seconds"],
            "worker_peak_rss_mb": sorted(round(max(v, default=float("nan")), 1)
                                         for v in task_peaks.values()),
            "task_peaks_mb_first_last_fifth": [_fifths(v) for v in task_peaks.values() if v]}


def _worker_plugin():
    """TaskPeaks as a WorkerPlugin (distributed imported only when a cluster runs)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    return type("TaskPeaksPlugin", (TaskPeaks, WorkerPlugin), {})()


def run_dask(zeek_sample: Path, kdd_train: Path, model_dir: Path, *, rows: int = DEFAULT_ROWS,
             small_rows: int = SMALL_ROWS, rounds: int = ROUNDS, say: Say = progress) -> dict:
    """Per input kind: on the ``small_rows`` archive, ``rounds`` interleaved rounds of one
    process, 1 and 2 workers (best of each: the ratios, robust to a machine whose speed
    drifts); on the ``rows`` archive one run of each (rows/s at scale, worker memory)."""
    # files and pieces the same size at both row counts (smaller ones for a quick run)
    unit_rows = min(HOUR_ROWS, small_rows // 4)
    piece_mb = min(DEFAULT_PIECE_MB, unit_rows * KDD_ROW_BYTES / (1 << 20))
    results: dict = {"rows": rows, "small_rows": small_rows, "hour_rows": unit_rows,
                     "kdd_piece_mb": round(piece_mb, 1), "rounds": rounds,
                     "load_average_start": list(os.getloadavg())}
    scratch = Path(tempfile.mkdtemp(prefix="anomalyze-dask-bench-"))
    try:
        for kind in ("zeek", "kdd"):
            entry: dict = {}
            for size in sorted({small_rows, rows}):
                folder = scratch / f"{kind}-{size}"
                folder.mkdir()
                say(f"dask: writing {size:,} {kind} rows")
                if kind == "zeek":
                    inputs = [str(write_zeek_archive(zeek_sample, folder, size, unit_rows))]
                else:
                    inputs = [str(write_kdd(kdd_train, folder / "kdd.txt", size))]
                measured = [_round(inputs, model_dir, folder / f"round-{r}", piece_mb)
                            for r in range(rounds if size == small_rows else 1)]
                for mode, label in (("in_process", "one process"), ("1", "1 worker"),
                                    ("2", "2 workers")):
                    speeds = ", ".join(f"{one[mode]['rows_per_second']:,.0f}"
                                       for one in measured)
                    peaks = [max(one[mode].get("worker_peak_rss_mb", [0])) for one in measured]
                    say(f"dask: {kind} {size:,} rows, {label}: {speeds} rows/s"
                        + (f", worker peak {max(peaks):,.0f} MB" if mode != "in_process"
                           else ""))
                entry[str(size)] = {"runs": measured, **_ratios(measured)}
                shutil.rmtree(folder, ignore_errors=True)
            entry["peak_mb_small_vs_large_1_worker"] = [
                max(max(one["1"]["worker_peak_rss_mb"]) for one in entry[str(size)]["runs"])
                for size in (small_rows, rows)]
            results[kind] = entry
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["load_average_end"] = list(os.getloadavg())
    return results


def _round(inputs: list[str], model_dir: Path, folder: Path, piece_mb: float) -> dict:
    """One process, then 1 worker, then 2 workers on the same inputs."""
    seconds, cpu, rows = in_one_process(inputs, model_dir, folder / "serial", piece_mb)
    out = {"in_process": {"seconds": seconds, "cpu_seconds": cpu,
                          "rows_per_second": rows / seconds}}
    shutil.rmtree(folder / "serial", ignore_errors=True)
    for workers in (1, 2):
        out[str(workers)] = dask_run(inputs, model_dir, folder / f"out-{workers}", workers,
                                     piece_mb)
        shutil.rmtree(folder / f"out-{workers}", ignore_errors=True)
    return out


def _ratios(measured: list[dict]) -> dict:
    """Best (shortest) of the rounds for each mode, and the ratios of the bests."""
    best = {mode: min((one[mode] for one in measured), key=lambda run: run["seconds"])
            for mode in ("in_process", "1", "2")}
    cpu = {mode: min(_cpu_total(one[mode]) for one in measured)
           for mode in ("in_process", "1", "2")}
    return {
        "best_rows_per_second": {mode: run["rows_per_second"] for mode, run in best.items()},
        "scaling_efficiency_2_workers": best["2"]["rows_per_second"] / (
            2 * best["1"]["rows_per_second"]),
        "overhead_1_worker": best["1"]["seconds"] / best["in_process"]["seconds"] - 1,
        "cpu_overhead_1_worker": cpu["1"] / cpu["in_process"] - 1,
    }


def _cpu_total(run: dict) -> float:
    cpu = run["cpu_seconds"]
    return sum(cpu.values()) if isinstance(cpu, dict) else float(cpu)


def main(argv: list[str] | None = None) -> int:
    config = script_settings()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--small-rows", type=int, default=SMALL_ROWS)
    args = parser.parse_args(argv)
    import json

    results = run_dask(config["ZEEK_DIR"] / ZEEK_SAMPLE, config["DATA_DIR"] / "KDDTrain+.txt",
                       config["MODEL_DIR"], rows=args.rows, small_rows=args.small_rows)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
