"""How many clusters a baseline's K-means models get: the k set scales with the fit rows.

The KDD model's k set (400..600, utils.detector.DEFAULT_N_CLUSTERS) was chosen on 100,000
rows. A week of a small network may hold a few thousand connections; a k=600 model cannot
even be fitted on fewer than 750 rows, and on not many more each cluster holds a handful
of rows, so the model memorises the week instead of learning it. The rule:

    k_max = clamp(n_fit_rows // ROWS_PER_CLUSTER, K_MIN, K_MAX)
    k     = round(k_max * spread), spread = DEFAULT_N_CLUSTERS / max(DEFAULT_N_CLUSTERS)

so a large baseline gets the KDD model's own set, and a small one the same shape scaled
down. ROWS_PER_CLUSTER was chosen by benchmarks/zeek_k_rule.py on temporal splits inside
the first half of each shared Zeek sample (never the half the reports score); the study,
its criterion and its figures are in docs/ZEEK.md and benchmarks/results/zeek_k_rule.md.
"""

from __future__ import annotations

from utils.detector import DEFAULT_N_CLUSTERS

# Fit rows per cluster of the largest model: the study's choice among CANDIDATES
# (`python -m benchmarks.zeek_k_rule`). Every candidate was within its margins (false alarms
# within 0.01 of the lowest, AUROC within 0.005 of the best), so its tie rule took the
# largest; 64 also had the fewest false alarms (1.30% against 1.93% for 2). A 64 at the
# edge of the grid says coarser may be better still: the study has not tried it.
ROWS_PER_CLUSTER = 64
# The grid the study compared, from nearly memorising (2) to very coarse (64).
CANDIDATES: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
# Largest k: the KDD model's, which a baseline of K_MAX * ROWS_PER_CLUSTER rows reaches.
K_MAX = max(DEFAULT_N_CLUSTERS)
# Smallest k_max: the five models then still have five distinct k (10, 11, 12, 14, 15).
K_MIN = 15
SPREAD: tuple[float, ...] = tuple(k / K_MAX for k in DEFAULT_N_CLUSTERS)
# Fewest fit rows for the smallest set: 15 clusters need rows beyond themselves after the
# detector holds out a fifth of them to calibrate its scores (it refuses fewer than ~19).
MIN_FIT_ROWS = 2 * K_MIN
RULE_TEXT = ("k_max = clamp(n_fit_rows // rows_per_cluster, k_min, k_max_cap); "
             "k = round(k_max * spread)")
CHOSEN_BY = ("benchmarks/zeek_k_rule.py: temporal splits inside the first half (by ts) of "
             "each shared Zeek sample")


def baseline_k_values(n_fit_rows: int, rows_per_cluster: int = ROWS_PER_CLUSTER
                      ) -> tuple[int, ...]:
    """The five k for a baseline fitted on ``n_fit_rows`` rows (see the module's rule)."""
    if rows_per_cluster < 1:
        raise ValueError(f"rows_per_cluster must be at least 1, got {rows_per_cluster}")
    k_max = min(K_MAX, max(K_MIN, int(n_fit_rows) // rows_per_cluster))
    return tuple(round(k_max * share) for share in SPREAD)


def k_rule_card(n_fit_rows: int, k_values: tuple[int, ...] | list[int], *,
                explicit: bool = False) -> dict:
    """What the model card records about the k set: the rule, its constants, its input and
    result; ``explicit`` when the caller chose k itself and the rule was not applied."""
    return {
        "rule": "explicit k" if explicit else RULE_TEXT,
        "rows_per_cluster": ROWS_PER_CLUSTER,
        "k_min": K_MIN,
        "k_max_cap": K_MAX,
        "spread": [round(share, 6) for share in SPREAD],
        "n_fit_rows": int(n_fit_rows),
        "k_values": [int(k) for k in k_values],
        "chosen_by": CHOSEN_BY,
    }
