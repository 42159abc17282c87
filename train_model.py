"""Train the detector and write models/ (model.joblib + model_card.json) atomically.

    python train_model.py [--train data/KDDTrain+.txt] [--seed 0] [--model-dir models]

A Zeek conn.log trains a baseline of your own network (utils/baseline/, docs/ZEEK.md
"Baselines") into the Zeek model's folder (models/zeek/): its health report is printed
first, and hosts or time ranges can be left out:

    python train_model.py --train conn.log --report-only
    python train_model.py --train conn.log --exclude-host 10.0.0.5 \\
        --exclude-range 2026-11-20T00:00Z/2026-11-20T06:00Z

    python train_model.py --job ID [--model-dir models] [--data-dir data]

--job runs one baseline job that an admin queued through the API (POST /api/models/baseline):
the API starts it in the background; exit code 0 when the job ended (promoted, held,
reported or rejected), 1 when it failed, 4 when another process runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from settings import script_settings
from utils.baseline.exclusions import Exclusions
from utils.baseline.gate import baseline_gate
from utils.baseline.health import format_report, health_report
from utils.baseline.training import DEFAULT_TARGET_FPR, train_baseline
from utils.cli import format_metrics, progress
from utils.dataset import sha256_file
from utils.model_store import LocalModelStore, ModelLoadError, kind_model_dir, save_model
from utils.readers import InputFormatError, ParsedRecords, read_records
from utils.thresholds import RULES
from utils.training import DEFAULT_N_CLUSTERS, train

# Options that only mean something for one input kind: naming one for the other is an error.
_KDD_ONLY = ("threshold_rule", "validation_fraction")
_ZEEK_ONLY = ("exclude_host", "exclude_range", "report_only")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--train", type=Path, default=None,
                        help="labeled KDD/NSL-KDD file or Zeek conn.log "
                        "(default: data/KDDTrain+.txt)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="where to write the model (default: $ANOMALYZE_MODEL_DIR or "
                        "models/); a Zeek model goes to its zeek/ folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (split and K-means)")
    parser.add_argument("--k", default=None,
                        help="comma-separated k of the 5 K-means models (default: KDD "
                        f"{','.join(map(str, DEFAULT_N_CLUSTERS))}; Zeek: the k rule)")
    parser.add_argument("--threshold-rule", choices=RULES, default=None,
                        help="KDD input (default balanced-f1)")
    parser.add_argument("--target-fpr", type=float, default=None,
                        help="KDD with --threshold-rule fpr: false-positive rate on validation "
                        f"normals; Zeek: on the threshold slice (default {DEFAULT_TARGET_FPR})")
    parser.add_argument("--validation-fraction", type=float, default=None,
                        help="KDD input (default 0.2)")
    zeek = parser.add_argument_group("Zeek baselines")
    zeek.add_argument("--exclude-host", action="append", default=None, metavar="IP|CIDR",
                      help="leave out connections from or to this host or network (repeatable)")
    zeek.add_argument("--exclude-range", action="append", default=None, metavar="START/END",
                      help="leave out connections with START <= ts < END, epoch seconds or "
                      "ISO 8601 (repeatable)")
    zeek.add_argument("--report-only", action="store_true", default=None,
                      help="print the health report and stop")
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
    misplaced = [name for name in (_ZEEK_ONLY if records.input_kind == "kdd" else _KDD_ONLY)
                 if getattr(args, name) is not None]
    if misplaced:
        option = "--" + misplaced[0].replace("_", "-")
        print(f"error: {option} does not apply to {records.input_kind} input", file=sys.stderr)
        return 2
    progress(f"{len(records):,} rows ({records.input_kind})")
    if records.input_kind == "zeek":
        return train_zeek(args, records, path, model_dir, started)
    return train_kdd(args, records, path, model_dir, started)


def train_kdd(args: argparse.Namespace, records: ParsedRecords, path: Path, model_dir: Path,
              started: float) -> int:
    progress("hashing the file")
    source = {"file": path.name, "sha256": sha256_file(path)}
    n_clusters = [int(k) for k in args.k.split(",")] if args.k else DEFAULT_N_CLUSTERS
    result = train(records, n_clusters=n_clusters, random_state=args.seed,
                   validation_fraction=(0.2 if args.validation_fraction is None
                                        else args.validation_fraction),
                   threshold_rule=args.threshold_rule or "balanced-f1",
                   target_fpr=args.target_fpr, source=source, progress=progress)
    progress(f"writing {model_dir} (atomically)")
    save_model(result.pipeline, result.card, model_dir)
    card = result.card
    print(f"model {card['model_version']}: threshold {card['threshold']:.4f} "
          f"({card['threshold_rule']}), trained in {time.perf_counter() - started:.1f} s")
    if card["validation_metrics"]:
        print(f"validation (held-out rows of {path.name}; never KDDTest+):")
        print(format_metrics(card["validation_metrics"]))
    return 0


def train_zeek(args: argparse.Namespace, records: ParsedRecords, path: Path, model_dir: Path,
               started: float) -> int:
    """Health report, then (unless --report-only) the baseline, written as the current Zeek
    model. The gate's comparison with the model it replaces is printed, not enforced: running
    this command is the admin's decision (web baseline jobs hold a model the gate refuses)."""
    try:
        exclusions = Exclusions(hosts=tuple(args.exclude_host or ()),
                                ranges=tuple(args.exclude_range or ()))
        kept, counts = exclusions.apply(records)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if exclusions:
        print(f"excluded {counts['excluded']:,} of {counts['rows']:,} rows: "
              + ", ".join(f"{item} {n:,}" for item, n in
                          {**counts["by_host"], **counts["by_range"]}.items()))
    print(format_report(health_report(kept)), flush=True)
    if args.report_only:
        return 0
    progress("hashing the file")
    try:
        result = train_baseline(
            records, exclusions=exclusions, random_state=args.seed,
            target_fpr=DEFAULT_TARGET_FPR if args.target_fpr is None else args.target_fpr,
            n_clusters=[int(k) for k in args.k.split(",")] if args.k else None,
            source={"file": path.name, "sha256": sha256_file(path)}, progress=progress)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = LocalModelStore(kind_model_dir(model_dir, "zeek"))
    current = None
    with contextlib.suppress(ModelLoadError):
        current = store.current()
    _, reason, _ = baseline_gate(current, result, result.newest)
    progress(f"writing {store.model_dir} (atomically, the previous model kept in versions/)")
    store.promote(store.keep(result.pipeline, result.card))
    card, figures = result.card, result.figures
    print(f"zeek model {card['model_version']}: k={card['k_values']} on "
          f"{card['training_data']['fit_rows']:,} fit rows, threshold {card['threshold']:.4f} "
          f"({card['target_fpr']:.2%} of the threshold slice), trained in "
          f"{time.perf_counter() - started:.1f} s")
    print(f"newest slice ({figures['rows']:,} rows, never trained on): " + ", ".join(
        f"{name} {figures[key]:.4f}" for key, name in (
            ("false_alarm_rate", "false-alarm rate"), ("recall", "recall"), ("auroc", "AUROC"))
        if figures[key] is not None))
    print(f"gate: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
