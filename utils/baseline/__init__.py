"""Baselines of the analyst's own network: Zeek models trained on a quiet period of its
traffic, with a health report first and a promotion gate after."""
