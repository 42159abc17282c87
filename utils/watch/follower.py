"""Follows one log file as it is written and rotated, handing on whole lines only.

A file is known by its inode (and device), not its name: when the path names a new file
(Zeek renamed the old one into the archive and opened a new one), the old file is read to its
end through the descriptor still open, then the new one from its start. So no record is
skipped or read twice. The position (inode, offset, line, and a hash of the file's first
bytes, against inode reuse) is saved by the caller; a restarted follower finds the file again
by inode, at its path or renamed beside it, and resumes there. A half-written last line is
left until its newline arrives; in a file that has been rotated away it is handed on as it is
(the parser decides whether it is a record).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("anomalyze.watch")

FINGERPRINT_BYTES = 1024
READ_BYTES = 8 << 20  # most bytes read from the log per call: bounds memory at any backlog


@dataclass
class Position:
    """Where reading stopped in one file: everything before ``offset`` has been handed on."""

    path: str
    device: int
    inode: int
    offset: int = 0
    line: int = 0  # lines handed on so far (the next line's number is line + 1)
    fingerprint: str = ""  # sha256 of the first fingerprint_size bytes
    fingerprint_size: int = 0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Position:
        return cls(**data)


@dataclass
class Chunk:
    """Whole lines of one file and where they are."""

    path: str
    file: tuple[int, int]  # (device, inode): which file, whatever its name now
    first_line: int
    data: bytes
    final: bool = False  # the rest of a rotated file, its last line possibly unterminated
    header: bytes = b""  # a resumed file's header lines, to read before ``data``


def _fingerprint(fd: int, size: int) -> tuple[str, int]:
    size = min(size, FINGERPRINT_BYTES)
    return hashlib.sha256(os.pread(fd, size, 0)).hexdigest(), size


class LogFollower:
    """Reads ``path`` from ``position`` on (None: from the start of the file there now)."""

    def __init__(self, path: Path | str, position: Position | None = None) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._pending: list[Path] = []  # rotated files still to read, oldest first
        self.position: Position | None = None
        self.lost = 0  # files that rotated away while we were stopped and could not be found
        self._header = b""  # a resumed file's header lines, handed on with its first chunk
        if position is not None:
            self._resume(position)

    # -- reading -------------------------------------------------------------------------

    def read(self, max_bytes: int = READ_BYTES) -> list[Chunk]:
        """Whole lines written since the last call (at most about ``max_bytes``)."""
        chunks: list[Chunk] = []
        budget = max_bytes
        while budget > 0:
            if self._fd is None and not self._open_next():
                break
            # looked at before reading: Zeek writes a file's last record before renaming it,
            # so once the path names another file, this read reaches the file's true end
            finished = self._rotated()
            chunk = self._read_lines(budget, final=finished)
            if chunk is not None:
                chunks.append(chunk)
                budget -= len(chunk.data)
            if not finished or not self._at_end():
                break
            self._close()  # then go on with the next file
        return chunks

    def _at_end(self) -> bool:
        assert self._fd is not None and self.position is not None
        return os.fstat(self._fd).st_size <= self.position.offset

    def _read_lines(self, budget: int, final: bool = False) -> Chunk | None:
        assert self._fd is not None and self.position is not None
        position = self.position
        size = os.fstat(self._fd).st_size
        if size < position.offset:
            log.warning("%s shrank below the read offset (truncated in place); reading it "
                        "again from its start", position.path)
            position.offset, position.line = 0, 0
        available = size - position.offset
        want = min(available, budget)
        if want <= 0:
            return None
        data = os.pread(self._fd, want, position.offset)
        consumed = len(data)
        if final and want == available:
            if not data.endswith(b"\n"):
                log.warning("%s ends with an unterminated line %d (rotated mid-write)",
                            position.path, position.line + data.count(b"\n") + 1)
                data += b"\n"
        else:
            cut = data.rfind(b"\n") + 1
            if cut == 0 and want == budget:
                cut = len(data)  # one line longer than the budget: handed on in parts
            data, consumed = data[:cut], cut
        if not data:
            return None
        chunk = Chunk(position.path, (position.device, position.inode), position.line + 1,
                      data, final, self._header)
        self._header = b""
        position.offset += consumed
        position.line += data.count(b"\n")
        return chunk

    def _rotated(self) -> bool:
        """Whether the open file is finished: the path names another file now, or the open
        file is a rotated one being caught up on."""
        assert self.position is not None
        if self.position.path != str(self.path):
            return True
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # renamed, and the new file not created yet: wait for it
        return (st.st_ino, st.st_dev) != (self.position.inode, self.position.device)

    def _open_next(self) -> bool:
        target = self._pending.pop(0) if self._pending else self.path
        try:
            fd = os.open(target, os.O_RDONLY)
        except FileNotFoundError:
            return False
        st = os.fstat(fd)
        if self.position is not None and (st.st_ino, st.st_dev) == (
                self.position.inode, self.position.device):
            os.close(fd)  # the file just finished is still at the path: nothing new yet
            return False
        fingerprint, size = _fingerprint(fd, st.st_size)
        self._fd = fd
        self.position = Position(str(target), st.st_dev, st.st_ino, 0, 0, fingerprint, size)
        self._header = b""
        return True

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self._close()

    def snapshot(self) -> Position | None:
        """The position to save, with the fingerprint grown to its full size if it can."""
        position = self.position
        if position is None:
            return None
        if self._fd is not None and position.fingerprint_size < FINGERPRINT_BYTES:
            size = os.fstat(self._fd).st_size
            if size > position.fingerprint_size:
                position.fingerprint, position.fingerprint_size = _fingerprint(self._fd, size)
        return Position(**asdict(position))

    # -- resuming ------------------------------------------------------------------------

    def _resume(self, saved: Position) -> None:
        """Open the file ``saved`` describes, at the path or renamed beside it, and queue
        the files rotated after it; without it, start at the path's file (and say so)."""
        candidates = [self.path, Path(saved.path)]
        folder = self.path.parent
        siblings = sorted((p for p in folder.iterdir() if p.is_file() and p != self.path),
                          key=_mtime)
        for candidate in [*candidates, *siblings]:
            fd = self._open_matching(candidate, saved)
            if fd is None:
                continue
            self._fd = fd
            self.position = Position(**{**asdict(saved), "path": str(candidate)})
            self._header = self._read_header(fd) if saved.offset > 0 else b""
            log.info("resuming %s at byte %d (line %d)", candidate, saved.offset, saved.line)
            if candidate != self.path:
                # rotated while we were stopped: the files renamed after it come next
                mtime = os.fstat(fd).st_mtime
                self._pending = [p for p in siblings if _mtime(p) > mtime
                                 and p.name.startswith(self.path.stem)]
            return
        self.lost += 1
        log.error("the log file being read when the watcher stopped (%s, inode %d, offset %d) "
                  "is gone; its unread records are lost; starting at %s", saved.path,
                  saved.inode, saved.offset, self.path)

    @staticmethod
    def _open_matching(candidate: Path, saved: Position) -> int | None:
        try:
            st = os.stat(candidate)
        except OSError:
            return None
        if (st.st_ino, st.st_dev) != (saved.inode, saved.device) or st.st_size < saved.offset:
            return None
        fd = os.open(candidate, os.O_RDONLY)
        if _fingerprint(fd, saved.fingerprint_size) != (saved.fingerprint,
                                                        saved.fingerprint_size):
            os.close(fd)
            return None
        return fd

    @staticmethod
    def _read_header(fd: int) -> bytes:
        """The comment lines at the top of a file (a TSV log's directives)."""
        head = os.pread(fd, 1 << 16, 0)
        end = 0
        for line in head.splitlines(keepends=True):
            if not line.startswith(b"#") or not line.endswith(b"\n"):
                break
            end += len(line)
        return head[:end]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
