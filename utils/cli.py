"""Small helpers shared by the command-line scripts (formatting, progress)."""

from __future__ import annotations

import sys
import time


def progress(message: str) -> None:
    """Progress goes to stderr so ``--json`` output on stdout stays machine-readable."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def format_metrics(metrics: dict) -> str:
    """Readable block for the metrics dict of ``utils.metrics.evaluate``."""
    cm = metrics["confusion_matrix"]
    auroc = metrics["auroc"]
    lines = [
        f"rows (labeled)     {metrics['labeled_samples']:,}",
        f"accuracy           {metrics['accuracy']:.2%}",
        f"precision          {metrics['precision']:.2%}",
        f"recall             {metrics['recall']:.2%}",
        f"F1                 {metrics['f1']:.2%}",
        f"AUROC              {auroc:.4f}" if auroc is not None else "AUROC              n/a",
        f"false-positive rate {metrics['false_positive_rate']:.2%}",
        "confusion matrix   (rows: actual normal / attack; columns: predicted normal / attack)",
        f"                   normal {cm['tn']:>7,} {cm['fp']:>7,}",
        f"                   attack {cm['fn']:>7,} {cm['tp']:>7,}",
        "detection rate by category:",
    ]
    for name, entry in metrics["detection_rate_by_category"].items():
        lines.append(f"  {name:8s} {entry['detected']:>7,} / {entry['total']:<7,} "
                     f"{entry['rate']:.2%}")
    return "\n".join(lines)
