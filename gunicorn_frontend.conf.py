"""Gunicorn settings for the web frontend when it is self-hosted (`make run`):
``gunicorn api.index:app -c gunicorn_frontend.conf.py``. Vercel does not use it.

Settings: the ``gunicorn_frontend`` rows of settings/table.py (PORT, and the
ANOMALYZE_CLIENT_*_TIMEOUT limits on slow clients it shares with the ML API's gunicorn.conf.py),
read once here; a refused value stops gunicorn naming the variable. See docs/FRONTEND.md.
"""

from settings import load_settings
from utils.gunicorn_worker import ClientLimits, GuardedThreadWorker

_settings = load_settings("gunicorn_frontend")

bind = f"0.0.0.0:{_settings['PORT']}"
workers = 2
# gthread with time limits on slow clients (see gunicorn.conf.py). The frontend's requests
# mostly wait on the browser or on the ML API, so threads are what it needs.
worker_class = "utils.gunicorn_worker.GuardedThreadWorker"
GuardedThreadWorker.configure(ClientLimits.from_settings(_settings))
threads = 16
# Longer than the ML API's own worker timeout: an analysis is waited for, not cut short here.
timeout = 120
accesslog = None
errorlog = "-"
# See gunicorn.conf.py: the default control socket path would collide between servers.
control_socket_disable = True
