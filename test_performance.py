"""Score a labeled file with the current model and print detection metrics and speed.

    python test_performance.py [--data data/KDDTest+.txt] [--model-dir models] [--json]

Speed is end-to-end in-process: parse + features + score, from the file's bytes in memory, on
the path the API takes for an upload (utils.scoring.iter_scored_chunks, on every core).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from settings import script_settings
from utils.cli import format_metrics, progress
from utils.metrics import evaluate
from utils.model_store import ModelLoadError, load_model
from utils.parallel import scoring_threads, single_threaded_blas
from utils.readers import InputFormatError, read_records
from utils.scoring import iter_scored_chunks, score_records


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="default: data/KDDTest+.txt")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (best one is reported)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    config = script_settings()
    args = parse_args(argv)
    single_threaded_blas()  # as the API scores (utils/parallel.py)
    path = args.data or config["DATA_DIR"] / "KDDTest+.txt"
    threads = config["SCORING_THREADS"] or scoring_threads()
    try:
        model = load_model(args.model_dir or config["MODEL_DIR"])
        payload = path.read_bytes()
        records = read_records(payload)
    except (ModelLoadError, InputFormatError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not records.has_labels:
        print(f"error: {path} has no label column; metrics need labels", file=sys.stderr)
        return 2
    scored = score_records(model, records)
    best = float("inf")
    for _ in range(max(1, args.repeat)):
        started = time.perf_counter()
        rows = sum(len(part) for _, part in iter_scored_chunks(model, payload, threads=threads))
        best = min(best, time.perf_counter() - started)
    assert rows == len(records)
    metrics = evaluate(records.labels, scored.is_anomaly, scored.anomaly_score)
    speed = len(records) / best
    if args.json:
        print(json.dumps({
            "accuracy": metrics["accuracy"], "precision": metrics["precision"],
            "recall": metrics["recall"], "f1": metrics["f1"], "auroc": metrics["auroc"],
            "samples_per_second": speed, "rows": len(records)}))
        return 0
    progress(f"model {model.version}, file {path.name}")
    print(format_metrics(metrics))
    print(f"speed              {speed:,.0f} samples/s end-to-end "
          f"(parse + features + score, best of {args.repeat}, "
          f"{threads} threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
