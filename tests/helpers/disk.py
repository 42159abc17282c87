"""What the service left on disk (kept uploads, temp files), and filling a disk up."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def stored_files(data_dir: Path) -> list[str]:
    """Names of the kept uploads (not counting the archive folder)."""
    folder = data_dir / "uploaded_logs"
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def leftover_temp_files(data_dir: Path) -> list[Path]:
    folder = data_dir / "incoming"
    return list(folder.iterdir()) if folder.exists() else []


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


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
