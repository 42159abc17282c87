"""Helpers for the incremental-learning tests: a small model on NSL-KDD rows, uploads cut from
NSL-KDD files, registration as the server does it.

A module of its own (not conftest.py) so test files can import it by a name no other test
folder uses.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from utils.local_server import ServerProcess, gunicorn_command
from utils.model_store import save_model
from utils.preprocessing import read_records
from utils.registry import Registration, UploadQuota
from utils.registry import SQLiteRegistry as UploadRegistry
from utils.training import file_digest, train

REPO_ROOT = Path(__file__).resolve().parents[2]
SMALL_K = (4, 6, 8, 10, 12)
SMALL_K_TEXT = ",".join(map(str, SMALL_K))
BASE_ROWS = 3000


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def kdd_bytes(lines: list[str], *, relabel: str | None = None, labels: bool = True) -> bytes:
    """NSL-KDD lines as an upload: optionally relabeled, or with label and difficulty cut."""
    out = []
    for line in lines:
        fields = line.split(",")
        if relabel is not None:
            fields[41] = relabel
        out.append(",".join(fields if labels else fields[:41]))
    return ("\n".join(out) + "\n").encode()


def write_base(source: Path, target: Path, rows: int = BASE_ROWS) -> Path:
    """The first ``rows`` lines of an NSL-KDD file: a training file small enough for tests."""
    target.write_text("\n".join(lines_of(source)[:rows]) + "\n")
    return target


def train_small(base: Path, model_dir: Path, seed: int = 0) -> Path:
    """A model trained on ``base`` as train_model.py trains one, with small k values."""
    content = base.read_bytes()
    result = train(read_records(content), n_clusters=SMALL_K, random_state=seed,
                   source={"file": base.name, "sha256": file_digest(content)})
    save_model(result.pipeline, result.card, model_dir)
    return model_dir


def register(registry: UploadRegistry, data: bytes, name: str = "traffic.txt",
             threshold: int = 10, *, trusted: bool = False, client: str | None = "127.0.0.1",
             quota: UploadQuota | None = None) -> Registration:
    """Register ``data`` the way the server does: a temp file in the data folder, parsed.
    Anonymous by default, like an upload without the admin token."""
    incoming = registry.data_dir / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=incoming, suffix=".part", delete=False) as handle:
        handle.write(data)
    records = read_records(data)
    result = registry.register(
        handle.name, sha256=hashlib.sha256(data).hexdigest(), original_name=name,
        rows=len(records), has_labels=records.has_labels, input_kind=records.input_kind,
        threshold=threshold, trusted=trusted, client=client, quota=quota)
    if not result.stored:
        Path(handle.name).unlink()
    return result


def copy_model(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def zeek_upload(n: int = 30) -> bytes:
    """A small Zeek conn.log (TSV) of web connections."""
    fields = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
              "service", "duration", "orig_bytes", "resp_bytes", "conn_state"]
    lines = ["#separator \\x09", "#fields\t" + "\t".join(fields)]
    for i in range(n):
        lines.append("\t".join([f"{1700000000 + i}.5", f"C{i}", "10.0.0.1", str(40000 + i),
                                "10.0.0.2", "80", "tcp", "http", "1.2", "300", "4000", "SF"]))
    return ("\n".join(lines) + "\n").encode()


class Gunicorn(ServerProcess):
    """The real service (gunicorn.conf.py) on 127.0.0.1 with the given environment."""

    def __init__(self, root: Path, env: dict[str, str], start_timeout: float = 60.0) -> None:
        super().__init__(gunicorn_command(), log_path=root / "gunicorn.log", env=env,
                         start_timeout=start_timeout)
        self.start()


