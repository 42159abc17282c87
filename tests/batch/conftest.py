"""A real local Dask cluster (worker processes, one thread each) for the batch-scoring tests,
and the committed model they score with."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.batch_scoring import MODEL_DIR
from utils.batch.job import connect
from utils.batch.readers import load_scoring_model


@pytest.fixture(scope="package")
def local_client() -> Iterator[object]:
    """A LocalCluster of two worker processes, started (and tuned) as ``score_logs.py`` starts
    it; stopped after this folder's tests, so its processes do not idle through the rest of
    the suite."""
    with connect(workers=2) as client:
        yield client


@pytest.fixture(scope="session")
def model():
    return load_scoring_model(MODEL_DIR)
