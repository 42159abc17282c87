"""Which files a batch job scores, and the sensor streams their Zeek logs form.

Inputs are files, folders and globs. A Zeek log's window features depend on the connections
logged before it by the same sensor, so Zeek files are grouped into one stream per sensor and
ordered as the sensor wrote them; KDD files stand alone (their features are in the record).

- Zeek's archive layout: a folder holding day folders ``YYYY-MM-DD/`` of rotated logs
  ``conn.HH:MM:SS-HH:MM:SS.log[.gz]`` is one sensor, named after the folder, its files in
  (day, start time) order; other logs in the day folders (dns, http, ...) are ignored.
- A folder of such archive folders: one sensor per subfolder ("one folder per sensor").
- Any other file: a Zeek log belongs to the stream of its folder (named after the folder,
  files in name order); ``--sensor NAME=PATH`` names a stream explicitly.
"""

from __future__ import annotations

import glob
import gzip
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from utils.batch.readers import detect_input_kind

DAY_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ARCHIVED_CONN_LOG = re.compile(r"^conn\.(\d{2}:\d{2}:\d{2})-(\d{2}:\d{2}:\d{2})\.log(\.gz)?$")
GZIP_MAGIC = b"\x1f\x8b"
_HEAD_BYTES = 1 << 16
_GLOB_CHARS = frozenset("*?[")


class InputError(ValueError):
    """An input that names nothing, or streams that cannot be told apart."""


@dataclass(frozen=True)
class InputFile:
    path: str
    kind: str  # "kdd" or "zeek"
    size: int
    gzip: bool


@dataclass
class Stream:
    """One sensor's Zeek logs, in the order the sensor wrote them."""

    sensor: str
    files: list[InputFile] = field(default_factory=list)


@dataclass
class Inputs:
    kdd: list[InputFile]
    streams: list[Stream]

    @property
    def files(self) -> list[InputFile]:
        return [*self.kdd, *(f for stream in self.streams for f in stream.files)]


def is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def sniff_kind(path: str | Path) -> str:
    """"zeek" or "kdd", from the first bytes of the (decompressed) content."""
    opener = gzip.open if is_gzip(path) else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except (OSError, EOFError):  # a broken gzip file: scoring it reports why
        head = b""
    return "kdd" if detect_input_kind(head) == "kdd" else "zeek"


def discover(inputs: list[str], sensors: dict[str, str] | None = None) -> Inputs:
    """The files ``inputs`` (files, folders, globs) and ``sensors`` (name -> path) name."""
    named: dict[str, list[Path]] = {}
    for name, target in (sensors or {}).items():
        named.setdefault(name, []).extend(_files_of(target, archives=True))
    loose: list[Path] = []
    for target in inputs:
        for path in _expand(target):
            if path.is_dir():
                archives = _archive_roots(path)
                if archives:
                    for root in archives:
                        named.setdefault(_unique_name(named, root), []).extend(
                            _archive_files(root))
                    continue
                loose.extend(sorted(p for p in path.iterdir()
                                    if p.is_file() and not p.name.startswith(".")))
            else:
                loose.append(path)
    seen: set[Path] = set()
    kdd: list[InputFile] = []
    streams: dict[str, Stream] = {}
    for name, paths in named.items():
        stream = streams.setdefault(name, Stream(name))
        for path in paths:
            if _first_time(seen, path):
                stream.files.append(_input_file(path, "zeek"))
    for path in loose:
        if not _first_time(seen, path):
            continue
        kind = sniff_kind(path)
        if kind == "kdd":
            kdd.append(_input_file(path, kind))
        else:
            stream = streams.setdefault(path.resolve().parent.name or "default",
                                        Stream(path.resolve().parent.name or "default"))
            stream.files.append(_input_file(path, kind))
    found = Inputs(kdd=kdd, streams=[s for s in streams.values() if s.files])
    if not found.files:
        raise InputError(f"no input files found in {', '.join(inputs) or '(none)'}")
    return found


def _expand(target: str) -> list[Path]:
    if _GLOB_CHARS & set(target):
        matches = sorted(glob.glob(target, recursive=True))
        if not matches:
            raise InputError(f"{target}: no file matches")
        return [Path(match) for match in matches]
    path = Path(target)
    if not path.exists():
        raise InputError(f"{target}: no such file or folder")
    return [path]


def _files_of(target: str, *, archives: bool) -> list[Path]:
    files: list[Path] = []
    for path in _expand(target):
        if path.is_dir():
            roots = _archive_roots(path) if archives else []
            if roots:
                for root in roots:
                    files.extend(_archive_files(root))
            else:
                files.extend(sorted(p for p in path.iterdir()
                                    if p.is_file() and not p.name.startswith(".")))
        else:
            files.append(path)
    return files


def _is_archive(folder: Path) -> bool:
    return any(child.is_dir() and DAY_FOLDER.match(child.name) for child in folder.iterdir())


def _archive_roots(folder: Path) -> list[Path]:
    """``folder`` if it is a Zeek archive, else its subfolders that are."""
    if _is_archive(folder):
        return [folder]
    return sorted(child for child in folder.iterdir() if child.is_dir() and _is_archive(child))


def _archive_files(root: Path) -> list[Path]:
    """A Zeek archive's rotated conn logs in (day, start time) order."""
    files = []
    for day in sorted(child for child in root.iterdir()
                      if child.is_dir() and DAY_FOLDER.match(child.name)):
        for path in day.iterdir():
            match = ARCHIVED_CONN_LOG.match(path.name)
            if match and path.is_file():
                files.append((day.name, match.group(1), path))
    return [path for _, _, path in sorted(files)]


def _unique_name(named: dict[str, list[Path]], root: Path) -> str:
    name = root.resolve().name
    if name in named:
        raise InputError(f"two sensors would be named {name!r} (the folder name); "
                         "name them with --sensor NAME=PATH")
    return name


def _first_time(seen: set[Path], path: Path) -> bool:
    key = path.resolve()
    if key in seen:
        return False
    seen.add(key)
    return True


def _input_file(path: Path, kind: str) -> InputFile:
    return InputFile(path=os.fspath(path), kind=kind, size=path.stat().st_size,
                     gzip=is_gzip(path))
