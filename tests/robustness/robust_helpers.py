"""Helpers for the robustness tests: the API tests' synthetic data and model (reused from
tests/api/apitest_helpers.py), error-shape checks, a watchdog, and /proc readings of gunicorn's
workers.

A module of its own (not conftest.py) so test files can import it by a name no other test
folder uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from utils.local_server import ServerProcess, free_port, gunicorn_command

REPO_ROOT = Path(__file__).resolve().parents[2]
_API_TESTS = str(REPO_ROOT / "tests" / "api")
if _API_TESTS not in sys.path:  # their helper module, importable from here too
    sys.path.append(_API_TESTS)

from apitest_helpers import (  # noqa: E402
    LogLines,
    attack_values,
    kdd_line,
    normal_values,
    synthetic_kdd,
    train_model,
    upload,
)

from server import create_app  # noqa: E402

__all__ = ["LogLines", "attack_values", "kdd_line", "normal_values", "synthetic_kdd", "train_model",
           "upload"]

# docs/API.md, "Errors": every 4xx error_type an upload can get.
UPLOAD_ERROR_TYPES = {
    400: {"missing_file", "empty_file", "no_records", "field_count", "invalid_value",
          "binary_data", "encoding", "mixed_separators", "invalid_format", "invalid_json",
          "invalid_parameter"},
    413: {"too_large"},
}
# Request-targets that must never serve a file (uploads, models, sources): 404 JSON, all of them.
FORBIDDEN_TARGETS = [
    "/models/model.joblib", "/models/model_card.json", "/model.joblib", "/models/",
    "/data/anomalyze.sqlite3", "/data/uploaded_logs/", "/uploaded_logs/", "/uploads/",
    "/uploads/../models/model.joblib", "/static/../models/model.joblib",
    "/static/..%2fmodels%2fmodel.joblib", "/static/%2e%2e/%2e%2e/models/model.joblib",
    "/api/../models/model.joblib", "/api/predict/../../models/model.joblib",
    "//models/model.joblib", "/./models/model.joblib", "/%2e%2e/%2e%2e/etc/passwd",
    "/..%2f..%2f..%2fetc%2fpasswd", "/api_server.py", "/gunicorn.conf.py", "/.git/config",
    "/incoming/", "/retrain.log", "/static/", "/api/", "/api/uploads",
]
GENERIC_500 = {"success": False, "error": "internal server error",
               "error_type": "internal_error", "problems": []}


def make_app(model_dir: Path, data_dir: Path, **config):
    """The app as the API tests make it, with automatic retraining off."""
    return create_app({"TESTING": True, "MODEL_DIR": model_dir, "DATA_DIR": data_dir,
                       "MODEL_CHECK_INTERVAL": 0.0, "RETRAIN_THRESHOLD": 0, **config})


def assert_json_error(response, status: int, error_type: str | None = None) -> dict:
    """The documented error shape with this status (and error_type, if given)."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.is_json, response.headers.get("Content-Type")
    body = response.get_json()
    assert body["success"] is False
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["problems"], list)
    if error_type is not None:
        assert body["error_type"] == error_type, body
    return body


def stored_files(data_dir: Path) -> list[str]:
    """Names of the kept uploads (not counting the archive folder)."""
    folder = data_dir / "uploaded_logs"
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def leftover_temp_files(data_dir: Path) -> list[Path]:
    folder = data_dir / "incoming"
    return list(folder.iterdir()) if folder.exists() else []


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


class Timeout(Exception):
    """Raised by ``time_limit`` in the main thread when the time is up."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Fail with Timeout if the block takes longer than ``seconds`` (SIGALRM, main thread).

    A bound, so that a hang fails the test instead of blocking the suite; not a measurement.
    """
    def _expired(_signum, _frame):
        raise Timeout(f"{what} did not finish within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- the real server ------------------------------------------------------------------------


class Gunicorn(ServerProcess):
    """``gunicorn api_server:app -c gunicorn.conf.py`` on 127.0.0.1 (utils.local_server),
    ready once /health answers ``ready_status`` (503: no usable model), with its worker pids
    read from /proc."""

    def __init__(self, root: Path, env: dict[str, str], *, workers: int = 2,
                 ready_status: int = 200, start_timeout: float = 60.0) -> None:
        self.port = free_port()
        self.workers = workers
        settings = {"WEB_CONCURRENCY": str(workers), "GUNICORN_THREADS": "4",
                    "ANOMALYZE_RETRAIN_THRESHOLD": "0", **env}
        super().__init__(gunicorn_command(port=self.port),
                         log_path=root / f"gunicorn-{self.port}.log", env=settings,
                         start_timeout=start_timeout, ready_status=ready_status)
        if "ANOMALYZE_ADMIN_TOKEN" not in env:
            self.env.pop("ANOMALYZE_ADMIN_TOKEN", None)
        data_dir = settings.get("ANOMALYZE_DATA_DIR")
        self.data_dir = Path(data_dir) if data_dir else None  # where uploads and the registry go
        self.start()
        try:
            self.worker_pids()
        except BaseException:
            self.stop()
            raise

    def worker_pids(self, deadline: float = 30.0) -> list[int]:
        return worker_pids(self.process.pid, self.workers, deadline)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[dict]:
        lines = []
        for text in self.log_text().splitlines():
            if text.startswith("{"):
                with contextlib.suppress(ValueError):
                    lines.append(json.loads(text))
        return lines


# --- gunicorn's processes, read from /proc --------------------------------------------------


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux: /proc/<pid>/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.extend(int(p) for p in (task / "children").read_text().split())
    return sorted(set(found))


def worker_pids(master_pid: int, expected: int, deadline: float = 30.0) -> list[int]:
    """The gunicorn workers of ``master_pid`` once there are ``expected`` of them."""
    end = time.monotonic() + deadline
    while True:
        pids = [pid for pid in children(master_pid) if _is_worker(pid)]
        if len(pids) == expected:
            return pids
        if time.monotonic() > end:
            raise AssertionError(f"expected {expected} workers of {master_pid}, found {pids}")
        time.sleep(0.1)


def _is_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"gunicorn" in cmdline


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status: VmRSS (resident now), VmHWM (peak resident)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def rss_mb(pid: int) -> float:
    return status_kb(pid, "VmRSS") / 1024


def connection_owner(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server side of the TCP connection from ``client_port``.

    The socket's inode is looked up in /proc/net/tcp (local port = server port, remote port =
    client port), then found among each process's open file descriptors.
    """
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote = fields[1], fields[2]
                if (int(local.rsplit(":", 1)[1], 16) == server_port
                        and int(remote.rsplit(":", 1)[1], 16) == client_port):
                    inode = fields[9]
    if inode is None or inode == "0":
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == target:
                        return pid
    return None


def read_http_response(sock, limit: int = 1 << 20) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 answer read from a raw socket (body read up to
    Content-Length or until the peer closes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "-1"))
    while (length < 0 or len(body) < length) and len(body) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def json_body(body: bytes) -> dict:
    return json.loads(body.decode())


class RssSampler:
    """Samples VmRSS of some processes every ``interval`` seconds in a thread (bounded by
    ``max_seconds``); ``peak_mb`` is the largest reading per pid."""

    def __init__(self, pids: list[int], interval: float = 0.02, max_seconds: float = 300.0):
        import threading

        self.pids = list(pids)
        self.start_mb = {pid: rss_mb(pid) for pid in self.pids}
        self.peak_mb = dict(self.start_mb)
        self._interval = interval
        self._deadline = time.monotonic() + max_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            for pid in self.pids:
                with contextlib.suppress(OSError, KeyError):
                    self.peak_mb[pid] = max(self.peak_mb[pid], rss_mb(pid))
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def max_growth_mb(self) -> float:
        return max(self.peak_mb[pid] - self.start_mb[pid] for pid in self.pids)


MULTIPART_BOUNDARY = "robustness-boundary-7f3a"


def streamed_upload(size: int, *, fill: bytes = b"7", end: bytes = b"", name: str = "big.txt",
                    block: int = 1 << 20) -> Iterator[bytes]:
    """A multipart/form-data body with one file of ``size`` bytes (``fill`` repeated, then
    ``end``), generated block by block so the test never holds it in memory."""
    yield (f"--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
           f"filename=\"{name}\"\r\nContent-Type: text/plain\r\n\r\n").encode()
    piece = fill * (block // len(fill))
    left = size - len(end)
    while left > 0:
        part = piece[:left]
        left -= len(part)
        yield part
    yield end
    yield f"\r\n--{MULTIPART_BOUNDARY}--\r\n".encode()


MULTIPART_CONTENT_TYPE = f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"
