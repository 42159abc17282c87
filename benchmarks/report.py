"""The Markdown report (latest.md) rendered from the JSON results, and nothing else.

Rendering only reads the results dict, so the report can be regenerated from latest.json and
tested on tiny inputs. Every comparison is computed, not written by hand: the "Where a
baseline wins" section lists every metric on which any baseline beats ours.
"""

from __future__ import annotations

from collections.abc import Iterable

from utils.schema import ATTACK_CATEGORY_ORDER

DATASETS = (("kddtest_plus", "KDDTest+"), ("kddtest_21", "KDDTest-21"))
# (key, label, higher is better)
METRICS = (("accuracy", "accuracy", True), ("precision", "precision", True),
           ("recall", "recall", True), ("f1", "F1", True), ("auroc", "AUROC", True),
           ("false_positive_rate", "false-positive rate", False))
BUSY_LOAD = 0.5  # a 1-minute load average above this means other work shared the machine


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _metric_text(key: str, value: float | None) -> str:
    return num(value) if key == "auroc" else pct(value)


def render_markdown(results: dict) -> str:
    lines = ["# Anomalyze benchmark results", ""]
    lines += _machine_section(results)
    lines += _summary_section(results)
    if "quality" in results:
        lines += _quality_section(results["quality"], results.get("plots", {}))
        lines += _baseline_wins_section(results["quality"])
    if "throughput" in results:
        lines += _throughput_section(results["throughput"], results.get("quality"),
                                     results.get("plots", {}))
    if "http" in results:
        lines += _http_section(results["http"])
    if "zeek" in results:
        lines += _zeek_section(results["zeek"], results.get("plots", {}))
    if "zeek_baselines" in results:
        lines += _zeek_baselines_section(results["zeek_baselines"])
    if "zeek_memory" in results:
        lines += _zeek_memory_section(results["zeek_memory"])
    if "watch" in results:
        lines += _watch_section(results["watch"])
    if "registry" in results:
        lines += _registry_section(results["registry"])
    if "dask" in results:
        lines += _dask_section(results["dask"])
    return "\n".join(lines).rstrip() + "\n"


# --- sections -----------------------------------------------------------------------------


def _watch_section(watch: dict) -> list[str]:
    """The live watcher (benchmarks/watch_bench.py)."""
    p = watch["protocol"]
    lines = [
        "## Live watcher (watch_zeek.py)", "",
        "A writer process appends conn.log records (`ts` = write time) at a steady rate, "
        f"rotating every {p['rotate_every']:,}; the watcher runs as its own process with a "
        f"reorder horizon of {p['reorder_seconds']} s (a real sensor adds its horizon, "
        "default 120 s, to the lag), no suppression, alerts to a rotated NDJSON file. Lag: "
        "verdict time minus the connection's end (its write time here), p50/p99 interpolated "
        "in the watcher's histogram buckets. Model: one trained on the generator's own "
        f"traffic (k={p['own_traffic_model_k']}), as README advises for a real network.", "",
        "| written/s | records | scored/s while writing | all scored after | lag p50 | "
        "lag p99 | alerts | watcher RSS |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [(run, "") for run in watch["rates"]]
    if watch.get("nslkdd_model"):
        rows.append((watch["nslkdd_model"], " (NSL-KDD model)"))
    for run, note in rows:
        lines.append(
            f"| {run['rate_written']:,.0f}{note} | {run['records']:,} | "
            f"{run['scored_per_second_while_writing']:,.0f} | "
            f"{run['seconds_until_all_scored']:.1f} s | {num(run['lag_p50_seconds'], 3)} s | "
            f"{num(run['lag_p99_seconds'], 3)} s | {run['alerts']:,.0f} | "
            f"{run['watcher_rss_mb']:,.0f} MB |")
    memory = watch.get("memory")
    if memory:
        points = ", ".join(f"{c['rss_mb']:,.0f} MB after {c['records']:,}"
                           for c in memory["checkpoints"])
        lines += ["", f"Memory (records written as fast as the watcher takes them): RSS "
                  f"{points} (ratio {memory['rss_ratio_last_to_first']:.2f})."]
    return [*lines, ""]


def _machine_section(results: dict) -> list[str]:
    m = results.get("machine", {})
    load_start = m.get("loadavg_start") or [0.0, 0.0, 0.0]
    load_end = results.get("loadavg_end") or load_start
    versions = m.get("versions", {})
    lines = [
        f"Generated by `python -m benchmarks.run_all` on {m.get('date_utc', '?')} (UTC), "
        f"in {results.get('total_seconds', 0) / 60:.1f} minutes, "
        f"git commit {m.get('git_commit') or '(none yet)'}"
        f"{' with uncommitted changes in the tree' if m.get('git_dirty') else ''}.",
        "",
        f"- Machine: {m.get('nproc', '?')} CPUs available (`nproc`), "
        f"{m.get('cpu_model', '?')}, {num(m.get('ram_gib'), 1)} GiB RAM; {m.get('os', '?')}.",
        f"- Software: Python {versions.get('python', '?')}, scikit-learn "
        f"{versions.get('scikit-learn', '?')}, numpy {versions.get('numpy', '?')}, pandas "
        f"{versions.get('pandas', '?')}"
        + (f" (with pyarrow {m['pyarrow']} installed, so pandas stores inferred strings in "
           "Arrow)" if m.get("pyarrow") else "") + ".",
        f"- Load average (1/5/15 min): {' / '.join(f'{v:.2f}' for v in load_start)} at the "
        f"start, {' / '.join(f'{v:.2f}' for v in load_end)} at the end.",
    ]
    if max(load_start[0], load_end[0]) > BUSY_LOAD or results.get("shared_machine"):
        lines.append(f"- **The machine was busy**: the load average passed {BUSY_LOAD:g} "
                     "during the run (the HTTP section's own clients count, and so does any "
                     "other job), so speeds may be on the low side. Quality figures do not "
                     "depend on load.")
    for note in results.get("notes", []):
        lines.append(f"- {note}")
    return [*lines, ""]


def _ours(quality: dict) -> dict:
    return next(d for d in quality["detectors"] if d["key"] == "ours")


def _summary_section(results: dict) -> list[str]:
    lines = ["## Headline numbers", ""]
    if "quality" in results:
        ours = _ours(results["quality"])
        for key, name in DATASETS:
            m = ours[key]
            lines.append(f"- Our ensemble on {name}: accuracy {pct(m['accuracy'])}, F1 "
                         f"{pct(m['f1'])}, AUROC {num(m['auroc'])}, false-positive rate "
                         f"{pct(m['false_positive_rate'])}.")
    if "throughput" in results:
        by_rows = {e["rows"]: e for e in results["throughput"]["sizes"]}
        speeds = ", ".join(f"{rows:,} rows {e['samples_per_second']:,.0f}/s"
                           for rows, e in sorted(by_rows.items()))
        lines.append(f"- In-process end-to-end throughput: {speeds}.")
        test = by_rows.get(22_544)
        if test and "ratio_to_read_csv" in test:
            lines.append(f"- KDDTest+ in-process: {test['ratio_to_read_csv']:.2f}x the rows/s of "
                         f"pandas' bare read_csv in the same run "
                         f"({test['samples_per_second']:,.0f} against "
                         f"{test['read_csv_samples_per_second']:,.0f}); first call of a fresh "
                         f"process {test['first_call_seconds'] * 1000:.0f} ms, warm "
                         f"{test['best_seconds'] * 1000:.0f} ms.")
        lin = results["throughput"].get("linearity")
        if lin:
            cpu = lin.get("cpu_time_ratio")
            lines.append(f"- {lin['large_rows']:,} rows took {lin['time_ratio']:.1f}x the time "
                         f"of {lin['small_rows']:,} rows ({lin['rows_ratio']:.1f}x the rows; "
                         f"limit {lin['max_time_ratio']:.0f}x): "
                         f"{'passed' if lin['passed'] else 'FAILED'}"
                         + (f" (CPU time: {cpu:.1f}x)." if cpu is not None else "."))
    http = results.get("http")
    if http and "skipped" not in http and "latency" in http:
        lines.append(f"- HTTP (`POST /api/predict`, {http.get('file', {}).get('name', '?')}): "
                     f"p50 {http['latency']['p50_s']:.3f} s, p95 "
                     f"{http['latency']['p95_s']:.3f} s.")
        small = http.get("small_requests")
        if small:
            r = small["distinct"]
            lines.append(f"- HTTP, {r['clients']} clients posting distinct "
                         f"{small['rows']:,}-row files: {r['samples_per_s']:,.0f} samples/s, "
                         f"p99 {r['p99_s']:.3f} s.")
        for big in http.get("kdd99", []):
            lines.append(f"- HTTP, KDD Cup 99 file ({big['rows']:,} rows"
                         f"{', header line' if big['header'] else ''}): {big['seconds']:.2f} s, "
                         f"worker peak RSS {big['worker_peak_rss_mb']:.0f} MB.")
    elif http:
        lines.append(f"- HTTP: skipped ({http.get('skipped', 'no latency figures')}).")
    if "zeek" in results and "skipped" not in results["zeek"]:
        q = results["zeek"]["quality"]
        lines.append(f"- Zeek ctu-botnet-4, temporal split: AUROC "
                     f"{num(q['zeek_model']['second_half']['auroc'])} for the model trained "
                     f"on the first half, {num(q['nslkdd_model']['second_half']['auroc'])} for "
                     "the NSL-KDD model.")
    memory = results.get("zeek_memory")
    if memory and "skipped" not in memory:
        lines.append(f"- Zeek gzip upload inflating to {memory['inflated_mb']:,.0f} MB "
                     f"({memory['rows']:,} rows): answered {memory['status']} in "
                     f"{memory['seconds']:.0f} s, worker peak RSS "
                     f"{memory['worker_peak_rss_mb']:,.0f} MB.")
    return [*lines, ""]


def _quality_section(quality: dict, plots: dict) -> list[str]:
    p = quality["protocol"]
    t = quality["training"]
    same = ("yes (same digest of cluster centres and model weights)" if t.get("same_as_committed")
            else f"no (committed {t.get('committed_model_version')}, "
                 f"fresh {t.get('model_version')})")
    lines = [
        "## 1. Detection quality (NSL-KDD)", "",
        f"Protocol, the same for every detector: fit on the {p['fit_rows_normal']:,} normal "
        f"rows of the {100 * (1 - p['validation_fraction']):.0f}% fit split of "
        f"{p['train_file']} (`utils.training.split_validation`, seed {p['split_seed']}); "
        f"threshold chosen on the {p['validation_rows']:,} rows of the validation split by "
        f"the `{p['threshold_rule']}` rule (`utils.thresholds.choose_threshold`), except the "
        "reference design, which decides by its own majority vote. All use "
        "`utils.features.KDDFeatureTransformer` features except the reference design "
        "(its own 20 label-encoded columns). "
        f"{p['test_file']} ({p['test_rows']:,} rows) and KDDTest-21 "
        f"({p['kddtest21_definition']}; {p['kddtest21_rows']:,} rows) are only scored: no "
        "threshold, k, feature or seed was chosen by looking at them.",
        "",
        f"Our ensemble was retrained here with `utils.training.train` (default settings, seed "
        f"0) in {t['seconds']:.1f} s; identical to the committed model in models/: {same}.",
        "",
    ]
    for key, name in DATASETS:
        lines += [f"### {name}", ""]
        rows = []
        for det in quality["detectors"]:
            m = det[key]
            threshold = (num(det["threshold"]) + f" ({det['threshold_rule']})"
                         if det["threshold"] is not None else det["threshold_rule"])
            rows.append([det["label"], f"{det['fit_rows']:,}", threshold, pct(m["accuracy"]),
                         pct(m["precision"]), pct(m["recall"]), pct(m["f1"]), num(m["auroc"]),
                         pct(m["false_positive_rate"])])
        lines += table(["detector", "fit rows", "threshold (rule)", "accuracy", "precision",
                        "recall", "F1", "AUROC", "FPR"], rows)
        cats = [c for c in ATTACK_CATEGORY_ORDER
                if any(c in d[key]["detection_rate_by_category"] for d in quality["detectors"])]
        first = quality["detectors"][0][key]["detection_rate_by_category"]
        header = ["detector"] + [f"{c} ({first[c]['total']:,})" if c in first else c
                                 for c in cats]
        cat_rows = []
        for det in quality["detectors"]:
            by_cat = det[key]["detection_rate_by_category"]
            cat_rows.append([det["label"]] + [pct(by_cat[c]["rate"]) if c in by_cat else "n/a"
                                              for c in cats])
        lines += [f"Detection rate per attack category on {name} (rows in brackets):", ""]
        lines += table(header, cat_rows)
    grid = quality.get("single_kmeans_grid")
    if grid:
        lines += [f"Single K-means: k chosen by {grid['criterion']} on the validation split "
                  f"(chosen k = {grid['chosen_k']}):", ""]
        lines += table(["k", "validation AUROC", "fit seconds"],
                       [[k, num(v["validation_auroc"]), f"{v['fit_seconds']:.1f}"]
                        for k, v in grid["grid"].items()])
    lines += ["Detectors:", ""]
    for det in quality["detectors"]:
        lines.append(f"- **{det['label']}**: {det['description']} (fit {det['fit_seconds']:.1f} "
                     f"s; validation AUROC {num(det['validation_auroc'])}).")
    lines.append("")
    for name in ("roc_kddtest_plus", "categories_kddtest_plus", "categories_kddtest_21"):
        if name in plots:
            lines += [f"![{name}]({plots[name]})", ""]
    return lines


def _value(det: dict, dataset: str, metric: str) -> float | None:
    """A metric of ``evaluate``, or "rate_<category>" for a category's detection rate."""
    if metric.startswith("rate_"):
        by_cat = det[dataset]["detection_rate_by_category"]
        return by_cat.get(metric.removeprefix("rate_"), {}).get("rate")
    return det[dataset][metric]


def baseline_wins(quality: dict) -> list[dict]:
    """Every (test set, metric) where some baseline does strictly better than ours."""
    ours = _ours(quality)
    wins = []
    for dataset, name in DATASETS:
        checks = list(METRICS) + [
            (f"rate_{cat}", f"{cat} detection rate", True) for cat in ATTACK_CATEGORY_ORDER
            if cat in ours[dataset]["detection_rate_by_category"]]
        for metric, label, higher in checks:
            mine = _value(ours, dataset, metric)
            better = []
            for det in quality["detectors"]:
                value = _value(det, dataset, metric)
                if det["key"] == "ours" or value is None or mine is None:
                    continue
                if (value > mine) if higher else (value < mine):
                    better.append((det["label"], value))
            if better:
                better.sort(key=lambda b: -b[1] if higher else b[1])
                wins.append({"dataset": name, "metric": metric, "label": label, "ours": mine,
                             "better": better})
    return wins


def _baseline_wins_section(quality: dict) -> list[str]:
    wins = baseline_wins(quality)
    lines = ["## 2. Where a baseline wins", ""]
    if not wins:
        return [*lines, "No baseline beats our ensemble on any metric or category here.", ""]
    lines += [
        "Every test set, metric and attack category on which at least one baseline does "
        "strictly better than our ensemble, listed in full. Recall, per-category rates and "
        "FPR are read at each detector's own threshold, so they trade off against each other "
        "(a detector that flags more has higher recall and higher FPR); AUROC is the "
        "threshold-free comparison.", "",
    ]
    rows = []
    for win in wins:
        metric = "auroc" if win["metric"] == "auroc" else "rate"
        better = "; ".join(f"{label} {_metric_text(metric, value)}"
                           for label, value in win["better"])
        rows.append([win["dataset"], win["label"], _metric_text(metric, win["ours"]), better])
    lines += table(["test set", "metric", "ours", "baselines that do better"], rows)
    ours = _ours(quality)["validation_auroc"]
    higher = [f"{d['label']} {num(d['validation_auroc'])}" for d in quality["detectors"]
              if d["key"] != "ours" and d["validation_auroc"] > ours]
    if higher:
        lines += [f"On the validation split (training data, where the thresholds are chosen) "
                  f"our AUROC is {num(ours)}; higher: {'; '.join(higher)}.", ""]
    return lines


def _throughput_section(throughput: dict, quality: dict | None, plots: dict) -> list[str]:
    lines = [
        "## 3. Throughput (in-process)", "",
        "End to end in one process: the file's bytes in memory -> "
        "`utils.scoring.iter_scored_chunks` (parsing, features, scores, votes, confidence, "
        "severity, chunk by chunk: the path the API runs for every upload) with the "
        "committed model in models/. Inputs "
        "above 22,544 rows repeat KDDTest+ rows (built in memory). Each size runs in its own "
        "subprocess; the time is the best of the runs listed; peak RSS is that process's "
        "peak resident memory while scoring (model and input included).", "",
    ]
    rows = []
    for e in throughput["sizes"]:
        cpu = e.get("best_cpu_seconds")
        first = e.get("first_call_seconds")
        bare = e.get("read_csv_samples_per_second")
        waits = e.get("cpu_wait_seconds") or []
        best_wait = (waits[1:][e["runs_seconds"].index(e["best_seconds"])]
                     if len(waits) == len(e["runs_seconds"]) + 1 else None)
        rows.append([f"{e['rows']:,}", f"{e['payload_mb']:.1f}",
                     ", ".join(f"{s:.3f}" for s in e["runs_seconds"]),
                     "n/a" if first is None else f"{first:.3f}",
                     f"{e['best_seconds']:.3f}", f"{e['samples_per_second']:,.0f}",
                     "n/a" if bare is None else f"{bare:,.0f}",
                     "n/a" if bare is None else f"{e['ratio_to_read_csv']:.2f}x",
                     "n/a" if cpu is None else f"{cpu:.3f}",
                     "n/a" if best_wait is None else f"{best_wait:.3f}",
                     f"{e['rss_before_mb']:.0f}", f"{e['peak_rss_mb']:.0f}"])
    lines += table(["rows", "input MB", "warm runs, wall (s)", "first call (s)", "best (s)",
                    "samples/s", "read_csv samples/s", "ours / read_csv", "best CPU (s)",
                    "best run's CPU wait (s)", "RSS before (MB)", "peak RSS (MB)"], rows)
    lines += ["\"First call\" is the first scoring call of the fresh process (after loading the "
              "model), what a command-line user who scores once waits for; it is not among the "
              "warm runs. \"read_csv\" is pandas' bare `read_csv` of the same bytes (every "
              "default, types inferred), timed after each warm run in the same process; the "
              "ratio is its best time over ours (targets for KDDTest+: at least 0.45x, "
              "stretch 0.6x). \"CPU wait\" is the time the process's threads spent ready to "
              "run but waiting for a CPU during the best run (Linux schedstat, summed over "
              "threads): what other jobs on the machine cost it.", ""]
    scopes = {e.get("peak_rss_scope") for e in throughput["sizes"]}
    if scopes - {"scoring runs only"}:
        lines += ["Peak RSS is the whole process's (the peak could not be reset after "
                  "building the input).", ""]
    lin = throughput.get("linearity")
    if lin:
        cpu = lin.get("cpu_time_ratio")
        lines += [f"Linearity: {lin['large_rows']:,} rows took **{lin['time_ratio']:.2f}x** "
                  f"the wall-clock time of {lin['small_rows']:,} rows, for "
                  f"{lin['rows_ratio']:.2f}x the rows (limit {lin['max_time_ratio']:.0f}x): "
                  f"**{'passed' if lin['passed'] else 'FAILED'}**."
                  + (f" In CPU time (all threads of the process, less sensitive to other jobs "
                     f"on the machine) the ratio is {cpu:.2f}x." if cpu is not None else ""),
                  ""]
    comparison = throughput.get("comparison")
    if comparison:
        speeds = comparison["samples_per_second"]
        ratios = comparison["ratio_to_read_csv"]
        labels = {"read_csv": "pandas' bare `read_csv` (the yardstick)",
                  "ours_1_thread": "ours, one thread",
                  "reference_design": "reference design (re-implemented; "
                                      "benchmarks/baselines.py)"}
        lines += [f"Side by side on {comparison['file']} ({comparison['rows']:,} rows), best of "
                  f"{comparison['rounds']} interleaved rounds in one process (each round runs "
                  "every contender once, so all see the same load; no model loading or "
                  "fitting is timed):", ""]
        lines += table(["pipeline", "best (s)", "samples/s", "/ read_csv"],
                       [[labels.get(name, f"ours, {comparison['threads']} threads"),
                         f"{min(comparison['runs_seconds'][name]):.3f}", f"{speed:,.0f}",
                         "1.00x" if name == "read_csv" else f"{ratios[name]:.2f}x"]
                        for name, speed in speeds.items()])
    loads = throughput.get("model_load_seconds") or []
    if loads:
        lines.append(f"- Model load (`utils.model_store.load_model`, models/): "
                     f"{min(loads):.3f}-{max(loads):.3f} s over {len(loads)} fresh processes.")
    if quality:
        lines.append(f"- Training (`read_records` + `utils.training.train` on the full "
                     f"KDDTrain+, as `train_model.py` does): {quality['training']['seconds']:.1f}"
                     " s.")
    lines.append("")
    if "throughput" in plots:
        lines += [f"![throughput]({plots['throughput']})", ""]
    return lines


def _http_section(http: dict) -> list[str]:
    lines = ["## 4. HTTP (gunicorn, `benchmarks/bench_http.py`)", ""]
    if "skipped" in http:
        return [*lines, f"Not measured: {http['skipped']}.", ""]
    server = http.get("server", {})
    file = http.get("file", {})
    lines += [f"`POST /api/predict` with {file.get('name', '?')} "
              f"({file.get('bytes', 0):,} bytes) per request, gunicorn "
              f"{server.get('workers', '?')} workers x {server.get('threads', '?')} threads on "
              "127.0.0.1, started by the script.", ""]
    lat = http.get("latency")
    if lat:
        lines += [f"Latency over {lat['requests']} sequential requests: p50 "
                  f"{lat['p50_s']:.3f} s, p95 {lat['p95_s']:.3f} s (min {lat['min_s']:.3f}, "
                  f"max {lat['max_s']:.3f}).", ""]
    levels = http.get("throughput") or []
    if levels:
        lines += table(["clients", "requests", "seconds", "samples/s", "requests/s", "p50 (s)",
                        "p95 (s)"],
                       [[r["clients"], r["requests"], f"{r['seconds']:.1f}",
                         f"{r['samples_per_s']:,.0f}", f"{r['requests_per_s']:.2f}",
                         f"{r['p50_s']:.3f}", f"{r['p95_s']:.3f}"] for r in levels])
    first = http.get("first_requests")
    if first:
        lines += [f"First {len(first['seconds'])} requests of the fresh server, one after the "
                  f"other: {', '.join(f'{t:.3f}' for t in first['seconds'])} s (in the view: "
                  f"{', '.join(f'{t:.3f}' for t in first['server_seconds'])} s).", ""]
    small = http.get("small_requests")
    if small:
        lines += [f"Small requests: clients posting {small['rows']:,}-row files for a fixed "
                  "time. *distinct*: every file a different slice of KDDTrain+, so every upload "
                  "is new (hashed, written, fsynced, registered); *same file*: one file again "
                  "and again (a duplicate after the first: hashed, never written twice). "
                  "Targets (4 clients, 2 workers): at least 100,000 samples/s, p99 under "
                  "0.150 s.", ""]
        lines += table(["files", "clients", "requests", "seconds", "samples/s", "p50 (s)",
                        "p95 (s)", "p99 (s)", "in the view p50 (s)"],
                       [[label, r["clients"], r["requests"], f"{r['seconds']:.1f}",
                         f"{r['samples_per_s']:,.0f}", f"{r['p50_s']:.3f}", f"{r['p95_s']:.3f}",
                         f"{r['p99_s']:.3f}", f"{r['server_processing_p50_s']:.3f}"]
                        for label, r in (("distinct", small["distinct"]),
                                         ("same file", small["same_file"]))])
    kdd99 = http.get("kdd99")
    if kdd99:
        lines += [f"A KDD Cup 1999 file of {kdd99[0]['rows']:,} rows "
                  f"({kdd99[0]['file_mb']:.0f} MB), made of KDDTrain+ rows in the KDD Cup 99 "
                  "layout (no difficulty column, labels ending in \".\"), one upload each; "
                  "the workers' peak RSS is reset just before it. Targets: at most 1.5 s and "
                  "350 MB.", ""]
        lines += table(["header line", "seconds", "in the view (s)", "worker RSS before (MB)",
                        "worker peak RSS (MB)"],
                       [["yes" if b["header"] else "no", f"{b['seconds']:.2f}",
                         f"{b['server_processing_s']:.2f}", f"{b['worker_rss_mb_before']:.0f}",
                         f"{b['worker_peak_rss_mb']:.0f}"] for b in kdd99])
    if "worker_peak_rss_mb" in http:
        lines += [f"Peak RSS of a gunicorn worker over the whole run: "
                  f"{http['worker_peak_rss_mb']:.0f} MB.", ""]
    return lines


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _per_second(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _zeek_memory_section(memory: dict) -> list[str]:
    lines = ["## 6. Memory of a large Zeek upload", ""]
    if "skipped" in memory:
        return [*lines, f"Not measured: {memory['skipped']}.", ""]
    growth = memory["worker_peak_rss_mb"] - memory["worker_rss_before_mb"]
    answer = (f"{memory['status']}, {memory['total_samples']:,} rows scored"
              if memory["status"] == 200 else f"{memory['status']}: {memory.get('error')}")
    lines += table(
        ["upload", "rows", "answer", "seconds", "worker RSS before (MB)",
         "worker peak RSS (MB)", "growth (MB)"],
        [[f"{memory['gzip_mb']:.1f} MB gzip, {memory['inflated_mb']:,.0f} MB inflated",
          f"{memory['rows']:,}", answer, f"{memory['seconds']:.0f}",
          f"{memory['worker_rss_before_mb']:,.0f}", f"{memory['worker_peak_rss_mb']:,.0f}",
          f"{growth:,.0f}"]])
    lines += ["`benchmarks.zeek_bench.large_upload_memory`: ctu-botnet-4 replayed in blocks of "
              "50 rows, each written 40 times in a row later in time (so it compresses like an "
              "attacker's upload), posted once to gunicorn "
              f"({memory['server']}); peak = the serving worker's VmHWM. The figures from "
              "before the Zeek path read in chunks are in docs/RELIABILITY.md, \"Large Zeek "
              "uploads\".", ""]
    return lines


def _zeek_section(zeek: dict, plots: dict) -> list[str]:
    lines = ["## 5. Zeek conn.log", ""]
    if "skipped" in zeek:
        return [*lines, f"Not measured: {zeek['skipped']}.", ""]
    lines += ["### Feature derivation speed", ""]
    lines += table(
        ["input", "rows", "log MB", "derive_kdd_features (s)", "conn/s", "whole reader (s)",
         "rows/s", "chunked reader (s)", "rows/s"],
        [[s["input"], f"{s['rows']:,}", f"{s['log_mb']:.1f}", f"{s['derive_seconds']:.3f}",
          f"{s['derive_rows_per_second']:,.0f}", f"{s['reader_seconds']:.3f}",
          f"{s['reader_rows_per_second']:,.0f}", _seconds(s.get("chunked_seconds")),
          _per_second(s.get("chunked_rows_per_second"))] for s in zeek["speed"]])
    lines += ["Best of 3 runs each. `derive_kdd_features` alone (the conn table already "
              "parsed); the whole reader is `read_records` on the log's bytes (parse + "
              "derive, all in memory); the chunked reader is `iter_record_chunks`, what the "
              "API runs, in 100,000-line chunks (a log of more than one chunk is read twice: "
              "`ts` first, see docs/ZEEK.md). The synthetic log repeats ctu-botnet-4's rows, "
              "each copy shifted later by the capture's time span, built in memory.", ""]
    q = zeek["quality"]
    zm, nm = q["zeek_model"], q["nslkdd_model"]
    first, second = q["first_half"], q["second_half"]

    def counts(part: dict) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in part["labels"].items())

    lines += [
        f"### Detection on {q['file']}, temporal split", "",
        f"Rows sorted by `ts`; the first half ({first['rows']:,} rows: {counts(first)}; "
        f"ts <= {first['ts_max']:,.0f} s) trains, the second half ({second['rows']:,} rows: "
        f"{counts(second)}) is only scored. Labels: Benign -> normal, Malicious -> attack; "
        + (f"{q['unknown_label_rows']:,} Background/unknown rows are left out of the metrics."
           if q.get("unknown_label_rows") else "the file has no Background/unknown rows."),
        "",
        f"The Zeek model is `utils.training.train` on the first half, k = "
        f"{', '.join(map(str, zm['k_values']))} (the defaults; {zm['fit_rows']:,} normal fit "
        f"rows). Its first half holds Malicious rows, so train() makes its usual stratified "
        f"80/20 split *of the first half* and sets the threshold ({num(zm['threshold'])}, "
        f"`{zm['threshold_rule']}`) on that {zm['validation_rows']:,}-row validation part; "
        "the second half decides nothing. The NSL-KDD model is the committed one in models/ "
        f"(threshold {num(nm['threshold'])} from KDDTrain+).", "",
    ]
    rows = []
    for name, model in (("trained on the first half (Zeek)", zm),
                        (f"NSL-KDD model {nm['model_version']}", nm)):
        m = model["second_half"]
        rows.append([name, num(m["auroc"]), pct(m["accuracy"]), pct(m["precision"]),
                     pct(m["recall"]), pct(m["f1"]), pct(m["false_positive_rate"])])
    lines += table(["model (scored on the second half)", "AUROC", "accuracy", "precision",
                    "recall", "F1", "FPR"], rows)
    auroc = zm["second_half"]["auroc"]
    if auroc is not None:
        verdict = "met" if auroc >= 0.90 else "NOT met"
        lines += [f"Target AUROC >= 0.90 for the Zeek-trained model: {verdict} "
                  f"({num(auroc)}).", ""]
    if "zeek_roc" in plots:
        lines += [f"![zeek_roc]({plots['zeek_roc']})", ""]
    return lines


def _zeek_baselines_section(baselines: dict) -> list[str]:
    lines = ["### Baselines: first half by ts, second half scored", ""]
    if "skipped" in baselines:
        return [*lines, f"Not measured: {baselines['skipped']}.", ""]
    lines += ["`benchmarks.zeek_k_rule.run_baselines`: each sample's first half is one baseline "
              "(`utils.baseline.training.train_baseline`, k rule m = "
              f"{baselines['rows_per_cluster']}, seed 0), with its labels (malicious rows left "
              "out) and without them (every row normal, the attack included); the second half "
              "is only scored. FPR benign: on Benign rows; false alarms: on every row not "
              "labeled malicious (Background too). An unlabeled baseline that holds the attack "
              "learns it as normal: its health warnings are what flag it.", ""]
    rows = []
    for entry in baselines["checks"]:
        second = entry["second_half"]
        rows.append([entry["sample"], entry["baseline"],
                     f"{entry['k_values'][0]}..{entry['k_values'][-1]}", num(second["auroc"]),
                     pct(second["recall"]), pct(second["fpr_benign"]),
                     pct(second["false_alarm_rate_not_malicious"]),
                     ", ".join(entry["health_warnings"]) or "none"])
    return lines + table(["sample", "baseline", "k", "AUROC", "recall", "FPR benign",
                          "false alarms", "health warnings"], rows)


def _registry_section(registry: dict) -> list[str]:
    lines = ["## Keeping an upload: SQLite vs PostgreSQL", "",
             f"`register()` per upload (keep once by SHA-256, quota, counter), "
             f"{registry.get('uploads', '?')} small unique uploads one after another, real "
             "servers on 127.0.0.1 (no network latency to a managed database included). "
             "The throwaway PostgreSQL runs with `fsync=off` and `synchronous_commit=off` "
             "(utils/local_engines.py) while SQLite fsyncs every commit, so the PostgreSQL "
             "rows are a lower bound for a durable server. `benchmarks/registry_bench.py`.",
             ""]
    if registry.get("skipped"):
        lines += [f"PostgreSQL and S3 skipped: {registry['skipped']}", ""]
    lines += ["| backend | p50 (ms) | p90 (ms) | mean (ms) |", "| --- | --- | --- | --- |"]
    for name, figures in registry.get("backends", {}).items():
        lines.append(f"| {name} | {figures['p50_ms']:.2f} | {figures['p90_ms']:.2f} | "
                     f"{figures['mean_ms']:.2f} |")
    return [*lines, ""]


def _dask_section(dask: dict) -> list[str]:
    lines = ["## 7. Archive scoring on Dask (score_logs.py)", ""]
    if "skipped" in dask:
        return [*lines, f"Not measured: {dask['skipped']}.", ""]
    rows, small = dask["rows"], dask["small_rows"]
    body = []
    for kind in ("zeek", "kdd"):
        entry = dask[kind]
        for size, label in ((small, f"best of {dask['rounds']}"), (rows, "one run")):
            measured = entry[str(size)]
            speed = measured["best_rows_per_second"]
            first = measured["runs"][0]["1"]
            body.append([
                kind, f"{size:,}", label,
                f"{speed['in_process']:,.0f}", f"{speed['1']:,.0f}", f"{speed['2']:,.0f}",
                f"{measured['scaling_efficiency_2_workers']:.2f}",
                f"{measured['overhead_1_worker']:+.0%} / "
                f"{measured['cpu_overhead_1_worker']:+.0%}",
                f"{first['first_pass_seconds']:.0f} / {first['seconds']:.0f}",
                f"{max(max(one['1']['worker_peak_rss_mb']) for one in measured['runs']):,.0f}"
                + (_fifths_note(first) if size == rows else "")])
    lines += table(["input", "rows", "runs", "one process (rows/s)", "1 worker (rows/s)",
                    "2 workers (rows/s)", "scaling efficiency",
                    "overhead at 1 worker (wall / CPU)", "first pass / total at 1 worker (s)",
                    "worker peak MB at 1 worker"], body)
    lines += [f"`benchmarks.dask_bench`: a Zeek archive replaying ctu-botnet-4 with shifted "
              f"times and hosts in hourly gzip files of {dask['hour_rows']:,} rows, and "
              "KDDTrain+ replicated into one plain file (64 MB pieces); a LocalCluster of "
              "1 or 2 worker processes, one thread each. \"One process\" runs the same task "
              "functions one after the other without Dask (Zeek files without halos). "
              f"The {rows:,}-row archives are scored once each way; the {small:,}-row ones "
              f"in {dask['rounds']} interleaved rounds (one process, 1 worker, 2 workers), "
              "best of each, which a machine whose speed drifts during the section disturbs "
              "less. Scaling efficiency = rows/s at 2 workers / (2 x rows/s at 1); CPU "
              "overhead counts the workers', the scheduler's and the client's CPU time "
              "against the one process's. Worker peak: the highest resident memory while a "
              "task ran; in brackets, in the larger run, the highest of the first and of the "
              "last fifth of its scoring tasks (growth with the archive would show there). "
              "Load average "
              f"{dask['load_average_start'][0]:.1f} at the start, "
              f"{dask['load_average_end'][0]:.1f} at the end.", ""]
    lines += _dask_projection(dask)
    return lines


def _fifths_note(run: dict) -> str:
    fifths = run.get("task_peaks_mb_first_last_fifth")
    if not fifths:
        return ""
    return " (" + "; ".join(f"{first:,.0f} / {last:,.0f}" for first, last in fifths) + ")"


# The cluster the projection below assumes.
NODES, CORES_PER_NODE, SENSOR_ROWS_PER_DAY = 10, 16, 50_000_000


def _dask_projection(dask: dict) -> list[str]:
    """The Zeek figures projected to a larger cluster and a busy sensor, on paper."""
    entry = dask["zeek"]
    one = entry[str(dask["rows"])]["runs"][0]["1"]
    efficiency = min(entry[str(dask["small_rows"])]["scaling_efficiency_2_workers"], 1.0)
    workers = NODES * CORES_PER_NODE
    speed = workers * one["rows_per_second"] * efficiency
    day = SENSOR_ROWS_PER_DAY / speed
    tasks = 4 * workers * one["rows_per_second"] / dask["hour_rows"]  # per second
    return [
        f"Projection, on paper: {NODES} nodes of {CORES_PER_NODE} cores, one worker process "
        f"per core ({workers}), each as fast as the one worker measured here "
        f"({one['rows_per_second']:,.0f} Zeek rows/s) and the scaling efficiency measured "
        f"at 2 workers (best of the rounds, {efficiency:.2f}) held at {workers}: "
        f"{speed:,.0f} rows/s, so a day of a busy sensor "
        f"({SENSOR_ROWS_PER_DAY / 1e6:.0f} M connections) takes {day / 60:.1f} min and a "
        f"month {30 * day / 3600:.1f} h. Assumed besides: the "
        "logs and the output on a shared file system that keeps up (a day is about 10 GB "
        "of conn.log text), workers with memory for the largest gzip file (measured above: "
        f"{one['worker_peak_rss_mb'][0]:,.0f} MB at {dask['hour_rows']:,}-row files), a "
        "month scored a few days per job (the client holds about 50 bytes per row while it "
        f"plans), and one scheduler keeping up: four tasks per file, so {workers} workers each "
        f"finishing a {dask['hour_rows']:,}-row file every "
        f"{dask['hour_rows'] / one['rows_per_second']:.1f} s ask it for about "
        f"{tasks:,.0f} tasks/s, where Dask's best-practices page puts each task's overhead "
        f"at 200 us to 1 ms: at most {tasks / 1000:.2f} of the scheduler's core.", ""]
