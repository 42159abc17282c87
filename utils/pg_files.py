"""Where the PostgreSQL registry keeps the bytes of uploads: the protocol, and the data folder
(several processes on one machine). utils/shared_store.py has the object-store one."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Protocol

from utils.registry.interface import Upload
from utils.registry.kept_files import UPLOADS_DIR, stored_file_name


class KeptFiles(Protocol):
    """Where kept uploads go: ``keep`` a valid temp file (its location, as stored in the
    row), ``forget`` one whose row was not written, ``local_path`` to read one back."""

    def keep(self, path: Path, sha256: str, original_name: str | None) -> str: ...

    def forget(self, location: str, path: Path) -> None: ...

    def local_path(self, upload: Upload) -> Path: ...


class LocalFiles:
    """Kept uploads in ``<data_dir>/uploaded_logs/`` (one machine, several processes)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.uploads_dir = self.data_dir / UPLOADS_DIR

    def keep(self, path: Path, sha256: str, original_name: str | None) -> str:
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        # A name of its own per keep (a random part): processes racing to keep the same
        # content each write their own file, and the loser takes back only its own.
        stem, dot, suffix = stored_file_name(sha256, original_name, path).rpartition(".")
        name = f"{stem}-{secrets.token_hex(3)}{dot}{suffix}"
        os.replace(path, self.uploads_dir / name)
        return f"{UPLOADS_DIR}/{name}"

    def forget(self, location: str, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.data_dir / location, path)

    def local_path(self, upload: Upload) -> Path:
        return self.data_dir / upload.stored_path
