"""KDD Cup 1999's 41 features derived from Zeek conn.log records, so one model scores both.

KDD computed its features from Bro (now Zeek) connection records; this module redoes that
computation the way the NSL-KDD values show it was done. Each choice (window sizes, which
flags are errors, how the "different" rates count) is backed by measurements in docs/ZEEK.md.
Everything is vectorised: windows are found with np.searchsorted over rows grouped by key, and
window sums come from cumulative sums, so the cost is a few sorts of the whole table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils import schema
from utils.kdd_services import KDD_SERVICES, kdd_service_codes

REQUIRED_COLUMNS: tuple[str, ...] = (
    "ts", "proto", "conn_state", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("service", "duration", "orig_bytes", "resp_bytes")

# Zeek conn_state -> KDD flag. KDD has 11 of Zeek's 13 states. The two it lacks split off
# "the originator was never seen" from RSTR and S3 in Bro's state logic, so KDD-era Bro
# logged those connections as RSTR and S3.
ZEEK_TO_KDD_FLAG: dict[str, str] = {
    **{state: state for state in
       ("SF", "S0", "S1", "S2", "S3", "REJ", "RSTO", "RSTR", "RSTOS0", "SH", "OTH")},
    "RSTRH": "RSTR",
    "SHR": "S3",
}
NON_TCP_FLAG = "SF"  # every UDP and ICMP record in NSL-KDD carries SF
UNKNOWN_TCP_FLAG = "OTH"

# Which flags NSL-KDD counts as errors (measured, see docs/ZEEK.md; wider than the KDD Cup 1999
# task description's "SYN errors" and "REJ errors").
SYN_ERROR_FLAGS: frozenset[str] = frozenset({"S0", "S1", "S2", "S3", "SH"})
REJ_ERROR_FLAGS: frozenset[str] = frozenset({"REJ", "RSTO", "RSTOS0", "RSTR"})
# States in which the TCP handshake completed; with payload both ways, taken as a login.
ESTABLISHED_FLAGS: frozenset[str] = frozenset({"SF", "S1", "S2", "S3", "RSTO", "RSTR"})

TIME_WINDOW_SECONDS = 2.0
TIME_WINDOW_MAX_CONNECTIONS = 511  # NSL-KDD's "past 2 s" never spans more connections
HOST_WINDOW_CONNECTIONS = 255  # NSL-KDD's host window, measured (the KDD task description: 100)
COUNT_CAP = 511
DST_HOST_COUNT_CAP = 255
RATE_DECIMALS = 2  # NSL-KDD rates are multiples of 0.01


def window_lookback(host_window: int = HOST_WINDOW_CONNECTIONS) -> int:
    """How many connections before a row, in time order, its window features can depend on.

    Both windows end at the row: the 2-second one spans at most TIME_WINDOW_MAX_CONNECTIONS
    connections, the host window ``host_window``. So a row's features are those computed over
    any run of rows (in time order) that holds it and this many rows before it.
    """
    return max(TIME_WINDOW_MAX_CONNECTIONS, host_window) - 1


_FLAG_NAMES = np.array(sorted(set(ZEEK_TO_KDD_FLAG.values())), dtype=object)
_FLAG_CODE = {name: code for code, name in enumerate(_FLAG_NAMES)}
_FLAG_SYN_ERROR = np.isin(_FLAG_NAMES, list(SYN_ERROR_FLAGS))
_FLAG_REJ_ERROR = np.isin(_FLAG_NAMES, list(REJ_ERROR_FLAGS))
_FLAG_ESTABLISHED = np.isin(_FLAG_NAMES, list(ESTABLISHED_FLAGS))
_SERVICE_NAMES = np.array(KDD_SERVICES, dtype=object)

TIME_FEATURES: tuple[str, ...] = (
    "count", "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate",
    "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate",
)
# Host-window feature name -> the same quantity's 2-second-window name.
HOST_FEATURES: dict[str, str] = {
    "dst_host_count": "count", "dst_host_srv_count": "srv_count",
    "dst_host_same_srv_rate": "same_srv_rate", "dst_host_diff_srv_rate": "diff_srv_rate",
    "dst_host_same_src_port_rate": "same_src_port_rate",
    "dst_host_srv_diff_host_rate": "srv_diff_host_rate",
    "dst_host_serror_rate": "serror_rate", "dst_host_srv_serror_rate": "srv_serror_rate",
    "dst_host_rerror_rate": "rerror_rate", "dst_host_srv_rerror_rate": "srv_rerror_rate",
}


class _KeyedWindows:
    """Window counts restricted to rows sharing a key, for every row at once.

    Rows come in time order (position p). Sorted by key, then time, the rows sharing p's key
    that lie in a window [lo[p], p] form one contiguous run ending at p's own slot, so counts
    are differences of slots and sums differences of cumulative sums. Everything is computed
    in that key-sorted order, where window starts never decrease (binary searches then walk
    forwards, which is what keeps them fast), and mapped back to time order at the end.
    """

    def __init__(self, key: np.ndarray) -> None:
        n = len(key)
        self.order = np.argsort(key, kind="stable")  # key-sorted slot -> time position
        self.rank = np.empty(n, dtype=np.int64)  # time position -> key-sorted slot
        self.rank[self.order] = np.arange(n)
        self._scale = n + 1
        self._sorted_key = key[self.order].astype(np.int64)
        self._composite = self._sorted_key * self._scale + self.order

    def start(self, lo: np.ndarray) -> np.ndarray:
        """Per key-sorted slot, the slot of the first same-key row at time position >= lo."""
        needles = self._sorted_key * self._scale + lo[self.order]
        return np.searchsorted(self._composite, needles, side="left")

    def count(self, start: np.ndarray) -> np.ndarray:
        return self._in_time_order(np.arange(len(start)) - start + 1)

    def total(self, start: np.ndarray, indicator: np.ndarray) -> np.ndarray:
        cumulative = np.concatenate(([0], np.cumsum(indicator[self.order], dtype=np.int64)))
        return self._in_time_order(cumulative[1:] - cumulative[start])

    def previous(self) -> np.ndarray:
        """Per time position, the time position of the previous same-key row (-1 if none)."""
        same = self._sorted_key[1:] == self._sorted_key[:-1]
        previous = np.full(len(self.order), -1, dtype=np.int64)
        previous[self.order[1:][same]] = self.order[:-1][same]
        return previous

    def distinct(self, start: np.ndarray, previous_same_pair: np.ndarray) -> np.ndarray:
        """Number of distinct (key, other) pairs among the window's same-key rows.

        `previous_same_pair` links each row to the previous one with the same key and the
        same other value (host, service). Slot j counts for slot i when j is in i's window and
        j's previous same-pair row lies before the window start. Window starts never decrease,
        so the slots i that j counts for form one range [max(first i with start > previous,
        j), first i with start > j), added with a difference array.
        """
        n = len(start)
        linked = previous_same_pair[self.order]
        previous = np.where(linked >= 0, self.rank[np.maximum(linked, 0)], -1)
        slots = np.arange(n)
        past = np.searchsorted(start, slots, side="right")  # first i whose start > slot
        first = np.maximum(np.where(previous >= 0, past[np.maximum(previous, 0)], 0), slots)
        delta = np.bincount(first, minlength=n + 1) - np.bincount(past, minlength=n + 1)
        return self._in_time_order(np.cumsum(delta)[:n])

    def _in_time_order(self, values: np.ndarray) -> np.ndarray:
        return values[self.rank]


def _rate(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    return np.round(part / whole, RATE_DECIMALS)


def _diversity_rate(distinct: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """KDD's "different service/host" rate: distinct values over the window, 0 when one."""
    return np.where(distinct > 1, _rate(distinct, whole), 0.0)


def _window_features(
    lo: np.ndarray,
    keyed: dict[str, _KeyedWindows],
    codes: dict[str, np.ndarray],
    cap: int,
) -> dict[str, np.ndarray]:
    """Same-host and same-service features of one window, under the 2-second-window names."""
    host, service = keyed["host"], keyed["service"]
    host_start, service_start = host.start(lo), service.start(lo)
    host_count, service_count = host.count(host_start), service.count(service_start)
    host_service = keyed["host_service"]
    previous_pair = codes["previous_host_service"]
    features = {
        "count": np.minimum(host_count, cap),
        "srv_count": np.minimum(service_count, cap),
        "serror_rate": _rate(host.total(host_start, codes["syn_error"]), host_count),
        "rerror_rate": _rate(host.total(host_start, codes["rej_error"]), host_count),
        "srv_serror_rate": _rate(service.total(service_start, codes["syn_error"]),
                                 service_count),
        "srv_rerror_rate": _rate(service.total(service_start, codes["rej_error"]),
                                 service_count),
        "same_srv_rate": _rate(host_service.count(host_service.start(lo)), host_count),
        "diff_srv_rate": _diversity_rate(host.distinct(host_start, previous_pair),
                                         host_count),
        "srv_diff_host_rate": _diversity_rate(service.distinct(service_start, previous_pair),
                                              service_count),
    }
    host_port = keyed.get("host_src_port")  # KDD has this one for the host window only
    if host_port is not None:
        features["same_src_port_rate"] = _rate(host_port.count(host_port.start(lo)),
                                               host_count)
    return features


def _codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Factorised text column: codes (-1 unset) and its distinct values as str."""
    codes, uniques = pd.factorize(values.to_numpy(dtype=object))
    return codes, np.array([str(value) for value in uniques], dtype=object)


def _numeric(conns: pd.DataFrame, column: str) -> np.ndarray:
    """A numeric Zeek column as float, unset (or absent) as 0."""
    if column not in conns:
        return np.zeros(len(conns))
    return np.nan_to_num(pd.to_numeric(conns[column], errors="coerce").to_numpy(float), nan=0.0)


def derive_kdd_features(
    conns: pd.DataFrame,
    *,
    approximate_logged_in: bool = True,
    time_window: float = TIME_WINDOW_SECONDS,
    host_window: int = HOST_WINDOW_CONNECTIONS,
) -> pd.DataFrame:
    """The 41 KDD features (schema.FEATURE_NAMES) for Zeek conn.log rows, in input order.

    `conns` holds Zeek's columns (REQUIRED_COLUMNS; OPTIONAL_COLUMNS may be absent or unset).
    Content features are not in conn.log and are 0, except `logged_in`, which is approximated
    as "TCP handshake completed and payload both ways" unless approximate_logged_in is False.
    """
    missing = [column for column in REQUIRED_COLUMNS if column not in conns]
    if missing:
        raise ValueError(f"conn records lack column(s): {', '.join(missing)}")
    if host_window < 1 or not time_window >= 0:
        raise ValueError(f"windows must be positive, got {time_window} s and {host_window}")
    n = len(conns)
    ts = pd.to_numeric(conns["ts"], errors="coerce").to_numpy(float)
    proto_codes, protos = _codes(conns["proto"])
    host_codes, hosts = pd.factorize(
        np.concatenate([conns["id.orig_h"].to_numpy(object), conns["id.resp_h"].to_numpy(object)]))
    if np.isnan(ts).any() or (proto_codes < 0).any() or (host_codes < 0).any():
        raise ValueError("conn records need ts, proto and both hosts on every row")
    proto = np.array([name.lower() for name in protos], dtype=object)[proto_codes]
    orig_p = conns["id.orig_p"].to_numpy(np.int64)
    resp_p = conns["id.resp_p"].to_numpy(np.int64)
    orig_host, resp_host = host_codes[:n], host_codes[n:]
    ipv6 = np.array([":" in str(host) for host in hosts], dtype=bool)

    zeek_service = conns["service"].to_numpy(object) if "service" in conns else None
    services = kdd_service_codes(proto, orig_p, resp_p, zeek_service,
                                 ipv6[orig_host] if n else np.zeros(0, bool))
    flags = _flag_codes(proto, conns["conn_state"])
    src_bytes, dst_bytes = _numeric(conns, "orig_bytes"), _numeric(conns, "resp_bytes")

    numeric = np.zeros((n, len(schema.NUMERIC_FEATURES)), dtype=np.float64, order="F")
    column = {name: j for j, name in enumerate(schema.NUMERIC_FEATURES)}
    numeric[:, column["duration"]] = np.floor(np.maximum(_numeric(conns, "duration"), 0.0))
    numeric[:, column["src_bytes"]] = src_bytes
    numeric[:, column["dst_bytes"]] = dst_bytes
    numeric[:, column["land"]] = (orig_host == resp_host) & (orig_p == resp_p)
    if approximate_logged_in:
        numeric[:, column["logged_in"]] = (_FLAG_ESTABLISHED[flags] & (proto == "tcp")
                                           & (src_bytes > 0) & (dst_bytes > 0))
    if n:
        window = _traffic_features(ts, resp_host, orig_p, services, flags, time_window,
                                   host_window)
        for name, values in window.items():
            numeric[:, column[name]] = values

    features = pd.DataFrame(numeric, columns=list(schema.NUMERIC_FEATURES), index=conns.index,
                            copy=False)
    categorical = {"protocol_type": proto, "service": _SERVICE_NAMES[services],
                   "flag": _FLAG_NAMES[flags]}
    for name in schema.CATEGORICAL_FEATURES:  # ascending positions, each lands in place
        features.insert(schema.FEATURE_NAMES.index(name), name,
                        pd.Series(categorical[name], index=conns.index, dtype=object))
    return features



def _flag_codes(proto: np.ndarray, conn_state: pd.Series) -> np.ndarray:
    """KDD flag per row as an index into _FLAG_NAMES."""
    state_codes, states = _codes(conn_state)
    per_state = np.array(
        [_FLAG_CODE[ZEEK_TO_KDD_FLAG.get(state.strip().upper(), UNKNOWN_TCP_FLAG)]
         for state in states] + [_FLAG_CODE[UNKNOWN_TCP_FLAG]], dtype=np.int64)
    return np.where(proto == "tcp", per_state[state_codes], _FLAG_CODE[NON_TCP_FLAG])


def _traffic_features(
    ts: np.ndarray,
    resp_host: np.ndarray,
    orig_p: np.ndarray,
    services: np.ndarray,
    flags: np.ndarray,
    time_window: float,
    host_window: int,
) -> dict[str, np.ndarray]:
    """The 19 window features, computed in time order and returned in input order."""
    order = np.argsort(ts, kind="stable")  # Zeek writes rows when connections end
    n = len(ts)
    host = resp_host[order].astype(np.int64)
    service = services[order].astype(np.int64)
    flag = flags[order]
    port = np.clip(orig_p[order], 0, 65535)
    keyed = {
        "host": _KeyedWindows(host),
        "service": _KeyedWindows(service),
        "host_service": _KeyedWindows(host * len(KDD_SERVICES) + service),
    }
    codes = {
        "syn_error": _FLAG_SYN_ERROR[flag].astype(np.int64),
        "rej_error": _FLAG_REJ_ERROR[flag].astype(np.int64),
        "previous_host_service": keyed["host_service"].previous(),
    }
    positions = np.arange(n)
    sorted_ts = ts[order]
    time_lo = np.maximum(np.searchsorted(sorted_ts, sorted_ts - time_window, side="left"),
                         positions - (TIME_WINDOW_MAX_CONNECTIONS - 1))
    host_lo = np.maximum(positions - (host_window - 1), 0)

    by_time = _window_features(time_lo, keyed, codes, COUNT_CAP)
    keyed["host_src_port"] = _KeyedWindows(host * 65536 + port)
    by_host = _window_features(host_lo, keyed, codes, DST_HOST_COUNT_CAP)
    in_time_order = {name: by_time[name] for name in TIME_FEATURES}
    in_time_order |= {name: by_host[source] for name, source in HOST_FEATURES.items()}
    result = {}
    for name, values in in_time_order.items():
        back = np.empty(n, dtype=float)
        back[order] = values
        result[name] = back
    return result
