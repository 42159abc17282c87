"""Choose the decision threshold on training data only and update the model.

    python optimize_threshold.py [--data data/KDDTrain+.txt] [--rule balanced-f1|f1|fpr]
                                 [--target-fpr 0.05] [--dry-run]

On the model's own training file only the held-out validation split is used (the rows the
model never saw); another labeled file is used whole. KDDTest+ is refused: a threshold tuned on
the test set makes its accuracy meaningless.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from settings import script_settings
from utils.baseline.slices import held_out_mask
from utils.cli import format_metrics, progress
from utils.dataset import CHECKSUMS, sha256_file
from utils.metrics import evaluate
from utils.model_store import (
    ModelLoadError,
    load_model,
    new_version,
    save_model,
    utc_now,
)
from utils.readers import InputFormatError, read_records
from utils.thresholds import RULES, choose_threshold, tradeoff_table
from utils.training import row_categories

TABLE_QUANTILES = (0.80, 0.85, 0.88, 0.90, 0.92, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="default: data/KDDTrain+.txt")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--rule", choices=RULES, default=None,
                        help="default: balanced-f1, or fpr when --target-fpr is given")
    parser.add_argument("--target-fpr", type=float, default=None)
    parser.add_argument("--dry-run", action="store_true", help="print, do not update the model")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    config = script_settings()
    args = parse_args(argv)
    rule = args.rule or ("fpr" if args.target_fpr is not None else "balanced-f1")
    path = args.data or config["DATA_DIR"] / "KDDTrain+.txt"
    model_dir = args.model_dir or config["MODEL_DIR"]
    try:
        digest = sha256_file(path)
        if digest == CHECKSUMS["KDDTest+.txt"]:
            print("error: refusing KDDTest+: thresholds are chosen on training data only",
                  file=sys.stderr)
            return 2
        model = load_model(model_dir)
        records = read_records(path)
    except (ModelLoadError, InputFormatError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not records.has_labels:
        print("error: the file has no labels", file=sys.stderr)
        return 2
    try:
        mask = held_out_mask(records, model.card, digest)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    same_file = model.card.get("training_data", {}).get("sha256") == digest
    split = ("threshold slice of the baseline period" if model.card.get("input_kind") == "zeek"
             else "held-out split of the training file")
    progress(f"{int(mask.sum()):,} validation rows ({split if same_file else 'whole file'})")
    cats = row_categories(records)[mask]
    features = records.features[mask]
    scores = model.detector.anomaly_score(model.features.transform(features))
    try:
        threshold = choose_threshold(scores, cats, rule, args.target_fpr)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    normal_scores = scores[cats == "Normal"]
    candidates = np.unique(np.r_[np.quantile(normal_scores, TABLE_QUANTILES), threshold])
    print(f"{'threshold':>10} {'FPR':>7} {'recall':>7} {'F1':>7} {'bal.F1':>7} "
          f"{'DoS':>6} {'Probe':>6} {'R2L':>6} {'U2R':>6}")
    for row in tradeoff_table(scores, cats, candidates):
        mark = "  <- chosen" if row["threshold"] == threshold else ""
        print(f"{row['threshold']:10.4f} {row['fpr']:7.2%} {row['recall']:7.2%} "
              f"{row['f1']:7.2%} {row['balanced_f1']:7.2%} "
              + " ".join(f"{row.get('recall_' + c, float('nan')):6.1%}"
                         for c in ("DoS", "Probe", "R2L", "U2R")) + mark)
    metrics = evaluate(records.labels[mask], scores > threshold, scores)
    print(f"\nrule {rule}: threshold {threshold:.4f} (was {model.detector.threshold_:.4f})")
    print(format_metrics(metrics))
    if args.dry_run:
        return 0
    detector = model.detector.set_threshold(threshold)
    card = dict(model.card)
    created = utc_now()
    card.update({
        "model_version": new_version(created, card["model_version"].split("-")[-1]),
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "threshold": threshold, "threshold_rule": rule, "target_fpr": args.target_fpr,
        "severity_edges": [float(e) for e in detector.severity_edges()],
        "validation_metrics": metrics,
    })
    save_model(model.pipeline, card, model_dir)
    print(f"model updated: {card['model_version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
