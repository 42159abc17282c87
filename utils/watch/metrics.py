"""The watcher's figures on a small /metrics endpoint in Prometheus' text format.

prometheus_client (the Prometheus project's own Python library) keeps the numbers and serves
them; each watcher has a registry of its own, so tests can run several in one process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Lag buckets (seconds): fine below a second, where a watcher with a short reorder horizon
# sits, then up to Zeek's timeouts and an hour.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5,
               2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0,
               1800.0, 3600.0)


class WatchMetrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        prefix = "anomalyze_watch_"
        self.rows = Counter(f"{prefix}rows", "Zeek records read and scored", registry=registry)
        self.alerts = Counter(f"{prefix}alerts", "alerts written to the outbox",
                              registry=registry)
        self.suppressed = Counter(f"{prefix}suppressed",
                                  "alerts held back by duplicate suppression",
                                  registry=registry)
        self.allowlisted = Counter(f"{prefix}allowlisted",
                                   "anomalies an allow-list entry allows: counted, not sent",
                                   registry=registry)
        self.malformed = Counter(f"{prefix}malformed", "malformed log lines skipped",
                                 registry=registry)
        self.late = Counter(f"{prefix}late_rows", "records that arrived more than the reorder "
                            "horizon behind the newest one (features may differ from a batch "
                            "read)", registry=registry)
        self.forced = Counter(f"{prefix}forced_rows", "records finalised early because the "
                              "held-row limit was reached", registry=registry)
        self.sink_errors = Counter(f"{prefix}sink_errors", "failed deliveries to a sink",
                                   ["sink"], registry=registry)
        self.sent = Counter(f"{prefix}sent_alerts", "alerts a sink has delivered", ["sink"],
                            registry=registry)
        self.pending = Gauge(f"{prefix}outbox_pending_bytes",
                             "bytes of alerts in the outbox a sink has not delivered yet",
                             ["sink"], registry=registry)
        self.held = Gauge(f"{prefix}held_rows", "records waiting for their window to be final",
                          registry=registry)
        self.lag = Histogram(f"{prefix}lag_seconds", "seconds from the watcher's read of a "
                             "record to its alert (or verdict, for a normal one) in the outbox",
                             buckets=LAG_BUCKETS, registry=registry)
        self.record_age = Histogram(
            f"{prefix}record_age_seconds", "seconds from a connection's end in the log's "
            "clock (ts + duration), about when a live Zeek wrote it, to its verdict; only "
            "meaningful when the log's clock is the wall clock (a live sensor)",
            buckets=LAG_BUCKETS, registry=registry)
        self.model_swaps = Counter(f"{prefix}model_swaps", "models swapped in while running",
                                   registry=registry)

    def serve(self, port: int, address: str = "127.0.0.1"):
        """Serve /metrics on a daemon thread; returns the server (``.server_port``)."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server
