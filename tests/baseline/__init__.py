"""Baselines of an own network (utils/baseline/): health report, exclusions, k rule,
temporal-split training, the unlabeled gate, and train_model.py for Zeek input."""
