"""json_column: the column-at-a-time shortcut must give exactly what json_value gives per value."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from server.responses import json_column, json_value


def per_value(values: np.ndarray) -> list:
    return [json_value(v) for v in values.tolist()]


def same(values: np.ndarray) -> None:
    fast, slow = json_column(values), per_value(values)
    assert json.dumps(fast) == json.dumps(slow)
    assert [type(v) for v in fast] == [type(v) for v in slow]


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(hnp.arrays(np.float64, st.integers(0, 30),
                  elements=st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                     st.integers(-2**60, 2**60).map(float))))
def test_float_columns_match_value_by_value(values):
    same(values)


def test_whole_float_columns_become_ints_and_text_stays_text():
    assert json_column(np.array([0.0, 80.0, 2.0**52])) == [0, 80, 2**52]
    assert json_column(np.array(["tcp", "http"], dtype=object)) == ["tcp", "http"]
    same(np.array([1.5, 2.0, np.nan]))
    same(np.array(["normal", pd.NA, None, 3, 2.0], dtype=object))
    same(np.array([1, 2], dtype=np.int64))
    same(np.array([True, False]))
