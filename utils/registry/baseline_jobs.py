"""Baseline jobs in the registry: what a job record holds, and when its process is gone.

An admin's baseline (a model of the analyst's own network, trained from Zeek conn.logs) runs
in a background process of its own; the job record is how the API, the page and that process
talk. Both registry backends store the same fields (utils/registry/sqlite_baseline.py,
utils/pg_baseline.py) and share the rules here.

Life cycle: ``queued`` (recorded; the API starts its process), ``running`` (claimed by one
process, which writes a heartbeat), then one of ``reported`` (report-only job done),
``promoted``, ``held`` (trained, not promoted: the health report warns or the gate said no;
an admin may promote it), ``rejected`` (the files cannot make a baseline) or ``failed``.
A job whose process died is marked ``failed`` by the next read of it: on its own host by its
pid, anywhere once its heartbeat is older than ``STALE_SECONDS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from utils.registry.interface import utc_timestamp
from utils.registry.processes import HOST

JOB_STATUSES = ("queued", "running", "reported", "promoted", "held", "rejected", "failed")
ACTIVE = ("queued", "running")
FINISHED = tuple(status for status in JOB_STATUSES if status not in ACTIVE)
# The fields the API shows, in its order (docs/API.md); the rest is the process's bookkeeping.
JOB_FIELDS = ("id", "status", "stage", "created_at", "finished_at", "files", "options",
              "health", "figures", "version", "reason")
UPDATABLE = frozenset({"status", "stage", "health", "figures", "version", "reason", "pid",
                       "host"})
JSON_FIELDS = ("files", "options", "health", "figures")
HEARTBEAT_SECONDS = 10.0  # how often a running job's process writes its heartbeat
STALE_SECONDS = 300.0  # silence after which a job on another host is taken for dead
DEFAULT_LIST = 20


class UnknownJob(LookupError):
    """No baseline job has this id."""


def check_update(fields: Mapping[str, Any]) -> None:
    """ValueError for a field no update may set, or an unknown status."""
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise ValueError(f"baseline jobs have no updatable field(s) {sorted(unknown)}")
    status = fields.get("status")
    if status is not None and status not in JOB_STATUSES:
        raise ValueError(f"status must be one of {JOB_STATUSES}, got {status!r}")


def statuses(only_if: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """``only_if`` as a tuple of statuses (None: any status)."""
    if only_if is None:
        return None
    wanted = (only_if,) if isinstance(only_if, str) else tuple(only_if)
    bad = [status for status in wanted if status not in JOB_STATUSES]
    if bad:
        raise ValueError(f"unknown job status(es) {bad}")
    return wanted


def dead_reason(job: Mapping[str, Any], *, alive: Callable[[int], bool], host: str = HOST,
                now: str | None = None) -> str | None:
    """Why an active job's process must be gone (None: it may be alive, or the job is over).

    ``alive(pid)`` tells whether a pid lives on this host (utils.registry.processes).
    A queued job the API never got to start is given up after ``STALE_SECONDS`` too.
    """
    if job["status"] not in ACTIVE:
        return None
    now = now or utc_timestamp()
    pid, where = job.get("pid"), job.get("host")
    if pid and where == host and not alive(int(pid)):
        return (f"the training process (pid {pid}) exited without finishing the job; "
                + _what_serves(job))
    last = job.get("heartbeat_at") or job["created_at"]
    if _seconds_between(last, now) > STALE_SECONDS:
        if not pid:
            return "the training process never started; send the baseline again"
        return (f"no heartbeat from the training process (pid {pid} on {where}) for over "
                f"{STALE_SECONDS:g} s; " + _what_serves(job))
    return None


def _what_serves(job: Mapping[str, Any]) -> str:
    if job.get("stage") == "promoting":  # the promotion is one atomic step: before or after
        return (f"it stopped while promoting {job.get('version')}: /api/model-info shows "
                "whether that or the previous Zeek model serves")
    return "the previous model keeps serving"


def _seconds_between(earlier: str, later: str) -> float:
    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return (parse(later) - parse(earlier)).total_seconds()


def json_safe(value: Any) -> Any:
    """``value`` with every float that JSON cannot hold (NaN, infinities) as None, and
    tuples and numpy scalars as plain JSON values: what both databases store."""
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def public_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """The job as the API shows it (JOB_FIELDS, in that order)."""
    return {name: job.get(name) for name in JOB_FIELDS}
