"""Writing files so that a crash leaves the old content or the new, never half of either.

The one home of the temp-file-fsync-rename write and of the fsync helpers: the model store
writes models and cards with it, the registry flushes kept uploads and their folders, the
benchmarks write their reports.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path | str, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a temp file beside ``path``, fsync it, rename it onto ``path``.

    ``os.replace`` is atomic on POSIX, so readers see the old file or the new. The temp file
    is readable by everyone (mkstemp's 0600 would hide a model from other users and git) and
    is removed if anything fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        os.close(fd)
        write(Path(tmp))
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """``data`` into ``path`` with ``atomic_write``."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def fsync_file(path: Path | str) -> None:
    """Flush a file's content to the disk (before a rename or a row makes it count)."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path | str) -> None:
    """Flush a folder's entries (a rename into it); best effort, some file systems refuse."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
