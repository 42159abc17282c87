"""The health report of a Zeek baseline, shown before it is used.

A baseline that already contains an attack learns the attack as normal, and nothing in the
training can tell: the report shows what the baseline holds (period, rows, hosts, failed
connection attempts, the hosts that talk to the most destinations or ports, services,
labels) and warns where it looks contaminated or too thin, so that an admin can exclude
hosts or time ranges (utils.baseline.exclusions) before training. Warnings are advice:
a busy proxy or DNS server also talks to hundreds of destinations.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from utils.baseline.k_rule import K_MIN, MIN_FIT_ROWS, ROWS_PER_CLUSTER
from utils.baseline.slices import fit_positions, malicious_mask, temporal_slices
from utils.readers.records import ParsedRecords
from utils.schema import NORMAL_LABEL

# TCP connections that did not open and close normally, by KDD flag (Zeek's conn_state;
# for UDP and ICMP the flag is always SF, see docs/ZEEK.md "Flags"): no answer to a SYN (S0),
# refused (REJ), reset by either side (RSTO, RSTR, RSTOS0), half-open (SH), no SYN seen (OTH).
REJECTED_STATES: tuple[str, ...] = ("S0", "REJ", "RSTO", "RSTR", "RSTOS0", "SH", "OTH")
# A host contacting this many distinct destinations, or destination ports, in the baseline
# is scanning, spreading or serving as a gateway: a workstation's own traffic over a week
# reaches a few dozen services, and a vertical scan hundreds of ports on one host.
SCANNER_DISTINCT_DESTINATIONS = 100
SCANNER_DISTINCT_PORTS = 100
# In steady traffic most TCP connections complete their handshake and close normally; when a
# quarter do not, something knocks on closed ports or floods (a scan, a worm, a SYN flood),
# or the capture drops packets. Either way the baseline should not learn it as normal.
HIGH_REJECTED_SHARE = 0.25
# A baseline shorter than a day misses the daily cycle (night backups, morning log-ins,
# updates): the next day's ordinary traffic then looks new.
MIN_PERIOD_SECONDS = 86_400.0
TOP_TALKERS = 10
MAX_SERVICES = 20
MAX_WARNING_HOSTS = 10
# Warnings that say the baseline may hold traffic it should not learn as normal; the others
# (short period, few rows) say its model and figures will be rough.
CONTAMINATION_WARNINGS = frozenset({"possible_scanner", "high_rejected_share",
                                    "labeled_malicious"})
UNSET_SERVICE = "-"


def health_report(records: ParsedRecords) -> dict:
    """The report (see docs/ZEEK.md, "Baselines"): period, rows, hosts, rejected share and
    states, top talkers, services, labels and warnings. Needs Zeek records (identity)."""
    identity = records.identity
    if identity is None:
        raise ValueError("a baseline health report needs Zeek records (hosts, ports, ts)")
    ts = identity["ts"].to_numpy(dtype=float)
    flags = records.features["flag"].to_numpy(dtype=object)
    tcp = (records.features["protocol_type"].to_numpy(dtype=object) == "tcp")
    rejected_rows = np.isin(flags, REJECTED_STATES) & tcp
    talkers = _talkers(identity, rejected_rows)
    labels = _label_counts(records)
    report = {
        "period": _period(ts),
        "rows": len(records),
        "hosts": {"sources": int(identity["id.orig_h"].nunique()),
                  "destinations": int(identity["id.resp_h"].nunique())},
        "rejected_share": float(rejected_rows.sum() / tcp.sum()) if tcp.any() else 0.0,
        "rejected_states": {state: int(np.sum((flags == state) & tcp))
                            for state in REJECTED_STATES},
        "top_talkers": [_talker(host, row) for host, row in
                        talkers.head(TOP_TALKERS).iterrows()],
        "services": _services(identity),
        "labels": labels,
    }
    report["warnings"] = _warnings(records, report, talkers, ts)
    return report


def contamination_warnings(report: dict) -> list[dict]:
    """The report's warnings that say the baseline may hold traffic it should not learn."""
    return [w for w in report.get("warnings") or [] if w["code"] in CONTAMINATION_WARNINGS]


def health_summary(report: dict) -> dict:
    """The short form a model card keeps: counts and warning codes, no host lists."""
    return {"rows": report["rows"], "period": report["period"], "hosts": report["hosts"],
            "rejected_share": report["rejected_share"], "labels": report["labels"],
            "warnings": [w["code"] for w in report["warnings"]]}


def format_report(report: dict) -> str:
    """The report as text for a terminal."""
    period = report["period"]
    lines = [
        f"baseline: {report['rows']:,} connections, {period['start']} .. {period['end']} "
        f"({period['seconds'] / 3600:,.1f} h)",
        f"hosts: {report['hosts']['sources']:,} sources, "
        f"{report['hosts']['destinations']:,} destinations",
        f"rejected / half-open TCP connections: {report['rejected_share']:.1%} ("
        + ", ".join(f"{state} {count:,}" for state, count in report["rejected_states"].items()
                    if count) + ")",
        "top talkers (distinct destinations / destination ports / connections):",
    ]
    lines += [f"  {t['host']:<40} {t['destinations']:>7,} {t['ports']:>7,} "
              f"{t['connections']:>9,}" for t in report["top_talkers"]]
    lines.append("services: " + ", ".join(f"{s['service']} {s['connections']:,}"
                                          for s in report["services"]))
    if report["labels"] is not None:
        lines.append("labels: " + ", ".join(f"{name} {count:,}"
                                            for name, count in report["labels"].items()))
    for warning in report["warnings"]:
        lines.append(f"WARNING [{warning['code']}] {warning['message']}")
    if not report["warnings"]:
        lines.append("no warnings")
    return "\n".join(lines)


def iso_time(seconds: float) -> str:
    """Seconds since the epoch as ISO 8601 UTC (a log with relative times starts in 1970)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _period(ts: np.ndarray) -> dict:
    finite = ts[np.isfinite(ts)]
    if not len(finite):
        return {"start": None, "end": None, "seconds": 0.0}
    start, end = float(finite.min()), float(finite.max())
    return {"start": iso_time(start), "end": iso_time(end), "seconds": end - start}


def _talkers(identity: pd.DataFrame, rejected_rows: np.ndarray) -> pd.DataFrame:
    """Per source host: distinct destinations, destination ports, connections and rejected
    connections; busiest first by the larger of the two distinct counts."""
    frame = pd.DataFrame({"host": identity["id.orig_h"].astype(str).to_numpy(),
                          "destination": identity["id.resp_h"].astype(str).to_numpy(),
                          "port": identity["id.resp_p"].to_numpy(),
                          "rejected": rejected_rows})
    grouped = frame.groupby("host", sort=False)
    talkers = pd.DataFrame({"destinations": grouped["destination"].nunique(),
                            "ports": grouped["port"].nunique(),
                            "connections": grouped.size(),
                            "rejected": grouped["rejected"].sum()})
    talkers["reach"] = talkers[["destinations", "ports"]].max(axis=1)
    talkers = talkers.rename_axis("host").reset_index()
    talkers = talkers.sort_values(["reach", "connections", "host"],
                                  ascending=[False, False, True], kind="stable")
    return talkers.set_index("host")


def _talker(host: str, row: pd.Series) -> dict:
    return {"host": host, "destinations": int(row["destinations"]), "ports": int(row["ports"]),
            "connections": int(row["connections"])}


def _services(identity: pd.DataFrame) -> list[dict]:
    services = identity["service"].astype(object).where(identity["service"].notna(),
                                                        UNSET_SERVICE)
    counts = services.value_counts(sort=False).reset_index()
    counts.columns = ["service", "connections"]
    counts = counts.sort_values(["connections", "service"], ascending=[False, True])
    return [{"service": str(s), "connections": int(c)}
            for s, c in counts.head(MAX_SERVICES).itertuples(index=False)]


def _label_counts(records: ParsedRecords) -> dict | None:
    if records.labels is None:
        return None
    known = records.labels.notna().to_numpy()
    malicious = malicious_mask(records.labels, len(records))
    return {"normal": int(np.sum(known & ~malicious)), "malicious": int(malicious.sum()),
            "unlabeled": int(np.sum(~known))}


def _hosts_text(rows: pd.DataFrame, *columns: str) -> str:
    return ", ".join(f"{host} (" + ", ".join(f"{int(row[c]):,} {c}" for c in columns) + ")"
                     for host, row in rows.head(MAX_WARNING_HOSTS).iterrows())


def _warnings(records: ParsedRecords, report: dict, talkers: pd.DataFrame,
              ts: np.ndarray) -> list[dict]:
    warnings = []
    scanners = talkers[(talkers["destinations"] >= SCANNER_DISTINCT_DESTINATIONS)
                       | (talkers["ports"] >= SCANNER_DISTINCT_PORTS)]
    if len(scanners):
        warnings.append(_warning(
            "possible_scanner",
            f"{len(scanners):,} host(s) contacted at least {SCANNER_DISTINCT_DESTINATIONS} "
            f"distinct destinations or {SCANNER_DISTINCT_PORTS} destination ports: "
            f"{_hosts_text(scanners, 'destinations', 'ports')}. A scanner or an infected "
            "host would be learned as normal; exclude it unless it is a known gateway, "
            "proxy or server", scanners.index))
    if report["rejected_share"] >= HIGH_REJECTED_SHARE:
        noisy = talkers[talkers["rejected"] > 0].sort_values(
            ["rejected", "connections"], ascending=False, kind="stable")
        warnings.append(_warning(
            "high_rejected_share",
            f"{report['rejected_share']:.1%} of TCP connections were rejected, reset or "
            f"left half-open (warning at {HIGH_REJECTED_SHARE:.0%}); most from "
            f"{_hosts_text(noisy, 'rejected')}. Scans and floods look like this",
            noisy.index))
    labels = report["labels"]
    if labels and labels["malicious"]:
        malicious = malicious_mask(records.labels, len(records))
        sources = records.identity["id.orig_h"].astype(str)[malicious].value_counts()
        warnings.append(_warning(
            "labeled_malicious",
            f"{labels['malicious']:,} connections are labeled malicious (not "
            f"{NORMAL_LABEL}); they are left out of the fit and measure recall. The period "
            "held an attack: its unlabeled traffic may hold more of it",
            sources.index))
    if report["period"]["seconds"] < MIN_PERIOD_SECONDS:
        warnings.append(_warning(
            "short_period",
            f"the baseline covers {report['period']['seconds'] / 3600:,.1f} h, less than a "
            "day: traffic of other hours and days may look new", ()))
    fit_rows = _fit_rows(records, ts)
    if fit_rows < K_MIN * ROWS_PER_CLUSTER:
        refused = (f"; training needs at least {MIN_FIT_ROWS}" if fit_rows < MIN_FIT_ROWS
                   else "")
        warnings.append(_warning(
            "too_few_rows",
            f"about {fit_rows:,} rows would fit the model (the oldest part, without "
            f"malicious rows), fewer than the {K_MIN * ROWS_PER_CLUSTER} the k rule's "
            f"smallest set ({K_MIN} clusters) is meant for{refused}: the model will be "
            "coarse and its figures noisy", ()))
    return warnings


def _fit_rows(records: ParsedRecords, ts: np.ndarray) -> int:
    return len(fit_positions(temporal_slices(ts), malicious_mask(records.labels, len(records))))


def _warning(code: str, message: str, hosts) -> dict:
    return {"code": code, "message": message,
            "hosts": [str(host) for host in list(hosts)[:MAX_WARNING_HOSTS]]}
