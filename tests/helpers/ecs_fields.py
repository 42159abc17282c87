"""The fields our ECS alerts may carry, with their types, and a validator for one alert.

ECS_TYPES are copied from the ECS field reference (9.0): what Elasticsearch maps each field
to in an ECS index template. CUSTOM_TYPES are ours (zeek.*, anomalyze.*), the types an index
template for our alerts should give them. docs/ALERTS.md lists the same table; a test
keeps the two equal.
"""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import datetime
from typing import Any

ECS_TYPES: dict[str, str] = {
    "@timestamp": "date",
    "ecs.version": "keyword",
    "message": "match_only_text",
    "event.kind": "keyword",
    "event.category": "keyword",
    "event.type": "keyword",
    "event.module": "keyword",
    "event.dataset": "keyword",
    "event.created": "date",
    "event.id": "keyword",
    "event.severity": "long",
    "event.risk_score": "float",
    "event.risk_score_norm": "float",
    "source.address": "keyword",
    "source.ip": "ip",
    "source.port": "long",
    "destination.address": "keyword",
    "destination.ip": "ip",
    "destination.port": "long",
    "network.transport": "keyword",
    "network.iana_number": "keyword",
    "network.type": "keyword",
    "network.protocol": "keyword",
    "network.community_id": "keyword",
    "related.ip": "ip",
}
CUSTOM_TYPES: dict[str, str] = {
    "zeek.uid": "keyword",
    "anomalyze.score": "float",
    "anomalyze.threshold": "float",
    "anomalyze.confidence": "float",
    "anomalyze.severity": "keyword",
    "anomalyze.votes": "long",
    "anomalyze.top_features": "object",
    "anomalyze.top_features.feature": "keyword",
    "anomalyze.top_features.value": "keyword",
    "anomalyze.top_features.contribution": "float",
    "anomalyze.top_features.unseen_category": "boolean",
    "anomalyze.row": "long",
    "anomalyze.suppressed": "long",
    "anomalyze.model_version": "keyword",
    "anomalyze.input_kind": "keyword",
}
FIELD_TYPES = {**ECS_TYPES, **CUSTOM_TYPES}
# Fields that hold a list (ECS allows a list for any field; these always are one).
LIST_FIELDS = {"event.category", "event.type", "related.ip", "anomalyze.top_features"}
# Every alert has these; the flow fields only when the input knows them.
REQUIRED = {"@timestamp", "ecs.version", "message", "event.kind", "event.category",
            "event.type", "event.module", "event.dataset", "event.created", "event.severity",
            "event.risk_score", "event.risk_score_norm", "anomalyze.score",
            "anomalyze.threshold", "anomalyze.confidence", "anomalyze.severity",
            "anomalyze.votes", "anomalyze.top_features", "anomalyze.row",
            "anomalyze.model_version", "anomalyze.input_kind"}
# ECS allowed values (event.category "network" goes with these event.type values).
ALLOWED = {
    "event.kind": {"alert"},
    "event.category": {"network"},
    "event.type": {"access", "allowed", "connection", "denied", "end", "info", "protocol",
                   "start"},
    "network.type": {"ipv4", "ipv6"},
    "anomalyze.severity": {"Low", "Medium", "High", "Critical"},
    "anomalyze.input_kind": {"kdd", "zeek"},
}
RANGES = {
    "source.port": (0, 65535), "destination.port": (0, 65535),
    "event.severity": (1, 4), "event.risk_score": (0, 100), "event.risk_score_norm": (0, 100),
    "anomalyze.confidence": (0, 1), "anomalyze.top_features.contribution": (0, 1),
    "anomalyze.score": (0, math.inf), "anomalyze.row": (0, math.inf),
    "anomalyze.votes": (0, math.inf),
}
PATTERNS = {
    "ecs.version": r"\d+\.\d+\.\d+",
    "network.community_id": r"1:[A-Za-z0-9+/]{27}=",
    "network.iana_number": r"\d{1,3}",
    "network.transport": r"[a-z0-9-]+",
    "network.protocol": r"[a-z0-9_.-]+",
}


def flatten(document: dict[str, Any], prefix: str = "") -> dict[str, list[Any]]:
    """Dotted field name -> its values, as Elasticsearch maps a document: an object's fields
    are named through it; a list gives several values, and objects in a list are both the
    list field's values and flattened in turn."""
    fields: dict[str, list[Any]] = {}

    def add(more: dict[str, list[Any]]) -> None:
        for name, values in more.items():
            fields.setdefault(name, []).extend(values)

    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            add(flatten(value, f"{name}."))
            continue
        fields.setdefault(name, [])
        for item in value if isinstance(value, list) else [value]:
            fields[name].append(item)
            if isinstance(item, dict):
                add(flatten(item, f"{name}."))
    return fields


def lookup(document: dict[str, Any], name: str) -> Any:
    """The value at a dotted name in nested objects (None if absent or inside a list)."""
    value: Any = document
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def type_problem(ecs_type: str, value: Any) -> str | None:
    """Why ``value`` does not fit the ECS type, or None."""
    if ecs_type in ("keyword", "match_only_text"):
        return None if isinstance(value, str) and value else "not a non-empty string"
    if ecs_type == "long":
        return None if isinstance(value, int) and not isinstance(value, bool) else "not an int"
    if ecs_type == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok and math.isfinite(value) else "not a finite number"
    if ecs_type == "boolean":
        return None if isinstance(value, bool) else "not a boolean"
    if ecs_type == "object":
        return None if isinstance(value, dict) else "not an object"
    if ecs_type == "ip":
        try:
            parsed = ipaddress.ip_address(value)
        except ValueError:
            return "not an IP address"
        return None if str(parsed) == value else f"not in canonical form ({parsed})"
    if ecs_type == "date":
        if not isinstance(value, str) or not value.endswith("Z"):
            return "not an ISO 8601 UTC time ending in Z"
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return "not ISO 8601"
        return None
    return f"unknown type {ecs_type}"


def alert_problems(alert: dict[str, Any]) -> list[str]:
    """Everything wrong with one alert: unknown fields, wrong types, values out of range."""
    problems = []
    fields = flatten(alert)
    for name in REQUIRED - fields.keys():
        problems.append(f"{name}: missing")
    for name, values in fields.items():
        ecs_type = FIELD_TYPES.get(name)
        if ecs_type is None:
            problems.append(f"{name}: not a field we document")
            continue
        raw = lookup(alert, name)
        if name in LIST_FIELDS and raw is not None and not isinstance(raw, list):
            problems.append(f"{name}: expected a list")
        for value in values:
            problem = type_problem(ecs_type, value)
            if problem:
                problems.append(f"{name}: {value!r} {problem}")
                continue
            if name in ALLOWED and value not in ALLOWED[name]:
                problems.append(f"{name}: {value!r} is not an allowed value")
            if name in RANGES and not RANGES[name][0] <= value <= RANGES[name][1]:
                problems.append(f"{name}: {value!r} outside {RANGES[name]}")
            if name in PATTERNS and not re.fullmatch(PATTERNS[name], value):
                problems.append(f"{name}: {value!r} does not match {PATTERNS[name]}")
    return problems
