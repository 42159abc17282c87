"""Starting the scripts the API runs in the background (a retrain, a baseline job).

A process of its own, never a thread of the worker: a list of arguments (no shell), this
interpreter, stdin closed, stdout and stderr appended to a log file, and a session of its own,
so neither a worker's restart nor a signal to gunicorn's process group ends the work half-way.
A thread reaps it when it exits, so no zombie outlives it. The process reports through its
exit code and its record in the registry, never through the request that started it.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger("anomalyze.server")


def start_background(command: list[str], log_path: Path, *, cwd: Path, name: str
                     ) -> int | None:
    """Start ``command``; its pid, or None if it could not be started (logged)."""
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as output:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                cwd=cwd, close_fds=True, start_new_session=True)
    except OSError:
        log.exception("could not start the %s process", name)
        return None
    threading.Thread(target=process.wait, name=f"{name}-{process.pid}", daemon=True).start()
    return process.pid


class ScriptLauncher:
    """Starts a script of this repository (``SCRIPT``, or ``script``) in the background for the
    app's model and data folders; subclasses say with which arguments."""

    SCRIPT: Path

    def __init__(self, model_dir: Path, data_dir: Path, *, python: str = sys.executable,
                 script: Path | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.data_dir = Path(data_dir)
        self.python = python
        self.script = Path(script or self.SCRIPT)
