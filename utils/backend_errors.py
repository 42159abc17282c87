"""The errors of the shared backends (PostgreSQL, S3), in a module of their own so the
backends can raise them without importing the module that chooses between them."""

from __future__ import annotations


class BackendUnavailable(RuntimeError):
    """A shared backend (the database or the object store) did not answer; the caller
    degrades (an upload is scored but not kept) and the next call tries again."""

    reason = "backend_unavailable"  # the ``store_reason`` / ``error_type`` clients see


class BackendConfigError(ValueError):
    """The combination of backend settings cannot work (the message says which to set)."""
