"""A batch scoring job on a Dask cluster: two passes over the pieces, then ``summary.json``.

1. Every piece is read once on the workers (``worker.probe``): line and row counts, and for
   Zeek every value checked and the rows' times kept. Bad files are known here (the
   ``--on-error`` policy applies), and the client plans each Zeek piece's halo.
2. Each piece is read again, scored with its halo and written (``worker.score_*``). Zeek
   pieces are tasks of one graph: a piece's table is read once and both scored and cut into
   the halos other pieces need; Dask frees it when those are done, runs what a killed worker
   held elsewhere, and starts pieces in submission order as workers free up (root-task
   queuing), so a worker's memory follows the piece size, not the archive's (make bench
   shows it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from utils.allowlist import AllowEntry
from utils.batch.inputs import discover
from utils.batch.models import JobModels, job_models
from utils.batch.pieces import DEFAULT_PIECE_MB, Piece, cut, zeek_halos
from utils.batch.progress import Progress
from utils.batch.readers import (
    InputFormatError,
    ZeekLogReader,
    window_lookback,
)
from utils.batch.summary import Summary, Tally
from utils.batch.worker import (
    ALERTS_DIR,
    KDD_DIR,
    ZEEK_DIR,
    Output,
    PieceError,
    Probe,
    ZeekFormat,
    load_zeek,
    probe,
    score_kdd,
    score_zeek,
    shift_error,
    take_rows,
)

SUMMARY_FILE = "summary.json"
ON_ERROR = ("raise", "skip")

_MIB = 1 << 20
# Dask settings of the cluster ``connect`` starts on this machine (a remote cluster's are its
# own: README shows them as environment variables). Each was measured on this job's tasks
# (benchmarks.dask_bench, one worker against the same task functions in one process).
LOCAL_CLUSTER_CONFIG = {
    # The statistical profiler (the dashboard's Profile page) samples every thread every
    # 10 ms: about 7% more CPU on KDD pieces.
    "distributed.worker.profile.enabled": False,
    # Dask starts workers with MALLOC_TRIM_THRESHOLD_ set, which also pins glibc's mmap
    # threshold at 128 KiB: every column array is then a fresh mmap whose pages fault in
    # when written and go back to the kernel when freed (3-4x the page faults of one process,
    # 15-20% more CPU). Blocks up to 32 MiB (the most glibc allows) come from the heap,
    # which keeps the freed ones for the next piece and still trims its top.
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 32 * _MIB,
    # pyarrow's own pool (mimalloc) keeps what the Parquet writer freed in its own segments,
    # so a worker's peak crept up piece after piece (30 MB over 10 KDD pieces); with the
    # system allocator it is flat after the first KDD piece (Zeek pieces still creep some).
    "distributed.nanny.pre-spawn-environ.ARROW_DEFAULT_MEMORY_POOL": "system",
    # Timers every process's event loop runs, whether or not a task does: the blocked-loop
    # check (every 20 ms), the system monitor behind the dashboard's graphs (0.5 s) and the
    # memory monitor (0.1 s; spilling, pausing and restarting a worker still follow it).
    # Together about 5% of a core for a one-worker cluster idle, 1.5-2% at these periods.
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "500ms",
}


class JobFailed(RuntimeError):
    """The job stopped: a bad file (with ``--on-error raise``), or the cluster failed."""


@dataclass
class JobOptions:
    inputs: list[str]
    out: Path
    model_dir: Path
    sensors: dict[str, str] = field(default_factory=dict)
    on_error: str = "raise"
    piece_mb: float = DEFAULT_PIECE_MB
    explain_all: bool = False
    alerts: bool = False
    # The allow-list entries in force (utils.batch.allowed.job_allowlist), applied to every
    # piece as it is scored; none: every anomaly is an alert.
    allowlist: tuple[AllowEntry, ...] = ()


@contextlib.contextmanager
def connect(scheduler: str | None = None, workers: int | None = None,
            memory_limit: str | None = None) -> Iterator[Any]:
    """A client of the cluster at ``scheduler``, or of a LocalCluster started here:
    ``workers`` processes (default: the usable cores), one thread each (Dask's nanny starts
    them with BLAS at one thread), ``memory_limit`` each (default: memory / workers)."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler, timeout="60s") as client:
            yield client
        return
    import dask

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        cluster = LocalCluster(n_workers=workers or cores or 1, threads_per_worker=1,
                               processes=True, memory_limit=memory_limit or "auto",
                               dashboard_address="127.0.0.1:0")
    with cluster, Client(cluster) as client:
        yield client


def run_job(options: JobOptions, client: Any,
            say: Callable[[str], None] = lambda message: None,
            progress_stream: Any = None) -> dict[str, Any]:
    """Score every input on ``client``'s cluster into ``options.out``; the summary."""
    if options.on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}")
    started = time.monotonic()
    inputs = discover(options.inputs, options.sensors)
    try:
        models = job_models(options.model_dir)
    except FileNotFoundError:
        raise JobFailed(f"no model in {options.model_dir} (model.joblib and "
                        "model_card.json)") from None
    except (OSError, ValueError) as exc:  # an unreadable card or model file
        raise JobFailed(f"cannot read the models in {options.model_dir}: "
                        f"{type(exc).__name__}: {exc}") from None
    _prepare_output(options.out)
    output = Output(str(Path(options.out).resolve()), options.explain_all, options.alerts,
                    tuple(options.allowlist))
    files = inputs.files
    piece_bytes = max(1, int(options.piece_mb * (1 << 20)))
    pieces = {i: cut(i, item, piece_bytes) for i, item in enumerate(files)}
    say(f"{len(files)} files ({len(inputs.kdd)} KDD, {len(inputs.streams)} Zeek sensor "
        f"streams), {sum(map(len, pieces.values()))} pieces; first pass (row counts, times)")

    began = time.monotonic()
    probes = _first_pass(client, [p for ps in pieces.values() for p in ps])
    first_pass = time.monotonic() - began
    skipped: dict[int, dict[str, Any]] = {}
    for file_id, file_pieces in pieces.items():
        error = _file_error(files[file_id].kind, [probes[p] for p in file_pieces])
        if error is not None:
            _bad_file(options, skipped, file_id, files[file_id].path, error)

    job = _Pass2(client, models, output)
    for file_id, item in enumerate(files):
        if item.kind == "kdd" and file_id not in skipped:
            job.add_kdd(pieces[file_id], [probes[p] for p in pieces[file_id]])
    for stream_id, stream in enumerate(inputs.streams):
        ids = [files.index(item) for item in stream.files]
        good = [i for i in ids if i not in skipped]
        job.add_stream(stream_id, stream.sensor,
                       [(pieces[i], [probes[p] for p in pieces[i]]) for i in good])
    say(f"scoring {job.total_rows:,} rows in {len(job.futures)} pieces on "
        f"{len(client.scheduler_info(n_workers=-1)['workers'])} workers")
    tallies = job.collect(options, skipped, progress_stream)

    summary = Summary()
    for file_id, parts in sorted(tallies.items()):
        if file_id not in skipped:
            for part in parts:
                summary.add(part)
    _clean_temp_files(options.out)
    input_kinds = {"kdd"} if inputs.kdd else set()
    input_kinds |= {"zeek"} if inputs.streams else set()
    own_kind = next(iter(models.refs))  # the model folder's own model comes first
    document = summary.as_json(
        files_scored=len(files) - len(skipped),
        skipped=[skipped[i] for i in sorted(skipped)],
        sensors=[{"sensor": s.sensor, "files": [f.path for f in s.files]}
                 for s in inputs.streams],
        model={"version": models.cards[own_kind].get("model_version"),
               "sha256": models.refs[own_kind].sha256},
        **models.as_json(input_kinds),
        output={"zeek": f"{ZEEK_DIR}/sensor=*/day=*/*.parquet", "kdd": f"{KDD_DIR}/*.parquet",
                **({"alerts": f"{ALERTS_DIR}/*.ndjson"} if options.alerts else {})},
        allowlist_entries=len(options.allowlist),
        first_pass_seconds=round(first_pass, 3),
        elapsed_seconds=round(time.monotonic() - started, 3),
        rows_per_second=round(summary.rows / max(time.monotonic() - started, 1e-9), 1),
    )
    _write_json(Path(options.out) / SUMMARY_FILE, document)
    return document


def _prepare_output(out: Path) -> None:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise JobFailed(f"{out} is not empty; give a new or empty folder for the output")
    out.mkdir(parents=True, exist_ok=True)


def _first_pass(client: Any, pieces: list[Piece]) -> dict[Piece, Probe | PieceError]:
    futures = client.map(probe, pieces, pure=False)
    try:
        results = client.gather(futures)
    except Exception as exc:
        raise JobFailed(f"first pass failed: {type(exc).__name__}: {exc}") from exc
    return dict(zip(pieces, results, strict=True))


def _file_error(kind: str, probes: list[Probe | PieceError]) -> InputFormatError | None:
    """A file's first error with its lines counted in the whole file, or None."""
    line = 1
    for result in probes:
        if isinstance(result, PieceError):
            return shift_error(result.error, line)
        line += result.newlines
    if kind == "zeek":
        reader = ZeekLogReader()  # the whole log's checks: records at all, fields anywhere
        reader.is_json = any(p.is_json for p in probes)
        reader.json_fields = set().union(*(p.json_fields for p in probes))
        try:
            reader.finish(sum(p.rows for p in probes))
        except InputFormatError as exc:
            return exc
    elif sum(p.rows for p in probes) == 0:
        return InputFormatError("no_records", "the file holds no records")
    return None


def _bad_file(options: JobOptions, skipped: dict[int, dict[str, Any]], file_id: int,
              path: str, error: InputFormatError) -> None:
    if options.on_error == "raise":
        raise JobFailed(f"{path}: {error} (use --on-error skip to score the other files)")
    skipped[file_id] = {"file": path, "error_type": error.error_type, "message": str(error),
                        "problems": error.problems}


class _Pass2:
    """The second pass's tasks, submitted piece by piece in stream order (Dask runs earlier
    submissions first), and their results as they come."""

    def __init__(self, client: Any, models: JobModels, output: Output) -> None:
        self.client = client
        self.models = models
        self.output = output
        self.futures: dict[Any, tuple[Piece, int]] = {}  # future -> piece, its first line
        self.pieces_per_file: dict[int, int] = {}
        self.total_rows = 0
        self.progress: Progress | None = None

    def add_kdd(self, pieces: list[Piece], probes: list[Probe]) -> None:
        line, row = 1, 0
        for piece, found in zip(pieces, probes, strict=True):
            future = self.client.submit(score_kdd, piece, line, row, found.rows,
                                        self.models.ref_for("kdd"), self.output, pure=False)
            self.futures[future] = (piece, line)
            line += found.newlines
            row += found.rows
        self.pieces_per_file[pieces[0].file_id] = len(pieces)
        self.total_rows += row

    def add_stream(self, stream_id: int, sensor: str,
                   files: list[tuple[list[Piece], list[Probe]]]) -> None:
        flat = [(piece, found) for pieces, probes in files
                for piece, found in zip(pieces, probes, strict=True)]
        if not flat:
            return
        fmt = ZeekFormat(frozenset().union(*(found.json_fields for _, found in flat)))
        ref = self.models.ref_for("zeek")
        halos = zeek_halos([found.ts for _, found in flat], window_lookback())
        for _, found in flat:
            found.ts = None  # the plan is made: the client keeps no per-row data
        loads: dict[int, Any] = {}
        stream_row = 0
        starts = []
        file_row: dict[int, int] = {}
        for piece, found in flat:
            starts.append((stream_row, file_row.get(piece.file_id, 0)))
            stream_row += found.rows
            file_row[piece.file_id] = file_row.get(piece.file_id, 0) + found.rows

        def load(k: int) -> Any:
            if k not in loads:
                piece = flat[k][0]
                loads[k] = self.client.submit(load_zeek, piece, fmt, *starts[k], pure=False)
            return loads[k]

        for q, (piece, _) in enumerate(flat):
            table = load(q)
            context = [self.client.submit(take_rows, load(p), rows, pure=False)
                       for p, rows in sorted(halos[q].items())]
            future = self.client.submit(score_zeek, table, context, piece, stream_id, sensor,
                                        ref, self.output, pure=False)
            self.futures[future] = (piece, 1)
            self.pieces_per_file[piece.file_id] = self.pieces_per_file.get(piece.file_id,
                                                                            0) + 1
        self.total_rows += stream_row

    def collect(self, options: JobOptions, skipped: dict[int, dict[str, Any]],
                progress_stream: Any) -> dict[int, list[Tally]]:
        from distributed import as_completed

        self.progress = Progress(self.total_rows, len(self.pieces_per_file),
                                 stream=progress_stream)
        left = dict(self.pieces_per_file)
        tallies: dict[int, list[Tally]] = {}
        try:
            for future in as_completed(list(self.futures)):
                piece, first_line = self.futures.pop(future)
                try:
                    result = future.result()
                except Exception as exc:
                    raise JobFailed(f"{piece.path} (piece {piece.index}): "
                                    f"{type(exc).__name__}: {exc}") from exc
                left[piece.file_id] -= 1
                if isinstance(result, PieceError):
                    error = shift_error(result.error, first_line)
                    _bad_file(options, skipped, piece.file_id, piece.path, error)
                    self.progress.advance(0, int(left[piece.file_id] == 0))
                    continue
                tallies.setdefault(piece.file_id, []).append(result)
                self.progress.advance(result.rows, int(left[piece.file_id] == 0))
        except BaseException:
            for future in self.futures:
                future.cancel()
            raise
        finally:
            self.progress.finish()
        for file_id in skipped:  # a file found bad late: drop what its other pieces wrote
            for part in tallies.get(file_id, []):
                for path in part.written:
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(path)
        return tallies


def _clean_temp_files(out: Path) -> None:
    """Temp files of writes that a killed worker left half done (their task ran again)."""
    for path in Path(out).rglob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    for folder in sorted(Path(out).rglob("*"), reverse=True):  # folders left empty by skips
        if folder.is_dir() and not any(folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)


def _write_json(path: Path, document: dict[str, Any]) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(document, indent=2, default=_jsonable) + "\n")
    os.replace(temp, path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

