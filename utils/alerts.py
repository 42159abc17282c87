"""Alerts in the Elastic Common Schema (ECS): one JSON document per anomalous connection.

The one writer behind every alert output (the API's ``format=ndjson``, batch scoring, a live
watcher): it turns a scored batch, the parsed records and their scores, into ECS documents.
Analysts' SIEMs index ECS as it is, and ``network.community_id`` joins an alert to Zeek's and
Suricata's records of the same flow. docs/ALERTS.md describes every field.

Only what the input says is written: a KDD record has no addresses, ports or time, so its
alert has none (its ``@timestamp`` is the scoring time); a Zeek address that is not an IP
address stays out of ``source.ip`` (the text is kept in ``source.address``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
from communityid import CommunityID, FlowTuple
from communityid.error import FlowTupleError

from utils.model_store import LoadedModel
from utils.readers import ParsedRecords
from utils.schema import SEVERITIES
from utils.scoring import ScoredRecords, explain

ECS_VERSION = "9.0.0"
EVENT_MODULE = "anomalyze"
EVENT_DATASET = "anomalyze.alerts"
# event.severity: higher is more severe (ECS leaves the scale to the source).
SEVERITY_NUMBERS: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES) if rank}
# event.risk_score range of each severity: Elastic Security's ranges (low 0-21, medium 22-47,
# high 48-73, critical 74-100), so a SIEM that derives severity from the risk score agrees
# with ours. Critical approaches 100 without reaching it.
RISK_BANDS: dict[str, tuple[float, float]] = {
    "Low": (0.0, 21.0), "Medium": (22.0, 47.0), "High": (48.0, 73.0), "Critical": (74.0, 100.0),
}
# Zeek's proto (KDD's protocol_type) -> ECS network.transport and IANA protocol number.
TRANSPORTS: dict[str, tuple[str, int]] = {"tcp": ("tcp", 6), "udp": ("udp", 17),
                                          "icmp": ("icmp", 1)}
ICMP6 = ("ipv6-icmp", 58)  # Zeek logs ICMPv6 as "icmp"; the addresses tell them apart

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Host = tuple[str | None, _IP | None, str | None]  # as logged, parsed, canonical text
Flow = tuple[str | None, dict[str, Any], str]  # @timestamp, ECS flow fields, flow in words
# Dates Elasticsearch and ISO 8601 both take without surprises: 1970 to the end of 9999.
_LAST_SECOND = 253402300799.0


def ecs_alerts(
    model: LoadedModel,
    records: ParsedRecords,
    scored: ScoredRecords,
    *,
    scored_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """ECS documents for the alerts of one scored batch (flagged rows the allow-list does not
    allow, ``ScoredRecords.alerts``), in input order.

    ``records.features.index`` holds each row's 0-based position in the whole input (as
    utils.scoring.iter_scored_chunks numbers them): it becomes ``anomalyze.row``.
    ``scored_at`` (default: now) is ``event.created``, and ``@timestamp`` where the input
    has no time of its own.
    """
    flagged = np.flatnonzero(scored.alerts)
    if flagged.size == 0:
        return []
    created = iso_utc(scored_at or datetime.now(UTC))
    features = records.features.iloc[flagged]
    threshold = float(scored.threshold)
    scores = scored.anomaly_score[flagged]
    severities = scored.severity[flagged].tolist()
    risks = risk_scores(scores, scored.severity[flagged], threshold,
                        model.detector.severity_edges()).tolist()
    confidence = scored.confidence[flagged].tolist()
    votes = scored.votes[flagged].sum(axis=1).tolist()
    explanations = explain(model, features)
    rows = features.index.tolist()
    protocol_types = features["protocol_type"].tolist()
    if records.identity is not None:
        flows = _zeek_flows(records.identity.iloc[flagged], protocol_types)
    else:
        flows = _kdd_flows(features)
    context = {"model_version": model.version, "input_kind": records.input_kind}

    alerts = []
    for i, score in enumerate(scores.tolist()):
        severity = severities[i]
        timestamp, fields, what = flows[i]
        alert: dict[str, Any] = {
            "@timestamp": timestamp or created,
            "ecs": {"version": ECS_VERSION},
            "message": f"{severity} network anomaly: score {score:.4g} > threshold "
                       f"{threshold:.4g}, {what}",
            "event": {
                "kind": "alert", "category": ["network"], "type": ["connection"],
                "module": EVENT_MODULE, "dataset": EVENT_DATASET, "created": created,
                "severity": SEVERITY_NUMBERS[severity],
                "risk_score": risks[i], "risk_score_norm": risks[i],
            },
            **fields,
            "anomalyze": {
                "score": score, "threshold": threshold, "confidence": confidence[i],
                "severity": severity, "votes": votes[i],
                "top_features": [_feature(entry) for entry in explanations[i]],
                "row": rows[i], **context,
            },
        }
        alerts.append(alert)
    return alerts


def to_ndjson(alerts: Iterable[dict[str, Any]]) -> bytes:
    """One JSON document per line, each line ending in a newline (NDJSON / JSON Lines)."""
    return b"".join(orjson.dumps(alert) + b"\n" for alert in alerts)


def risk_scores(
    scores: np.ndarray, severities: np.ndarray, threshold: float, edges: np.ndarray
) -> np.ndarray:
    """event.risk_score (0..100) of flagged records: its severity's band of RISK_BANDS, and
    within the band the position of log(score) between the band's score edges.

    ``edges`` are the detector's severity edges (Low|Medium, Medium|High, High|Critical).
    Critical has no upper edge: 74 + 26 * (1 - e/s), which reaches 87 at twice the last edge
    e and tends to 100. Monotone in the score; rounded to 2 decimals. Normal rows get 0.
    """
    scores = np.asarray(scores, dtype=np.float64)
    severities = np.asarray(severities, dtype=object)
    bounds = np.concatenate(([threshold], np.asarray(edges, dtype=np.float64)))
    logs = np.log(np.maximum(scores, 1e-300))
    log_bounds = np.log(np.maximum(bounds, 1e-300))
    risk = np.zeros(len(scores))
    for level, name in enumerate(("Low", "Medium", "High")):
        rows = severities == name
        low, high = RISK_BANDS[name]
        width = log_bounds[level + 1] - log_bounds[level]
        position = ((logs[rows] - log_bounds[level]) / width if width > 0
                    else np.ones(np.count_nonzero(rows)))
        risk[rows] = low + (high - low) * np.clip(position, 0.0, 1.0)
    rows = severities == "Critical"
    low, high = RISK_BANDS["Critical"]
    last = max(bounds[-1], 1e-300)
    risk[rows] = low + (high - low) * np.clip(1.0 - last / scores[rows], 0.0, 1.0)
    risk = np.round(risk, 2)
    risk[rows] = np.minimum(risk[rows], high - 0.01)  # the open end stays open when rounded
    return risk


def community_id(
    transport: str, source: _IP, destination: _IP, source_port: int, destination_port: int
) -> str | None:
    """Community ID v1 (seed 0, base64) of a flow; None for a transport it does not cover.

    For ICMP the ports are Zeek's: type as the source port, code (or the counterpart type)
    as the destination port, which is what the specification expects.
    """
    number = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "sctp": 132}.get(transport)
    if number is None:
        return None
    try:
        # text addresses: the package tells packed bytes from text more slowly
        flow = FlowTuple(number, str(source), str(destination), source_port, destination_port)
    except FlowTupleError:
        return None
    algorithm = CommunityID()
    # calc() would format the tuple for a debug log line first, doubling the cost
    return algorithm.render(algorithm.hash(flow.in_nbo().in_order()))


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as Elasticsearch's date fields take it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_to_iso(seconds: np.ndarray) -> list[str | None]:
    """Epoch seconds as ISO 8601 UTC with microseconds (Zeek's precision); None for times
    outside 1970..9999, which no sensor writes and a date field would refuse."""
    seconds = np.asarray(seconds, dtype=np.float64)
    valid = np.isfinite(seconds) & (seconds >= 0) & (seconds <= _LAST_SECOND)
    micros = np.round(np.where(valid, seconds, 0.0) * 1e6).astype(np.int64)
    text = np.datetime_as_string(micros.astype("datetime64[us]"), unit="us")
    return [f"{value}Z" if ok else None for value, ok in zip(text.tolist(), valid.tolist(),
                                                            strict=True)]


def parse_ip(value: object) -> _IP | None:
    """An IP address as Elasticsearch's ip type takes it; None for anything else (a host
    name, garbage, an IPv6 address with a zone such as %eth0)."""
    if not isinstance(value, str):
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if getattr(address, "scope_id", None):
        return None
    return address


def network_protocol(service: object) -> str | None:
    """ECS network.protocol from Zeek's service: the first protocol it confirmed, lower-case.

    Zeek may list several (``ssl,http``); names with a leading ``-`` are analyzers it
    removed again (Zeek 6.1 and later can log them).
    """
    if not isinstance(service, str):
        return None
    for name in service.split(","):
        name = name.strip().lower()
        if name and not name.startswith("-"):
            return name
    return None



def _zeek_flows(identity: pd.DataFrame, protocol_types: list[str]) -> list[Flow]:
    """Per row: @timestamp, the ECS network/source/destination/related/zeek fields, and the
    flow in words for the message."""
    timestamps = epoch_to_iso(identity["ts"].to_numpy(dtype=np.float64))
    sources = _addresses(identity["id.orig_h"].to_numpy(dtype=object))
    destinations = _addresses(identity["id.resp_h"].to_numpy(dtype=object))
    source_ports = identity["id.orig_p"].tolist()
    destination_ports = identity["id.resp_p"].tolist()
    uids = identity["uid"].tolist() if "uid" in identity else [None] * len(identity)
    services = (identity["service"].tolist() if "service" in identity
                else [None] * len(identity))
    flow_ids: dict[tuple, str | None] = {}
    flows = []
    for i, proto in enumerate(protocol_types):
        source_text, source, source_ip = sources[i]
        destination_text, destination, destination_ip = destinations[i]
        transport = TRANSPORTS.get(proto)
        if transport == TRANSPORTS["icmp"] and isinstance(source, ipaddress.IPv6Address):
            transport = ICMP6
        network: dict[str, Any] = {}
        if transport is not None:
            network["transport"], number = transport
            network["iana_number"] = str(number)
        same_family = (source is not None and destination is not None
                       and source.version == destination.version)
        if same_family:
            network["type"] = f"ipv{source.version}"
            if transport is not None:
                key = (transport[0], source_ip, destination_ip, source_ports[i],
                       destination_ports[i])
                if key not in flow_ids:  # a flow often has several records; the cost is here
                    flow_ids[key] = community_id(transport[0], source, destination,
                                                 source_ports[i], destination_ports[i])
                flow_id = flow_ids[key]
                if flow_id is not None:
                    network["community_id"] = flow_id
        protocol = network_protocol(services[i])
        if protocol is not None:
            network["protocol"] = protocol
        fields: dict[str, Any] = {
            "source": _endpoint(source_text, source_ip, source_ports[i]),
            "destination": _endpoint(destination_text, destination_ip, destination_ports[i]),
        }
        if network:
            fields["network"] = network
        related = list(dict.fromkeys(ip for ip in (source_ip, destination_ip) if ip))
        if related:
            fields["related"] = {"ip": related}
        uid = uids[i]
        if isinstance(uid, str) and uid:
            fields["zeek"] = {"uid": uid}
        what = (f"{network.get('transport', proto)} {_hostport(fields['source'])} -> "
                f"{_hostport(fields['destination'])}")
        flows.append((timestamps[i], fields, what))
    return flows


def _kdd_flows(features: pd.DataFrame) -> list[Flow]:
    """A KDD record knows its transport and nothing else about the flow: no time, no hosts."""
    flows: list[Flow] = []
    columns = zip(features.index.tolist(), features["protocol_type"].tolist(),
                  features["service"].tolist(), features["flag"].tolist(), strict=True)
    for row, proto, service, flag in columns:
        fields: dict[str, Any] = {}
        transport = TRANSPORTS.get(proto)
        if transport is not None:
            fields["network"] = {"transport": transport[0], "iana_number": str(transport[1])}
        flows.append((None, fields, f"row {row} ({proto} {service} {flag})"))
    return flows



def _addresses(values: np.ndarray) -> list[Host]:
    """Each row's host; each distinct text is parsed once."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    hosts: list[Host] = []
    for text in uniques:
        address = parse_ip(text)
        hosts.append((str(text).strip(), address, None if address is None else str(address)))
    return [hosts[code] if code >= 0 else (None, None, None) for code in codes.tolist()]


def _endpoint(text: str | None, ip: str | None, port: int) -> dict[str, Any]:
    endpoint: dict[str, Any] = {}
    if text:
        endpoint["address"] = text
    if ip is not None:
        endpoint["ip"] = ip
    endpoint["port"] = int(port)
    return endpoint


def _feature(entry: dict[str, Any]) -> dict[str, Any]:
    """One top feature; its value as text, since features mix text (``tcp``) and numbers and
    a SIEM maps one field to one type."""
    value = entry["value"]
    if isinstance(value, float):
        value = str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    out = {"feature": entry["feature"], "value": str(value),
           "contribution": entry["contribution"]}
    if entry.get("unseen_category"):
        out["unseen_category"] = True
    return out


def _hostport(endpoint: dict[str, Any]) -> str:
    host = endpoint.get("ip") or endpoint.get("address") or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{endpoint['port']}"
