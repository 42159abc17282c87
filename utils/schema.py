"""The KDD Cup 1999 / NSL-KDD record layout, for the library: its one home is
contract/record_layout.py, which the frontend (api/) imports too; re-exported here so the
library's modules name it as one of their own.
"""

from contract.record_layout import (
    ATTACK_CATEGORIES,
    ATTACK_CATEGORY_ORDER,
    CATEGORICAL_FEATURES,
    DIFFICULTY_COLUMN,
    FEATURE_NAMES,
    LABEL_COLUMN,
    N_FEATURES,
    NORMAL_LABEL,
    NUMERIC_FEATURES,
    SEVERITIES,
    attack_category,
)

__all__ = [
    "ATTACK_CATEGORIES",
    "ATTACK_CATEGORY_ORDER",
    "CATEGORICAL_FEATURES",
    "DIFFICULTY_COLUMN",
    "FEATURE_NAMES",
    "LABEL_COLUMN",
    "NORMAL_LABEL",
    "NUMERIC_FEATURES",
    "N_FEATURES",
    "SEVERITIES",
    "attack_category",
]
