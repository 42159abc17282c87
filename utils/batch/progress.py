"""The progress line of a batch job: rows and files done, rows per second, time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Rewrites one line on a terminal (at most every ``interval`` s); elsewhere (a log file,
    CI) prints a new line every ``log_interval`` s, so the log stays short."""

    def __init__(self, total_rows: int, total_files: int, *, stream: TextIO | None = None,
                 interval: float = 0.5, log_interval: float = 10.0) -> None:
        self.total_rows = total_rows
        self.total_files = total_files
        self.rows = 0
        self.files = 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if self.tty else log_interval
        self.started = time.monotonic()
        self._shown = 0.0

    def advance(self, rows: int, files: int = 0) -> None:
        self.rows += rows
        self.files += files
        now = time.monotonic()
        if now - self._shown >= self.interval:
            self._show(now)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def speed(self) -> float:
        """Rows per second so far."""
        return round(self.rows / max(self.elapsed(), 1e-9), 1)

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.started, 1e-9)
        speed = self.rows / elapsed
        share = self.rows / self.total_rows if self.total_rows else 1.0
        left = (self.total_rows - self.rows) / speed if speed > 0 else None
        eta = "--:--:--" if left is None else time.strftime("%H:%M:%S", time.gmtime(left))
        return (f"scored {self.rows:,}/{self.total_rows:,} rows ({share:.0%}), "
                f"{self.files}/{self.total_files} files, {speed:,.0f} rows/s, ETA {eta}")

    def finish(self) -> None:
        self._show(time.monotonic())
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _show(self, now: float) -> None:
        self._shown = now
        text = self.line(now)
        if self.tty:
            self.stream.write("\r" + text.ljust(100))
        else:
            self.stream.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
        self.stream.flush()
