"""The real service under gunicorn on 127.0.0.1, and readings of its processes from /proc
(worker pids, resident memory, which worker holds a connection)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path

import requests

from tests.helpers.waiting import poll
from utils.local_server import ServerProcess, free_port, gunicorn_command


class Gunicorn(ServerProcess):
    """``gunicorn api_server:app -c gunicorn.conf.py`` on 127.0.0.1 (utils.local_server),
    started at once and ready once /health answers ``ready_status`` (503: no usable model),
    with its worker pids read from /proc.

    ``env`` overrides the defaults: ``workers`` workers of 4 threads, automatic retraining
    off, and no admin token unless ``env`` names one.
    """

    def __init__(self, root: Path, env: dict[str, str], *, workers: int | None = None,
                 ready_status: int = 200, start_timeout: float = 60.0) -> None:
        self.port = free_port()
        self.workers = workers or int(env.get("WEB_CONCURRENCY", 2))
        settings = {"WEB_CONCURRENCY": str(self.workers), "GUNICORN_THREADS": "4",
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


HTTP_TIMEOUT = (5, 60)  # connect, read (seconds)


def fresh_get(server: ServerProcess, path: str) -> requests.Response:
    """On a new connection, so any worker may answer."""
    with requests.Session() as session:
        return session.get(f"{server.url}{path}", timeout=HTTP_TIMEOUT)


def fresh_upload(server: ServerProcess, data: bytes, name: str = "t.txt") -> requests.Response:
    """POST ``data`` to /api/predict on a new connection."""
    with requests.Session() as session:
        return session.post(f"{server.url}/api/predict", files={"file": (name, data)},
                            timeout=HTTP_TIMEOUT)


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
    def workers() -> list[int] | None:
        pids = [pid for pid in children(master_pid) if _is_worker(pid)]
        return pids if len(pids) == expected else None

    return poll(workers, f"{expected} gunicorn workers of {master_pid}", deadline)


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


class RssSampler:
    """Samples VmRSS of some processes every ``interval`` seconds in a thread (bounded by
    ``max_seconds``); ``peak_mb`` is the largest reading per pid."""

    def __init__(self, pids: list[int], interval: float = 0.02, max_seconds: float = 300.0):
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
