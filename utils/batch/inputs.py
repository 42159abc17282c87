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

``s3://bucket/prefix`` inputs follow the same rules, a key prefix ending in ``/`` standing for
a folder (see ``s3_inputs``).
"""

from __future__ import annotations

import glob
import gzip
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from utils.batch import s3_inputs
from utils.batch.readers import detect_input_kind
from utils.batch.s3_inputs import S3Object, is_s3

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


Item = Path | S3Object  # a local file or an S3 object


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
    return _kind_of(head)


def _kind_of(head: bytes) -> str:
    return "kdd" if detect_input_kind(head) == "kdd" else "zeek"


def _s3_sniff(item: S3Object) -> tuple[str, bool]:
    """(kind, gzip) of an S3 object, from its first bytes only."""
    raw = s3_inputs.head(item.url, item.size, _HEAD_BYTES)
    if not raw.startswith(GZIP_MAGIC):
        return _kind_of(raw), False
    try:  # a gzip stream's start decompresses without its end
        head = zlib.decompressobj(wbits=47).decompress(raw, _HEAD_BYTES)
    except zlib.error:  # a broken gzip object: scoring it reports why
        head = b""
    return _kind_of(head), True


def discover(inputs: list[str], sensors: dict[str, str] | None = None) -> Inputs:
    """The files ``inputs`` (files, folders, globs) and ``sensors`` (name -> path) name."""
    named: dict[str, list[Item]] = {}
    for name, target in (sensors or {}).items():
        named.setdefault(name, []).extend(_files_of(target, archives=True))
    loose: list[Item] = []
    for target in inputs:
        if is_s3(target):
            _add_s3(target, named, loose)
            continue
        for path in _expand(target):
            if path.is_dir():
                archives = _archive_roots(path)
                if archives:
                    for root in archives:
                        named.setdefault(_unique_name(named, root.resolve().name), []).extend(
                            _archive_files(root))
                    continue
                loose.extend(sorted(p for p in path.iterdir()
                                    if p.is_file() and not p.name.startswith(".")))
            else:
                loose.append(path)
    seen: set[Path | str] = set()
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
        item = _input_file(path, None)
        if item.kind == "kdd":
            kdd.append(item)
        else:
            folder = _folder_name(path)
            streams.setdefault(folder, Stream(folder)).files.append(item)
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


def _add_s3(target: str, named: dict[str, list[Item]], loose: list[Item]) -> None:
    """An ``s3://`` input's objects: Zeek archives under ``named``, the rest in ``loose``."""
    objects, folders = s3_inputs.expand(target)
    loose.extend(objects)
    for folder, below in folders.items():
        archives = _s3_archives(folder, below)
        for name, files in archives:
            named.setdefault(_unique_name(named, name), []).extend(files)
        if not archives:
            loose.extend(_s3_direct(folder, below))


def _relative(folder: str, item: S3Object) -> list[str]:
    return item.url[len(folder):].split("/")


def _s3_name(folder: str) -> str:
    """A folder's name: its last key segment, or the bucket's name for the bucket's root."""
    bucket, key = s3_inputs.split_url(folder)
    return key.rstrip("/").rpartition("/")[2] or bucket


def _s3_direct(folder: str, below: list[S3Object]) -> list[S3Object]:
    """The objects right in ``folder``, as a folder's files (hidden ones left out)."""
    return [item for item in below
            if len(parts := _relative(folder, item)) == 1 and not parts[0].startswith(".")]


def _s3_archives(folder: str, below: list[S3Object]) -> list[tuple[str, list[S3Object]]]:
    """(sensor, conn logs in order) of ``folder`` if it is a Zeek archive, else of its
    subfolders that are."""
    if any(len(parts := _relative(folder, item)) >= 2 and DAY_FOLDER.match(parts[0])
           for item in below):
        return [(_s3_name(folder), _s3_archive_files(folder, below))]
    subfolders = sorted({parts[0] for item in below
                         if len(parts := _relative(folder, item)) >= 3
                         and DAY_FOLDER.match(parts[1])})
    roots = []
    for sub in subfolders:
        root = f"{folder}{sub}/"
        roots.append((sub, _s3_archive_files(root, [i for i in below if i.url.startswith(root)])))
    return roots


def _s3_archive_files(root: str, below: list[S3Object]) -> list[S3Object]:
    files = []
    for item in below:
        parts = _relative(root, item)
        match = len(parts) == 2 and DAY_FOLDER.match(parts[0]) and \
            ARCHIVED_CONN_LOG.match(parts[1])
        if match:
            files.append((parts[0], match.group(1), item.url, item))
    return [item for *_, item in sorted(files)]


def _files_of(target: str, *, archives: bool) -> list[Item]:
    files: list[Item] = []
    if is_s3(target):
        named: dict[str, list[Item]] = {}
        _add_s3(target, named, files)
        return [item for group in named.values() for item in group] + files
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


def _unique_name(named: dict[str, list[Item]], name: str) -> str:
    if name in named:
        raise InputError(f"two sensors would be named {name!r} (the folder name); "
                         "name them with --sensor NAME=PATH")
    return name


def _first_time(seen: set[Path | str], path: Item) -> bool:
    key = path.url if isinstance(path, S3Object) else path.resolve()
    if key in seen:
        return False
    seen.add(key)
    return True


def _folder_name(path: Item) -> str:
    if isinstance(path, S3Object):
        return _s3_name(path.url.rpartition("/")[0] + "/")
    return path.resolve().parent.name or "default"


def _input_file(path: Item, kind: str | None) -> InputFile:
    """The file's description; ``kind`` None: sniffed from its content."""
    if isinstance(path, S3Object):
        sniffed, gz = _s3_sniff(path)
        return InputFile(path=path.url, kind=kind or sniffed, size=path.size, gzip=gz)
    return InputFile(path=os.fspath(path), kind=kind or sniff_kind(path),
                     size=path.stat().st_size, gzip=is_gzip(path))
