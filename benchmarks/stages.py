"""Where one KDDTest+ scoring call spends its time, stage by stage, on one thread.

The end-to-end figure in ``benchmarks.throughput`` says how fast the whole path is; this
says which stage to blame when it misses a target. Each stage is timed on its own input, in
interleaved rounds (best of ``--rounds``), so the stages share the machine's load:

- ``read_csv``: pandas' bare ``read_csv`` of the same bytes (the yardstick of the targets);
- ``parse``: ``utils.readers.read_records`` (checked fields, labels, feature arrays);
- ``features``: the model's feature transformer on the parsed arrays;
- ``distances``: the detector's distances to the nearest centroid of each K-means model
  (the centroid products, ``KMeansEnsembleDetector._model_distances``);
- ``verdicts``: combining the distances into scores, votes, confidence and severity;
- ``explain``: the top features of the flagged rows the JSON answer describes;
- ``metrics``: accuracy figures against the file's labels;
- ``pipeline``: ``utils.scoring.iter_scored_chunks`` on one thread, the path the API runs;
- ``request``: ``POST /api/predict`` through Flask's test client in this process (hashing,
  the registry write, summary, JSON), without a network or a second process.

    python -m benchmarks.stages [--rounds 15] [--model-dir models] [--data data/KDDTest+.txt]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROUNDS = 15


def measure_stages(data_path: Path, model_dir: Path, rounds: int = ROUNDS) -> dict:
    """Best-of-``rounds`` seconds per stage (one thread), and each as a share of the request."""
    import pandas as pd

    from server import create_app
    from utils.metrics import evaluate
    from utils.model_store import load_model
    from utils.parallel import single_threaded_blas
    from utils.readers import read_records
    from utils.scoring import explain, iter_scored_chunks

    single_threaded_blas()
    model = load_model(model_dir)
    payload = data_path.read_bytes()
    records = read_records(payload)
    X = model.features.transform_arrays(records.arrays)
    detector = model.detector
    distances = detector._model_distances(X)
    flagged = detector.analyse(X, check_input=False)["is_anomaly"]
    scores = detector.anomaly_score(X)
    explained = records.features[flagged].iloc[:100]  # the answer explains its top rows

    work = Path(tempfile.mkdtemp(prefix="anomalyze-stages-"))
    app = create_app({"MODEL_DIR": model_dir, "DATA_DIR": work, "SCORING_THREADS": 1,
                      "RETRAIN_THRESHOLD": 0})
    client = app.test_client()

    def post() -> None:
        answer = client.post("/api/predict", data={
            "file": (io.BytesIO(payload), data_path.name)}, content_type="multipart/form-data")
        if answer.status_code != 200:
            raise RuntimeError(f"POST /api/predict answered {answer.status_code}")

    stages: dict[str, Callable[[], object]] = {
        "read_csv": lambda: pd.read_csv(io.BytesIO(payload), header=None),
        "parse": lambda: read_records(payload),
        "features": lambda: model.features.transform_arrays(records.arrays),
        "distances": lambda: detector._model_distances(X),
        "verdicts": lambda: (detector._combine(distances), detector.confidence(scores),
                             detector.severity(scores)),
        "explain": lambda: explain(model, explained),
        "metrics": lambda: evaluate(records.labels, flagged, scores),
        "pipeline": lambda: sum(len(p) for _, p in iter_scored_chunks(model, payload,
                                                                      threads=1)),
        "request": post,
    }
    times: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(rounds):
        for name, run in stages.items():
            began = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - began)
    best = {name: min(runs) for name, runs in times.items()}
    return {"file": data_path.name, "rows": len(records), "rounds": rounds, "threads": 1,
            "best_seconds": best,
            "share_of_request": {name: best[name] / best["request"] for name in best},
            "ratio_to_read_csv": best["read_csv"] / best["pipeline"]}


def main(argv: list[str] | None = None) -> int:
    from settings import script_settings

    config = script_settings()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data", type=Path, default=config["DATA_DIR"] / "KDDTest+.txt")
    parser.add_argument("--model-dir", type=Path, default=config["MODEL_DIR"])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    result = measure_stages(args.data, args.model_dir, args.rounds)
    for name, seconds in result["best_seconds"].items():
        print(f"{name:>10} {seconds * 1000:8.1f} ms  "
              f"{result['share_of_request'][name]:6.1%} of the request", file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
