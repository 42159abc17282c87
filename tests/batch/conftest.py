"""A real local Dask cluster (worker processes, one thread each) for the batch-scoring tests,
and the committed model they score with."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.batch_scoring import MODEL_DIR
from utils.batch.readers import load_scoring_model


@pytest.fixture(scope="package")
def local_client() -> Iterator[object]:
    """A LocalCluster of two worker processes, as ``score_logs.py`` starts by default; stopped
    after this folder's tests, so its processes do not idle through the rest of the suite."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(scope="session")
def model():
    return load_scoring_model(MODEL_DIR)
