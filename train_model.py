"""Train the detector and write models/ (model.joblib + model_card.json) atomically.

    python train_model.py [--train data/KDDTrain+.txt] [--seed 0] [--model-dir models]
    python train_model.py --job ID [--model-dir models] [--data-dir data]

--job runs one baseline job that an admin queued through the API (POST /api/models/baseline):
the API starts it in the background; exit code 0 when the job ended (promoted, held,
reported or rejected), 1 when it failed, 4 when another process runs it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from settings import script_settings
from utils.cli import format_metrics, progress
from utils.dataset import sha256_file
from utils.model_store import save_model
from utils.readers import InputFormatError, read_records
from utils.thresholds import RULES
from utils.training import DEFAULT_N_CLUSTERS, train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--train", type=Path, default=None,
                        help="labeled KDD/NSL-KDD file or Zeek conn.log "
                        "(default: data/KDDTrain+.txt)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="where to write the model (default: $ANOMALYZE_MODEL_DIR or models/)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (split and K-means)")
    parser.add_argument("--k", default=",".join(map(str, DEFAULT_N_CLUSTERS)),
                        help="comma-separated k of the 5 K-means models")
    parser.add_argument("--threshold-rule", choices=RULES, default="balanced-f1")
    parser.add_argument("--target-fpr", type=float, default=None,
                        help="with --threshold-rule fpr: false-positive rate on validation normals")
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    parser.add_argument("--job", type=int, default=None,
                        help="run the queued baseline job with this id (the API starts it)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="with --job: the data folder holding the registry "
                        "(default: $ANOMALYZE_DATA_DIR or data/)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    config = script_settings()
    args = parse_args(argv)
    if args.job is not None:
        from utils.baseline.jobs import main_job

        return main_job(args.job, args.model_dir or config["MODEL_DIR"],
                        args.data_dir or config["DATA_DIR"],
                        database_url=config["DATABASE_URL"], store_url=config["STORE_URL"],
                        max_decompressed_bytes=int(config["MAX_DECOMPRESSED_MB"] * (1 << 20)))
    path = args.train or config["DATA_DIR"] / "KDDTrain+.txt"
    model_dir = args.model_dir or config["MODEL_DIR"]
    if not path.is_file():
        print(f"error: {path} not found (run `make data`, or pass --train)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    progress(f"reading {path}")
    try:
        records = read_records(path)
    except InputFormatError as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    progress(f"{len(records):,} rows ({records.input_kind}); hashing the file")
    source = {"file": path.name, "sha256": sha256_file(path)}
    result = train(records, n_clusters=[int(k) for k in args.k.split(",")],
                   random_state=args.seed, validation_fraction=args.validation_fraction,
                   threshold_rule=args.threshold_rule, target_fpr=args.target_fpr,
                   source=source, progress=progress)
    progress(f"writing {model_dir} (atomically)")
    save_model(result.pipeline, result.card, model_dir)
    card = result.card
    print(f"model {card['model_version']}: threshold {card['threshold']:.4f} "
          f"({card['threshold_rule']}), trained in {time.perf_counter() - started:.1f} s")
    if card["validation_metrics"]:
        print(f"validation (held-out rows of {path.name}; never KDDTest+):")
        print(format_metrics(card["validation_metrics"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
