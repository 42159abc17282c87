"""Allow-lists: traffic an analyst has declared fine, applied whenever records are scored.

An entry names a host or network on either side (``host``), a source and/or a destination
(each a single address or a CIDR network), a destination ``port`` and/or a ``service``; every
field it gives must match (a ``source`` + ``destination`` + ``service`` entry allows that one
combination). A flagged row that matches is still scored and reported, but as
``allowlisted`` with the entry's id: it is not an alert, it goes to no alert sink, and it never
trains or judges a model as an attack.

What a row offers to match depends on the input: Zeek rows carry addresses, the destination
port and Zeek's own service; KDD records carry only their service, so address and port entries
never match them. Scored CSV and NDJSON files carry what they carry (``match_frame``).

Addresses are parsed with the standard library's ``ipaddress``; a network with host bits set
(``10.0.0.1/8``) is refused rather than silently widened.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

MATCH_FIELDS = ("host", "source", "destination", "port", "service")
MAX_REASON = 500
MAX_NAME = 100
_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.,/+-]{0,63}")
# The columns a row's identity comes from: ParsedRecords.identity (Zeek), a scored CSV, and
# the ECS alerts of the NDJSON answer (flattened with dots).
SOURCE_COLUMNS = ("id.orig_h", "source.ip")
DESTINATION_COLUMNS = ("id.resp_h", "destination.ip")
PORT_COLUMNS = ("id.resp_p", "destination.port")
SERVICE_COLUMNS = ("service", "network.protocol")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AllowlistError(ValueError):
    """An entry that cannot be kept; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class DuplicateEntry(ValueError):
    """An equal entry (same fields to match) is already on the list."""

    def __init__(self, existing_id: int) -> None:
        super().__init__(f"an equal allow-list entry exists (id {existing_id})")
        self.existing_id = existing_id


class UnknownEntry(LookupError):
    """No allow-list entry has this id."""


@dataclass(frozen=True)
class AllowEntry:
    """One entry; ``id`` 0 until the registry keeps it. Times are ISO 8601 UTC strings."""

    host: str | None = None
    source: str | None = None
    destination: str | None = None
    port: int | None = None
    service: str | None = None
    reason: str = ""
    added_by: str = ""
    added_at: str = ""
    expires_at: str | None = None
    id: int = 0

    @property
    def kind(self) -> str:
        """What the entry allows, for people: cidr, host, port, service or combination."""
        given = [name for name in MATCH_FIELDS if getattr(self, name) is not None]
        if given == ["host"]:
            return "host" if _network(self.host).num_addresses == 1 else "cidr"
        return given[0] if len(given) == 1 else "combination"

    def key(self) -> tuple:
        """What makes two entries equal (the fields they match on)."""
        return tuple(getattr(self, name) for name in MATCH_FIELDS)

    def expired(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        return parse_time(self.expires_at) <= (now or datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind,
                **{name: getattr(self, name) for name in MATCH_FIELDS},
                "reason": self.reason, "added_by": self.added_by, "added_at": self.added_at,
                "expires_at": self.expires_at}


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_entry(body: Mapping[str, Any], *, added_by: str,
                now: datetime | None = None) -> AllowEntry:
    """A new entry from a request body or the command's options; AllowlistError naming the
    field when a value is malformed, and when nothing to match is given."""
    if not isinstance(body, Mapping):
        raise AllowlistError("body", "send a JSON object")
    unknown = sorted(set(body) - {*MATCH_FIELDS, "reason", "expires_at", "added_by"})
    if unknown:
        raise AllowlistError(unknown[0], f"unknown field {unknown[0]!r}; entries have "
                             f"{', '.join(MATCH_FIELDS)}, reason and expires_at")
    values: dict[str, Any] = {}
    for name in ("host", "source", "destination"):
        if body.get(name) not in (None, ""):
            net = _parse_network(name, body[name])  # a one-address network as the address
            values[name] = str(net.network_address) if net.num_addresses == 1 else str(net)
    if body.get("port") not in (None, ""):
        values["port"] = _parse_port(body["port"])
    if body.get("service") not in (None, ""):
        service = body["service"]
        if not isinstance(service, str) or not _SERVICE.fullmatch(service.strip()):
            raise AllowlistError("service", "service must be a service name such as dns, "
                                 "http or domain_u (letters, digits and _.,/+-)")
        values["service"] = service.strip().lower()
    if not values:
        raise AllowlistError("host", "give at least one of host, source, destination, port "
                             "or service")
    if "host" in values and ("source" in values or "destination" in values):
        raise AllowlistError("host", "host matches either side: give host, or source and "
                             "destination, not both")
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise AllowlistError("reason", "say why this traffic is fine (reason)")
    if len(reason) > MAX_REASON:
        raise AllowlistError("reason", f"reason is longer than {MAX_REASON} characters")
    expires = body.get("expires_at")
    expires_at = None
    if expires not in (None, ""):
        expires_at = _parse_expiry(expires, now or datetime.now(UTC))
    return AllowEntry(**values, reason=reason.strip(), added_by=added_by[:MAX_NAME],
                      added_at=utc_now(), expires_at=expires_at)


def _network(text: str) -> Network:
    return ipaddress.ip_network(text, strict=True)


def _parse_network(name: str, value: Any) -> Network:
    if not isinstance(value, str):
        raise AllowlistError(name, f"{name} must be an IP address or a CIDR network as text")
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise AllowlistError(name, f"{name} is not an IP address or CIDR network: "
                             f"{str(exc)[:120]}") from None


def _parse_port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise AllowlistError("port", "port must be a whole number from 0 to 65535")
    text = str(value).strip()
    if not text.isdigit() or int(text) > 65535:
        raise AllowlistError("port", f"port must be a whole number from 0 to 65535, got "
                             f"{text[:20]!r}")
    return int(text)


def _parse_expiry(value: Any, now: datetime) -> str:
    if not isinstance(value, str):
        raise AllowlistError("expires_at", "expires_at must be an ISO 8601 time as text")
    try:
        moment = parse_time(value)
    except ValueError:
        raise AllowlistError("expires_at", f"expires_at is not an ISO 8601 time such as "
                             f"2026-12-31T00:00:00Z: {value[:40]!r}") from None
    if moment <= now:
        raise AllowlistError("expires_at", "expires_at is in the past")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AllowList:
    """The entries in force, ready to match rows (expired ones are left out)."""

    def __init__(self, entries: Iterable[AllowEntry] = (), now: datetime | None = None) -> None:
        self.entries = [entry for entry in entries if not entry.expired(now)]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def match_frame(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
        """The id of the first entry each row matches (0: none), for rows with the columns
        SOURCE_COLUMNS ... SERVICE_COLUMNS name (whichever the frame has). ``rows``: a bool
        mask of the rows to look at (the flagged ones); the others get 0."""
        ids = np.zeros(len(frame), dtype=np.int64)
        if not self.entries or not len(frame):
            return ids
        look = np.ones(len(frame), dtype=bool) if rows is None else np.asarray(rows, bool)
        if not look.any():
            return ids
        at = np.flatnonzero(look)
        part = frame.iloc[at]
        source = _addresses(_column(part, SOURCE_COLUMNS))
        destination = _addresses(_column(part, DESTINATION_COLUMNS))
        port = _ports(_column(part, PORT_COLUMNS))
        service = _services(_column(part, SERVICE_COLUMNS))
        found = np.zeros(len(at), dtype=np.int64)
        nothing = np.zeros(len(at), dtype=bool)
        for entry in self.entries:
            hit = np.ones(len(at), dtype=bool)
            if entry.host is not None:
                net = _network(entry.host)
                hit &= _in_network(source, net, nothing) | _in_network(destination, net, nothing)
            if entry.source is not None:
                hit &= _in_network(source, _network(entry.source), nothing)
            if entry.destination is not None:
                hit &= _in_network(destination, _network(entry.destination), nothing)
            if entry.port is not None:
                hit &= nothing if port is None else port == entry.port
            if entry.service is not None:
                hit &= nothing if service is None else service == entry.service
            found = np.where((found == 0) & hit, entry.id, found)
        ids[at] = found
        return ids

    def match_records(self, records: Any, rows: np.ndarray | None = None) -> np.ndarray:
        """match_frame for ParsedRecords: a Zeek row's identity (addresses, port, Zeek's
        service), a KDD record's service."""
        if records.identity is not None:
            frame = records.identity
        else:
            frame = pd.DataFrame({"service": records.features["service"]})
        return self.match_frame(frame.reset_index(drop=True), rows)

    def apply(self, records: Any, scored: Any) -> Any:
        """``scored`` (utils.scoring.ScoredRecords) with ``allowlisted`` set: the entry id of
        each flagged row the list allows (0: an alert). The one call every scoring path
        makes (API, batch command, watcher) before it reports or sends alerts."""
        return replace(scored, allowlisted=self.match_records(records, scored.is_anomaly))


def _column(frame: pd.DataFrame, names: tuple[str, ...]) -> np.ndarray | None:
    for name in names:
        if name in frame.columns:
            return frame[name].to_numpy(dtype=object)
    return None


class _Addresses:
    """A column of addresses as codes into its distinct values, each parsed once (a log
    holds few hosts and many connections)."""

    def __init__(self, values: np.ndarray) -> None:
        self.codes, uniques = pd.factorize(pd.Series(values, dtype=object).astype(str))
        self.parsed = []
        for value in uniques:
            try:
                self.parsed.append(ipaddress.ip_address(value.strip()))
            except ValueError:
                self.parsed.append(None)

    def within(self, net: Network) -> np.ndarray:
        inside = np.array([a is not None and a.version == net.version and a in net
                           for a in self.parsed] + [False], dtype=bool)
        return inside[self.codes]  # code -1 (missing) takes the final False


def _addresses(values: np.ndarray | None) -> _Addresses | None:
    return None if values is None else _Addresses(values)


def _in_network(addresses: _Addresses | None, net: Network, nothing: np.ndarray) -> np.ndarray:
    """Which addresses lie in ``net``; ``nothing`` (all False) when the rows carry none."""
    return nothing if addresses is None else addresses.within(net)


def _ports(values: np.ndarray | None) -> np.ndarray | None:
    if values is None:
        return None
    return pd.to_numeric(pd.Series(values), errors="coerce").fillna(-1).to_numpy()


def _services(values: np.ndarray | None) -> np.ndarray | None:
    if values is None:
        return None
    return np.array([str(v).strip().lower() if isinstance(v, str) else "" for v in values],
                    dtype=object)


def load_allowlist(registry: Any) -> AllowList:
    """The entries in force in a registry (utils.registry), ready to ``apply``. A long-running
    scorer (a watcher) calls it again now and then to see entries added or removed."""
    return AllowList(registry.allow_entries())


def entry_from_row(row: Mapping[str, Any]) -> AllowEntry:
    """An entry from a registry row (either backend)."""
    return AllowEntry(
        id=int(row["id"]), host=row["host"], source=row["source"],
        destination=row["destination"],
        port=None if row["port"] is None else int(row["port"]), service=row["service"],
        reason=row["reason"], added_by=row["added_by"], added_at=row["added_at"],
        expires_at=row["expires_at"])


def match_key(entry: AllowEntry) -> str:
    """The registry's unique key of an entry's fields to match (duplicates collide on it)."""
    return "|".join("" if value is None else str(value) for value in entry.key())
