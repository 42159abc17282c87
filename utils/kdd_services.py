"""The one table that names a Zeek connection with a KDD Cup 1999 `service` value.

KDD named a connection by its responder port (ICMP: by message type), with "private" and
"other" for ports it had no name for. The model only knows those names, so Zeek connections
must be named the same way; the evidence behind each choice is in docs/ZEEK.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# TCP responder ports, after the IANA / /etc/services names KDD's service names abbreviate.
# "harvest" and "pm_dump" are KDD names with no port of their own, so nothing maps to them.
TCP_PORT_SERVICES: dict[int, str] = {
    5: "rje", 7: "echo", 9: "discard", 11: "systat", 13: "daytime", 15: "netstat",
    20: "ftp_data", 21: "ftp", 22: "ssh", 23: "telnet", 25: "smtp", 37: "time", 42: "name",
    43: "whois", 53: "domain", 57: "mtp", 70: "gopher", 71: "remote_job", 72: "remote_job",
    73: "remote_job", 74: "remote_job", 79: "finger", 80: "http", 84: "ctf", 87: "link",
    95: "supdup", 101: "hostnames", 102: "iso_tsap", 105: "csnet_ns", 109: "pop_2",
    110: "pop_3", 111: "sunrpc", 113: "auth", 117: "uucp_path", 119: "nntp", 137: "netbios_ns",
    138: "netbios_dgm", 139: "netbios_ssn", 143: "imap4", 150: "sql_net", 175: "vmnet",
    179: "bgp", 194: "IRC", 210: "Z39_50", 389: "ldap", 433: "nnsp", 443: "http_443",
    512: "exec", 513: "login", 514: "shell", 515: "printer", 520: "efs", 530: "courier",
    540: "uucp", 543: "klogin", 544: "kshell", 2784: "http_2784", 5190: "aol", 8001: "http_8001",
    **dict.fromkeys(range(6000, 6064), "X11"),
    **dict.fromkeys(range(6665, 6670), "IRC"),
}
# NSL-KDD names only these UDP services; every other UDP port is "private" or "other".
UDP_PORT_SERVICES: dict[int, str] = {53: "domain_u", 69: "tftp_u", 123: "ntp_u"}

# Unnamed ports: KDD called the privileged range "private" and the rest "other".
PRIVATE_PORT_LIMIT = 1024
PRIVATE_SERVICE = "private"
OTHER_SERVICE = "other"

# Zeek's protocol detection (conn.log `service`) -> KDD name, for (proto, Zeek name).
ZEEK_SERVICES: dict[tuple[str, str], str] = {
    ("tcp", "http"): "http", ("tcp", "ftp"): "ftp", ("tcp", "ftp-data"): "ftp_data",
    ("tcp", "ssh"): "ssh", ("tcp", "smtp"): "smtp", ("tcp", "dns"): "domain",
    ("tcp", "irc"): "IRC", ("tcp", "pop3"): "pop_3", ("tcp", "imap"): "imap4",
    ("tcp", "telnet"): "telnet", ("tcp", "finger"): "finger", ("tcp", "ident"): "auth",
    ("tcp", "rlogin"): "login", ("tcp", "rsh"): "shell", ("tcp", "ldap"): "ldap",
    ("tcp", "ldap_tcp"): "ldap", ("tcp", "portmapper"): "sunrpc",
    ("udp", "dns"): "domain_u", ("udp", "ntp"): "ntp_u", ("udp", "tftp"): "tftp_u",
}
# A port name that already says what Zeek detected is kept (HTTP on 443 stays http_443).
_ZEEK_COMPATIBLE: dict[str, frozenset[str]] = {
    "http": frozenset({"http", "http_443", "http_8001", "http_2784"}),
}

# ICMP: Zeek writes the message type in id.orig_p and the code (or, for request/reply pairs,
# the counterpart type) in id.resp_p. KDD: eco_i echo request, ecr_i echo reply, urp_i port
# unreachable, urh_i other unreachable, tim_i timestamp, red_i redirect, oth_i anything else.
ICMP_OTHER_SERVICE = "oth_i"
ICMP4_TYPES: dict[int, str] = {8: "eco_i", 0: "ecr_i", 13: "tim_i", 14: "tim_i", 5: "red_i"}
ICMP6_TYPES: dict[int, str] = {128: "eco_i", 129: "ecr_i", 137: "red_i"}
ICMP4_UNREACHABLE, ICMP4_PORT_UNREACHABLE = 3, 3  # type 3, code 3
ICMP6_UNREACHABLE, ICMP6_PORT_UNREACHABLE = 1, 4  # type 1, code 4

# Every service name: NSL-KDD's 70 plus oth_i (docs/ZEEK.md). harvest and pm_dump are
# listed for completeness but never produced.
KDD_SERVICES: tuple[str, ...] = tuple(sorted(
    {*TCP_PORT_SERVICES.values(), *UDP_PORT_SERVICES.values(), *ICMP4_TYPES.values(),
     "urp_i", "urh_i", ICMP_OTHER_SERVICE, PRIVATE_SERVICE, OTHER_SERVICE, "harvest", "pm_dump"}
))
_CODE = {name: code for code, name in enumerate(KDD_SERVICES)}
_NAMES = np.array(KDD_SERVICES, dtype=object)
_N_PORTS = 65536


def _port_table(named: dict[int, str]) -> np.ndarray:
    """Service code for every port 0..65535, with the private/other fallback filled in."""
    table = np.full(_N_PORTS, _CODE[OTHER_SERVICE], dtype=np.int16)
    table[:PRIVATE_PORT_LIMIT] = _CODE[PRIVATE_SERVICE]
    for port, name in named.items():
        table[port] = _CODE[name]
    return table


_TCP_TABLE = _port_table(TCP_PORT_SERVICES)
_UDP_TABLE = _port_table(UDP_PORT_SERVICES)


def _icmp_codes(icmp_type: np.ndarray, icmp_code: np.ndarray, ipv6: np.ndarray) -> np.ndarray:
    codes = np.full(len(icmp_type), _CODE[ICMP_OTHER_SERVICE], dtype=np.int16)
    for types, is_v6 in ((ICMP4_TYPES, False), (ICMP6_TYPES, True)):
        family = ipv6 == is_v6
        for message_type, name in types.items():
            codes[family & (icmp_type == message_type)] = _CODE[name]
    unreachable = np.where(ipv6, icmp_type == ICMP6_UNREACHABLE, icmp_type == ICMP4_UNREACHABLE)
    port = np.where(ipv6, icmp_code == ICMP6_PORT_UNREACHABLE,
                    icmp_code == ICMP4_PORT_UNREACHABLE)
    codes[unreachable & port] = _CODE["urp_i"]
    codes[unreachable & ~port] = _CODE["urh_i"]
    return codes


def _zeek_name(proto: str, zeek_service: object) -> str | None:
    """KDD name for Zeek's detected protocol; Zeek may list several ("ssl,http")."""
    if not isinstance(zeek_service, str):
        return None
    for part in zeek_service.lower().split(","):
        name = ZEEK_SERVICES.get((proto, part.strip()))
        if name is not None:
            return name
    return None


def _zeek_codes(proto: np.ndarray, zeek_service: np.ndarray) -> np.ndarray:
    """Code of Zeek's detected service per row, -1 where it names no KDD service."""
    proto_codes, protos = pd.factorize(proto)
    service_codes, services = pd.factorize(zeek_service)  # unset -> -1, the extra last column
    table = np.array([[_CODE.get(_zeek_name(p, s) or "", -1) for s in services] + [-1]
                      for p in protos], dtype=np.int16).reshape(len(protos), len(services) + 1)
    return table[proto_codes, service_codes]


def kdd_service_codes(
    proto: np.ndarray,
    orig_p: np.ndarray,
    resp_p: np.ndarray,
    zeek_service: np.ndarray | None = None,
    ipv6: np.ndarray | None = None,
) -> np.ndarray:
    """KDD service per connection as an index into KDD_SERVICES.

    `proto` holds lower-case Zeek protocols, `orig_p`/`resp_p` integer ports (ICMP type and
    code), `zeek_service` Zeek's `service` column (None/NaN where unset) and `ipv6` whether
    the connection is IPv6 (ICMPv6 numbers its types differently).
    """
    proto = np.asarray(proto, dtype=object)
    orig_p = np.asarray(orig_p, dtype=np.int64)
    resp_p = np.clip(np.asarray(resp_p, dtype=np.int64), 0, _N_PORTS - 1)
    n = len(proto)
    ipv6 = np.zeros(n, dtype=bool) if ipv6 is None else np.asarray(ipv6, dtype=bool)
    tcp, udp, icmp = proto == "tcp", proto == "udp", proto == "icmp"

    codes = np.full(n, _CODE[OTHER_SERVICE], dtype=np.int16)
    codes[tcp] = _TCP_TABLE[resp_p[tcp]]
    codes[udp] = _UDP_TABLE[resp_p[udp]]
    codes[icmp] = _icmp_codes(orig_p[icmp], resp_p[icmp], ipv6[icmp])

    if zeek_service is not None and n:
        detected = _zeek_codes(proto, np.asarray(zeek_service, dtype=object))
        override = (tcp | udp) & (detected >= 0) & (detected != codes)
        for zeek_name, port_names in _ZEEK_COMPATIBLE.items():
            compatible = np.isin(codes, [_CODE[name] for name in port_names])
            override &= ~((detected == _CODE[zeek_name]) & compatible)
        codes[override] = detected[override]
    return codes


def kdd_service_names(
    proto: np.ndarray,
    orig_p: np.ndarray,
    resp_p: np.ndarray,
    zeek_service: np.ndarray | None = None,
    ipv6: np.ndarray | None = None,
) -> np.ndarray:
    """KDD service name per connection (object array); see kdd_service_codes."""
    return _NAMES[kdd_service_codes(proto, orig_p, resp_p, zeek_service, ipv6)]
