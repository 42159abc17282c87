"""The promotion gate for baselines, a kind whose traffic is mostly unlabeled.

The first model of a kind is promoted: anything beats having none (uploads of that kind
would otherwise be scored by a model of another kind). After that, the candidate and the
current model score the same rows, the candidate's newest held-out slice, each at its own
threshold. The candidate is held when it raises more false alarms there than the current
model by more than FALSE_ALARM_TOLERANCE, or, when that slice holds rows labeled malicious,
when it catches fewer of them (RECALL_TOLERANCE) or ranks them worse (AUROC_TOLERANCE).
The current model may have trained on those rows (a baseline of the same weeks plus one);
then the comparison favours it, which errs on the side of keeping what serves.
"""

from __future__ import annotations

from utils.baseline.slices import malicious_mask
from utils.baseline.training import BaselineResult, slice_figures
from utils.model_store import LoadedModel
from utils.readers.records import ParsedRecords
from utils.retraining.gate import pipeline_scores

# Absolute tolerances. A newest slice of 400 normal rows measures a 1% false-alarm rate
# within about +-0.5 point (its binomial standard error), so half a point is the smallest
# difference worth holding a model back for. Recall uses the KDD gate's per-category
# tolerance (utils.retraining.settings); AUROC twice the KDD gate's 0.005, since a
# baseline's newest slice holds far fewer labeled attacks than KDDTrain+'s validation rows.
FALSE_ALARM_TOLERANCE = 0.005
RECALL_TOLERANCE = 0.02
AUROC_TOLERANCE = 0.01
_EPS = 1e-12


def baseline_gate(current: LoadedModel | None, candidate: BaselineResult,
                  records_newest_slice: ParsedRecords) -> tuple[bool, str, dict]:
    """(promote?, why, figures): ``figures`` holds ``candidate`` and ``current`` (None for
    the first model of a kind), each slice_figures on ``records_newest_slice``."""
    kind = candidate.card.get("input_kind")
    if not len(records_newest_slice):
        raise ValueError("the gate needs the candidate's newest slice, and it is empty")
    malicious = malicious_mask(records_newest_slice.labels, len(records_newest_slice))
    new = slice_figures(pipeline_scores(candidate.pipeline, records_newest_slice.features),
                        candidate.pipeline[-1].threshold_, malicious)
    if current is None:
        return True, f"first {kind} model: promoted", {"candidate": new, "current": None}
    current_kind = current.card.get("input_kind", "kdd")
    if current_kind != kind:
        raise ValueError(f"the current model is for {current_kind!r} input, the candidate "
                         f"for {kind!r}: the gate compares models of one kind")
    old = slice_figures(pipeline_scores(current.pipeline, records_newest_slice.features),
                        current.detector.threshold_, malicious)
    figures = {"candidate": new, "current": old,
               "tolerances": {"false_alarm_rate": FALSE_ALARM_TOLERANCE,
                              "recall": RECALL_TOLERANCE, "auroc": AUROC_TOLERANCE}}
    lines, worse = [], []
    for name, tolerance, higher_is_worse in (("false_alarm_rate", FALSE_ALARM_TOLERANCE, True),
                                             ("recall", RECALL_TOLERANCE, False),
                                             ("auroc", AUROC_TOLERANCE, False)):
        before, after = old[name], new[name]
        if before is None or after is None:
            continue
        lines.append(f"{name} {before:.4f} -> {after:.4f}")
        change = after - before if higher_is_worse else before - after
        if change > tolerance + _EPS:
            worse.append(name)
    summary = (", ".join(lines) + f" on the newest {len(records_newest_slice):,} rows "
               f"(tolerance {FALSE_ALARM_TOLERANCE} false alarms, {RECALL_TOLERANCE} recall, "
               f"{AUROC_TOLERANCE} AUROC)")
    if worse:
        return False, f"candidate worse on {' and '.join(worse)}: {summary}", figures
    return True, f"candidate as good within the tolerance: {summary}", figures

