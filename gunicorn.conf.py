"""Gunicorn settings for the ML API: ``gunicorn api_server:app -c gunicorn.conf.py``.

Environment: WEB_CONCURRENCY (worker processes, default 2), GUNICORN_THREADS (threads per
worker, default 16), PORT (default 5000), GUNICORN_TIMEOUT (seconds, default 120), and the
ANOMALYZE_CLIENT_*_TIMEOUT limits on slow clients (utils/gunicorn_worker.py). See
docs/CONFIG.md.
"""

import gc
import os

from utils.gunicorn_worker import GuardedThreadWorker

# One BLAS thread per scoring call: requests already run in parallel (workers x threads) on a
# small machine, and a BLAS thread pool started in the master before fork is not fork-safe.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

bind = f"0.0.0.0:{os.environ.get('PORT') or '5000'}"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
# gthread, with time limits on clients that send their request slowly: a head is waited for
# without a thread, a body on its request's thread within its time.
worker_class = "utils.gunicorn_worker.GuardedThreadWorker"
GuardedThreadWorker.setup()  # reads ANOMALYZE_CLIENT_*_TIMEOUT now: a bad value stops start-up
# Threads are cheap while they wait on a slow body; the costly part, analysing an upload, is
# limited separately (ANOMALYZE_CONCURRENT_ANALYSES per worker, server/analysis_slots.py).
threads = int(os.environ.get("GUNICORN_THREADS") or 16)
# A 500,000-row upload takes well under this (docs/CONFIG.md); past it the worker is restarted.
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 120)
graceful_timeout = 30
keepalive = 5
# Load the app (and the model) once in the master, so workers share the model's memory pages.
preload_app = True
# No access log: the app writes one structured JSON line per request (server/request_log.py).
accesslog = None
errorlog = "-"
loglevel = "info"
# gunicorn's runtime control socket (gunicornc) is not used; its default path is shared by every
# gunicorn of the user, so several servers on one machine (tests, make run) would collide.
control_socket_disable = True


def pre_fork(server: object, worker: object) -> None:
    """Freeze what the master has loaded (the app, the model, the libraries) before forking.

    The cyclic GC then skips those objects in the workers. Measured over 80 KDDTest+ requests
    to 2 workers: 5 full collections of 54-93 ms each, added to whichever request they fell
    on, against 0.5 ms with the master's ~135,000 objects frozen. Also, the workers no longer
    write to the shared pages the GC would otherwise touch.
    """
    gc.collect()
    gc.freeze()
