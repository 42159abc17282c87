"""The server's signals (blinker, as Flask's own): how one extension tells another that
something happened without either importing or initialising the other first.

``retrain_due`` is sent by the upload sink (server/uploads.py), with the app as sender, when a
kept upload completes a batch of ``RETRAIN_THRESHOLD``; server/retrain.py connects the launcher
that starts a retrain. With nothing connected, the sink just counts.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

retrain_due = _signals.signal("anomalyze.retrain-due")
