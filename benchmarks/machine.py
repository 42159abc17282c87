"""Which machine and software produced the figures: timings mean little without it."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from utils.model_store import library_versions

REPO_ROOT = Path(__file__).resolve().parents[1]


def _cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_gib(meminfo: str) -> float | None:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _git(*args: str) -> str | None:
    """Output of a read-only git command in the repository, None if git fails."""
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _pyarrow_version() -> str | None:
    try:
        import pyarrow
    except ImportError:
        return None
    return pyarrow.__version__


def machine_info() -> dict:
    """nproc, CPU model, RAM, load averages, date, versions and the git commit."""
    return {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(_read("/proc/cpuinfo")),
        "ram_gib": _mem_total_gib(_read("/proc/meminfo")),
        "os": platform.platform(),
        "loadavg_start": list(os.getloadavg()),
        "versions": library_versions(),
        # pandas stores inferred strings in Arrow when pyarrow is installed, which changes
        # the speed of its bare read_csv, the throughput section's yardstick
        "pyarrow": _pyarrow_version(),
        "git_commit": _git("rev-parse", "--short", "HEAD") or None,
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }
