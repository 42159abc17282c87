"""Hosts and time ranges to leave out of a baseline before it is trained.

A baseline that contains an attack, a vulnerability scanner or a noisy test box learns it
as normal; the health report (utils.baseline.health) points at such hosts and periods, and
the admin names them here. A host is an IP address or a CIDR network (IPv4 or IPv6); a
connection is left out when either of its ends is in one of them. A time range is
``start`` (included) to ``end`` (excluded), each epoch seconds or ISO 8601 (a time without
a zone is UTC), compared with the connection's ``ts``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from utils.readers.records import ParsedRecords, take_records

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# One host or range per item: items are separated by newlines, and hosts also by commas or
# blanks (a pasted list); a range is "start/end" (ISO 8601's interval form) or "start,end".
_HOST_SEPARATORS = re.compile(r"[\s,;]+")
_RANGE_SEPARATORS = ("/", ",")


def parse_host(text: str) -> IPNetwork:
    """One host as a network (an address is its own /32 or /128); ValueError naming it."""
    item = text.strip()
    try:
        return ipaddress.ip_network(item, strict=False)
    except ValueError:
        raise ValueError(f"not an IP address or CIDR network: {item!r}") from None


def parse_hosts(text: str) -> tuple[str, ...]:
    """The hosts of a pasted list, each checked, in their written form (blank: none)."""
    items = tuple(item for item in _HOST_SEPARATORS.split(text) if item)
    for item in items:
        parse_host(item)
    return items


def parse_time(value: str | float | int) -> float:
    """Epoch seconds from a number or ISO 8601 text; ValueError naming the value."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"not epoch seconds or an ISO 8601 time: {text!r}") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
    if not math.isfinite(seconds):
        raise ValueError(f"not a finite time: {value!r}")
    return seconds


def parse_range(item: str | tuple | list) -> tuple[float, float]:
    """One range, "start/end", "start,end" or a pair, as epoch seconds (start < end)."""
    if isinstance(item, str):
        text = item.strip()
        for separator in _RANGE_SEPARATORS:
            if separator in text:
                pair = text.split(separator)
                break
        else:
            raise ValueError(f"a time range needs 'start/end' or 'start,end': {text!r}")
    else:
        pair, text = list(item), repr(item)
    if len(pair) != 2:
        raise ValueError(f"a time range has one start and one end: {text!r}")
    try:
        start, end = parse_time(pair[0]), parse_time(pair[1])
    except ValueError as exc:
        raise ValueError(f"time range {text!r}: {exc}") from None
    if not start < end:
        raise ValueError(f"time range {text!r} ends before it starts")
    return start, end


def parse_ranges(text: str) -> tuple[tuple[float, float], ...]:
    """One range per non-blank line (see parse_range)."""
    return tuple(parse_range(line) for line in text.splitlines() if line.strip())


@dataclass(frozen=True)
class Exclusions:
    """What to leave out of a baseline; every item is checked when it is made."""

    hosts: tuple[str, ...] = ()
    ranges: tuple[tuple[float, float], ...] = ()
    networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hosts = (self.hosts,) if isinstance(self.hosts, str) else tuple(self.hosts)
        object.__setattr__(self, "hosts", tuple(str(host).strip() for host in hosts))
        object.__setattr__(self, "networks", tuple(parse_host(host) for host in self.hosts))
        object.__setattr__(self, "ranges", tuple(parse_range(item) for item in self.ranges))

    def __bool__(self) -> bool:
        return bool(self.hosts or self.ranges)

    def to_dict(self) -> dict:
        """The JSON form (model card, job options): hosts as written, ranges in seconds."""
        return {"hosts": list(self.hosts), "ranges": [[start, end] for start, end in self.ranges]}

    def apply(self, records: ParsedRecords) -> tuple[ParsedRecords, dict]:
        """The records without the excluded rows, and how many each item took out.

        Counts: ``rows`` (before), ``excluded`` (rows taken out by any item), ``kept``, and
        per item ``by_host`` / ``by_range`` (an item's rows may overlap another's).
        """
        identity = records.identity
        if identity is None and self:
            raise ValueError("excluding hosts or times needs records with identity "
                             "(a Zeek conn.log)")
        excluded = np.zeros(len(records), dtype=bool)
        by_host: dict[str, int] = {}
        if self.hosts:
            ends = [identity[column].astype(str).to_numpy() for column in ("id.orig_h",
                                                                            "id.resp_h")]
            for host, network in zip(self.hosts, self.networks, strict=True):
                rows = np.zeros(len(records), dtype=bool)
                for addresses in ends:
                    rows |= _in_network(addresses, network)
                by_host[host] = int(rows.sum())
                excluded |= rows
        by_range: dict[str, int] = {}
        if self.ranges:
            ts = identity["ts"].to_numpy(dtype=float)
            for start, end in self.ranges:
                rows = (ts >= start) & (ts < end)
                by_range[f"{_iso(start)}/{_iso(end)}"] = int(rows.sum())
                excluded |= rows
        kept = records if not excluded.any() else take_records(records, ~excluded)
        counts = {"rows": len(records), "excluded": int(excluded.sum()), "kept": len(kept),
                  "by_host": by_host, "by_range": by_range}
        return kept, counts


def _in_network(addresses: np.ndarray, network: IPNetwork) -> np.ndarray:
    """Which of ``addresses`` (text) lie in ``network``; each distinct address is parsed
    once (a week's log repeats a few thousand addresses millions of times)."""
    codes, distinct = pd.factorize(addresses)
    inside = np.array([_address_in(value, network) for value in distinct], dtype=bool)
    return inside[codes] if len(distinct) else np.zeros(len(addresses), dtype=bool)


def _address_in(text: str, network: IPNetwork) -> bool:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 zone is not part of it
    except ValueError:
        return False
    return address.version == network.version and address in network


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
