"""What every engine launcher shares: starting a server as a child process that cannot
outlive its owner, waiting for it to answer, stopping it by pid, and the ``Engine`` base class
(a server that owns a temp folder).

No process outlives its owner: ``close()`` in a ``finally`` (or the context manager), an
``atexit`` hook that kills whatever is still registered, and, on Linux, ``setpriv
--pdeathsig`` so the kernel signals each server when the thread that started it dies.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from utils.local_server import HOST, ServerStartError


class EngineUnavailable(RuntimeError):
    """The engine's program is not installed here (the message says how to install it)."""


# Every process started here that has not been stopped yet, killed at interpreter exit.
LIVE: dict[int, subprocess.Popen] = {}


@atexit.register
def kill_leftovers() -> None:
    for process in list(LIVE.values()):
        kill(process)


def kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()
    LIVE.pop(process.pid, None)


def spawn(args: list[str], *, log_path: Path, cwd: Path, env: dict[str, str] | None = None,
           user: str | None = None, parent_death_signal: str = "TERM") -> subprocess.Popen:
    """Start ``args`` with its output in ``log_path``, in its own session (a Ctrl-C meant for
    the caller reaches the caller, which then stops the server in order)."""
    setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
    if setpriv:
        args = [setpriv, f"--pdeathsig={parent_death_signal}", "--", *args]
    as_user = {}
    if user is not None:
        as_user = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, **as_user)
    LIVE[process.pid] = process
    return process


def stop_process(process: subprocess.Popen | None, sig: int, timeout: float) -> None:
    """``sig`` to the process, then SIGKILL if it has not exited within ``timeout`` s."""
    if process is None:
        return
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    kill(process)


def log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) == 0


def wait_until(ready: Callable[[], bool], *, process: subprocess.Popen, what: str, log_path: Path,
                timeout: float) -> None:
    """Poll ``ready()`` until it is true; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ServerStartError(f"{what} exited with {process.returncode}:\n"
                                   f"{log_tail(log_path)}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise ServerStartError(f"{what} not ready within {timeout:g} s:\n"
                                   f"{log_tail(log_path)}")
        time.sleep(0.1)


class Engine(abc.ABC):
    """A server that owns a temp folder: started, stopped and started again, closed once."""

    def __init__(self, prefix: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.log_path = self.root / "server.log"
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        if self.process is None or self.process.poll() is not None:
            return None
        return self.process.pid

    @abc.abstractmethod
    def start(self) -> Engine:
        """Start the server (a no-op while it runs) and return once it answers."""

    @abc.abstractmethod
    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server by pid; its data stays for the next ``start()``."""

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """The server is down inside the block and back (same port, same data) after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def close(self) -> None:
        """Stop the server and delete its folder (data and log)."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
