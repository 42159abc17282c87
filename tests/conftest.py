"""Fixtures shared by every test folder: the NSL-KDD files, a small model trained on synthetic
records, an app on it with its data in a temp folder, its log lines, a small disk, and the real
engines (PostgreSQL, SeaweedFS, Dask). Helpers that are not fixtures live in tests/helpers/."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from server.request_log import LOGGER_NAME
from settings import load_settings
from tests.helpers.api_calls import LogLines
from tests.helpers.kdd_data import synthetic_kdd
from tests.helpers.models import train_model
from tests.helpers.repo import nslkdd_path, skip_or_fail
from tests.helpers.zeek_logs import zeek_sample
from utils.local_engines import DaskCluster, EngineUnavailable, PostgresServer, S3Server

T = TypeVar("T")


# --- the NSL-KDD files ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def kdd_test_path() -> Path:
    return nslkdd_path("KDDTest+.txt")


@pytest.fixture(scope="session")
def kdd_train_path() -> Path:
    return nslkdd_path("KDDTrain+.txt")


@pytest.fixture(scope="session")
def kdd_train20_path() -> Path:
    return nslkdd_path("KDDTrain+_20Percent.txt")


@pytest.fixture(scope="session")
def kdd_test_lines(kdd_test_path) -> list[str]:
    return kdd_test_path.read_text().splitlines()


# --- a small model, the app on it, and what it logs ------------------------------------------


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A small three-model ensemble on synthetic records, fitted once per session."""
    return train_model(tmp_path_factory.mktemp("model"), seed=0)


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory) -> Path:
    """A second small model with another version, for hot-reload tests."""
    return train_model(tmp_path_factory.mktemp("model2"), seed=1)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def log_lines(app) -> Iterator[list[dict]]:
    """The service's JSON log lines written while the test runs."""
    logger = logging.getLogger(LOGGER_NAME)
    handler = LogLines()
    handler.setFormatter(logger.handlers[0].formatter)
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.fixture
def labeled_upload() -> bytes:
    """60 rows: 40 normal, 20 neptune."""
    return synthetic_kdd(40, 20, seed=7)


@pytest.fixture
def zeek_upload() -> bytes:
    return zeek_sample()


# --- a small disk ---------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``mount(size="8m")``: a fresh tmpfs of that size, a real file system that fills up.

    Needs root (CI runs as root). Where mounting is impossible the test is skipped, but fails
    in CI (env CI set), so the disk-full tests cannot silently stop running there. Unmounted
    after the test, so a fixture that uses it (a server writing there) must stop first.
    """
    mounted: list[Path] = []

    def mount(size: str = "8m", name: str = "small-disk") -> Path:
        path = tmp_path / name
        path.mkdir()
        try:
            result = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                capture_output=True, text=True, timeout=30)
            problem = result.stderr.strip() if result.returncode else None
        except OSError as exc:  # no mount(8) at all
            problem = str(exc)
        if problem is not None:
            skip_or_fail(f"cannot mount a {size} tmpfs: {problem}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


# --- real servers (PostgreSQL, SeaweedFS, Dask) --------------------------------------------


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
    bindir = load_settings("tests")["PG_BINDIR"]
    yield from _serve(lambda: PostgresServer(bindir=bindir))


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
