"""Partition functions for the Dask tests, in a module of their own: the scheduler and the
workers unpickle a task's function by its module name, and they import ``tests.infra``
from the repository (the cluster runs with it on PYTHONPATH), never a pytest test file."""

from __future__ import annotations

import os
import time

import pandas as pd


def double(part: pd.DataFrame, delay: float = 0.0) -> pd.DataFrame:
    """``y = 2x``, with the pid of the worker process that computed it."""
    time.sleep(delay)
    return part.assign(y=part["x"] * 2, pid=os.getpid())


def frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({"x": range(rows)})


def meta() -> pd.DataFrame:
    """The empty frame ``map_partitions(double, meta=...)`` needs."""
    return pd.DataFrame({"x": pd.Series(dtype="int64"), "y": pd.Series(dtype="int64"),
                         "pid": pd.Series(dtype="int64")})
