"""Float32 distance products against float64, on the validation split of KDDTrain+.

Scoring computes every centroid product in float32 (utils/detector.py). This checks what
that costs in quality and what float64 would cost in time, on the rows the threshold is
chosen on (the held-out split of train_model.py: utils.training.split_validation, 20%,
seed 0), never on KDDTest+:
- verdicts (score above the model's threshold) of float32 scoring against exact float64
  distances (each model's centroids in float64, the same scales, weights and threshold);
- validation AUROC of both;
- time of the distances on KDDTest+ on one thread (CPU time, best of 9): the scoring code
  as it is, and the same code with every array in float64.

    python -m benchmarks.precision [--model-dir models]
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from settings import script_settings
from utils import detector as detector_module
from utils.metrics import auroc_score
from utils.model_store import load_model
from utils.parallel import single_threaded_blas
from utils.readers import read_records
from utils.training import row_categories, split_validation


def exact_distances(detector, X: np.ndarray, rows: int = 2048) -> np.ndarray:
    """Distance to the nearest centroid of each model, all in float64."""
    X = X.astype(np.float64)
    out = np.empty((len(X), len(detector.estimators_)))
    for j, estimator in enumerate(detector.estimators_):
        centers = estimator.cluster_centers_.astype(np.float64)
        sq = (centers**2).sum(axis=1)
        for lo in range(0, len(X), rows):
            x = X[lo:lo + rows]
            d2 = (x**2).sum(axis=1)[:, None] + sq[None] - 2.0 * x @ centers.T
            out[lo:lo + rows, j] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def cpu_best(run, repeats: int = 9) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best


def float64_distances(detector):
    """The scoring code's _model_distances with every float32 array in float64."""
    source = textwrap.dedent(inspect.getsource(type(detector)._model_distances))
    namespace = dict(vars(detector_module))
    exec(source.replace("np.float32", "np.float64"), namespace)  # our own source, retyped
    function = namespace["_model_distances"]
    cached = {name: getattr(detector, name).astype(np.float64)
              for name in ("_dense_w", "_pattern_w", "_center_sq")}

    def run(X: np.ndarray) -> np.ndarray:
        saved = {name: getattr(detector, name) for name in cached}
        try:
            for name, value in cached.items():
                setattr(detector, name, value)
            return function(detector, X)
        finally:
            for name, value in saved.items():
                setattr(detector, name, value)

    return run


def measure(model_dir: Path, train: Path, test: Path) -> dict:
    single_threaded_blas()
    model = load_model(model_dir)
    detector = model.detector
    records = read_records(train)
    cats = row_categories(records)
    validation = split_validation(cats, 0.2, 0)
    X = model.features.transform(records.features[validation])
    attack = cats[validation] != "Normal"
    fast = detector.anomaly_score(X)
    exact = detector._combine(exact_distances(detector, X))
    threshold = detector.threshold_
    differ = int(((fast > threshold) != (exact > threshold)).sum())
    X_test = model.features.transform_arrays(read_records(test).arrays)
    in_float64 = float64_distances(detector)
    return {
        "model_version": model.version, "validation_rows": int(validation.sum()),
        "verdicts_differing": differ, "verdict_agreement": 1 - differ / int(validation.sum()),
        "auroc_float32": auroc_score(attack, fast), "auroc_float64": auroc_score(attack, exact),
        "max_relative_score_difference": float(np.max(np.abs(fast - exact) / exact)),
        "distances_cpu_seconds_float32": cpu_best(lambda: detector._model_distances(X_test)),
        "distances_cpu_seconds_float64": cpu_best(lambda: in_float64(X_test)),
    }


def main(argv: list[str] | None = None) -> int:
    config = script_settings()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    result = measure(args.model_dir or config["MODEL_DIR"], config["DATA_DIR"] / "KDDTrain+.txt",
                     config["DATA_DIR"] / "KDDTest+.txt")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
