"""Zeek conn.log figures: feature derivation speed, detection on a temporal split, and the
memory a gunicorn worker needs for a ~1 GB (inflated) gzip upload.

Quality uses ctu-botnet-4 honestly in time: a model is trained on the first half of the
connections by ``ts`` (Benign -> normal, Malicious -> attack) and evaluated on the second
half, which it never saw. The first half holds Malicious rows too, so utils.training.train
makes its usual stratified 80/20 split *of the first half* and picks the threshold on that
20% by the balanced-F1 rule; the second half decides nothing. The NSL-KDD model from models/
is scored on the same second half for comparison.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import requests

from benchmarks.bench_http import gunicorn, peak_rss_mb, rss_mb, worker_pids
from benchmarks.quality import thin_roc
from utils.cli import progress
from utils.metrics import evaluate
from utils.model_store import LoadedModel
from utils.readers import ParsedRecords, iter_record_chunks, read_records
from utils.readers.zeek import read_connections
from utils.scoring import score_records
from utils.training import DEFAULT_N_CLUSTERS, train
from utils.zeek_features import derive_kdd_features

SYNTHETIC_ROWS = 500_000
REPEATS = 3
SEED = 0
# The memory benchmark's upload inflates to this (the default decompressed limit is 1024 MiB).
LARGE_LOG_MIB = 1000
_BLOCK_ROWS, _BLOCK_COPIES = 50, 40
_LARGE_UPLOAD_TIMEOUT = 900  # seconds; gunicorn's own worker timeout is raised to match
_WORKERS = 2

Progress = Callable[[str], None]


def synthetic_log(data: bytes, rows: int) -> bytes:
    """A conn.log of ``rows`` rows: the input's rows repeated, each copy shifted later in time
    by the input's time span (plus a gap), so windows never mix copies."""
    lines = data.split(b"\n")
    header = [line for line in lines if line.startswith(b"#") and not line.startswith(b"#close")]
    body = [line.split(b"\t", 1) for line in lines if line and not line.startswith(b"#")]
    times = np.array([float(ts) for ts, _ in body])
    span = float(times.max() - times.min()) + 10.0
    out = list(header)
    for i in range(rows):
        copy, row = divmod(i, len(body))
        out.append(b"%.6f\t%s" % (times[row] + copy * span, body[row][1]))
    return b"\n".join(out) + b"\n"


def _best_of(repeats: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def derivation_speed(name: str, data: bytes, repeats: int = REPEATS) -> dict:
    """Best-of-``repeats`` time of derive_kdd_features alone, of the whole-file Zeek reader,
    and of the chunked reader the API uses (two passes once a log is over one chunk)."""
    conns = read_connections(data)
    derive = _best_of(repeats, lambda: derive_kdd_features(conns))
    reader = _best_of(repeats, lambda: read_records(data))
    chunked = _best_of(repeats, lambda: sum(len(part) for part in iter_record_chunks(data)))
    return {"input": name, "rows": len(conns), "log_mb": len(data) / 2**20,
            "derive_seconds": derive, "derive_rows_per_second": len(conns) / derive,
            "reader_seconds": reader, "reader_rows_per_second": len(conns) / reader,
            "chunked_seconds": chunked, "chunked_rows_per_second": len(conns) / chunked}


def write_large_log(sample: Path, out: Path, inflated_bytes: int) -> dict:
    """A gzip conn.log at ``out`` inflating to about ``inflated_bytes``, from ``sample``.

    The sample's rows are replayed in blocks of _BLOCK_ROWS, each block written _BLOCK_COPIES
    times in a row, every copy later in time by the block's span plus 10 s. So gzip finds
    each copy in its 32 KB window and the upload stays small, as an attacker's would (about
    11:1; the reported case was 7 MB for 1 GB), while the rows keep the sample's out-of-order
    times within a block.
    """
    lines = sample.read_bytes().split(b"\n")
    header = b"".join(line + b"\n" for line in lines
                      if line.startswith(b"#") and not line.startswith(b"#close"))
    compressor = zlib.compressobj(1, wbits=31)
    written, rows = len(header), 0
    with open(out, "wb") as handle:
        handle.write(compressor.compress(header))
        for text, count in _replayed_copies(lines):
            if written + len(text) > inflated_bytes:
                break
            handle.write(compressor.compress(text))
            written += len(text)
            rows += count
        handle.write(compressor.flush())
    return {"rows": rows, "inflated_mb": written / 2**20, "gzip_mb": out.stat().st_size / 2**20}


def _replayed_copies(lines: list[bytes]) -> Iterator[tuple[bytes, int]]:
    """Endless copies of the sample's blocks (text, rows), later and later in time."""
    body = [line.split(b"\t", 1) for line in lines if line and not line.startswith(b"#")]
    times = np.array([float(ts) for ts, _ in body])
    offset = 0.0
    while True:
        for start in range(0, len(body), _BLOCK_ROWS):
            block = times[start:start + _BLOCK_ROWS]
            rest = [row for _, row in body[start:start + _BLOCK_ROWS]]
            span = float(block.max() - block.min()) + 10.0
            for copy in range(_BLOCK_COPIES):
                shifted = (block + (offset - block.min() + copy * span)).tolist()
                yield (b"".join(b"%.6f\t%s\n" % pair
                                for pair in zip(shifted, rest, strict=True)), len(rest))
            offset += _BLOCK_COPIES * span


def _booted_workers(master: int, count: int, deadline: float = 60.0) -> list[int]:
    """The master's worker pids once all ``count`` have started (the first one to boot
    answers /health while the others may still be forking)."""
    end = time.monotonic() + deadline
    while len(pids := worker_pids(master)) < count:
        if time.monotonic() > end:
            raise RuntimeError(f"only {len(pids)} of {count} gunicorn workers started")
        time.sleep(0.1)
    return pids


def large_upload_memory(sample: Path, progress: Progress = print,
                        inflated_mib: int = LARGE_LOG_MIB, *, answer: str = "json",
                        workers: int = 2) -> dict:
    """POST a gzip conn.log inflating to ``inflated_mib`` MiB to a real gunicorn (``workers``
    x 4 threads, default limits) for a JSON or CSV ``answer``; the serving worker's RSS
    before and its peak (VmHWM). A CSV answer is read as it streams and only counted."""
    tmp = Path(tempfile.mkdtemp(prefix="anomalyze-zeek-memory-"))
    try:
        log = tmp / "conn.log.gz"
        progress(f"zeek memory: writing a gzip conn.log inflating to {inflated_mib} MiB")
        result = write_large_log(sample, log, inflated_mib << 20)
        env = {"GUNICORN_TIMEOUT": str(_LARGE_UPLOAD_TIMEOUT)}
        with gunicorn(workers, 4, tmp / "data", tmp / "gunicorn.log", env) as (url, master):
            pids = _booted_workers(master.pid, workers)
            before = {pid: rss_mb(pid) for pid in pids}
            progress(f"zeek memory: POST /api/predict?format={answer} with "
                     f"{result['rows']:,} rows ({result['gzip_mb']:.1f} MB gzip)")
            started = time.perf_counter()
            with open(log, "rb") as handle:
                response = requests.post(f"{url}/api/predict?format={answer}",
                                         files={"file": ("conn.log.gz", handle)}, stream=True,
                                         timeout=(5, _LARGE_UPLOAD_TIMEOUT))
                summary = _answer_summary(response, answer)
            seconds = time.perf_counter() - started
            peaks = {pid: peak_rss_mb(pid) for pid in pids}
            if sorted(worker_pids(master.pid)) != sorted(pids):
                raise RuntimeError(f"a worker was replaced during the upload:\n"
                                   f"{(tmp / 'gunicorn.log').read_text()[-2000:]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    serving = max(pids, key=lambda pid: peaks[pid] - before[pid])
    result |= {"answer": answer, "status": response.status_code, "seconds": seconds,
               **summary,
               "workers": [{"pid": pid, "rss_before_mb": before[pid], "peak_rss_mb": peaks[pid]}
                           for pid in pids],
               "worker_rss_before_mb": before[serving], "worker_peak_rss_mb": peaks[serving],
               "worker_growth_mb": peaks[serving] - before[serving],
               "server": f"gunicorn.conf.py, {workers} workers x 4 threads, "
                         f"GUNICORN_TIMEOUT={_LARGE_UPLOAD_TIMEOUT}"}
    progress(f"zeek memory: {response.status_code} in {seconds:.0f} s; worker RSS "
             f"{before[serving]:.0f} -> peak {peaks[serving]:.0f} MB")
    return result


def _answer_summary(response: requests.Response, answer: str) -> dict:
    if answer == "csv" and response.status_code == 200:
        lines = size = 0
        for block in response.iter_content(1 << 20):
            lines += block.count(b"\n")
            size += len(block)
        return {"total_samples": lines - 1, "csv_mb": size / 2**20, "error": None}
    body = response.json()
    return {"total_samples": body.get("summary", {}).get("total_samples"),
            "error": body.get("error")}


def main(argv: list[str] | None = None) -> int:
    """The memory measurement alone, printed as JSON."""
    from settings import script_settings

    script_settings()  # a mistyped setting stops here, as in every script
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--sample", type=Path, required=True, help="a Zeek TSV conn.log")
    parser.add_argument("--inflated-mib", type=int, default=LARGE_LOG_MIB)
    parser.add_argument("--answer", choices=("json", "csv"), default="json")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    result = large_upload_memory(args.sample, progress, args.inflated_mib,
                                 answer=args.answer, workers=args.workers)
    print(json.dumps(result, indent=1))
    return 0


def subset(records: ParsedRecords, rows: np.ndarray) -> ParsedRecords:
    """The given row positions of ``records`` (renumbered from 0)."""

    def take(frame):
        return None if frame is None else frame.iloc[rows].reset_index(drop=True)

    return ParsedRecords(features=take(records.features), labels=take(records.labels),
                         difficulty=take(records.difficulty), identity=take(records.identity),
                         input_kind=records.input_kind)


def temporal_split(records: ParsedRecords) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the earlier and the later half by ``ts`` (ties keep file order)."""
    order = np.argsort(records.identity["ts"].to_numpy(), kind="stable")
    half = len(order) // 2
    return order[:half], order[half:]


def _label_counts(records: ParsedRecords) -> dict[str, int]:
    counts = records.labels.fillna("(unknown)").map(
        lambda label: "normal" if label == "normal" else label if label == "(unknown)"
        else "attack").value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def temporal_quality(path: Path, nslkdd_model: LoadedModel, progress: Progress = print) -> dict:
    records = read_records(path)
    first_rows, second_rows = temporal_split(records)
    first, second = subset(records, first_rows), subset(records, second_rows)
    ts = records.identity["ts"].to_numpy()
    progress(f"zeek: training on the first half ({len(first):,} rows, ts <= "
             f"{ts[first_rows].max():,.0f} s)")
    started = time.perf_counter()
    result = train(first, n_clusters=DEFAULT_N_CLUSTERS, random_state=SEED,
                   source={"file": path.name, "part": "first half by ts"})
    train_seconds = time.perf_counter() - started
    pipeline = result.pipeline
    zeek_scores = pipeline[-1].anomaly_score(pipeline[0].transform(second.features))
    zeek_flagged = zeek_scores > pipeline[-1].threshold_
    nsl = score_records(nslkdd_model, second)
    known = second.labels.notna().to_numpy()
    y = (second.labels[known].astype(str) != "normal").to_numpy()
    card = result.card
    return {
        "file": path.name,
        "split": "rows sorted by ts (stable); first half trains, second half evaluates",
        "unknown_label_rows": int(records.labels.isna().sum()),
        "first_half": {"rows": len(first), "labels": _label_counts(first),
                       "ts_max": float(ts[first_rows].max())},
        "second_half": {"rows": len(second), "labels": _label_counts(second),
                        "ts_min": float(ts[second_rows].min())},
        "zeek_model": {
            "k_values": card["k_values"], "threshold": card["threshold"],
            "threshold_rule": card["threshold_rule"],
            "threshold_from": "20% stratified validation split of the first half",
            "fit_rows": card["training_data"]["fit_rows"],
            "validation_rows": card["training_data"]["validation_rows"],
            "train_seconds": train_seconds,
            "validation_metrics": card["validation_metrics"],
            "second_half": evaluate(second.labels, zeek_flagged, zeek_scores),
            "roc": thin_roc(y, zeek_scores[known]),
        },
        "nslkdd_model": {
            "model_version": nslkdd_model.version, "threshold": nslkdd_model.detector.threshold_,
            "second_half": evaluate(second.labels, nsl.is_anomaly, nsl.anomaly_score),
            "roc": thin_roc(y, nsl.anomaly_score[known]),
        },
    }


def run_zeek(path: Path, nslkdd_model: LoadedModel, progress: Progress = print) -> dict:
    data = path.read_bytes()
    progress(f"zeek: derivation speed on {path.name}")
    speed = [derivation_speed(path.name, data)]
    progress(f"zeek: building a {SYNTHETIC_ROWS:,}-row synthetic conn.log in memory")
    synthetic = synthetic_log(data, SYNTHETIC_ROWS)
    progress("zeek: derivation speed on the synthetic log")
    speed.append(derivation_speed(f"synthetic ({path.name} repeated, shifted in time)",
                                  synthetic))
    del synthetic
    return {"speed": speed, "quality": temporal_quality(path, nslkdd_model, progress)}


if __name__ == "__main__":
    sys.exit(main())
