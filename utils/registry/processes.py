"""Whether the process that recorded a run or a job still lives: its pid on its host."""

from __future__ import annotations

import os
import socket

HOST = socket.gethostname()


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists (on this host)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
