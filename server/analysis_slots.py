"""At most ANOMALYZE_CONCURRENT_ANALYSES uploads are parsed and scored at once per worker process.

The server runs more threads than that (gunicorn.conf.py): a thread that waits on a slow
client's body costs next to nothing, an analysis costs CPU and up to a few hundred MB (a
500,000-row upload peaks at about 330 MB over the model). Requests past the limit wait here, as
they used to wait for a free gunicorn thread, so the memory a worker can need stays what it was
with 4 threads per worker.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app

EXTENSION_KEY = "anomalyze.analysis_slots"


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION_KEY] = threading.BoundedSemaphore(app.config["CONCURRENT_ANALYSES"])


@contextmanager
def analysis_slot() -> Iterator[None]:
    """Hold one of the process's analysis slots (waiting for one if all are taken)."""
    with current_app.extensions[EXTENSION_KEY]:
        yield
