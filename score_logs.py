"""Score log archives (Zeek conn.logs from many sensors, millions of KDD records) on Dask.

    python score_logs.py INPUT... --out DIR [--model DIR] [--scheduler tcp://HOST:8786]
                         [--workers N] [--sensor NAME=PATH] [--on-error skip]
                         [--alerts] [--no-allowlist]

INPUT: files, folders or globs of KDD / NSL-KDD files and Zeek conn.logs (TSV or JSON lines,
plain or gzip), local or s3://bucket/prefix (server and keys from AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION). A folder in Zeek's archive
layout (YYYY-MM-DD/conn.HH:MM:SS-HH:MM:SS.log.gz) is one sensor; a folder of such folders,
one sensor each. Without --scheduler a local cluster of worker processes (one thread each)
runs the job on this machine.

Output in DIR: zeek/sensor=NAME/day=YYYY-MM-DD/*.parquet, kdd/*.parquet (one row per record:
identity, score, verdict, severity, confidence, top features, allow-list match) and
summary.json. The allow-list kept in the registry the settings name (ANOMALYZE_DATA_DIR,
ANOMALYZE_DATABASE_URL) is read once and applied to every piece: a matching anomaly is
reported as allow-listed with its entry's id and is not an alert.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from settings import script_settings
from utils.backend_errors import BackendConfigError
from utils.batch.allowed import job_allowlist
from utils.batch.inputs import InputError
from utils.batch.job import ON_ERROR, JobFailed, JobOptions, connect, run_job
from utils.batch.pieces import DEFAULT_PIECE_MB
from utils.batch.s3_inputs import S3InputError
from utils.cli import progress


def _sensor(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="files, folders or globs to score")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder (new or empty)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model folder (default: $ANOMALYZE_MODEL_DIR or models/): its "
                        "model scores KDD records, its zeek/ baseline (when there) Zeek logs; "
                        "every worker must be able to read it at the same path")
    parser.add_argument("--scheduler", default=None,
                        help="address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes of the local cluster (default: the cores)")
    parser.add_argument("--memory-limit", default=None,
                        help="memory limit per local worker, e.g. 4GiB (default: memory / "
                        "workers); a gzip file is read whole, so allow for the largest")
    parser.add_argument("--sensor", type=_sensor, action="append", default=[],
                        metavar="NAME=PATH", help="the Zeek logs under PATH are sensor NAME")
    parser.add_argument("--on-error", choices=ON_ERROR, default="raise",
                        help="skip: score the other files and list the bad ones in "
                        "summary.json (default: stop at the first bad file)")
    parser.add_argument("--partition-mb", type=float, default=DEFAULT_PIECE_MB,
                        help="size of the pieces plain files are cut into")
    parser.add_argument("--explain-all", action="store_true",
                        help="top features of every record (default: of anomalies only)")
    parser.add_argument("--alerts", action="store_true",
                        help="also write ECS alerts of the anomalies (allow-listed ones "
                        "left out) to alerts/*.ndjson")
    parser.add_argument("--no-allowlist", action="store_true",
                        help="apply no allow-list: every anomaly is an alert")
    args = parser.parse_args(argv)
    if not args.inputs and not args.sensor:
        parser.error("give at least one INPUT or --sensor NAME=PATH")
    return args


def main(argv: list[str] | None = None) -> int:
    config = script_settings()
    args = parse_args(argv)
    try:
        allowlist = () if args.no_allowlist else job_allowlist(config)
    except BackendConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if allowlist:
        progress(f"{len(allowlist)} allow-list entries in force")
    options = JobOptions(
        inputs=args.inputs, out=args.out, model_dir=args.model or config["MODEL_DIR"],
        sensors=dict(args.sensor), on_error=args.on_error, piece_mb=args.partition_mb,
        explain_all=args.explain_all, alerts=args.alerts, allowlist=allowlist)
    try:
        with connect(args.scheduler, args.workers, args.memory_limit) as client:
            progress(f"Dask dashboard: {client.dashboard_link}")
            summary = run_job(options, client, say=progress)
    except (InputError, S3InputError, JobFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for warning in summary["warnings"]:
        print(f"warning: {warning['message']}", file=sys.stderr)
    skipped = summary["skipped"]
    print(f"{summary['rows']:,} rows scored, {summary['anomalies']:,} anomalies "
          f"({summary['alerts']:,} alerts, {summary['allowlisted']:,} allow-listed), "
          f"{summary['rows_per_second']:,.0f} rows/s; output in {args.out}")
    if skipped:
        print(f"{len(skipped)} file(s) skipped (see summary.json):")
        for entry in skipped:
            print(f"  {entry['file']}: {entry['message']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
