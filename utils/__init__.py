"""Anomalyze library code: parsing, features, detector, training, retraining, scoring,
persistence, Zeek and alerts; it takes parameters and imports nothing of the server, the
frontend or the scripts (``make lint`` checks it)."""
