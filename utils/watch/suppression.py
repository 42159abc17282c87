"""At most one alert per (source, destination, service) per interval, as Zeek's notice
framework suppresses repeated notices; the ones held back are counted, and the next alert of
the same key says how many (``anomalyze.suppressed``).

Time is the log's (the connection's ``ts``), so a replayed log and a restarted watcher
suppress the same alerts. Memory holds the keys seen within the last interval only.
"""

from __future__ import annotations

from typing import Any

Key = tuple[str, str, str]
MAX_KEYS = 200_000  # keys remembered at most (about 200 bytes each)


def alert_key(alert: dict[str, Any]) -> Key:
    """(source, destination, service): the IPs (or addresses as logged), and Zeek's service
    or, without one, the transport and destination port (``tcp/8080``)."""
    source, destination = alert.get("source", {}), alert.get("destination", {})
    network = alert.get("network", {})
    service = network.get("protocol") or (
        f"{network.get('transport', '?')}/{destination.get('port', '?')}")
    return (str(source.get("ip") or source.get("address") or "?"),
            str(destination.get("ip") or destination.get("address") or "?"), service)


class Suppressor:
    def __init__(self, interval: float, entries: list | None = None) -> None:
        self.interval = interval
        # key -> [ts of the last alert sent, alerts suppressed since]
        self._last: dict[Key, list[float]] = {
            tuple(key): [ts, count] for key, ts, count in (entries or [])}
        self.suppressed = 0

    def admit(self, alert: dict[str, Any], ts: float) -> bool:
        """Whether to send ``alert`` (of a connection at ``ts``); if so, the count of those
        suppressed since the key's previous alert goes into it."""
        if self.interval <= 0:
            return True
        key = alert_key(alert)
        last = self._last.get(key)
        if last is not None and abs(ts - last[0]) < self.interval:
            last[1] += 1
            self.suppressed += 1
            return False
        if last is not None and last[1]:
            alert["anomalyze"]["suppressed"] = int(last[1])
        self._last[key] = [ts, 0]
        return True

    def forget_before(self, ts: float) -> None:
        """Drop keys whose last alert is more than an interval before ``ts``; past MAX_KEYS
        (a scan makes a new key per connection) the oldest half goes too, so memory stays
        bounded and such a key may alert again before its interval is over."""
        if self.interval > 0 and len(self._last) > 1024:
            horizon = ts - self.interval
            self._last = {key: last for key, last in self._last.items() if last[0] >= horizon}
        if len(self._last) > MAX_KEYS:
            newest = sorted(self._last.items(), key=lambda item: item[1][0])[MAX_KEYS // 2:]
            self._last = dict(newest)

    def to_json(self) -> list:
        return [[list(key), last[0], last[1]] for key, last in self._last.items()]
