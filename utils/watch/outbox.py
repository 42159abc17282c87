"""Alerts on disk until every sink has taken them: a durable outbox with acknowledged offsets.

Alerts are appended (one NDJSON line each) to segment files named by their first byte's
offset in the whole outbox. The watcher commits the end offset with its state; sinks read
only up to the committed end, so nothing they send can be taken back. Each sink saves the
offset it has delivered up to (its acknowledgement) after each delivery, so a restarted
sink resumes after the last alert its receiver accepted. Segments every sink is past are
deleted. On opening, anything beyond the committed end (written by a run that stopped
before its commit) is cut off: those records are read and scored again.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import threading
from pathlib import Path

import orjson

from utils.watch.state import atomic_write, fsync_folder

SEGMENT_BYTES = 64 << 20
_SUFFIX = ".ndjson"


class Outbox:
    def __init__(self, folder: Path, committed: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "acks").mkdir(exist_ok=True)
        self.segment_bytes = segment_bytes
        self._changed = threading.Condition()
        self._committed = committed
        self._starts = sorted(int(p.name[:-len(_SUFFIX)]) for p in self.folder.glob(
            f"*{_SUFFIX}"))
        self._cut_after(committed)
        self.end = committed

    def _path(self, start: int) -> Path:
        return self.folder / f"{start:020d}{_SUFFIX}"

    def _cut_after(self, end: int) -> None:
        for start in [s for s in self._starts if s >= end]:
            self._path(start).unlink()
            self._starts.remove(start)
        if self._starts:
            last = self._starts[-1]
            if os.path.getsize(self._path(last)) > end - last:
                with open(self._path(last), "r+b") as handle:
                    handle.truncate(end - last)
                    os.fsync(handle.fileno())

    # -- the watcher's side --------------------------------------------------------------

    def append(self, lines: list[bytes]) -> int:
        """Write alerts (each a line ending in a newline) after the end, durably; not yet
        visible to sinks (see commit). Returns the new end."""
        if not lines:
            return self.end
        data = b"".join(lines)
        if not self._starts or self.end - self._starts[-1] >= self.segment_bytes:
            self._starts.append(self.end)
            self._path(self.end).touch()
            fsync_folder(self.folder)
        with open(self._path(self._starts[-1]), "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self.end += len(data)
        return self.end

    def commit(self, end: int) -> None:
        """Make alerts up to ``end`` (committed with the watcher's state) visible to sinks."""
        with self._changed:
            self._committed = end
            self._changed.notify_all()

    @property
    def committed(self) -> int:
        return self._committed

    # -- the sinks' side -----------------------------------------------------------------

    def wait(self, offset: int, timeout: float) -> None:
        """Until alerts past ``offset`` are committed, or ``timeout`` seconds."""
        with self._changed:
            if self._committed <= offset:
                self._changed.wait(timeout)

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def read(self, offset: int, max_lines: int, max_bytes: int = 4 << 20
             ) -> tuple[list[bytes], int]:
        """Committed alerts from ``offset`` on (at most max_lines and about max_bytes), and
        the offset after them."""
        end = self._committed
        starts = list(self._starts)
        if offset >= end or not starts:
            return [], offset
        index = max(bisect.bisect_right(starts, offset) - 1, 0)
        start = starts[index]
        stop = min(end, starts[index + 1] if index + 1 < len(starts) else end)
        with open(self._path(start), "rb") as handle:
            handle.seek(offset - start)
            data = handle.read(min(stop - offset, max_bytes))
        lines = data.splitlines(keepends=True)[:max_lines]
        if lines and not lines[-1].endswith(b"\n"):
            lines.pop()
        if not lines and data:  # one alert longer than max_bytes
            with open(self._path(start), "rb") as handle:
                handle.seek(offset - start)
                lines = [handle.readline()]
        return lines, offset + sum(len(line) for line in lines)

    def load_ack(self, sink: str) -> dict | None:
        path = self.folder / "acks" / f"{sink}.json"
        return orjson.loads(path.read_bytes()) if path.exists() else None

    def save_ack(self, sink: str, offset: int, **extra) -> None:
        atomic_write(self.folder / "acks" / f"{sink}.json",
                     orjson.dumps({"offset": offset, **extra}))

    def release(self, offset: int) -> None:
        """Delete the segments wholly before ``offset`` (what every sink has delivered).
        Called from the watcher's thread, the only one that changes the segment list."""
        while len(self._starts) > 1 and self._starts[1] <= offset:
            start = self._starts.pop(0)
            with contextlib.suppress(FileNotFoundError):
                self._path(start).unlink()

    def pending_bytes(self, offset: int) -> int:
        return max(0, self._committed - offset)
