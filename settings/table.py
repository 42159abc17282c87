"""Every environment variable Anomalyze reads: the one place to add or change a setting.

A new setting is one ``Setting(...)`` row here (name, default, parser, the processes that read
it, one line of meaning), then ``python -m settings --markdown`` to refresh the docs. Its
value reaches the code through the reader's config (``app.config[setting.key]`` in the API
and the frontend, the dict the gunicorn config files and each script's main() load), never
through ``os.environ``. A variable may have two rows only for disjoint readers (PORT: 5000 for
the API and its gunicorn, 8000 for the frontend and its gunicorn).
"""

from __future__ import annotations

from pathlib import Path

from settings.parsers import (
    boolean,
    free_text,
    http_url,
    k_list,
    log_level,
    number,
    origins,
    path,
    port,
    postgres_url,
    rate_limit,
    s3_url,
    token,
    whole_number,
)
from settings.reading import Setting

REPO_ROOT = Path(__file__).resolve().parents[1]

API = ("api",)
API_SCRIPTS = ("api", "scripts")
FRONTEND = ("frontend",)
SCRIPTS = ("scripts",)
BOTH_GUNICORNS = ("gunicorn", "gunicorn_frontend")

SETTINGS: tuple[Setting, ...] = (
    # --- the ML API (server/) -----------------------------------------------------------
    Setting("ANOMALYZE_MODEL_DIR", REPO_ROOT / "models", path, API_SCRIPTS,
            "folder of `model.joblib` and `model_card.json`: the model served, trained and "
            "retrained (never loaded from elsewhere)"),
    Setting("ANOMALYZE_DATA_DIR", REPO_ROOT / "data", path, API_SCRIPTS,
            "runtime data (upload spool, kept uploads, upload registry, retrain log) and the "
            "NSL-KDD files"),
    Setting("ANOMALYZE_MAX_UPLOAD_MB", 200.0, number(above=0), ("api", "frontend"),
            "largest file `POST /api/predict` accepts, in MB (2^20 bytes); the frontend "
            "checks it first, so keep the two equal"),
    Setting("ANOMALYZE_MAX_JSON_MB", 20.0, number(above=0), API,
            "largest body of `POST /api/predict-json`, in MB (parsed in memory, hence lower)"),
    Setting("ANOMALYZE_MAX_DECOMPRESSED_MB", 1024.0, number(above=0), API_SCRIPTS,
            "largest content of a gzip upload once decompressed, in MB (against gzip bombs)"),
    Setting("ANOMALYZE_MIN_FREE_MB", 512.0, number(at_least=0), API,
            "free space kept in the data folder's file system, in MB: below it uploads are "
            "scored but not kept; `0` turns it off"),
    Setting("ANOMALYZE_UPLOAD_QUOTA_MB", 1024.0, number(above=0), API,
            "most MB of kept uploads in all; past it uploads are scored but not kept "
            "(`store_reason: quota_total`)"),
    Setting("ANOMALYZE_UPLOAD_CLIENT_QUOTA_MB", 256.0, number(above=0), API,
            "most MB kept from one client address within the window below; past it uploads "
            "are not kept (`quota_client`)"),
    Setting("ANOMALYZE_UPLOAD_CLIENT_WINDOW_HOURS", 24.0, number(above=0), API,
            "the sliding window of the per-client upload quota, in hours"),
    Setting("ANOMALYZE_CORS_ORIGINS", (), origins, API,
            "origins whose browser pages may read the API's answers",
            shown="empty: no cross-origin access"),
    Setting("ANOMALYZE_MODEL_CHECK_INTERVAL", 1.0, number(at_least=0), API_SCRIPTS,
            "seconds between checks whether `model.joblib` was replaced; `0` checks on "
            "every request"),
    Setting("ANOMALYZE_LOG_LEVEL", "INFO", log_level, API,
            "level of the API's JSON log lines on stderr"),
    Setting("ANOMALYZE_CONCURRENT_ANALYSES", 4, whole_number(at_least=1), API,
            "uploads (or JSON bodies) one worker process parses and scores at once; more wait"),
    Setting("ANOMALYZE_SCORING_THREADS", None, whole_number(at_least=1), API_SCRIPTS,
            "threads that parse and score one upload (the scores do not depend on it)",
            shown="the usable cores, at most 4"),
    Setting("PORT", 5000, port, ("api", "gunicorn"),
            "port gunicorn serves the API on (`0.0.0.0:$PORT`; `-b` overrides it)"),
    # --- incremental learning (server/retrain.py starts retrain_model.py) ---------------
    Setting("ANOMALYZE_RETRAIN_THRESHOLD", 10, whole_number(at_least=0), API_SCRIPTS,
            "new unique uploads per automatic retrain; `0` never retrains automatically"),
    Setting("ANOMALYZE_ADMIN_TOKEN", None, token, API,
            "bearer token of the admin routes; uploads carrying it are trusted (their labels "
            "may teach the model)",
            shown="unset: admin routes answer 404 `disabled`"),
    Setting("ANOMALYZE_ANALYST_TOKEN", None, token, API,
            "bearer token of the analyst routes (allow-list, feedback); the admin token "
            "works there too", shown="unset: only the admin token, if set"),
    Setting("ANOMALYZE_ADMIN_AUTH_LIMIT", "10 per minute", rate_limit, API,
            "failed admin authentications allowed per client address and worker process"),
    Setting("ANOMALYZE_RETRAIN_TRAIN_FILE", None, path, API_SCRIPTS,
            "the original training data a candidate is trained on",
            shown="the file the model card names, in the data folder"),
    Setting("ANOMALYZE_RETRAIN_K", None, k_list, API_SCRIPTS,
            "k of each K-means model of a candidate", shown="the current model's"),
    Setting("ANOMALYZE_RETRAIN_TOLERANCE", 0.005, number(at_least=0, at_most=1), API_SCRIPTS,
            "largest drop in balanced F1 or AUROC a candidate may show and still be promoted"),
    Setting("ANOMALYZE_RETRAIN_CATEGORY_TOLERANCE", 0.02, number(at_least=0, at_most=1),
            API_SCRIPTS, "largest drop in the detection rate of any attack category (DoS, "
            "Probe, R2L, U2R) a promoted candidate may show"),
    Setting("ANOMALYZE_RETRAIN_MAX_UPLOAD_ROWS", 1_000_000, whole_number(at_least=0),
            API_SCRIPTS, "most upload rows in a candidate's fit set (a fixed sample beyond)"),
    Setting("ANOMALYZE_RETRAIN_MAX_ROWS_PER_UPLOAD", 2_000, whole_number(at_least=0),
            API_SCRIPTS, "most rows one anonymous upload adds to a candidate's fit set (a "
            "fixed sample beyond); trusted uploads are not capped"),
    Setting("ANOMALYZE_RETRAIN_MAX_ROWS_PER_CLIENT", 10_000, whole_number(at_least=0),
            API_SCRIPTS, "most rows the anonymous uploads of one client address add to a "
            "candidate's fit set"),
    Setting("ANOMALYZE_RETRAIN_FEEDBACK_SHARE", 0.05, number(at_least=0, at_most=1),
            API_SCRIPTS, "most analyst-marked false positives a candidate fits, as a share of the "
            "training file's normal fit rows"),
    # --- several instances (docs/CONFIG.md, "Several instances") --------------------------
    Setting("ANOMALYZE_DATABASE_URL", None, postgres_url, API_SCRIPTS,
            "PostgreSQL shared by every instance: upload registry, retrain queue, run log, lock, "
            "current model",
            shown="unset: SQLite in the data folder"),
    Setting("ANOMALYZE_STORE_URL", None, s3_url, API_SCRIPTS,
            "S3-compatible bucket of kept uploads and model versions (needs the database URL; "
            "keys: `AWS_*`)", shown="unset: the local data and model folders"),
    Setting("ANOMALYZE_DB_POOL_SIZE", 4, whole_number(at_least=1), API,
            "most PostgreSQL connections one API worker process keeps open"),
    # --- the servers (gunicorn.conf.py; the client limits also gunicorn_frontend.conf.py) ---
    Setting("WEB_CONCURRENCY", 2, whole_number(at_least=1), ("gunicorn", "scripts"),
            "gunicorn worker processes (they share the model loaded before the fork)"),
    Setting("GUNICORN_THREADS", 16, whole_number(at_least=1), ("gunicorn", "scripts"),
            "threads per gunicorn worker: how many requests (uploads too) it receives at once"),
    Setting("GUNICORN_TIMEOUT", 120, whole_number(at_least=1), ("gunicorn",),
            "seconds a worker may spend on one request before gunicorn restarts it"),
    Setting("ANOMALYZE_CLIENT_READ_TIMEOUT", 10.0, number(above=0), BOTH_GUNICORNS,
            "seconds a client may pause while sending a request; past it a JSON 408"),
    Setting("ANOMALYZE_CLIENT_HEADER_TIMEOUT", 20.0, number(above=0), BOTH_GUNICORNS,
            "seconds a client may take to send a request's head (request line and headers)"),
    Setting("ANOMALYZE_CLIENT_BODY_TIMEOUT", 300.0, number(above=0), BOTH_GUNICORNS,
            "seconds a client may take to send a request's body, from the end of its head"),
    # --- the web frontend (api/) ----------------------------------------------------------
    Setting("ANOMALYZE_API_URL", "http://127.0.0.1:5000", http_url, FRONTEND,
            "base URL of the ML API"),
    Setting("ANOMALYZE_API_CONNECT_TIMEOUT", 5.0, number(above=0), FRONTEND,
            "seconds to open a connection to the API"),
    Setting("ANOMALYZE_API_READ_TIMEOUT", 300.0, number(above=0), FRONTEND,
            "seconds to wait for an analysis (or CSV) answer"),
    Setting("ANOMALYZE_API_HEALTH_TIMEOUT", 10.0, number(above=0), FRONTEND,
            "read timeout of each `/health`, model-info and retrain-status call, in seconds"),
    Setting("ANOMALYZE_API_WAKE_TIMEOUT", 90.0, number(above=0), FRONTEND,
            "total seconds to wait for a sleeping API to wake"),
    Setting("ANOMALYZE_API_BACKOFF_INITIAL", 1.0, number(above=0), FRONTEND,
            "first pause between wake-up checks, in seconds; doubles each time"),
    Setting("ANOMALYZE_API_BACKOFF_MAX", 16.0, number(above=0), FRONTEND,
            "longest pause between wake-up checks, in seconds"),
    Setting("ANOMALYZE_TABLE_LIMIT", 5000, whole_number(at_least=1), FRONTEND,
            "anomalies fetched for the results table; the CSV always has every record"),
    Setting("ANOMALYZE_ANALYST_PASSWORD", None, token, FRONTEND,
            "password (or token) an analyst signs in to the web page with; without signing in "
            "the page works as before", shown="unset: no sign-in"),
    Setting("ANOMALYZE_API_ANALYST_TOKEN", None, token, FRONTEND,
            "the API's `ANOMALYZE_ANALYST_TOKEN`, sent for a signed-in analyst's allow-list "
            "and feedback (never to the browser)",
            shown="unset: the analyst tools answer 503"),
    Setting("ANOMALYZE_ADMIN_PASSWORD", None, token, FRONTEND,
            "password an admin signs in to the web page with (analyst tools plus training "
            "baselines); must differ from the analyst's", shown="unset: no admin sign-in"),
    Setting("ANOMALYZE_API_ADMIN_TOKEN", None, token, FRONTEND,
            "the API's `ANOMALYZE_ADMIN_TOKEN`, sent for a signed-in admin's baseline jobs "
            "(never to the browser)", shown="unset: the baseline section answers 503"),
    Setting("ANOMALYZE_SESSION_SECRET", None, token, FRONTEND,
            "key that signs the page's session cookie and its CSRF tokens; the same for every "
            "worker and instance", shown="derived from `ANOMALYZE_ANALYST_PASSWORD` and "
            "`ANOMALYZE_ADMIN_PASSWORD` (a new password signs everyone out)"),
    Setting("ANOMALYZE_SESSION_COOKIE_SECURE", False, boolean, FRONTEND,
            "send the session cookie over HTTPS only: set it where the page is served over "
            "HTTPS"),
    Setting("ANOMALYZE_SESSION_HOURS", 8.0, number(above=0), FRONTEND,
            "hours an analyst stays signed in"),
    Setting("ANOMALYZE_SIGN_IN_LIMIT", "5 per minute", rate_limit, FRONTEND,
            "failed sign-ins allowed per client address and worker process; past it 429"),
    Setting("PORT", 8000, port, ("frontend", "gunicorn_frontend"),
            "port of the self-hosted frontend (`0.0.0.0:$PORT` under gunicorn, 127.0.0.1 in "
            "development)"),
    # --- scripts and benchmarks -----------------------------------------------------------
    Setting("ANOMALYZE_DATA_MIRROR", None, free_text, SCRIPTS,
            "where `make data` fetches NSL-KDD from: a URL prefix, a folder or a file:// URL",
            shown="the GitHub copy named in `utils/dataset.py`"),
    Setting("API_PORT", 5000, port, SCRIPTS, "port of the ML API that `make run` starts"),
    Setting("FRONTEND_PORT", 8000, port, SCRIPTS, "port of the frontend that `make run` starts"),
    Setting("RUN_LOCAL_READY_TIMEOUT", 120.0, number(above=0), SCRIPTS,
            "seconds `make run` waits for both services to answer"),
    Setting("ANOMALYZE_ZEEK_DIR", REPO_ROOT.parent / "shared" / "data" / "zeek", path, SCRIPTS,
            "folder of the labeled Zeek conn.log that `make bench` evaluates"),
    # --- the live Zeek watcher (watch_zeek.py) ---------------------------------------------
    Setting("ANOMALYZE_WATCH_STATE_DIR", REPO_ROOT / "data" / "watch", path, SCRIPTS,
            "the watcher's saved state (read position, held records) and its alert outbox; "
            "one folder per watched log"),
    Setting("ANOMALYZE_WATCH_REORDER_SECONDS", 120.0, number(at_least=0), SCRIPTS,
            "log seconds a record may come behind the newest and still count in earlier rows' "
            "windows; records wait this long"),
    Setting("ANOMALYZE_WATCH_IDLE_FLUSH_SECONDS", 0.0, number(at_least=0), SCRIPTS,
            "wall-clock seconds without a new record after which every waiting record is "
            "scored (for replayed logs); `0`: never"),
    Setting("ANOMALYZE_WATCH_POLL_SECONDS", 0.25, number(above=0), SCRIPTS,
            "pause between looks at the log when nothing new was written"),
    Setting("ANOMALYZE_WATCH_SUPPRESS_SECONDS", 3600.0, number(at_least=0), SCRIPTS,
            "at most one alert per (source, destination, service) per this many seconds of "
            "log time; `0` sends every alert"),
    Setting("ANOMALYZE_WATCH_MAX_HELD_ROWS", 500_000, whole_number(at_least=1), SCRIPTS,
            "most records waiting for their window; past it the oldest are scored early"),
    Setting("ANOMALYZE_WATCH_METRICS_PORT", 9180, port, SCRIPTS,
            "port of the watcher's Prometheus `/metrics` (on 127.0.0.1 unless "
            "`--metrics-address`)"),
    # --- tests ------------------------------------------------------------------------------
    Setting("ANOMALYZE_NSLKDD_DIR", REPO_ROOT / "data", path, ("scripts", "tests"),
            "where the tests and `benchmarks/bench_http.py` find the NSL-KDD files (tests "
            "point `ANOMALYZE_DATA_DIR` at temp folders)"),
    Setting("ANOMALYZE_PG_BINDIR", None, path, ("scripts", "tests"),
            "folder holding PostgreSQL's `initdb` and `postgres` for the tests' throwaway "
            "server", shown="the one `initdb` on PATH is in, else the newest "
            "`/usr/lib/postgresql/*/bin`"),
)
