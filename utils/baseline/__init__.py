"""Baselines of one's own network (Zeek conn.logs): the health report, exclusions, the k
rule, temporal-split training and the promotion gate for unlabeled kinds."""
