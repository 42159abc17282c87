"""Runs benchmarks/bench_http.py (the API engineer's gunicorn benchmark) and reads its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_HTTP = REPO_ROOT / "benchmarks" / "bench_http.py"
TIMEOUT = 900


def run_http(progress: Callable[[str], None] = print, script: Path = BENCH_HTTP) -> dict:
    """The script's JSON, or {"skipped": reason} when it is missing or fails."""
    if not script.is_file():
        return {"skipped": f"{script.relative_to(REPO_ROOT)} not found"}
    progress(f"http: running {script.name} (starts gunicorn on 127.0.0.1)")
    with tempfile.TemporaryDirectory(prefix="anomalyze-http-") as tmp:
        out = Path(tmp) / "http.json"
        try:
            module = ".".join(script.relative_to(REPO_ROOT).with_suffix("").parts)
            done = subprocess.run([sys.executable, "-m", module, "--out", str(out)],
                                  cwd=REPO_ROOT, capture_output=True, text=True,
                                  timeout=TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            return {"skipped": f"{script.name} did not finish within {TIMEOUT} s"}
        if done.returncode != 0 or not out.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return {"skipped": f"{script.name} failed (exit {done.returncode}): "
                               + " | ".join(tail)}
        return json.loads(out.read_text())
