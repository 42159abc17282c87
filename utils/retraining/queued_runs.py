"""Serving the queue of retrain requests: one run per request, one process at a time.

``run_queued`` holds the registry's retrain lock (utils.registry.interface.RunLock), which its
backend releases if the holding process is killed, and first closes the runs a killed process
left open.
"""

from __future__ import annotations

import contextlib

from utils.model_store import ModelLoadError
from utils.registry import Registry, RunLock
from utils.retraining.run import Progress, RunResult, Trainer, retrain_once
from utils.retraining.settings import LOCK_WAIT_SECONDS, RetrainSettings
from utils.training import train


def close_interrupted_runs(settings: RetrainSettings, registry: Registry) -> int:
    """Close runs whose process died (call with the lock held); returns how many.

    A run killed after its candidate became the current model is recorded as promoted (its
    uploads archived); any other is failed, and its uploads stay pending for the next run.
    """
    runs = registry.interrupted_runs()
    if not runs:
        return 0
    current_version = None
    with contextlib.suppress(ModelLoadError):
        current_version = settings.model_store().current().version
    for run in runs:
        if run["version"] and run["version"] == current_version:
            registry.finish_run(run["id"], "promoted",
                                "the process ended after promoting; completed by the next run")
        else:
            registry.finish_run(run["id"], "failed",
                                f"interrupted: the retrain process (pid {run['pid']}) ended "
                                "before finishing")
    registry.reconcile_files()
    return len(runs)


def run_queued(
    settings: RetrainSettings,
    registry: Registry,
    *,
    force: bool = False,
    trigger: str = "cli",
    progress: Progress = lambda message: None,
    trainer: Trainer = train,
    lock: RunLock | None = None,
    lock_wait: float = LOCK_WAIT_SECONDS,
) -> list[RunResult] | None:
    """Run one retrain per queued request (``force``: at least one); None if another process
    holds the lock (it will serve the queued requests).

    After letting go of the lock it looks at the queue once more: a request queued while a
    process that had just failed to take the lock was giving up would otherwise wait for the
    next trigger. ``lock``: the caller's handle on the registry's retrain lock, possibly
    already held.
    """
    lock = lock or registry.retrain_lock()
    if not lock.acquire(wait=lock_wait):
        progress("another retrain holds the lock; it will serve the queued requests")
        return None
    results: list[RunResult] = []
    while True:
        try:
            closed = close_interrupted_runs(settings, registry)
            if closed:
                progress(f"closed {closed} interrupted run(s)")
            while registry.take_request() or force:
                force = False
                results.append(retrain_once(settings, registry, trigger=trigger,
                                            progress=progress, trainer=trainer))
                trigger = "queued"
        finally:
            lock.release()
        if registry.state()["requests"] == 0 or not lock.acquire(wait=lock_wait):
            return results
