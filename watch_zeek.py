"""Watch a Zeek sensor's conn.log and send an ECS alert for each anomalous connection.

    python watch_zeek.py /opt/zeek/logs/current --alerts-file alerts.ndjson
    python watch_zeek.py /opt/zeek/logs/current --webhook https://siem.example/hook \\
        --syslog udp://127.0.0.1:514 --stdout

Follows ``conn.log`` in the folder (or the file given) across Zeek's rotations, scores each
record once its window features are final, and delivers alerts to every sink named; state
and undelivered alerts live in $ANOMALYZE_WATCH_STATE_DIR, so a restart resumes. SIGTERM or
Ctrl-C stops it after the round under way. Anomalies the allow-list allows (the registry's,
as the API applies it: ``analyst_admin.py allowlist``) are counted, not sent. README.md
("Watching a live Zeek sensor") tells more; the settings are in docs/CONFIG.md.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
import threading
from functools import partial
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", type=Path,
                        help="Zeek's current log folder (conn.log inside) or a conn.log")
    parser.add_argument("--alerts-file", type=Path, help="append alerts (NDJSON) here, rotated")
    parser.add_argument("--alerts-file-mb", type=float, default=100.0,
                        help="rotate the alerts file past this size (default 100)")
    parser.add_argument("--stdout", action="store_true", help="write alerts (NDJSON) to stdout")
    parser.add_argument("--webhook", metavar="URL", help="POST alerts (NDJSON batches) here")
    parser.add_argument("--syslog", metavar="udp://HOST:PORT",
                        help="send alerts as RFC 5424 syslog (udp:// or tcp://)")
    parser.add_argument("--metrics-address", default="127.0.0.1",
                        help="address /metrics listens on (default 127.0.0.1)")
    parser.add_argument("--no-metrics", action="store_true", help="serve no /metrics")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from settings import script_settings

    config = script_settings()  # a mistyped setting stops here, as in every script
    args = parse_args(argv)
    stop = threading.Event()  # set by SIGTERM or Ctrl-C: stop after the round under way
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("communityid").setLevel(logging.WARNING)  # it logs every hash at INFO

    # the API's hot swap and choice of model, reused as they are
    from server.input_warnings import model_kind
    from server.model_holder import ModelHolder, ModelUnavailable, model_preferring
    from utils.backend_errors import BackendConfigError
    from utils.backends import open_backends
    from utils.model_store.kinds import KINDS
    from utils.watch.allowed import RefreshingAllowList
    from utils.watch.metrics import WatchMetrics
    from utils.watch.sinks import FileSink, StdoutSink, SyslogSink, WebhookSink
    from utils.watch.watcher import WatchConfig, Watcher

    log_path = args.log / "conn.log" if args.log.is_dir() else args.log
    sinks = []
    if args.alerts_file:
        sinks.append(FileSink(args.alerts_file, max_bytes=int(args.alerts_file_mb * (1 << 20))))
    if args.stdout:
        sinks.append(StdoutSink())
    if args.webhook:
        sinks.append(WebhookSink(args.webhook))
    if args.syslog:
        try:
            sinks.append(SyslogSink(args.syslog))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if not sinks:
        print("error: name at least one sink (--alerts-file, --stdout, --webhook, --syslog)",
              file=sys.stderr)
        return 2

    # The Zeek baseline of this network once one is promoted (also while watching: hot
    # reload), the KDD model until then, as the API chooses for an uploaded conn.log.
    holders = {kind: ModelHolder(config["MODEL_DIR"], kind=kind,
                                 check_interval=config["MODEL_CHECK_INTERVAL"])
               for kind in KINDS}
    for holder in holders.values():
        holder.refresh(force=True)
    try:
        model = model_preferring(holders, "zeek")
    except ModelUnavailable as exc:
        print(f"error: no model to score with: {exc}", file=sys.stderr)
        return 2
    if model_kind(model.card) != "zeek":
        logging.getLogger("anomalyze.watch").warning(
            "no Zeek model of this network yet: scoring with the KDD model %s, which flags "
            "much ordinary traffic; train a baseline (docs/ZEEK.md)", model.version)
    allowlist = None
    try:  # the registry the API and analyst_admin.py keep the allow-list in
        registry = open_backends(config["DATA_DIR"], config["MODEL_DIR"],
                                 database_url=config["DATABASE_URL"]).registry
        allowlist = RefreshingAllowList(registry).current
    except BackendConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error, RuntimeError) as exc:  # (RuntimeError: busy, away)
        # Alerting goes on without the list: every anomaly is sent.
        logging.getLogger("anomalyze.watch").error(
            "no allow-list applied: the registry cannot be opened: %s: %s",
            type(exc).__name__, exc)
    metrics = WatchMetrics()
    if not args.no_metrics:
        metrics.serve(config["WATCH_METRICS_PORT"], args.metrics_address)
    watcher = Watcher(
        log_path, config["WATCH_STATE_DIR"], partial(model_preferring, holders, "zeek"), sinks,
        WatchConfig(reorder_seconds=config["WATCH_REORDER_SECONDS"],
                    idle_flush_seconds=config["WATCH_IDLE_FLUSH_SECONDS"],
                    poll_seconds=config["WATCH_POLL_SECONDS"],
                    suppress_seconds=config["WATCH_SUPPRESS_SECONDS"],
                    max_held_rows=config["WATCH_MAX_HELD_ROWS"]),
        metrics, allowlist)
    logging.getLogger("anomalyze.watch").info("watching %s", log_path)
    watcher.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
