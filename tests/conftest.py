"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

from utils.local_engines import DaskCluster, EngineUnavailable, PostgresServer, S3Server

REPO_ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def poll(condition: Callable[[], T], what: str, deadline: float = 30.0,
         interval: float = 0.1) -> T:
    """The first truthy value of ``condition()``, tried until ``deadline`` seconds pass.

    Tests of background work (retrains, reloads) wait with this instead of sleeping a fixed
    time: bounded, and as fast as the machine allows.
    """
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"gave up waiting for {what}")


def skip_or_fail(message: str) -> NoReturn:
    """Skip the test locally, fail it in CI (env CI set): CI installs everything, so a
    missing file or program there is a broken setup, never a reason to test less."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_file(path: Path, hint: str) -> Path:
    """``path`` if it exists; otherwise skip the test locally, fail it in CI."""
    if not path.is_file():
        skip_or_fail(f"{path} is missing: {hint}")
    return path


def nslkdd_path(name: str) -> Path:
    """An NSL-KDD file from ANOMALYZE_NSLKDD_DIR (default: the repo's data/ folder).

    Tests point ANOMALYZE_DATA_DIR at temp folders for uploads, so the data set has its own
    variable here. Missing files skip the test locally but fail it in CI (CI seeds data/).
    """
    folder = Path(os.environ.get("ANOMALYZE_NSLKDD_DIR", REPO_ROOT / "data"))
    return require_file(folder / name,
                        "run `make data` (CI seeds it from ../shared/data/nsl-kdd)")


@pytest.fixture(scope="session")
def kdd_test_path() -> Path:
    return nslkdd_path("KDDTest+.txt")


@pytest.fixture(scope="session")
def kdd_train_path() -> Path:
    return nslkdd_path("KDDTrain+.txt")


@pytest.fixture(scope="session")
def kdd_train20_path() -> Path:
    return nslkdd_path("KDDTrain+_20Percent.txt")


def _serve(make: Callable[[], T]) -> Iterator[T]:
    """Start an engine from ``make`` for the session and close it after, pass or fail."""
    try:
        engine = make()
    except EngineUnavailable as exc:
        skip_or_fail(str(exc))
    try:
        yield engine.start()
    finally:
        engine.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL on 127.0.0.1 (``.url()``; ``.create_database(name)`` for a fresh
    database; ``with postgres_server.stopped():`` takes it away for a while)."""
    yield from _serve(PostgresServer)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible server, SeaweedFS (``.endpoint_url``, ``.env()``, ``.client()``,
    ``.stopped()``)."""
    yield from _serve(S3Server)


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[DaskCluster]:
    """A Dask scheduler (``.address``) and two one-thread worker processes; a test that
    kills a worker (``.kill_worker(i)``) calls ``.start()`` after, which restarts it."""
    yield from _serve(lambda: DaskCluster(n_workers=2))
