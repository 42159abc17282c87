"""Run every benchmark and write benchmarks/results/latest.json, latest.md and PNG plots.

    python -m benchmarks.run_all                      # everything (make bench)
    python -m benchmarks.run_all --sections quality   # a subset, e.g. while developing
    python -m benchmarks.run_all --from-json benchmarks/results/latest.json  # re-render only

Sections: quality (NSL-KDD detection vs baselines), throughput (in-process), zeek (feature
derivation speed, temporal-split detection), zeek_baselines (each shared Zeek sample's first
half as a baseline, labeled and unlabeled, its second half scored), zeek_memory (a gzip
conn.log inflating to 1000 MiB posted to gunicorn: the worker's peak memory), watch (the
live watcher as a process: sustained rate and lag at 1,000 and 20,000 connections/s written,
memory after 1 M and 10 M connections; --watch-seconds and --watch-memory-rows make it
quicker), http (benchmarks/bench_http.py, skipped with a note when missing), registry
(keeping an upload: SQLite vs PostgreSQL vs PostgreSQL + S3, benchmarks/registry_bench.py),
dask (score_logs.py on 1 and 2 local workers over a generated 5 M-row Zeek archive and KDD
file; ``--dask-rows`` for a quicker run). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import plots
from benchmarks.http_results import run_http
from benchmarks.machine import machine_info
from benchmarks.report import render_markdown
from settings import script_settings
from utils.cli import progress
from utils.durable_files import atomic_write_bytes
from utils.model_store import load_model

SECTIONS = ("quality", "throughput", "zeek", "zeek_baselines", "zeek_memory", "watch", "http",
            "registry", "dask")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
ZEEK_FILE = "ctu-botnet-4.conn.log.labeled"
SCHEMA = "anomalyze-bench/1"


def _jsonable(value):
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def draw_plots(results: dict, out_dir: Path) -> dict[str, str]:
    """Every plot the results allow; returns plot name -> file name (relative to out_dir)."""
    drawn = {}
    quality = results.get("quality")
    if quality:
        curves = [{"label": d["label"], "fpr": d["roc_kddtest_plus"]["fpr"],
                   "tpr": d["roc_kddtest_plus"]["tpr"], "auroc": d["kddtest_plus"]["auroc"],
                   "point_fpr": d["kddtest_plus"]["false_positive_rate"],
                   "point_tpr": d["kddtest_plus"]["recall"]} for d in quality["detectors"]]
        drawn["roc_kddtest_plus"] = plots.plot_roc(
            curves, "ROC on KDDTest+ (every detector fitted on KDDTrain+ normal rows)",
            out_dir / "roc_kddtest_plus.png")
        for key, name in (("kddtest_plus", "KDDTest+"), ("kddtest_21", "KDDTest-21")):
            drawn[f"categories_{key}"] = plots.plot_categories(
                quality["detectors"], key, f"Share flagged per category on {name}",
                out_dir / f"categories_{key}.png")
    if results.get("throughput"):
        drawn["throughput"] = plots.plot_throughput(results["throughput"]["sizes"],
                                                    out_dir / "throughput.png")
    zeek = results.get("zeek")
    if zeek and "skipped" not in zeek:
        q = zeek["quality"]
        curves = [{"label": label, "fpr": m["roc"]["fpr"], "tpr": m["roc"]["tpr"],
                   "auroc": m["second_half"]["auroc"],
                   "point_fpr": m["second_half"]["false_positive_rate"],
                   "point_tpr": m["second_half"]["recall"]}
                  for label, m in (("trained on the first half (Zeek)", q["zeek_model"]),
                                   ("NSL-KDD model", q["nslkdd_model"]))]
        drawn["zeek_roc"] = plots.plot_roc(
            curves, f"ROC on the second half (by ts) of {q['file']}", out_dir / "zeek_roc.png")
    return drawn


def write_outputs(results: dict, out_dir: Path) -> None:
    """Plots first (the report links them), then latest.json and latest.md, each atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results["plots"] = draw_plots(results, out_dir)
    text = json.dumps(results, indent=1, default=_jsonable) + "\n"
    atomic_write_bytes(out_dir / "latest.json", text.encode())
    atomic_write_bytes(out_dir / "latest.md", render_markdown(results).encode())


def run(sections: list[str], notes: list[str], config: dict,
        watch: dict | None = None, dask_rows: int | None = None) -> dict:
    """The sections' results; ``config``: the scripts' settings (settings.script_settings)."""
    started = time.perf_counter()
    results: dict = {"schema": SCHEMA, "machine": machine_info(), "sections": sections,
                     "notes": notes}
    model_dir = config["MODEL_DIR"]
    model = load_model(model_dir)
    nslkdd = config["DATA_DIR"]
    if "quality" in sections:
        from benchmarks.quality import run_quality

        results["quality"] = run_quality(nslkdd / "KDDTrain+.txt", nslkdd / "KDDTest+.txt",
                                         model.version, progress)
    if "throughput" in sections:
        from benchmarks.throughput import run_throughput

        results["throughput"] = run_throughput(nslkdd / "KDDTest+.txt", model_dir,
                                               progress=progress,
                                               train_path=nslkdd / "KDDTrain+.txt")
        lin = results["throughput"]["linearity"]
        if lin:
            cpu = lin["cpu_time_ratio"]
            progress(f"throughput: {lin['large_rows']:,} rows took {lin['time_ratio']:.2f}x the "
                     f"time of {lin['small_rows']:,} (limit {lin['max_time_ratio']:.0f}x): "
                     f"{'passed' if lin['passed'] else 'FAILED'}"
                     + (f"; CPU time ratio {cpu:.2f}x" if cpu is not None else ""))
    if "zeek" in sections:
        from benchmarks.zeek_bench import run_zeek

        zeek_path = config["ZEEK_DIR"] / ZEEK_FILE
        if zeek_path.is_file():
            results["zeek"] = run_zeek(zeek_path, model, progress)
        else:
            results["zeek"] = {"skipped": f"{zeek_path} not found (set ANOMALYZE_ZEEK_DIR)"}
            progress(f"zeek: skipped ({results['zeek']['skipped']})")
    if "zeek_baselines" in sections:
        from benchmarks.zeek_k_rule import run_baselines

        results["zeek_baselines"] = run_baselines(config["ZEEK_DIR"], progress)
    if "zeek_memory" in sections:
        from benchmarks.zeek_bench import large_upload_memory

        zeek_path = config["ZEEK_DIR"] / ZEEK_FILE
        if zeek_path.is_file():
            results["zeek_memory"] = large_upload_memory(zeek_path, progress)
        else:
            results["zeek_memory"] = {"skipped": f"{zeek_path} not found (set ANOMALYZE_ZEEK_DIR)"}
    if "watch" in sections:
        from benchmarks.watch_bench import run_watch

        results["watch"] = run_watch(model_dir, progress, **(watch or {}))
    if "http" in sections:
        results["http"] = run_http(progress)
        if "skipped" in results["http"]:
            progress(f"http: skipped ({results['http']['skipped']})")
    if "registry" in sections:
        from benchmarks.registry_bench import run_registry

        results["registry"] = run_registry(progress, config["PG_BINDIR"])
    if "dask" in sections:
        from benchmarks.dask_bench import DEFAULT_ROWS, SMALL_ROWS, run_dask

        zeek_path = config["ZEEK_DIR"] / ZEEK_FILE
        if zeek_path.is_file():
            rows = dask_rows or DEFAULT_ROWS
            results["dask"] = run_dask(zeek_path, nslkdd / "KDDTrain+.txt", model_dir,
                                       rows=rows, small_rows=min(SMALL_ROWS, rows // 5),
                                       say=progress)
        else:
            results["dask"] = {"skipped": f"{zeek_path} not found (set ANOMALYZE_ZEEK_DIR)"}
    results["loadavg_end"] = list(os.getloadavg())
    results["total_seconds"] = time.perf_counter() - started
    return results


def main(argv: list[str] | None = None) -> int:
    config = script_settings()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--note", action="append", default=[],
                        help="a line to add under the machine description (repeatable)")
    parser.add_argument("--watch-seconds", type=float, default=20.0,
                        help="watch: seconds of writing at each rate (default 20)")
    parser.add_argument("--watch-memory-rows", default="1e6,1e7",
                        help="watch: record counts to measure the watcher's memory after "
                        "(default 1e6,1e7; e.g. 1e5,1e6 for a quick run; empty: none)")
    parser.add_argument("--dask-rows", type=int, default=None,
                        help="rows of each generated archive in the dask section "
                        "(default 5,000,000)")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="re-render plots and latest.md from this results file only")
    args = parser.parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        results["notes"] = results.get("notes", []) + args.note
    else:
        sections = [s.strip() for s in args.sections.split(",") if s.strip()]
        unknown = sorted(set(sections) - set(SECTIONS))
        if unknown:
            parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
        watch = {"seconds": args.watch_seconds,
                 "memory_rows": tuple(int(float(n)) for n in args.watch_memory_rows.split(",")
                                      if n.strip())}
        results = run(sections, args.note, config, watch, dask_rows=args.dask_rows)
    write_outputs(results, args.out_dir)
    progress(f"wrote {args.out_dir / 'latest.json'}, latest.md and "
             f"{len(results['plots'])} plots in {results['total_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
