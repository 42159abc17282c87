"""What the rest of Anomalyze asks of an upload registry, whatever database holds it.

A registry keeps each upload once (by SHA-256), counts new uploads exactly towards the next
retrain, queues retrain requests (at most one waits), logs every retrain run, hands out the
one-retrain-at-a-time lock, and gives a run the bytes of the uploads it trains on. The
embedded backend is SQLite plus a local folder (utils/registry/sqlite.py); a server backend
(PostgreSQL plus object storage) implements the same two protocols. Callers get one from
``utils.registry.open_registry`` and never name a backend.

Upload life cycle: ``pending`` (kept, waiting for a run), ``archived`` (in the training data
of a promoted model), ``used`` (considered by a run whose candidate was rejected; not fed again
unless requeued), ``quarantined`` (it trained a version that was rolled back; never fed again
unless released). A failed or interrupted run changes nothing.

Baseline jobs (an admin's model of their own network, trained in a background process) are
recorded here too, so any instance can show their progress (utils/registry/baseline_jobs.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from utils.allowlist import AllowEntry
    from utils.feedback import Feedback

DEFAULT_THRESHOLD = 10  # new unique uploads per automatic retrain
STATUSES = ("pending", "used", "archived", "quarantined")
OUTCOMES = ("running", "promoted", "rejected", "failed")


def utc_timestamp(when: float | None = None) -> str:
    """``when`` (default now, seconds since the epoch) as sortable UTC text (ms, "Z"): how
    every backend stores times."""
    moment = datetime.now(UTC) if when is None else datetime.fromtimestamp(when, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RetrainBusy(RuntimeError):
    """Another process holds the retrain lock (a retrain or a rollback is in progress)."""


class RegistryBusyError(RuntimeError):
    """The database stayed locked by other processes for longer than the busy timeout."""


class UnknownUpload(LookupError):
    """No kept upload has this SHA-256."""


class NotQuarantined(ValueError):
    """The upload is not quarantined, so there is nothing to release."""


@dataclass(frozen=True)
class Upload:
    """One kept upload; ``stored_path`` names its bytes within the backend's storage."""

    id: int
    sha256: str
    original_name: str
    stored_path: str
    size: int
    rows: int
    has_labels: bool
    input_kind: str
    received_at: str
    status: str
    run_id: int | None
    trusted: bool = False  # sent with the admin token: its labels are facts, not claims
    client: str | None = None  # the address it came from (per-client caps and quota)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Registration:
    """What ``register`` did: a duplicate, or an upload over quota, is neither stored nor
    counted. ``reason`` says why it was not stored (``duplicate``, ``quota_total``,
    ``quota_client``); ``upload`` is None when nothing with its content is kept."""

    duplicate: bool
    stored: bool
    upload: Upload | None
    retrain_due: bool  # this upload crossed the threshold: a retrain is queued
    reason: str | None = None


@dataclass(frozen=True)
class UploadQuota:
    """Bytes of kept uploads allowed: in all, and per client within a sliding time window.

    Every kept upload counts, whatever its status, since every one of them takes space.
    """

    total_bytes: int
    client_bytes: int
    client_window_seconds: float

    def refusal(self, total: int, recent_from_client: int, size: int) -> str | None:
        """``quota_total`` or ``quota_client`` if keeping ``size`` more bytes breaks a limit,
        given the bytes kept in all and those kept from this client within the window."""
        if total + size > self.total_bytes:
            return "quota_total"
        if recent_from_client + size > self.client_bytes:
            return "quota_client"
        return None


@runtime_checkable
class RunLock(Protocol):
    """One retrain (or rollback) at a time across every process and instance.

    Held by the process that retrains; released when it lets go *or dies*, so a killed run
    never blocks the next. Also a context manager that raises RetrainBusy when taken.
    """

    @property
    def held(self) -> bool: ...

    def acquire(self, wait: float = 0.0) -> bool:
        """Take the lock, waiting up to ``wait`` seconds; False if another holder has it."""
        ...

    def release(self) -> None: ...

    def __enter__(self) -> RunLock: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Registry(Protocol):
    """Kept uploads, the exact retrain counter, the retrain queue and the run log.

    Safe to share between threads; every method is one transaction of its own.
    """

    # --- uploads ------------------------------------------------------------------------
    def register(self, path: Path | str, *, sha256: str, original_name: str | None, rows: int,
                 has_labels: bool, input_kind: str, threshold: int | None = None,
                 trusted: bool = False, client: str | None = None,
                 quota: UploadQuota | None = None, counted: bool = True) -> Registration:
        """Keep the valid upload in the local file ``path`` unless its content is already
        kept or the ``quota`` refuses it, and count it towards the next retrain, in one
        transaction: concurrent duplicates count once, the counter is exact. Crossing
        ``threshold`` (default DEFAULT_THRESHOLD, 0: never) queues a retrain. ``counted``
        False keeps it without counting it (input no retrain learns from). A trusted
        duplicate marks the kept upload trusted. An upload not kept leaves ``path`` alone."""
        ...

    def find(self, sha256: str) -> Upload | None: ...

    def uploads(self, status: str | None = None,
                input_kind: str | None = None) -> list[Upload]:
        """Kept uploads in the order they arrived, optionally of one status and input kind."""
        ...

    def counts(self) -> dict[str, int]:
        """Number of uploads per status (every status in STATUSES, 0 when none)."""
        ...

    def upload_file(self, upload: Upload) -> AbstractContextManager[Path]:
        """A local file holding the upload's bytes while the context lasts (what a run reads
        back to train on); FileNotFoundError if the bytes are gone."""
        ...

    def requeue_used(self) -> int:
        """Put uploads a rejected run set aside back to pending; returns how many."""
        ...

    def quarantine(self, sha256s: Iterable[str]) -> list[str]:
        """Set these uploads aside for good; returns the SHA-256s not quarantined before."""
        ...

    def release(self, sha256: str) -> Upload:
        """A quarantined upload back to pending (UnknownUpload, NotQuarantined)."""
        ...

    def reconcile_files(self) -> int:
        """Finish what a crash interrupted outside the database (moves of kept files);
        returns how many were finished, 0 for a backend that keeps nothing outside it."""
        ...

    # --- the counter and the queue ---------------------------------------------------------
    def request_retrain(self) -> None:
        """Queue a retrain (at most one request waits at a time, whatever queued it)."""
        ...

    def take_request(self) -> bool:
        """Consume the queued retrain request; False when none is queued."""
        ...

    def state(self) -> dict[str, int]:
        """``uploads_since_retrain`` (the counter) and ``requests`` (0 or 1 queued)."""
        ...

    def retrain_lock(self) -> RunLock:
        """A new, not yet acquired, handle on the one-retrain-at-a-time lock."""
        ...

    # --- the run log ---------------------------------------------------------------------
    def start_run(self, *, trigger: str, pid: int | None = None,
                  previous_version: str | None = None) -> int:
        """Record a run as started (hold the retrain lock); returns its id."""
        ...

    def claim_pending(self, run_id: int, input_kind: str) -> list[Upload]:
        """Mark the pending uploads of ``input_kind`` as this run's (they stay pending)."""
        ...

    def set_run_version(self, run_id: int, version: str) -> None:
        """Note the candidate's version before it is promoted (recovery after a crash)."""
        ...

    def finish_run(self, run_id: int, outcome: str, reason: str, *,
                   metrics_before: dict | None = None, metrics_after: dict | None = None,
                   version: str | None = None) -> None:
        """Close a run (``outcome`` in OUTCOMES[1:]) and move its uploads on: promoted ->
        archived, rejected -> used, failed -> still pending."""
        ...

    def interrupted_runs(self) -> list[dict[str, Any]]:
        """Runs still recorded as running (with the lock held: their process is gone)."""
        ...

    def runs(self, limit: int = 10, before: int | None = None) -> list[dict[str, Any]]:
        """The most recent runs, newest first; ``before``: only smaller ids (next page)."""
        ...

    def run_count(self) -> int: ...

    def running_run(self) -> dict[str, Any] | None:
        """The run in progress, if its process is alive."""
        ...

    # --- the allow-list (utils/allowlist.py) ----------------------------------------------
    def add_allow_entry(self, entry: AllowEntry) -> AllowEntry:
        """Keep a new entry and return it with its id; DuplicateEntry (with the existing id)
        if an equal entry is in force. An equal expired entry is replaced."""
        ...

    def allow_entries(self, include_expired: bool = False) -> list[AllowEntry]:
        """The entries, oldest first; expired ones only when asked for."""
        ...

    def delete_allow_entry(self, entry_id: int) -> AllowEntry:
        """Remove an entry and return it (UnknownEntry)."""
        ...

    # --- analyst feedback (utils/feedback.py) ---------------------------------------------
    def add_feedback(self, sha256: str, records: Iterable[str], verdict: str,
                     note: str | None, analyst: str) -> list[Feedback]:
        """Keep a verdict on each record of an upload, in one transaction; a newer verdict on
        a record replaces the older one (and waits for the next retrain again)."""
        ...

    def feedback(self, verdict: str | None = None, limit: int | None = None,
                 before: int | None = None) -> list[Feedback]:
        """Verdicts, newest first; ``before``: only smaller ids (the next page)."""
        ...

    def feedback_counts(self) -> dict[str, int]:
        """``false_positive_waiting`` (in no promoted model yet), ``false_positive_trained``
        and ``true_positive``."""
        ...

    def mark_feedback_trained(self, ids: Iterable[int], version: str) -> None:
        """Note the promoted version that first learned from these verdicts."""
        ...

    # --- baseline jobs (utils/registry/baseline_jobs.py) ------------------------------------
    def create_baseline_job(self, files: list[str], options: dict) -> int:
        """Record a queued job training a baseline from these kept uploads (SHA-256s, in
        order; UnknownUpload if one is not kept) with ``options``; returns its id."""
        ...

    def baseline_job(self, job_id: int) -> dict[str, Any] | None:
        """The job, or None; an active job whose process is gone is marked failed first."""
        ...

    def baseline_jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` jobs, newest first (dead processes' jobs marked failed)."""
        ...

    def update_baseline_job(self, job_id: int, *, only_if: str | Iterable[str] | None = None,
                            **fields: Any) -> bool:
        """Set ``fields`` (status, stage, health, figures, version, reason, pid, host) and
        the heartbeat, only while the job's status is one of ``only_if`` (None: any); whether
        the job was updated. No fields: a heartbeat."""
        ...

    def claim_baseline_job(self, job_id: int | None = None) -> dict[str, Any] | None:
        """Take a queued job (``job_id``, default the oldest queued) for this process: it
        becomes running with this pid, host and a heartbeat. None if it was not queued: of
        any number of processes claiming one job, exactly one gets it."""
        ...
