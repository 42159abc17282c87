"""One baseline job, run by the background process the API starts for it
(``python train_model.py --job ID --model-dir DIR --data-dir DIR``).

The process claims the job in the registry (only one process ever runs a job), reads the
job's kept uploads through the registry, writes the health report, and, unless the job is
report-only, trains the baseline, asks the promotion gate and then promotes the new Zeek
model or holds it for an admin. Every step is written to the job record (its ``stage``), and
a heartbeat thread shows the process is alive (utils/registry/baseline_jobs.py).

Nothing serving changes before the promotion itself, which is one atomic step of the model
store (or of the shared store's pointer): a crash anywhere leaves the previous model serving,
and the job is marked failed by the next read of it. A held candidate is kept (in the
kind's model store, or with the shared store in the job's folder) so that an admin can
promote it later with ``promote_held_job``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.backend_errors import BackendUnavailable
from utils.model_store import LoadedModel, ModelLoadError, open_model_store, save_model
from utils.readers import InputFormatError, ParsedRecords, read_records
from utils.readers.records import concat_records
from utils.registry import Registry, RetrainBusy
from utils.registry.baseline_jobs import HEARTBEAT_SECONDS

KIND = "zeek"
JOBS_DIR = "baseline-jobs"  # in the data folder: each job's log, and a held model if shared
PROMOTE_LOCK_WAIT = 600.0  # seconds a finished job waits for a retrain or rollback to end
EXIT_FAILED = 1
EXIT_NOT_CLAIMED = 4

Progress = Callable[[str], None]


class JobRejected(Exception):
    """The job's files cannot make a baseline; the message says why (shown to the admin)."""


class JobAbandoned(Exception):
    """The job is no longer this process's (it was marked failed meanwhile): stop quietly."""


class JobNotHeld(RuntimeError):
    """Only a held job can be promoted by an admin; the message says what the job is."""


def job_dir(data_dir: Path | str, job_id: int) -> Path:
    """The job's own folder in the data folder (its log; a held model with a shared store)."""
    return Path(data_dir) / JOBS_DIR / str(int(job_id))


def job_log(data_dir: Path | str, job_id: int) -> Path:
    return Path(data_dir) / JOBS_DIR / f"{int(job_id)}.log"


def parse_options(exclude_hosts: Any = None, exclude_ranges: Any = None,
                  report_only: bool = False) -> dict[str, Any]:
    """A job's options as the job record keeps them; ValueError naming the bad item.

    Hosts and ranges are text (one item per line, as an admin types them: see
    utils/baseline/exclusions.py) or lists of items.
    """
    hosts = _text(exclude_hosts)
    ranges = exclude_ranges
    if isinstance(ranges, list | tuple):
        ranges = "\n".join("/".join(str(end) for end in item) if isinstance(item, list | tuple)
                           else str(item) for item in ranges)
    options = {"exclude_hosts": [], "exclude_ranges": [], "report_only": bool(report_only)}
    if hosts.strip() or (ranges or "").strip():
        from utils.baseline import exclusions

        options["exclude_hosts"] = [str(host) for host in exclusions.parse_hosts(hosts)]
        options["exclude_ranges"] = [[start, end] for start, end in
                                     exclusions.parse_ranges(ranges or "")]
    return options


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "\n".join(str(item) for item in value)
    return str(value)


class _Job:
    """The claimed job's record, written only while it is still this process's."""

    def __init__(self, registry: Registry, job: Mapping[str, Any], progress: Progress) -> None:
        self.registry = registry
        self.id = int(job["id"])
        self.record = dict(job)
        self.progress = progress
        self.abandoned = threading.Event()

    def set(self, **fields: Any) -> None:
        if not self.registry.update_baseline_job(self.id, only_if="running", **fields):
            self.abandoned.set()
            raise JobAbandoned(f"baseline job {self.id} is no longer running here")
        self.record.update(fields)

    def stage(self, text: str) -> None:
        self.progress(f"job {self.id}: {text}")
        self.set(stage=text[:200])

    @contextlib.contextmanager
    def heartbeat(self, interval: float) -> Any:
        """A thread writing the heartbeat every ``interval`` seconds while the job runs."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(interval):
                try:
                    alive = self.registry.update_baseline_job(self.id, only_if="running")
                except (BackendUnavailable, OSError) as exc:  # tried again next time
                    self.progress(f"job {self.id}: heartbeat not written: {exc}")
                    continue
                if not alive:
                    self.abandoned.set()
                    return

        thread = threading.Thread(target=beat, name=f"baseline-job-{self.id}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            done.set()
            thread.join(timeout=interval + 5)


def run_baseline_job(
    job_id: int,
    *,
    registry: Registry,
    model_dir: Path | str,
    data_dir: Path | str,
    models: Any = None,
    trainer: Callable[..., Any] | None = None,
    reporter: Callable[[ParsedRecords], dict] | None = None,
    gate: Callable[..., tuple[bool, str, dict]] | None = None,
    contamination: Callable[[dict], list[dict]] | None = None,
    max_decompressed_bytes: int | None = None,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    lock_wait: float = PROMOTE_LOCK_WAIT,
    progress: Progress = lambda message: None,
) -> dict[str, Any] | None:
    """Claim job ``job_id`` and run it to its end; the job as recorded then, or None if
    another process has it (or it is not queued).

    ``trainer``, ``reporter``, ``gate`` and ``contamination`` (the report's warnings that
    hold a model back) default to utils.baseline's ``train_baseline``, ``health_report``,
    ``baseline_gate`` and ``contamination_warnings``. ``models``: the shared store
    (utils.shared_store.SharedModels) if models are shared between instances, else None (the
    zeek folder of ``model_dir``). Never raises for a failed job: the failure is recorded.
    """
    claimed = registry.claim_baseline_job(job_id)
    if claimed is None:
        return None
    job = _Job(registry, claimed, progress)
    try:
        with job.heartbeat(heartbeat_seconds):
            parts = _Parts(trainer, reporter, gate, contamination)
            _run(job, registry, Path(model_dir), Path(data_dir), models, parts,
                 max_decompressed_bytes, lock_wait)
    except JobAbandoned:
        progress(f"job {job.id}: given up on meanwhile; stopping without promoting")
    except (JobRejected, InputFormatError) as exc:
        _close(job, "rejected", str(exc))
    except Exception as exc:
        if not isinstance(exc, BackendUnavailable):
            traceback.print_exc()
        _close(job, "failed", _failure_reason(exc))
    return registry.baseline_job(job.id)


def _close(job: _Job, status: str, reason: str) -> None:
    job.progress(f"job {job.id} {status}: {reason}")
    with contextlib.suppress(JobAbandoned):
        job.set(status=status, stage=status, reason=reason)


@dataclass
class _Parts:
    """The baseline library's functions a job calls (None: utils.baseline's own, imported
    once the job's files have been read)."""

    trainer: Callable[..., Any] | None
    reporter: Callable[[ParsedRecords], dict] | None
    gate: Callable[..., tuple[bool, str, dict]] | None
    contamination: Callable[[dict], list[dict]] | None

    def resolve(self) -> _Parts:
        return _Parts(self.trainer or _default("training", "train_baseline"),
                      self.reporter or _default("health", "health_report"),
                      self.gate or _default("gate", "baseline_gate"),
                      self.contamination or _default("health", "contamination_warnings"))


def _run(job: _Job, registry: Registry, model_dir: Path, data_dir: Path, models: Any,
         parts: _Parts, max_decompressed_bytes: int | None, lock_wait: float) -> None:
    options = job.record.get("options") or {}
    job.stage("reading the files")
    records = _read_files(registry, job.record["files"], max_decompressed_bytes)
    parts = parts.resolve()
    trainer, reporter, gate = parts.trainer, parts.reporter, parts.gate
    exclusions = _exclusions(options)
    job.stage(f"health report on {len(records):,} connections")
    reported, excluded = records, None
    if exclusions is not None:
        reported, excluded = exclusions.apply(records)
        if not len(reported):
            raise JobRejected("no connection is left once the excluded hosts and time ranges "
                              "are taken out")
    health = dict(reporter(reported))
    if excluded is not None:
        health["excluded"] = excluded
    job.set(health=health)
    if options.get("report_only"):
        job.set(status="reported", stage="done",
                reason="report only: nothing was trained; send the files again without "
                       "report_only to train the baseline")
        return

    job.stage("training")
    source = {"files": [{"sha256": f["sha256"], "name": f["name"]}
                        for f in job.record["files"]]}
    result = trainer(records, exclusions=exclusions, random_state=0, source=source,
                     progress=lambda message: job.stage(f"training: {message}"))
    job.stage("comparing with the current model")
    store = open_model_store(model_dir, kind=KIND)
    stamp = store.stamp()
    current = _current(store)
    promote, gate_reason, gate_figures = gate(current, result, result.newest)
    version = str(result.card["model_version"])
    figures = {**dict(result.figures or {}), "gate": gate_figures}
    warnings = parts.contamination(getattr(result, "health", None) or health)
    if warnings:
        promote = False
        codes = ", ".join(sorted({str(w.get("code")) for w in warnings}))
        reason = (f"held: the health report warns ({codes}), so the baseline may contain an "
                  f"attack it would learn as normal; exclude those hosts or time ranges and "
                  f"train again, or promote it if the traffic is known to be clean "
                  f"(gate: {gate_reason})")
    elif not promote:
        reason = f"held: {gate_reason}"
    else:
        reason = gate_reason
    job.set(figures=figures, version=version)
    lock = registry.retrain_lock()  # a promotion never interleaves with a rollback
    if not lock.acquire():
        job.stage("waiting for a retrain or rollback to finish")
        if not lock.acquire(wait=lock_wait):
            promote = False
            reason = (f"held: a retrain or rollback kept the model lock for {lock_wait:g} s; "
                      "promote the held baseline once it is over")
    try:
        if job.abandoned.is_set():
            raise JobAbandoned(f"baseline job {job.id} is no longer running here")
        if promote and store.stamp() != stamp:
            promote = False
            reason = ("held: another Zeek model became current while this one trained; "
                      "compare them and promote this one if it is better")
        job.stage("promoting" if promote else "keeping the held model")
        _keep(job, result, store, models, data_dir)
        if promote:
            _promote(store, models, version, job_dir(data_dir, job.id) / "model")
    finally:
        lock.release()
    job.set(status="promoted" if promote else "held", stage="done", reason=reason)
    job.progress(f"job {job.id} {'promoted' if promote else 'held'} {version}: {reason}")


def _keep(job: _Job, result: Any, store: Any, models: Any, data_dir: Path) -> None:
    """Keep the candidate where a later promotion finds it: the kind's store, or (shared
    store) the job's folder, from which it is published."""
    if models is None:
        store.keep(result.pipeline, result.card)
    else:
        save_model(result.pipeline, result.card, job_dir(data_dir, job.id) / "model")


def _promote(store: Any, models: Any, version: str, folder: Path) -> None:
    if models is None:
        store.promote(version)
    else:
        models.publish(folder, KIND)


def promote_held_job(registry: Registry, job_id: int, *, model_dir: Path | str,
                     data_dir: Path | str, models: Any = None, lock_wait: float = 2.0
                     ) -> dict[str, Any]:
    """Make a held job's model the current Zeek model (an admin's decision); the job after.

    JobNotHeld unless the job is held; RetrainBusy while a retrain or rollback holds the
    lock; ModelLoadError if its model is not here (with a shared store, only the instance
    that trained it has it).
    """
    job = registry.baseline_job(job_id)
    if job is None:
        raise LookupError(f"no baseline job {job_id}")
    if job["status"] != "held" or not job.get("version"):
        raise JobNotHeld(f"baseline job {job_id} is {job['status']}; only a held job can be "
                         "promoted")
    folder = job_dir(data_dir, job_id) / "model"
    if models is not None and not (folder / "model.joblib").is_file():
        raise ModelLoadError(f"the held model of job {job_id} is on {job.get('host')}; "
                             "promote it through that instance")
    lock = registry.retrain_lock()
    if not lock.acquire(wait=lock_wait):
        raise RetrainBusy("a retrain or rollback is in progress; promote when it has finished")
    try:
        if not registry.update_baseline_job(job_id, only_if="held", stage="promoting"):
            raise JobNotHeld(f"baseline job {job_id} is no longer held")
        _promote(open_model_store(model_dir, kind=KIND), models, str(job["version"]), folder)
        registry.update_baseline_job(job_id, status="promoted", stage="done",
                                     reason=f"promoted by an admin ({job.get('reason')})")
    finally:
        lock.release()
    return registry.baseline_job(job_id)


def _read_files(registry: Registry, files: list[Mapping[str, Any]],
                max_decompressed_bytes: int | None) -> ParsedRecords:
    parts = []
    for entry in files:
        upload = registry.find(entry["sha256"])
        if upload is None:
            raise JobRejected(f"{entry['name']} is no longer kept by the server")
        try:
            with registry.upload_file(upload) as path:
                records = read_records(path, max_decompressed_bytes=max_decompressed_bytes)
        except FileNotFoundError:
            raise JobRejected(f"the kept bytes of {entry['name']} are gone") from None
        except InputFormatError as exc:
            raise JobRejected(f"{entry['name']}: {exc}") from None
        if records.input_kind != KIND:
            raise JobRejected(f"{entry['name']} holds {records.input_kind} records; a "
                              "baseline is trained from Zeek conn.logs")
        parts.append(records)
    return concat_records(parts)


def _exclusions(options: Mapping[str, Any]) -> Any:
    hosts = tuple(options.get("exclude_hosts") or ())
    ranges = tuple(tuple(item) for item in options.get("exclude_ranges") or ())
    if not hosts and not ranges:
        return None
    from utils.baseline.exclusions import Exclusions

    return Exclusions(hosts=hosts, ranges=ranges)




def _current(store: Any) -> LoadedModel | None:
    try:
        return store.current()
    except ModelLoadError:
        return None


def _default(module: str, name: str) -> Callable[..., Any]:
    import importlib

    return getattr(importlib.import_module(f"utils.baseline.{module}"), name)


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, BackendUnavailable | ModelLoadError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory"
    if isinstance(exc, ValueError):  # the library's own messages (e.g. too few rows)
        return f"the baseline cannot be trained: {exc}"
    return f"unexpected error ({type(exc).__name__}); see the job's log"


def main_job(job_id: int, model_dir: Path | str, data_dir: Path | str, *,
             database_url: str | None = None, store_url: str | None = None,
             max_decompressed_bytes: int | None = None) -> int:
    """``train_model.py --job``: run the job on the backends the settings name; an exit
    code (0 the job ended, EXIT_FAILED it failed, EXIT_NOT_CLAIMED another process has it)."""
    from utils.backends import open_backends
    from utils.cli import progress

    backends = open_backends(data_dir, model_dir, database_url=database_url,
                             store_url=store_url)
    job = run_baseline_job(
        job_id, registry=backends.registry, model_dir=model_dir, data_dir=data_dir,
        models=backends.models, progress=progress,
        max_decompressed_bytes=max_decompressed_bytes)
    if job is None:
        print(f"baseline job {job_id} is not queued (another process runs it, or it is "
              "over)", file=sys.stderr)
        return EXIT_NOT_CLAIMED
    print(f"baseline job {job_id}: {job['status']} {job.get('version') or ''}".rstrip())
    if job.get("reason"):
        print(f"  {job['reason']}")
    return EXIT_FAILED if job["status"] == "failed" else 0
