"""PNG plots of the benchmark results (matplotlib, Agg backend: no display needed).

Every function takes the JSON-ready results (never live models), so the plots can be redrawn
from latest.json and tested on tiny inputs.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported: no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np

from utils.schema import ATTACK_CATEGORY_ORDER

DPI = 110


def _save(fig, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path.name


def plot_roc(curves: list[dict], title: str, path: Path) -> str:
    """ROC curves (linear and log FPR axis); ``curves``: label, fpr, tpr, auroc, and the
    operating point (point_fpr, point_tpr) when the detector has one."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, log in zip(axes, (False, True), strict=True):
        for curve in curves:
            auroc = curve.get("auroc")
            label = f"{curve['label']} (AUROC {auroc:.4f})" if auroc is not None else curve[
                "label"]
            (line,) = ax.step(curve["fpr"], curve["tpr"], where="post", label=label)
            if curve.get("point_fpr") is not None:
                ax.plot([max(curve["point_fpr"], 1e-4) if log else curve["point_fpr"]],
                        [curve["point_tpr"]], "o", color=line.get_color())
        ax.set_xlabel("false-positive rate" + (" (log)" if log else ""))
        ax.set_ylabel("true-positive rate (recall)")
        ax.grid(alpha=0.3)
        if log:
            ax.set_xscale("log")
            ax.set_xlim(1e-4, 1.0)
        else:
            ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
            ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
    axes[0].legend(loc="lower right", fontsize=8)
    axes[1].set_title("dots: operating points (a voter's may lie off its curve)", fontsize=9)
    fig.suptitle(title)
    return _save(fig, path)


def plot_categories(detectors: list[dict], dataset: str, title: str, path: Path) -> str:
    """Detection rate per attack category and the false-positive rate, per detector."""
    groups = ["false alarms (Normal)", *ATTACK_CATEGORY_ORDER]
    rows = []
    for det in detectors:
        metrics = det[dataset]
        by_cat = metrics["detection_rate_by_category"]
        rows.append([metrics["false_positive_rate"],
                     *[by_cat[c]["rate"] if c in by_cat else np.nan for c in groups[1:]]])
    values = np.array(rows, dtype=float)
    present = ~np.all(np.isnan(values), axis=0)
    groups = [g for g, keep in zip(groups, present, strict=True) if keep]
    values = values[:, present]
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / max(1, len(detectors))
    x = np.arange(len(groups))
    for i, det in enumerate(detectors):
        ax.bar(x + (i - (len(detectors) - 1) / 2) * width, values[i], width, label=det["label"])
    ax.set_xticks(x, groups)
    ax.set_ylabel("share of rows flagged")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    ax.set_title(title)
    return _save(fig, path)


def plot_throughput(sizes: list[dict], path: Path) -> str:
    """Time against rows (log-log, with the line of exact proportionality) and samples/s."""
    rows = np.array([s["rows"] for s in sizes], dtype=float)
    seconds = np.array([s["best_seconds"] for s in sizes], dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.loglog(rows, seconds, "o-", label="measured (best run)")
    anchor = int(np.argmax(rows)) if len(rows) else 0
    if len(rows):
        line = np.geomspace(rows.min(), rows.max(), 50)
        left.loglog(line, seconds[anchor] * line / rows[anchor], ":", color="grey",
                    label="proportional to rows (through the largest)")
    left.set_xlabel("rows")
    left.set_ylabel("seconds (parse + features + score)")
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize=8)
    right.semilogx(rows, rows / seconds, "o-")
    right.set_xlabel("rows")
    right.set_ylabel("samples / s")
    right.set_ylim(bottom=0)
    right.grid(alpha=0.3, which="both")
    fig.suptitle("In-process end-to-end throughput (committed model)")
    return _save(fig, path)
