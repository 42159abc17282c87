"""A live watcher for a Zeek sensor's conn.log (the ``watch_zeek.py`` script's library).

follower: reads a log as it is written, across rotations; zeek_lines: the watcher's only
use of the Zeek reader; window: rows held until their window features are final; outbox:
alerts kept on disk until every sink has them; sinks: where alerts go; suppression: one
alert per flow key per interval; metrics: the Prometheus endpoint; state: atomic saves;
watcher: the loop that ties them together.
"""
