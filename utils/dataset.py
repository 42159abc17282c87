"""Make sure the NSL-KDD files are present and intact.

Training, tests and benchmarks all read the same three files, which the repository never
commits. They are copied from a local folder or downloaded from a mirror, and every copy is
checked against the published SHA-256 sums before it is moved into place, so a truncated
download or a tampered mirror can never be mistaken for the data set.

Usage: ``python -m utils.dataset [--seed-from DIR] [--dir DIR] [--mirror URL] [NAME ...]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import requests

from settings import script_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MIRROR = "https://raw.githubusercontent.com/defcom17/NSL_KDD/master/"
DATASET_FILES = ("KDDTrain+.txt", "KDDTest+.txt", "KDDTrain+_20Percent.txt")
CHECKSUMS: dict[str, str] = {
    "KDDTrain+.txt": "1b86d2f957b33082081bba410fe129b475efebcc13c9014c3f447c8271aadf95",
    "KDDTest+.txt": "fa46b0935342616aa83b7c2578db355b6a7aaabbc492248172c7a1e8b7ab8f84",
    "KDDTrain+_20Percent.txt": "7ea86479faab5ca2190b7f18b4982fb058ce5bf2b46e0e1017d0d9ef90f9c16e",
}
SIZES: dict[str, int] = {
    "KDDTrain+.txt": 19_109_424,
    "KDDTest+.txt": 3_441_513,
    "KDDTrain+_20Percent.txt": 3_822_033,
}
TIMEOUT = (10, 60)  # seconds to connect, seconds between bytes
_CHUNK = 1 << 20


class DatasetError(RuntimeError):
    """A data set file could not be put in place (unreachable, missing or corrupt)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def ensure_dataset(
    names: Iterable[str] = DATASET_FILES,
    *,
    directory: str | os.PathLike,
    mirror: str | None = None,
    seed_from: str | os.PathLike | None = None,
    checksums: Mapping[str, str] | None = None,
    sizes: Mapping[str, int] | None = None,
) -> dict[str, Path]:
    """Make each named file present and verified in ``directory``; returns name -> path.

    A file that is missing or fails its checksum is copied from ``seed_from`` (a local
    folder) if given, else fetched from ``mirror`` (a URL prefix, a local folder or a
    file:// URL; default DEFAULT_MIRROR). ``checksums``
    (and the optional ``sizes``, a cheap first check) default to the NSL-KDD values.
    Raises DatasetError; a failed fetch leaves no partial file behind.
    """
    if checksums is None:
        checksums = CHECKSUMS
        sizes = SIZES if sizes is None else sizes
    sizes = sizes or {}
    target_dir = Path(directory)
    target_dir.mkdir(parents=True, exist_ok=True)
    source = mirror or DEFAULT_MIRROR
    paths: dict[str, Path] = {}
    for name in names:
        if name not in checksums:
            raise DatasetError(f"{name}: no checksum known, so it cannot be verified")
        target = target_dir / name
        problem = _check_present(target, checksums[name], sizes.get(name))
        if problem is None:
            _progress(f"{name}: present, checksum ok")
        else:
            _progress(f"{name}: {problem}")
            if seed_from is not None:
                origin = Path(seed_from) / name
                blocks, where = _copy_blocks(origin), str(origin)
            else:
                blocks, where = _mirror_blocks(source, name)
            _install(name, target, blocks, checksums[name], origin=where)
        paths[name] = target
    return paths


def _check_present(path: Path, expected: str, size: int | None) -> str | None:
    """None when the file is there and intact, else what is wrong with it."""
    if not path.is_file():
        return "missing"
    if size is not None and path.stat().st_size != size:
        return f"wrong size ({path.stat().st_size} bytes, expected {size}), fetching again"
    actual = sha256_file(path)
    if actual != expected:
        return f"checksum mismatch (expected {expected}, got {actual}), fetching again"
    return None


def _install(
    name: str, target: Path, blocks: Iterator[bytes], expected: str, origin: str
) -> None:
    """Write to a temp file beside ``target``, verify, then rename into place."""
    descriptor, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(descriptor, "wb") as handle:
            for block in blocks:
                handle.write(block)
                digest.update(block)
                size += len(block)
            handle.flush()
            os.fsync(handle.fileno())
        actual = digest.hexdigest()
        if actual != expected:
            raise DatasetError(
                f"{name}: checksum mismatch for the copy from {origin} "
                f"(expected {expected}, got {actual})"
            )
        temp.chmod(0o644)  # mkstemp makes it private; the data set is not secret
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    _progress(f"{name}: {size / 1e6:.1f} MB from {origin}, checksum ok")


def _copy_blocks(path: Path) -> Iterator[bytes]:
    if not path.is_file():
        raise DatasetError(f"{path.name}: not found at {path}")
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            yield block


def _mirror_blocks(mirror: str, name: str) -> tuple[Iterator[bytes], str]:
    """The file's bytes from a URL prefix, a local folder or a file:// URL, and its origin."""
    scheme = urlparse(mirror).scheme.lower()
    if scheme in ("http", "https"):
        url = mirror if mirror.endswith("/") else mirror + "/"
        url += name
        return _download_blocks(url, name), url
    if scheme == "file":
        folder = Path(url2pathname(urlparse(mirror).path))
    elif "://" in mirror:
        raise DatasetError(f"unsupported mirror {mirror!r}: use http(s)://, file:// or a folder")
    else:
        folder = Path(mirror)
    return _copy_blocks(folder / name), str(folder / name)


def _download_blocks(url: str, name: str) -> Iterator[bytes]:
    _progress(f"{name}: downloading {url}")
    try:
        with requests.get(url, stream=True, timeout=TIMEOUT) as response:
            if response.status_code != 200:
                raise DatasetError(f"{name}: {url} answered HTTP {response.status_code}")
            yield from response.iter_content(chunk_size=_CHUNK)
    except requests.RequestException as exc:
        raise DatasetError(f"{name}: could not download {url}: {exc}") from exc


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    config = script_settings()
    parser = argparse.ArgumentParser(
        prog="python -m utils.dataset",
        description="Fetch and verify the NSL-KDD files (KDDTrain+, KDDTest+, 20% subset).",
    )
    parser.add_argument("names", nargs="*", default=list(DATASET_FILES), metavar="NAME",
                        help="files to ensure (default: all three)")
    parser.add_argument("--dir", help="target folder (default: $ANOMALYZE_DATA_DIR or <repo>/data)")
    parser.add_argument("--seed-from", help="copy from this local folder instead of downloading")
    parser.add_argument("--mirror", help="URL prefix or folder (default: $ANOMALYZE_DATA_MIRROR "
                                         f"or {DEFAULT_MIRROR})")
    args = parser.parse_args(argv)
    try:
        paths = ensure_dataset(args.names, directory=args.dir or config["DATA_DIR"],
                               mirror=args.mirror or config["DATA_MIRROR"],
                               seed_from=args.seed_from)
    except (DatasetError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(paths)} file(s) ready in {next(iter(paths.values())).parent}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
