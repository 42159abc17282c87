"""One retrain at a time on one machine: an ``flock`` on ``<data_dir>/retrain.lock``.

Needs only the standard library, so a retrain process that finds the lock taken exits at once.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from utils.registry.interface import RetrainBusy

LOCK_FILE = "retrain.lock"


class RetrainLock:
    """An exclusive ``flock`` on ``<data_dir>/retrain.lock``, held by the process that retrains
    (utils.registry.interface.RunLock).

    The kernel drops it when the holder exits or is killed, so a crashed run never blocks the
    next one. The descriptor is close-on-exec: a child of the holder does not inherit it.
    """

    def __init__(self, data_dir: Path | str) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait: float = 0.0) -> bool:
        """Take the lock, polling for up to ``wait`` seconds; False if another process has it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.05)
                continue
            self._fd = fd
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())  # for people; the flock is what counts
            return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor releases the flock

    def __del__(self) -> None:
        self.release()

    def __enter__(self) -> RetrainLock:
        if not self.acquire():
            raise RetrainBusy("a retrain or rollback is already in progress")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
