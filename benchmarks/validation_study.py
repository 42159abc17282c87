"""Validation study of the detector's k set and combination (KDDTrain+ only, never KDDTest+).

    python -m benchmarks.validation_study            # fit what is not cached yet, then report
    python -m benchmarks.validation_study --seeds 0,1 --sets 100-300,400-600   # a subset

For every seed and k set, ``utils.training.train`` fits the detector exactly as
``train_model.py`` does (80/20 split and K-means both seeded by the seed). The per-model
distances of the validation rows, computed by the detector's own scoring path, are cached, so
every combination is a few array operations on the cache. The decision rule, written before
the study was first run, is in docs/MODEL.md ("The default chosen by validation alone"); this
script applies it and writes benchmarks/results/validation_study.{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from settings import script_settings
from utils.cli import progress
from utils.dataset import CHECKSUMS, sha256_file
from utils.durable_files import atomic_write_bytes
from utils.preprocessing import read_records
from utils.schema import ATTACK_CATEGORY_ORDER
from utils.thresholds import choose_threshold
from utils.training import row_categories, split_validation, train

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_CACHE = Path.home() / ".cache" / "anomalyze" / "validation_study"
SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
# The 5-model sets of the earlier studies, by scoring cost (sum of k).
SETS: tuple[tuple[int, ...], ...] = tuple(
    tuple(range(lo, lo + 201, 50)) for lo in (100, 200, 300, 400, 600))
THRESHOLD_RULE = "balanced-f1"
VALIDATION_FRACTION = 0.2
SET_RULE_COMBINATION = "geometric"  # step 1 judges sets as the earlier k-set study did
INCUMBENT = "weights_k2"  # step 2: today's combination stays unless beaten
UNINFORMATIVE_VOTES = ("minimum",)  # every flagged record gets all votes
_EPS = 1e-12


def _weighted(power: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def combine(ratios: np.ndarray, ks: np.ndarray) -> np.ndarray:
        weights = ks.astype(np.float64) ** power
        return np.exp(np.log(ratios + _EPS) @ (weights / weights.sum()))
    return combine


# Candidates of the combination study: ratios are distance / the model's calibration median.
COMBINATIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "geometric": _weighted(0.0),
    "mean": lambda r, ks: r.mean(axis=1),
    "median": lambda r, ks: np.median(r, axis=1),
    "harmonic": lambda r, ks: r.shape[1] / (1.0 / (r + _EPS)).sum(axis=1),
    "weights_k": _weighted(1.0),
    "weights_k2": _weighted(2.0),
    "minimum": lambda r, ks: r.min(axis=1),
}


def set_name(ks: Sequence[int]) -> str:
    return f"({ks[0]}..{ks[-1]})" if len(ks) > 1 else f"k={ks[0]}"


def fit_or_load(records, seed: int, ks: tuple[int, ...], cache: Path, fresh: bool) -> dict:
    """Validation distances of one (seed, k set): from the cache, or fitted now."""
    path = cache / f"seed{seed}_k{'-'.join(map(str, ks))}.npz"
    if path.is_file() and not fresh:
        data = np.load(path, allow_pickle=False)
        return {key: data[key] for key in data.files}
    started = time.perf_counter()
    result = train(records, n_clusters=ks, random_state=seed,
                   validation_fraction=VALIDATION_FRACTION, threshold_rule=THRESHOLD_RULE)
    fit_seconds = time.perf_counter() - started
    pipeline = result.pipeline
    detector = pipeline[-1]
    known = result.validation_categories != "Unlabeled"
    cats = result.validation_categories[known].astype(str)
    # train() made this split (same function, fraction and seed); its rows, featurised
    val_mask = split_validation(row_categories(records), VALIDATION_FRACTION, seed)
    X_val = pipeline[0].transform(records.features[val_mask])
    # the detector's own distance path (float32 products in fixed-shape blocks)
    all_distances = detector._model_distances(X_val)
    own = detector._combine(all_distances)[known]
    if not np.array_equal(own, result.validation_scores[known]):
        raise RuntimeError("the cached distances do not reproduce the detector's scores")
    distances = all_distances[known]
    entry = {"distances": distances, "scales": detector.scales_, "cats": cats,
             "ks": np.asarray(ks), "fit_seconds": np.float64(fit_seconds),
             "detector_scores": own}
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **entry)
    tmp.replace(path)
    return entry


def macro_auroc(scores: np.ndarray, cats: np.ndarray) -> tuple[float, dict[str, float]]:
    """Mean over the attack categories present of AUROC(normal vs that category)."""
    normal = cats == "Normal"
    per = {}
    for name in ATTACK_CATEGORY_ORDER:
        rows = cats == name
        if rows.any():
            keep = normal | rows
            per[name] = float(roc_auc_score(rows[keep], scores[keep]))
    return float(np.mean(list(per.values()))), per


def transferred(scores: np.ndarray, cats: np.ndarray, seed: int) -> dict[str, float]:
    """FPR and balanced accuracy at a threshold chosen on the other half, both ways averaged."""
    half = split_validation(np.asarray(cats, dtype=object), 0.5, seed)
    fprs, baccs = [], []
    for choose, apply in ((half, ~half), (~half, half)):
        threshold = choose_threshold(scores[choose], cats[choose], THRESHOLD_RULE)
        flagged = scores[apply] > threshold
        attack = cats[apply] != "Normal"
        fpr = float(flagged[~attack].mean())
        tpr = float(flagged[attack].mean())
        fprs.append(fpr)
        baccs.append((tpr + 1.0 - fpr) / 2.0)
    return {"fpr": float(np.mean(fprs)), "balanced_accuracy": float(np.mean(baccs))}


def evaluate_entry(entry: dict, seed: int) -> dict[str, dict]:
    """Every combination (and the finest model alone) for one (seed, k set)."""
    ratios = entry["distances"] / entry["scales"]
    ks = entry["ks"]
    cats = entry["cats"].astype(object)
    out = {}
    variants = {name: combine(ratios, ks) for name, combine in COMBINATIONS.items()}
    # the study's k^2 combination is the detector's (up to the order of summation)
    np.testing.assert_allclose(variants["weights_k2"], entry["detector_scores"], rtol=1e-9)
    variants["finest_alone"] = ratios[:, -1]
    for name, scores in variants.items():
        macro, per = macro_auroc(scores, cats)
        out[name] = {"macro_auroc": macro, "auroc_by_category": per,
                     **transferred(scores, cats, seed)}
    return out


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean of the per-seed differences a - b and its standard error."""
    d = np.asarray(a) - np.asarray(b)
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
    return float(d.mean()), se


def summarise(per_seed: dict[str, dict[int, dict]], seeds: Sequence[int],
              sets: Sequence[tuple[int, ...]], fit_seconds: dict[str, list[float]]) -> dict:
    """Apply the two steps of the rule to the per-seed figures."""
    def series(set_key: str, combination: str, metric: str = "macro_auroc") -> list[float]:
        return [per_seed[set_key][s][combination][metric] for s in seeds]

    ordered = sorted(sets, key=sum)
    keys = [set_name(ks) for ks in ordered]
    step1 = []
    for i, (ks, key) in enumerate(zip(ordered, keys, strict=True)):
        row = {"set": key, "k": list(ks), "sum_k": sum(ks),
               "fit_seconds": fit_seconds[key]}
        for combination in (SET_RULE_COMBINATION, INCUMBENT):
            values = series(key, combination)
            row[combination] = {
                "macro_auroc_mean": float(np.mean(values)),
                "macro_auroc_sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                "fpr_mean": float(np.mean(series(key, combination, "fpr"))),
                "fpr_sd": float(np.std(series(key, combination, "fpr"), ddof=1))
                if len(values) > 1 else 0.0,
                "balanced_accuracy_mean": float(np.mean(
                    series(key, combination, "balanced_accuracy"))),
                "balanced_accuracy_sd": float(np.std(
                    series(key, combination, "balanced_accuracy"), ddof=1))
                if len(values) > 1 else 0.0,
                "auroc_by_category_mean": {
                    c: float(np.mean([per_seed[key][s][combination]["auroc_by_category"][c]
                                      for s in seeds]))
                    for c in per_seed[key][seeds[0]][combination]["auroc_by_category"]},
            }
            if i:
                gain, se = paired(values, series(keys[i - 1], combination))
                row[combination] |= {"gain_over_cheaper": gain, "gain_se": se}
        rule = row[SET_RULE_COMBINATION]
        row["qualifies"] = i == 0 or rule["gain_over_cheaper"] > 2 * rule["gain_se"]
        alone = series(key, "finest_alone")
        row["finest_alone"] = {"k": ks[-1], "macro_auroc_mean": float(np.mean(alone)),
                               "macro_auroc_sd": float(np.std(alone, ddof=1))
                               if len(alone) > 1 else 0.0,
                               "fpr_mean": float(np.mean(series(key, "finest_alone", "fpr"))),
                               "balanced_accuracy_mean": float(np.mean(
                                   series(key, "finest_alone", "balanced_accuracy"))),
                               "balanced_accuracy_sd": float(np.std(
                                   series(key, "finest_alone", "balanced_accuracy"), ddof=1))
                               if len(alone) > 1 else 0.0}
        step1.append(row)
    qualifying = [r for r in step1 if r["qualifies"]]
    chosen_set = max(qualifying, key=lambda r: r[SET_RULE_COMBINATION]["macro_auroc_mean"])

    step2 = {}
    for key in keys:
        rows = {}
        base = series(key, INCUMBENT)
        for name in [*COMBINATIONS, "finest_alone"]:
            values = series(key, name)
            gain, se = paired(values, base)
            rows[name] = {"macro_auroc_mean": float(np.mean(values)),
                          "gain_over_incumbent": gain, "gain_se": se,
                          "fpr_mean": float(np.mean(series(key, name, "fpr"))),
                          "balanced_accuracy_mean": float(np.mean(
                              series(key, name, "balanced_accuracy")))}
        step2[key] = rows
    rows = step2[chosen_set["set"]]
    incumbent = rows[INCUMBENT]
    winners = [name for name, r in rows.items()
               if name in COMBINATIONS and name != INCUMBENT
               and name not in UNINFORMATIVE_VOTES
               and r["gain_over_incumbent"] > 2 * r["gain_se"]
               and r["fpr_mean"] <= incumbent["fpr_mean"]
               and r["balanced_accuracy_mean"] >= incumbent["balanced_accuracy_mean"]]
    chosen_combination = (max(winners, key=lambda n: rows[n]["macro_auroc_mean"])
                          if winners else INCUMBENT)
    return {"seeds": list(seeds), "step1_sets": step1, "step2_combinations": step2,
            "chosen_set": chosen_set["k"], "chosen_combination": chosen_combination,
            "set_rule_combination": SET_RULE_COMBINATION, "incumbent": INCUMBENT}


def render(summary: dict) -> str:
    f4, pct = (lambda v: f"{v:.4f}"), (lambda v: f"{100 * v:.1f}%")
    lines = ["# Validation study: k set and combination (KDDTrain+ only)", "",
             f"Seeds {', '.join(map(str, summary['seeds']))}; mean ± SD over seeds; paired "
             "gains with their SE. FPR and balanced accuracy at a threshold transferred "
             "between the two halves of each validation split. Rule: docs/MODEL.md. "
             "Generated by `python -m benchmarks.validation_study`.", "",
             f"## Step 1: k sets ({summary['set_rule_combination']} mean)", "",
             "| k set | sum of k | macro-AUROC | gain over the next cheaper (SE) | qualifies "
             "| FPR | balanced accuracy | R2L AUROC | macro-AUROC with k² weights "
             "| train() seconds (mean; wall, shared machine) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    rule = summary["set_rule_combination"]
    for row in summary["step1_sets"]:
        r = row[rule]
        gain = (f"{r['gain_over_cheaper']:+.4f} ({r['gain_se']:.4f})"
                if "gain_over_cheaper" in r else "")
        lines.append(
            f"| {row['set']} | {row['sum_k']:,} | {f4(r['macro_auroc_mean'])} ± "
            f"{f4(r['macro_auroc_sd'])} | {gain} | {'yes' if row['qualifies'] else 'no'} | "
            f"{pct(r['fpr_mean'])} ± {100 * r['fpr_sd']:.1f} | "
            f"{pct(r['balanced_accuracy_mean'])} ± {100 * r['balanced_accuracy_sd']:.1f} | "
            f"{f4(r['auroc_by_category_mean'].get('R2L', float('nan')))} | "
            f"{f4(row[summary['incumbent']]['macro_auroc_mean'])} | "
            f"{np.mean(row['fit_seconds']):.1f} |")
    lines += ["", "Finest model alone (its calibrated distance; the same fitted model):", "",
              "| k | macro-AUROC | FPR | balanced accuracy |", "|---|---|---|---|"]
    for row in summary["step1_sets"]:
        a = row["finest_alone"]
        lines.append(f"| {a['k']} | {f4(a['macro_auroc_mean'])} ± {f4(a['macro_auroc_sd'])} "
                     f"| {pct(a['fpr_mean'])} | {pct(a['balanced_accuracy_mean'])} ± "
                     f"{100 * a['balanced_accuracy_sd']:.1f} |")
    chosen = set_name(summary["chosen_set"])
    lines += ["", f"Chosen set: **{chosen}**.", "",
              f"## Step 2: combinations for {chosen} (gains over {summary['incumbent']})", "",
              "| combination | macro-AUROC | paired gain (SE) | FPR | balanced accuracy |",
              "|---|---|---|---|---|"]
    for name, r in summary["step2_combinations"][chosen].items():
        lines.append(f"| {name} | {f4(r['macro_auroc_mean'])} | "
                     f"{r['gain_over_incumbent']:+.4f} ({r['gain_se']:.4f}) | "
                     f"{pct(r['fpr_mean'])} | {pct(r['balanced_accuracy_mean'])} |")
    lines += ["", f"Chosen combination: **{summary['chosen_combination']}**.", ""]
    return "\n".join(lines)


def _parse_sets(text: str) -> tuple[tuple[int, ...], ...]:
    out = []
    for part in text.split(","):
        lo, hi = (int(v) for v in part.split("-"))
        out.append(tuple(range(lo, hi + 1, 50)))
    return tuple(out)


def main(argv: list[str] | None = None) -> int:
    config = script_settings()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--train", type=Path, default=None,
                        help="KDDTrain+ (default: data/KDDTrain+.txt; any other file is refused)")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--sets", default=None,
                        help="comma-separated lo-hi ranges in steps of 50 (default: all studied)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--fresh", action="store_true", help="refit even what is cached")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    path = args.train or config["DATA_DIR"] / "KDDTrain+.txt"
    if sha256_file(path) != CHECKSUMS["KDDTrain+.txt"]:
        print(f"error: {path} is not KDDTrain+: the study runs on training data only",
              file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    sets = _parse_sets(args.sets) if args.sets else SETS
    progress(f"reading {path}")
    records = read_records(path)
    per_seed: dict[str, dict[int, dict]] = {}
    fit_seconds: dict[str, list[float]] = {}
    for seed, ks in itertools.product(seeds, sets):
        key = set_name(ks)
        progress(f"seed {seed}, k set {key}")
        entry = fit_or_load(records, seed, ks, args.cache_dir, args.fresh)
        fit_seconds.setdefault(key, []).append(float(entry["fit_seconds"]))
        per_seed.setdefault(key, {})[seed] = evaluate_entry(entry, seed)
        r = per_seed[key][seed]
        progress(f"  macro-AUROC geometric {r['geometric']['macro_auroc']:.4f}, "
                 f"k² {r['weights_k2']['macro_auroc']:.4f}; train {entry['fit_seconds']:.1f} s")
    summary = summarise(per_seed, seeds, sets, fit_seconds)
    summary["per_seed"] = per_seed
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out_dir / "validation_study.json",
                       (json.dumps(summary, indent=1) + "\n").encode())
    text = render(summary)
    atomic_write_bytes(args.out_dir / "validation_study.md", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
