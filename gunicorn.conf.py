"""Gunicorn settings for the ML API: ``gunicorn api_server:app -c gunicorn.conf.py``.

Settings: the ``gunicorn`` rows of settings/table.py (PORT, WEB_CONCURRENCY, GUNICORN_*, and
the ANOMALYZE_CLIENT_*_TIMEOUT limits on slow clients of utils/gunicorn_worker.py), read once
here; a refused value stops gunicorn naming the variable. See docs/CONFIG.md.
"""

import gc
import os

from settings import load_settings
from utils.gunicorn_worker import ClientLimits, GuardedThreadWorker

_settings = load_settings("gunicorn")

# One BLAS thread per scoring call: requests already run in parallel (workers x threads) on a
# small machine, and a BLAS thread pool started in the master before fork is not fork-safe.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

bind = f"0.0.0.0:{_settings['PORT']}"
workers = _settings["WEB_CONCURRENCY"]
# gthread, with time limits on clients that send their request slowly: a head is waited for
# without a thread, a body on its request's thread within its time. Set here, in the master,
# so the forked workers inherit them.
worker_class = "utils.gunicorn_worker.GuardedThreadWorker"
GuardedThreadWorker.configure(ClientLimits.from_settings(_settings))
# Threads are cheap while they wait on a slow body; the costly part, analysing an upload, is
# limited separately (ANOMALYZE_CONCURRENT_ANALYSES per worker, server/analysis_slots.py).
threads = _settings["GUNICORN_THREADS"]
# A 500,000-row upload takes well under this (docs/CONFIG.md); past it the worker is restarted.
timeout = _settings["GUNICORN_TIMEOUT"]
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
