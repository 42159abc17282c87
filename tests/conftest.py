"""Fixtures shared by every test folder."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

from settings import load_settings
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
    folder = load_settings("tests")["NSLKDD_DIR"]
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
            message = f"cannot mount a {size} tmpfs: {problem}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_disk(folder: Path, leave: int = 0, name: str = "filler.bin") -> Path:
    """Fill the file system of ``folder`` with one file, then give back about ``leave`` bytes
    (to the page: tmpfs allocates 4 KiB at a time). Returns the file, to delete later."""
    path = folder / name
    block = b"\0" * (1 << 16)
    with open(path, "wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(block)  # a short write on the last block, then ENOSPC
    with contextlib.suppress(OSError):
        while True:  # the last few pages, a little at a time
            with open(path, "ab", buffering=0) as out:
                out.write(b"\0" * 4096)
    if leave:
        os.truncate(path, max(0, path.stat().st_size - leave))
    return path


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
