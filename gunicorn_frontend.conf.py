"""Gunicorn settings for the web frontend when it is self-hosted (`make run`):
``gunicorn api.index:app -c gunicorn_frontend.conf.py``. Vercel does not use it.

Environment: PORT (default 8000) and the ANOMALYZE_CLIENT_*_TIMEOUT limits on slow clients
(utils/gunicorn_worker.py, docs/CONFIG.md), shared with the ML API's gunicorn.conf.py.
"""

import os

from utils.gunicorn_worker import GuardedThreadWorker

bind = f"0.0.0.0:{os.environ.get('PORT') or '8000'}"
workers = 2
# gthread with time limits on slow clients (see gunicorn.conf.py). The frontend's requests
# mostly wait on the browser or on the ML API, so threads are what it needs.
worker_class = "utils.gunicorn_worker.GuardedThreadWorker"
GuardedThreadWorker.setup()  # reads ANOMALYZE_CLIENT_*_TIMEOUT now: a bad value stops start-up
threads = 16
# Longer than the ML API's own worker timeout: an analysis is waited for, not cut short here.
timeout = 120
accesslog = None
errorlog = "-"
# See gunicorn.conf.py: the default control socket path would collide between servers.
control_socket_disable = True
