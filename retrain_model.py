"""Retrain on the training data plus kept uploads; promote the candidate only if it is not worse.

    python retrain_model.py [--force] [--model-dir models] [--data-dir data] [--train FILE]
                            [--k 400,450,500,550,600] [--tolerance 0.005]
                            [--category-tolerance 0.02] [--requeue-rejected]
                            [--list-quarantined] [--release SHA256|all ...]

Without --force it serves the retrain requests queued by uploads or by POST /api/retrain (one
run per request) and does nothing when none is queued. The decisions (which upload rows are
used, the gate, the lock) are in docs/LEARNING.md. Progress goes to stderr.

Exit codes: 0 promoted, or nothing to do; 1 failed; 2 bad usage; 3 rejected by the gate;
4 another retrain holds the lock (it serves the queued requests).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from settings import parsers, script_settings
from utils.backend_errors import BackendUnavailable
from utils.backends import open_backends
from utils.cli import progress
from utils.registry import NotQuarantined, UnknownUpload

EXIT_CODES = {"promoted": 0, "failed": 1, "rejected": 3}
EXIT_BUSY = 4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--force", action="store_true",
                        help="retrain now even if no request is queued")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="the model folder (default: $ANOMALYZE_MODEL_DIR or models/)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="uploads, registry and training data "
                        "(default: $ANOMALYZE_DATA_DIR or data/)")
    parser.add_argument("--train", type=Path, default=None,
                        help="the original training file (default: $ANOMALYZE_RETRAIN_TRAIN_FILE, "
                        "else the file the model card names, else KDDTrain+.txt, in the data "
                        "folder)")
    parser.add_argument("--k", type=_checked(parsers.k_list), default=None,
                        help="comma-separated k values (default: $ANOMALYZE_RETRAIN_K, else "
                        "those of the current model)")
    parser.add_argument("--tolerance", type=_checked(parsers.number(at_least=0, at_most=1)),
                        default=None,
                        help="largest drop in balanced F1 or AUROC still promoted "
                        "(default: $ANOMALYZE_RETRAIN_TOLERANCE or 0.005)")
    parser.add_argument("--category-tolerance",
                        type=_checked(parsers.number(at_least=0, at_most=1)), default=None,
                        help="largest drop in any attack category's detection rate still "
                        "promoted (default: $ANOMALYZE_RETRAIN_CATEGORY_TOLERANCE or 0.02)")
    parser.add_argument("--requeue-rejected", action="store_true",
                        help="put uploads set aside by rejected runs back in the queue first")
    parser.add_argument("--list-quarantined", action="store_true",
                        help="list the uploads quarantined by rollbacks, and exit")
    parser.add_argument("--release", action="append", default=[], metavar="SHA256",
                        help="let a quarantined upload train again (repeatable; 'all' releases "
                        "every quarantined upload); it joins the next run")
    parser.add_argument("--nice", type=int, default=0,
                        help="lower the process priority by this much (the server passes 10)")
    parser.add_argument("--lock-wait", type=float, default=5.0,
                        help="seconds to wait for the retrain lock before leaving the work to "
                        "its holder (default 5)")
    parser.add_argument("--trigger", default="cli", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _checked(parse: parsers.Parser):
    """An argparse type from a settings parser: the flag accepts what the variable accepts."""

    def convert(text: str):
        try:
            return parse(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {parse.accepts}, got {text!r}") from None

    return convert


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except BackendUnavailable as exc:  # before a run was recorded: its request stays queued
        print(f"error: {exc}; the queued request waits for the next trigger", file=sys.stderr)
        return EXIT_CODES["failed"]


def run(argv: list[str] | None) -> int:
    config = script_settings()
    args = parse_args(argv)
    data_dir = args.data_dir or config["DATA_DIR"]
    model_dir = args.model_dir or config["MODEL_DIR"]
    if args.nice:
        os.nice(args.nice)
    backends = open_backends(data_dir, model_dir, database_url=config["DATABASE_URL"],
                             store_url=config["STORE_URL"], work_dir=True)
    registry = backends.registry
    if args.list_quarantined:
        for upload in registry.uploads(status="quarantined"):
            print(f"{upload.sha256}  {upload.received_at}  {upload.rows} rows  "
                  f"{'trusted' if upload.trusted else 'anonymous'} from "
                  f"{upload.client or 'unknown'}  {upload.original_name}")
        return 0
    if args.release:
        wanted = args.release
        if wanted == ["all"]:
            wanted = [upload.sha256 for upload in registry.uploads(status="quarantined")]
        for sha256 in wanted:
            try:
                registry.release(sha256.strip().lower())
            except (UnknownUpload, NotQuarantined) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            progress(f"released {sha256}: it joins the next run")
    if args.requeue_rejected:
        progress(f"{registry.requeue_used()} upload(s) put back in the queue")
    state = registry.state()
    if not args.force and state["requests"] == 0:
        pending = registry.counts()["pending"]
        print(f"nothing queued: {pending} pending upload(s), {state['uploads_since_retrain']} "
              f"of {config['RETRAIN_THRESHOLD']} since the last trigger; --force retrains now")
        return 0
    lock = registry.retrain_lock()
    if not lock.acquire(wait=args.lock_wait):
        progress("another retrain holds the lock; it will serve the queued requests")
        return EXIT_BUSY
    model_dir = backends.model_dir  # with a shared store: this run's own working copy

    from utils.retraining import RetrainSettings, run_queued  # pandas, sklearn

    settings = RetrainSettings(
        model_dir=model_dir, data_dir=data_dir,
        train_file=args.train or config["RETRAIN_TRAIN_FILE"],
        n_clusters=args.k or config["RETRAIN_K"],
        tolerance=config["RETRAIN_TOLERANCE"] if args.tolerance is None else args.tolerance,
        category_tolerance=(config["RETRAIN_CATEGORY_TOLERANCE"]
                            if args.category_tolerance is None else args.category_tolerance),
        max_upload_rows=config["RETRAIN_MAX_UPLOAD_ROWS"],
        max_rows_per_upload=config["RETRAIN_MAX_ROWS_PER_UPLOAD"],
        max_rows_per_client=config["RETRAIN_MAX_ROWS_PER_CLIENT"],
        feedback_share=config["RETRAIN_FEEDBACK_SHARE"],
        max_decompressed_bytes=int(config["MAX_DECOMPRESSED_MB"] * (1 << 20)))
    results = run_queued(settings, registry, force=args.force, trigger=args.trigger,
                         progress=progress, lock=lock, lock_wait=args.lock_wait)
    if not results:
        print("nothing to do: another process served the queued requests")
        return 0
    for result in results:
        print(f"run {result.run_id}: {result.outcome} {result.version or ''}".rstrip())
        print(f"  {result.reason}")
    return EXIT_CODES[results[-1].outcome]


if __name__ == "__main__":
    sys.exit(main())
