"""Study of the baselines' k rule (utils/baseline/k_rule.py): how many fit rows per cluster.

    python -m benchmarks.zeek_k_rule               # the study, then the final check
    python -m benchmarks.zeek_k_rule --seeds 0 --no-final

Protocol, written down before the study was first run (also in docs/ZEEK.md, "Baselines"):

1. Each shared Zeek sample ($ANOMALYZE_ZEEK_DIR/*.labeled) is sorted by ``ts`` (stable).
   The choice reads only its first half; the second half is what the final check, the
   bench report and docs/ZEEK.md score, and it decides nothing.
2. Baselines: the earliest 1,000, 3,000 and 10,000 rows of the first half, each size used
   when at least MIN_LATER_ROWS rows of the first half follow it. A sample too small for
   any of them (scenario-malicious: 496 rows in its first half) uses its earliest two
   thirds.
3. Every baseline is trained by utils.baseline.training.train_baseline as train_model.py
   trains one (rows labeled malicious left out, the threshold flagging 1% of the threshold
   slice), with the k set of the candidate rule ``rows_per_cluster = m`` for each m of
   k_rule.CANDIDATES (2, 4, 8, 16, 32, 64), seeds 0, 1 and 2.
4. Measured on the later inner slice, the first half's rows after the baseline: the
   false-alarm rate (share flagged of the rows not labeled malicious, benign and unlabeled
   alike, as the baseline counts them) and the AUROC of malicious against those rows.
5. Per candidate: the mean over a sample's baselines and seeds, then the mean over the
   samples (each sample weighs the same).
6. Choice: candidates whose mean false-alarm rate is within FALSE_ALARM_MARGIN (0.01) of the
   lowest are admissible; among them the highest mean AUROC wins, and every admissible
   candidate within AUROC_TIE (0.005) of it ties; a tie goes to the largest m (fewer
   clusters: a smaller, faster model, less fitted to the quirks of one period).

Reported beside, not a candidate: the KDD model's k set (400..600) wherever it can be fitted.

Final check (after the choice, deciding nothing): each sample's whole first half as one
baseline, labeled (malicious rows left out) and unlabeled (labels dropped: every row counts
as normal, the attack included), with the chosen rule, scored on the second half: AUROC
(malicious against benign, and against every row not labeled malicious), the false-positive
rate on the benign rows and on all rows not labeled malicious, recall, and what the health
report says about each baseline. Results: benchmarks/results/zeek_k_rule.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from settings import script_settings
from utils.baseline.health import health_report
from utils.baseline.k_rule import CANDIDATES, K_MAX, ROWS_PER_CLUSTER, baseline_k_values
from utils.baseline.slices import fit_positions, malicious_mask, temporal_slices
from utils.baseline.training import slice_figures, train_baseline
from utils.cli import progress
from utils.detector import DEFAULT_N_CLUSTERS
from utils.durable_files import atomic_write_bytes
from utils.metrics import auroc_score
from utils.readers import ParsedRecords, read_records
from utils.readers.records import take_records
from utils.retraining.gate import pipeline_scores
from utils.schema import NORMAL_LABEL

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BASELINE_SIZES: tuple[int, ...] = (1_000, 3_000, 10_000)
MIN_LATER_ROWS = 1_000
SMALL_SAMPLE_SHARE = 2 / 3
SEEDS: tuple[int, ...] = (0, 1, 2)
FALSE_ALARM_MARGIN = 0.01
AUROC_TIE = 0.005
COMMAND = "python -m benchmarks.zeek_k_rule"


def halves(records: ParsedRecords) -> tuple[ParsedRecords, ParsedRecords]:
    """The earlier and the later half by ts (stable), each in time order."""
    order = np.argsort(records.identity["ts"].to_numpy(dtype=float), kind="stable")
    half = len(order) // 2
    return take_records(records, order[:half]), take_records(records, order[half:])


def baseline_sizes(first_half_rows: int) -> list[int]:
    sizes = [size for size in BASELINE_SIZES if size + MIN_LATER_ROWS <= first_half_rows]
    return sizes or [round(first_half_rows * SMALL_SAMPLE_SHARE)]


def fit_row_count(records: ParsedRecords) -> int:
    """The rows train_baseline will fit on (to apply a candidate rule before training)."""
    return len(fit_positions(temporal_slices(records.identity["ts"]),
                             malicious_mask(records.labels, len(records))))


def study_case(baseline: ParsedRecords, later: ParsedRecords, ks: tuple[int, ...],
               seed: int) -> dict:
    result = train_baseline(baseline, random_state=seed, n_clusters=ks)
    scores = pipeline_scores(result.pipeline, later.features)
    later_figures = slice_figures(scores, result.pipeline[-1].threshold_,
                                  malicious_mask(later.labels, len(later)))
    return {"k_values": list(ks), "fit_rows": result.card["training_data"]["fit_rows"],
            "newest": result.figures, "later": later_figures}


def run_study(samples: dict[str, ParsedRecords], seeds: tuple[int, ...]) -> dict:
    cases = []
    for name, records in samples.items():
        first, _ = halves(records)
        for size in baseline_sizes(len(first)):
            baseline = take_records(first, np.arange(size))
            later = take_records(first, np.arange(size, len(first)))
            n_fit = fit_row_count(baseline)
            rules = {str(m): baseline_k_values(n_fit, m) for m in CANDIDATES}
            if n_fit - max(1, round(n_fit * 0.2)) >= K_MAX:  # the detector can fit 400..600
                rules["kdd"] = DEFAULT_N_CLUSTERS
            for seed in seeds:
                for rule, ks in rules.items():
                    started = time.perf_counter()
                    case = study_case(baseline, later, ks, seed)
                    case |= {"sample": name, "baseline_rows": size, "later_rows": len(later),
                             "seed": seed, "rule": rule,
                             "seconds": round(time.perf_counter() - started, 2)}
                    progress(f"{name} {size:,} rows seed {seed} m={rule} k={ks[-1]}: later "
                             f"false alarms {case['later']['false_alarm_rate']:.4f}, AUROC "
                             f"{_fmt(case['later']['auroc'])}")
                    cases.append(case)
    return {"cases": cases, "candidates": summarise(cases), **choose(summarise(cases))}


def summarise(cases: list[dict]) -> dict:
    """Per rule: per-sample means over baselines and seeds, and the mean of the samples."""
    out = {}
    for rule in dict.fromkeys(case["rule"] for case in cases):
        mine = [case for case in cases if case["rule"] == rule]
        per_sample = {}
        for sample in dict.fromkeys(case["sample"] for case in mine):
            rows = [case["later"] for case in mine if case["sample"] == sample]
            per_sample[sample] = {
                "cases": len(rows),
                "false_alarm_rate": _mean([r["false_alarm_rate"] for r in rows]),
                "auroc": _mean([r["auroc"] for r in rows]),
                "recall": _mean([r["recall"] for r in rows]),
            }
        out[rule] = {"per_sample": per_sample, **{
            key: _mean([entry[key] for entry in per_sample.values()])
            for key in ("false_alarm_rate", "auroc", "recall")}}
    return out


def choose(candidates: dict) -> dict:
    """Step 6 of the protocol, on the candidates (the "kdd" reference takes no part)."""
    rules = {rule: entry for rule, entry in candidates.items() if rule != "kdd"}
    lowest = min(entry["false_alarm_rate"] for entry in rules.values())
    admissible = {rule: entry for rule, entry in rules.items()
                  if entry["false_alarm_rate"] <= lowest + FALSE_ALARM_MARGIN + 1e-12}
    best = max(entry["auroc"] for entry in admissible.values())
    tied = [rule for rule, entry in admissible.items() if entry["auroc"] >= best - AUROC_TIE]
    chosen = max(tied, key=int)
    return {"choice": {
        "rows_per_cluster": int(chosen), "lowest_false_alarm_rate": lowest,
        "admissible": sorted(admissible, key=int), "best_auroc": best,
        "tied": sorted(tied, key=int),
        "rule": (f"admissible: mean false-alarm rate <= lowest + {FALSE_ALARM_MARGIN}; "
                 f"best mean AUROC, ties within {AUROC_TIE}; largest m among ties")}}


def final_check(samples: dict[str, ParsedRecords], rows_per_cluster: int) -> list[dict]:
    """Each sample's first half as a baseline (labeled and unlabeled), its second half
    scored. Decides nothing."""
    out = []
    for name, records in samples.items():
        first, second = halves(records)
        for variant in ("labeled", "unlabeled"):
            baseline = first if variant == "labeled" else ParsedRecords(
                features=first.features, labels=None, difficulty=None,
                identity=first.identity, input_kind=first.input_kind)
            ks = baseline_k_values(fit_row_count(baseline), rows_per_cluster)
            result = train_baseline(baseline, random_state=0, n_clusters=ks)
            scores = pipeline_scores(result.pipeline, second.features)
            entry = {"sample": name, "baseline": variant, "baseline_rows": len(first),
                     "scored_rows": len(second), "k_values": list(ks),
                     "fit_rows": result.card["training_data"]["fit_rows"],
                     "newest_slice": result.figures,
                     "second_half": second_half_figures(second, scores,
                                                        result.pipeline[-1].threshold_),
                     "health_warnings": [w["code"] for w in health_report(baseline)[
                         "warnings"]]}
            progress(f"final check {name} {variant}: {entry['second_half']}")
            out.append(entry)
    return out


def run_baselines(zeek_dir: Path, say=progress) -> dict:
    """The final check with the k rule as committed, for the ``make bench`` report."""
    paths = sorted(Path(zeek_dir).glob("*.labeled"))
    if not paths:
        return {"skipped": f"no *.labeled Zeek samples in {zeek_dir} (set ANOMALYZE_ZEEK_DIR)"}
    samples = {path.name.split(".")[0]: read_records(path) for path in paths}
    say(f"zeek baselines: first half as the baseline of {', '.join(samples)}")
    return {"rows_per_cluster": ROWS_PER_CLUSTER,
            "checks": final_check(samples, ROWS_PER_CLUSTER)}


def second_half_figures(records: ParsedRecords, scores: np.ndarray, threshold: float) -> dict:
    malicious = malicious_mask(records.labels, len(records))
    benign = (records.labels == NORMAL_LABEL).fillna(False).to_numpy(dtype=bool)
    flagged = scores > threshold
    rest = slice_figures(scores, threshold, malicious)
    both = bool(malicious.any() and benign.any())
    return {"rows": len(records), "malicious_rows": int(malicious.sum()),
            "benign_rows": int(benign.sum()),
            "unlabeled_rows": int(np.sum(~malicious & ~benign)),
            "auroc": auroc_score(malicious[malicious | benign], scores[malicious | benign])
            if both else None,
            "auroc_vs_not_malicious": rest["auroc"],
            "fpr_benign": float(flagged[benign].mean()) if benign.any() else None,
            "false_alarm_rate_not_malicious": rest["false_alarm_rate"],
            "recall": rest["recall"]}


def _mean(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(results: dict) -> str:
    choice = results["choice"]
    lines = [
        "# Baselines: the k rule study", "",
        f"Command: `{COMMAND}` ({results['finished_at']}, {results['machine']}). Protocol: "
        "benchmarks/zeek_k_rule.py and docs/ZEEK.md (\"Baselines\"). The choice reads only the "
        "first half (by ts) of each sample.", "",
        "## Candidates (later inner slice of the first half)", "",
        "| m (rows per cluster) | mean false-alarm rate | mean AUROC | mean recall | "
        + " | ".join(f"{s}: false alarms / AUROC" for s in results["samples"]) + " |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in results["samples"]) + " |",
    ]
    for rule, entry in results["candidates"].items():
        label = "400..600 (KDD set; reference)" if rule == "kdd" else rule
        cells = [f"{_fmt(entry['per_sample'][s]['false_alarm_rate'])} / "
                 f"{_fmt(entry['per_sample'][s]['auroc'])}" if s in entry["per_sample"]
                 else "not fittable" for s in results["samples"]]
        lines.append(f"| {label} | {_fmt(entry['false_alarm_rate'])} | {_fmt(entry['auroc'])} "
                     f"| {_fmt(entry['recall'])} | " + " | ".join(cells) + " |")
    lines += ["", f"Choice: **m = {choice['rows_per_cluster']}** ({choice['rule']}). Lowest "
              f"mean false-alarm rate {_fmt(choice['lowest_false_alarm_rate'])}; admissible "
              f"{choice['admissible']}; best mean AUROC {_fmt(choice['best_auroc'])}; tied "
              f"{choice['tied']}.", "",
              "## Cases", "",
              "| sample | baseline rows | later rows | m | k | fit rows | newest slice false "
              "alarms | later false alarms | later recall | later AUROC |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for case in results["cases"]:
        if case["seed"] != 0:
            continue
        lines.append(
            f"| {case['sample']} | {case['baseline_rows']:,} | {case['later_rows']:,} | "
            f"{case['rule']} | {case['k_values'][0]}..{case['k_values'][-1]} | "
            f"{case['fit_rows']:,} | {_fmt(case['newest']['false_alarm_rate'])} | "
            f"{_fmt(case['later']['false_alarm_rate'])} | {_fmt(case['later']['recall'])} | "
            f"{_fmt(case['later']['auroc'])} |")
    lines.append("")
    lines.append(f"(seed 0 shown; the means above are over seeds {results['seeds']}.)")
    if results.get("final_check"):
        lines += ["", "## Final check: first half as the baseline, second half scored", "",
                  f"Rule m = {results['final_check_rows_per_cluster']}, seed 0. Decides "
                  "nothing. FPR on benign: Stratosphere's Benign rows; \"not malicious\" adds "
                  "the unlabeled (Background) rows.", "",
                  "| sample | baseline | k | AUROC | AUROC vs not malicious | recall | FPR "
                  "benign | false alarms not malicious | health warnings |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for entry in results["final_check"]:
            s = entry["second_half"]
            lines.append(
                f"| {entry['sample']} | {entry['baseline']} | {entry['k_values'][0]}.."
                f"{entry['k_values'][-1]} | {_fmt(s['auroc'])} | "
                f"{_fmt(s['auroc_vs_not_malicious'])} | {_fmt(s['recall'])} | "
                f"{_fmt(s['fpr_benign'])} | {_fmt(s['false_alarm_rate_not_malicious'])} | "
                f"{', '.join(entry['health_warnings']) or 'none'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    config = script_settings()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zeek-dir", type=Path, default=config["ZEEK_DIR"])
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--no-final", action="store_true", help="skip the final check")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    paths = sorted(args.zeek_dir.glob("*.labeled"))
    if not paths:
        print(f"error: no *.labeled Zeek samples in {args.zeek_dir}", file=sys.stderr)
        return 2
    seeds = tuple(int(s) for s in args.seeds.split(","))
    samples = {}
    for path in paths:
        progress(f"reading {path.name}")
        samples[path.name.split(".")[0]] = read_records(path)
    started = time.perf_counter()
    results = {"command": COMMAND, "samples": list(samples), "seeds": list(seeds),
               "candidates_m": list(CANDIDATES), "baseline_sizes": list(BASELINE_SIZES),
               "min_later_rows": MIN_LATER_ROWS, **run_study(samples, seeds)}
    chosen = results["choice"]["rows_per_cluster"]
    progress(f"chosen: {chosen} rows per cluster (k_rule.ROWS_PER_CLUSTER is "
             f"{ROWS_PER_CLUSTER})")
    if not args.no_final:
        results["final_check_rows_per_cluster"] = chosen
        results["final_check"] = final_check(samples, chosen)
    results |= {"seconds": round(time.perf_counter() - started, 1),
                "finished_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "machine": f"{platform.machine()}, {platform.python_version()}"}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "zeek_k_rule.json",
                       (json.dumps(results, indent=1) + "\n").encode())
    atomic_write_bytes(args.out / "zeek_k_rule.md", markdown(results).encode())
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
