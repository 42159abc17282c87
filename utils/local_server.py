"""Our servers as child processes on 127.0.0.1: started, awaited, stopped.

The benchmarks and the end-to-end tests all need "start gunicorn on a free port, wait until
/health answers, stop it cleanly"; this is that, written once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


class ServerStartError(RuntimeError):
    """The server exited or did not answer in time; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def gunicorn_command(app: str = "api_server:app", port: int | None = None, *,
                     config: str | None = "gunicorn.conf.py", extra: tuple[str, ...] = ()
                     ) -> list[str]:
    """``python -m gunicorn`` from this interpreter, bound to 127.0.0.1 (no shell)."""
    args = [sys.executable, "-m", "gunicorn", app]
    if config:
        args += ["-c", config]
    else:
        args += ["--no-control-socket"]  # gunicorn.conf.py disables it; without it, do here
    return [*args, *extra, "-b", f"{HOST}:{port or free_port()}"]


class ServerProcess:
    """A server started from ``args``, ready once ``/health`` answers ``ready_status``
    (200; a test of a server without a usable model waits for 503)."""

    def __init__(self, args: list[str], *, log_path: Path, env: dict[str, str] | None = None,
                 start_timeout: float = 60.0, health_path: str = "/health",
                 ready_status: int = 200) -> None:
        bind = args[args.index("-b") + 1]
        self.url = f"http://{bind}"
        self.args = args
        self.log_path = Path(log_path)
        self.env = {**os.environ, **(env or {})}
        self.env.pop("FLASK_DEBUG", None)
        self.start_timeout = start_timeout
        self.health_path = health_path
        self.ready_status = ready_status
        self.process: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.args, cwd=REPO_ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.process.poll() is not None:
                raise ServerStartError(f"{self.args[3]} exited with {self.process.returncode}:"
                                       f"\n{self.log_tail()}")
            try:
                status = requests.get(self.url + self.health_path, timeout=2).status_code
                if status == self.ready_status:
                    return self
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(f"{self.args[3]} did not answer within "
                                       f"{self.start_timeout:g} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
