"""Fetching and verifying the data set, against generated files and a mirror on 127.0.0.1."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import utils.dataset as dataset
from settings import load_settings
from utils.dataset import (
    CHECKSUMS,
    DATASET_FILES,
    REPO_ROOT,
    DatasetError,
    ensure_dataset,
)

FILES = {
    "KDDTest+.txt": b"0,tcp,http,SF,215,45076\n" * 500,
    "KDDTrain+_20Percent.txt": b"0,udp,private,SF,105,146\n" * 300,
}
SUMS = {name: hashlib.sha256(content).hexdigest() for name, content in FILES.items()}
NAMES = tuple(FILES)


@dataclass
class Mirror:
    url: str
    root: Path
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def mirror(tmp_path):
    """An HTTP mirror of FILES on a random local port; records the paths asked for."""
    root = tmp_path / "mirror"
    root.mkdir()
    for name, content in FILES.items():
        (root / name).write_bytes(content)
    seen: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            seen.append(self.path)
            if self.path == "/broken.txt":  # promises more than it sends, then hangs up
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b"partial")
                self.close_connection = True
                return
            super().do_GET()

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield Mirror(f"http://127.0.0.1:{server.server_address[1]}/", root, seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def listing(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_missing_files_are_downloaded_and_verified(tmp_path, mirror):
    target = tmp_path / "data"

    paths = ensure_dataset(NAMES, directory=target, mirror=mirror.url, checksums=SUMS)

    assert paths == {name: target / name for name in NAMES}
    assert all(paths[name].read_bytes() == FILES[name] for name in NAMES)
    assert listing(target) == sorted(NAMES)  # no temp file left over
    assert sorted(mirror.requests) == sorted(f"/{name}" for name in NAMES)


def test_checksum_mismatch_raises_and_leaves_nothing_behind(tmp_path, mirror):
    target = tmp_path / "data"
    wrong = {"KDDTest+.txt": "0" * 64}

    with pytest.raises(DatasetError) as info:
        ensure_dataset(["KDDTest+.txt"], directory=target, mirror=mirror.url, checksums=wrong)

    message = str(info.value)
    assert "KDDTest+.txt" in message
    assert "0" * 64 in message and SUMS["KDDTest+.txt"] in message
    assert listing(target) == []


def test_present_files_are_verified_and_not_downloaded_again(tmp_path, mirror, capsys):
    target = tmp_path / "data"
    target.mkdir()
    for name in NAMES:
        (target / name).write_bytes(FILES[name])
    before = {name: (target / name).stat().st_mtime_ns for name in NAMES}

    ensure_dataset(NAMES, directory=target, mirror=mirror.url, checksums=SUMS)

    assert mirror.requests == []
    assert {name: (target / name).stat().st_mtime_ns for name in NAMES} == before
    assert "KDDTest+.txt: present, checksum ok" in capsys.readouterr().err


def test_a_corrupt_present_file_is_fetched_again(tmp_path, mirror):
    target = tmp_path / "data"
    target.mkdir()
    (target / "KDDTest+.txt").write_bytes(b"truncated")

    ensure_dataset(["KDDTest+.txt"], directory=target, mirror=mirror.url, checksums=SUMS)

    assert (target / "KDDTest+.txt").read_bytes() == FILES["KDDTest+.txt"]
    assert mirror.requests == ["/KDDTest+.txt"]


def test_a_file_of_the_wrong_size_is_fetched_again(tmp_path, mirror):
    target = tmp_path / "data"
    target.mkdir()
    (target / "KDDTest+.txt").write_bytes(FILES["KDDTest+.txt"])
    sizes = {"KDDTest+.txt": 1}

    ensure_dataset(["KDDTest+.txt"], directory=target, mirror=mirror.url, checksums=SUMS,
                   sizes=sizes)

    assert mirror.requests == ["/KDDTest+.txt"]


def test_files_are_seeded_from_a_local_folder_without_downloading(tmp_path, mirror):
    target = tmp_path / "data"

    ensure_dataset(NAMES, directory=target, mirror=mirror.url, seed_from=mirror.root,
                   checksums=SUMS)

    assert mirror.requests == []
    assert all((target / name).read_bytes() == FILES[name] for name in NAMES)


def test_a_seed_folder_without_the_file_raises(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"KDDTest\+\.txt: not found at"):
        ensure_dataset(["KDDTest+.txt"], directory=tmp_path / "data",
                       seed_from=tmp_path / "empty", checksums=SUMS)
    assert listing(tmp_path / "data") == []


@pytest.mark.parametrize("as_url", [False, True], ids=["folder", "file-url"])
def test_the_mirror_may_be_a_local_folder(tmp_path, mirror, as_url):
    source = mirror.root.as_uri() if as_url else str(mirror.root)

    ensure_dataset(NAMES, directory=tmp_path / "data", mirror=source, checksums=SUMS)

    assert all((tmp_path / "data" / name).read_bytes() == FILES[name] for name in NAMES)


def test_the_mirror_comes_from_the_environment(tmp_path, mirror, monkeypatch):
    monkeypatch.setenv("ANOMALYZE_DATA_MIRROR", mirror.url.rstrip("/"))
    real = dataset.ensure_dataset
    monkeypatch.setattr(dataset, "ensure_dataset",
                        lambda names, **options: real(names, **options, checksums=SUMS))
    assert dataset.main(["KDDTest+.txt", "--dir", str(tmp_path / "data")]) == 0
    assert mirror.requests == ["/KDDTest+.txt"]


def test_an_http_error_raises_and_leaves_nothing_behind(tmp_path, mirror):
    sums = {"absent.txt": "0" * 64}
    with pytest.raises(DatasetError, match="HTTP 404"):
        ensure_dataset(["absent.txt"], directory=tmp_path / "data", mirror=mirror.url,
                       checksums=sums)
    assert listing(tmp_path / "data") == []


def test_an_interrupted_download_raises_and_leaves_nothing_behind(tmp_path, mirror):
    sums = {"broken.txt": "0" * 64}
    with pytest.raises(DatasetError, match="could not download"):
        ensure_dataset(["broken.txt"], directory=tmp_path / "data", mirror=mirror.url,
                       checksums=sums)
    assert listing(tmp_path / "data") == []


def test_a_file_without_a_known_checksum_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="no checksum known"):
        ensure_dataset(["other.txt"], directory=tmp_path, checksums=SUMS)


def test_data_dir_comes_from_the_environment(tmp_path):
    def data_dir(environ: dict[str, str]) -> Path:
        return load_settings("scripts", environ)["DATA_DIR"]

    assert data_dir({}) == REPO_ROOT / "data"
    assert data_dir({"ANOMALYZE_DATA_DIR": str(tmp_path)}) == tmp_path


@pytest.mark.e2e
def test_command_line_fails_with_a_message(tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "utils.dataset", "--dir", str(tmp_path / "data"),
         "--seed-from", str(tmp_path / "empty")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    assert "error: KDDTrain+.txt: not found at" in result.stderr


def test_checksums_are_the_published_ones():
    sums = REPO_ROOT.parent / "shared" / "data" / "nsl-kdd" / "SHA256SUMS"
    if not sums.is_file():
        pytest.skip(f"{sums} not present")
    published = dict(reversed(line.split()) for line in sums.read_text().splitlines() if line)
    assert {name: published[name] for name in DATASET_FILES} == CHECKSUMS


def test_the_real_data_set_verifies_without_fetching(tmp_path):
    present = load_settings("scripts")["DATA_DIR"]
    if not all((present / name).is_file() for name in DATASET_FILES):
        pytest.skip(f"data set not present in {present}")
    paths = ensure_dataset(directory=present, mirror=str(tmp_path / "nowhere"))
    assert set(paths) == set(DATASET_FILES)
