"""The watcher's saved state: one JSON document replaced atomically, and the held rows.

The JSON names the Parquet file of the rows it goes with (a new file each save), so a crash
at any moment leaves either the old pair or the new one: the JSON is the commit.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

STATE_FILE = "state.json"
_PART = "_part"
_ROW = "_row"


def atomic_write(path: Path, data: bytes) -> None:
    """Temp file beside ``path``, fsync, rename, fsync the folder: old or new, never half."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StateStore:
    """Saves and loads the watcher's state in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._generation = 0

    def load(self) -> tuple[dict[str, Any], pd.DataFrame | None, pd.DataFrame | None] | None:
        """(document, held rows, context rows), or None before the first save."""
        path = self.folder / STATE_FILE
        if not path.exists():
            return None
        document = orjson.loads(path.read_bytes())
        self._generation = int(document.get("generation", 0))
        rows_file = document.get("rows_file")
        held = context = None
        if rows_file:
            table = pd.read_parquet(self.folder / rows_file)
            table = table.set_index(_ROW)
            table.index.name = None
            for column in table.columns:
                if table[column].dtype == object:
                    table[column] = table[column].where(table[column].notna(), pd.NA)
            part = table.pop(_PART).to_numpy()
            held = table[part == 0] if (part == 0).any() else None
            context = table[part == 1] if (part == 1).any() else None
        return document, held, context

    def save(self, document: dict[str, Any], held: pd.DataFrame | None,
             context: pd.DataFrame | None) -> None:
        self._generation += 1
        parts = [frame.assign(**{_PART: part}) for part, frame in ((0, held), (1, context))
                 if frame is not None and len(frame)]
        rows_file = None
        if parts:
            table = pd.concat(parts)
            table.index.name = _ROW
            rows_file = f"rows-{self._generation}.parquet"
            tmp = self.folder / f".{rows_file}.tmp"
            table.reset_index().to_parquet(tmp, index=False)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, self.folder / rows_file)
        document = {**document, "generation": self._generation, "rows_file": rows_file}
        atomic_write(self.folder / STATE_FILE, orjson.dumps(document))
        for old in self.folder.glob("rows-*.parquet"):
            if old.name != rows_file:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()
