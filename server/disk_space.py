"""Free space in the data folder: reported by /health, and a floor under which uploads are not kept.

Everything the service writes goes to the data folder: uploads being received (``incoming/``),
kept uploads, the SQLite registry. When that disk fills, receiving an upload fails (answered
507 ``insufficient_storage``, see server/errors.py) and so do registry writes. Uploads are
therefore no longer kept once free space falls under ``ANOMALYZE_MIN_FREE_MB``: the room left
stays for receiving and scoring uploads, which still works (``stored: false``).
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from flask import Flask, current_app

from server.config import megabytes

EXTENSION_KEY = "anomalyze.disk_space"

# errno values that mean "no room left": the disk is full, or the user's quota is used up.
_OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_FULL = 13
_SQLITE_STORAGE_CODES = frozenset({
    10,  # SQLITE_IOERR: e.g. the shared-memory file of WAL mode cannot grow on a full disk
    14,  # SQLITE_CANTOPEN
    _SQLITE_FULL,
})


class DiskSpace:
    """Free bytes of the file system holding ``path``, against a floor of ``min_free_bytes``."""

    def __init__(self, path: Path | str, min_free_bytes: int) -> None:
        self.path = Path(path)
        self.min_free_bytes = min_free_bytes

    def free_bytes(self) -> int | None:
        """Bytes an unprivileged writer may still use there (None if it cannot be read)."""
        try:
            return shutil.disk_usage(self.path).free
        except OSError:
            return None

    def low(self) -> bool:
        """Whether free space is under the floor (unknown free space does not count as low)."""
        free = self.free_bytes()
        return free is not None and free < self.min_free_bytes

    def status(self) -> dict[str, Any]:
        free = self.free_bytes()
        return {"free_bytes": free, "min_free_bytes": self.min_free_bytes,
                "low": free is not None and free < self.min_free_bytes}


def is_out_of_space(error: BaseException) -> bool:
    """An OSError with ENOSPC/EDQUOT, or SQLite's "database or disk is full"."""
    if isinstance(error, OSError):
        return error.errno in _OUT_OF_SPACE_ERRNOS
    if isinstance(error, sqlite3.Error):
        return _sqlite_code(error) == _SQLITE_FULL or "disk is full" in str(error)
    return False


def is_storage_failure(error: BaseException) -> bool:
    """An SQLite error that says the database's files cannot be written or read (disk full,
    I/O error, cannot open): a state of the data folder, not a bug in the query."""
    if isinstance(error, sqlite3.Error):
        return _sqlite_code(error) in _SQLITE_STORAGE_CODES or is_out_of_space(error)
    return False


def _sqlite_code(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def init_app(app: Flask) -> DiskSpace:
    disk = DiskSpace(app.config["DATA_DIR"], megabytes(app.config["MIN_FREE_MB"]))
    app.extensions[EXTENSION_KEY] = disk
    return disk


def get_disk_space() -> DiskSpace:
    return current_app.extensions[EXTENSION_KEY]
