"""KDD feature derivation from Zeek connections: hand-checked cases and a loop reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils import schema
from utils.kdd_services import KDD_SERVICES, kdd_service_names
from utils.zeek_features import HOST_FEATURES, TIME_FEATURES, derive_kdd_features

# The 70 service names of NSL-KDD (KDDTrain+ and KDDTest+ together).
NSL_KDD_SERVICES = {
    "IRC", "X11", "Z39_50", "aol", "auth", "bgp", "courier", "csnet_ns", "ctf", "daytime",
    "discard", "domain", "domain_u", "echo", "eco_i", "ecr_i", "efs", "exec", "finger", "ftp",
    "ftp_data", "gopher", "harvest", "hostnames", "http", "http_2784", "http_443", "http_8001",
    "imap4", "iso_tsap", "klogin", "kshell", "ldap", "link", "login", "mtp", "name",
    "netbios_dgm", "netbios_ns", "netbios_ssn", "netstat", "nnsp", "nntp", "ntp_u", "other",
    "pm_dump", "pop_2", "pop_3", "printer", "private", "red_i", "remote_job", "rje", "shell",
    "smtp", "sql_net", "ssh", "sunrpc", "supdup", "systat", "telnet", "tftp_u", "tim_i", "time",
    "urh_i", "urp_i", "uucp", "uucp_path", "vmnet", "whois",
}
BASE = {
    "ts": 0.0, "proto": "tcp", "conn_state": "SF", "id.orig_h": "10.0.0.1", "id.orig_p": 40000,
    "id.resp_h": "10.0.0.2", "id.resp_p": 80, "service": None, "duration": 0.0,
    "orig_bytes": 0.0, "resp_bytes": 0.0,
}


def connections(rows: list[dict], **defaults) -> pd.DataFrame:
    return pd.DataFrame([{**BASE, **defaults, **row} for row in rows])


def features_of(rows: list[dict], **kwargs) -> pd.DataFrame:
    return derive_kdd_features(connections(rows), **kwargs)


# --- output shape ----------------------------------------------------------------------------


def test_output_has_the_kdd_columns_in_order_with_the_model_dtypes():
    out = features_of([{"ts": 1.0}, {"ts": 2.0, "proto": "udp", "id.resp_p": 53}])
    assert tuple(out.columns) == schema.FEATURE_NAMES
    for name in schema.CATEGORICAL_FEATURES:
        assert out[name].dtype == object
        assert all(isinstance(value, str) for value in out[name])
    for name in schema.NUMERIC_FEATURES:
        assert out[name].dtype == np.float64


def test_output_keeps_the_input_index():
    conns = connections([{"ts": 1.0}, {"ts": 0.5}]).set_axis([10, 20])
    assert list(derive_kdd_features(conns).index) == [10, 20]


def test_empty_input_gives_an_empty_table_with_all_columns():
    empty = pd.DataFrame({name: pd.Series([], dtype=type(value) if value is not None else object)
                          for name, value in BASE.items()})
    out = derive_kdd_features(empty)
    assert len(out) == 0
    assert tuple(out.columns) == schema.FEATURE_NAMES


def test_missing_required_column_is_named():
    conns = connections([{"ts": 1.0}]).drop(columns=["conn_state", "id.resp_h"])
    with pytest.raises(ValueError, match=r"conn_state, id\.resp_h"):
        derive_kdd_features(conns)


@pytest.mark.parametrize(("column", "value"), [("ts", np.nan), ("proto", None),
                                               ("id.resp_h", None)])
def test_unset_required_value_is_refused(column, value):
    with pytest.raises(ValueError, match="on every row"):
        features_of([{"ts": 1.0}, {column: value}])


def test_optional_columns_may_be_absent():
    conns = connections([{"ts": 1.0}]).drop(
        columns=["service", "duration", "orig_bytes", "resp_bytes"])
    out = derive_kdd_features(conns)
    assert out.loc[0, ["duration", "src_bytes", "dst_bytes"]].tolist() == [0, 0, 0]
    assert out.loc[0, "service"] == "http"


# --- basic features --------------------------------------------------------------------------


def test_duration_is_whole_seconds_and_unset_values_are_zero():
    out = features_of([
        {"duration": 2.9, "orig_bytes": 10.0, "resp_bytes": 20.0},
        {"duration": np.nan, "orig_bytes": np.nan, "resp_bytes": np.nan},
    ])
    assert out[["duration", "src_bytes", "dst_bytes"]].values.tolist() == [[2, 10, 20], [0, 0, 0]]


def test_land_needs_the_same_host_and_port_on_both_ends():
    out = features_of([
        {"id.resp_h": "10.0.0.1", "id.orig_p": 139, "id.resp_p": 139},
        {"id.resp_h": "10.0.0.1", "id.orig_p": 138, "id.resp_p": 139},
        {"id.resp_h": "10.0.0.9", "id.orig_p": 139, "id.resp_p": 139},
    ])
    assert out["land"].tolist() == [1, 0, 0]


@pytest.mark.parametrize(("proto", "state", "flag"), [
    ("tcp", "SF", "SF"), ("tcp", "S0", "S0"), ("tcp", "REJ", "REJ"), ("tcp", "RSTOS0", "RSTOS0"),
    ("tcp", "SH", "SH"), ("tcp", "OTH", "OTH"),
    ("tcp", "RSTRH", "RSTR"), ("tcp", "SHR", "S3"),  # the two states KDD lacks
    ("tcp", "sf", "SF"), ("tcp", "NEW_STATE", "OTH"), ("tcp", None, "OTH"),
    ("udp", "S0", "SF"), ("udp", "SF", "SF"), ("icmp", "OTH", "SF"),  # KDD: non-TCP is SF
])
def test_flag_follows_conn_state_for_tcp_and_is_sf_otherwise(proto, state, flag):
    out = features_of([{"proto": proto, "conn_state": state}])
    assert out.loc[0, "flag"] == flag


def test_protocol_type_is_lower_case_proto():
    out = features_of([{"proto": "TCP"}, {"proto": "udp"}, {"proto": "icmp"}])
    assert out["protocol_type"].tolist() == ["tcp", "udp", "icmp"]


def test_content_features_are_zero():
    content = ["hot", "num_failed_logins", "num_compromised", "root_shell", "su_attempted",
               "num_root", "num_file_creations", "num_shells", "num_access_files",
               "num_outbound_cmds", "is_host_login", "is_guest_login", "wrong_fragment",
               "urgent"]
    out = features_of([{"orig_bytes": 500.0, "resp_bytes": 900.0, "duration": 30.0}])
    assert (out[content] == 0).all(axis=None)


@pytest.mark.parametrize(("proto", "state", "src", "dst", "expected"), [
    ("tcp", "SF", 10.0, 20.0, 1), ("tcp", "RSTO", 10.0, 20.0, 1), ("tcp", "S1", 10.0, 20.0, 1),
    ("tcp", "SF", 10.0, 0.0, 0), ("tcp", "SF", 0.0, 20.0, 0), ("tcp", "S0", 10.0, 20.0, 0),
    ("tcp", "REJ", 10.0, 20.0, 0), ("udp", "SF", 10.0, 20.0, 0),
])
def test_logged_in_approximates_an_established_tcp_exchange(proto, state, src, dst, expected):
    rows = [{"proto": proto, "conn_state": state, "orig_bytes": src, "resp_bytes": dst}]
    assert features_of(rows).loc[0, "logged_in"] == expected
    assert features_of(rows, approximate_logged_in=False).loc[0, "logged_in"] == 0


# --- services --------------------------------------------------------------------------------


@pytest.mark.parametrize(("proto", "port", "zeek", "service"), [
    ("tcp", 80, None, "http"), ("tcp", 21, None, "ftp"), ("tcp", 20, None, "ftp_data"),
    ("tcp", 23, None, "telnet"), ("tcp", 25, None, "smtp"), ("tcp", 22, None, "ssh"),
    ("tcp", 53, None, "domain"), ("udp", 53, None, "domain_u"), ("udp", 123, None, "ntp_u"),
    ("udp", 69, None, "tftp_u"), ("tcp", 443, None, "http_443"), ("tcp", 8001, None, "http_8001"),
    ("tcp", 6000, None, "X11"), ("tcp", 6063, None, "X11"), ("tcp", 6064, None, "other"),
    ("tcp", 194, None, "IRC"), ("tcp", 6667, None, "IRC"), ("tcp", 111, None, "sunrpc"),
    ("tcp", 139, None, "netbios_ssn"), ("tcp", 5190, None, "aol"),
    ("tcp", 1023, None, "private"), ("tcp", 1024, None, "other"), ("tcp", 0, None, "private"),
    ("udp", 161, None, "private"), ("udp", 137, None, "private"), ("udp", 33434, None, "other"),
    # Zeek's detection wins on an odd port, but not over a port name that says the same
    ("tcp", 8080, "http", "http"), ("tcp", 2222, "ssh", "ssh"), ("tcp", 80, "ssh", "ssh"),
    ("udp", 5353, "dns", "domain_u"), ("tcp", 443, "ssl", "http_443"),
    ("tcp", 443, "http", "http_443"), ("tcp", 8001, "http", "http_8001"),
    ("tcp", 9999, "ssl,http", "http"), ("tcp", 9999, "ssl", "other"),
    ("tcp", 21, "ftp", "ftp"), ("tcp", 40000, "ftp-data", "ftp_data"),
    ("udp", 3000, "dhcp", "other"), ("udp", 53, "-", "domain_u"),
])
def test_port_and_zeek_service_map_to_kdd_service(proto, port, zeek, service):
    names = kdd_service_names(np.array([proto], dtype=object), np.array([50000]),
                              np.array([port]), np.array([zeek], dtype=object))
    assert names.tolist() == [service]


@pytest.mark.parametrize(("icmp_type", "code", "ipv6", "service"), [
    (8, 0, False, "eco_i"), (0, 8, False, "ecr_i"), (3, 3, False, "urp_i"),
    (3, 1, False, "urh_i"), (3, 0, False, "urh_i"), (13, 14, False, "tim_i"),
    (14, 13, False, "tim_i"), (5, 1, False, "red_i"), (11, 0, False, "oth_i"),
    (128, 129, True, "eco_i"), (129, 128, True, "ecr_i"), (1, 4, True, "urp_i"),
    (1, 3, True, "urh_i"), (137, 0, True, "red_i"), (135, 136, True, "oth_i"),
    (8, 0, True, "oth_i"),  # type 8 is not echo in ICMPv6
])
def test_icmp_type_and_code_map_to_kdd_icmp_service(icmp_type, code, ipv6, service):
    orig_h = "fe80::1" if ipv6 else "10.0.0.1"
    out = features_of([{"proto": "icmp", "id.orig_h": orig_h, "id.orig_p": icmp_type,
                        "id.resp_p": code, "service": None}])
    assert out.loc[0, "service"] == service


def test_every_producible_service_is_an_nsl_kdd_name_or_oth_i():
    assert set(KDD_SERVICES) - NSL_KDD_SERVICES == {"oth_i"}
    assert set(KDD_SERVICES) >= NSL_KDD_SERVICES


# --- the 2-second window ---------------------------------------------------------------------


def test_three_syn_errors_to_one_host_within_two_seconds():
    out = features_of([{"ts": t, "conn_state": "S0", "id.orig_p": 40000 + i}
                       for i, t in enumerate([10.0, 10.5, 11.0])])
    assert out["count"].tolist() == [1, 2, 3]
    assert out["serror_rate"].tolist() == [1.0, 1.0, 1.0]
    assert out["rerror_rate"].tolist() == [0.0, 0.0, 0.0]


def test_connection_two_and_a_half_seconds_later_is_outside_the_window():
    out = features_of([{"ts": 10.0}, {"ts": 10.5}, {"ts": 13.0}])
    assert out["count"].tolist() == [1, 2, 1]


def test_window_edge_at_exactly_two_seconds_is_inside():
    out = features_of([{"ts": 10.0}, {"ts": 12.0}, {"ts": 12.0001 + 2.0}])
    assert out["count"].tolist() == [1, 2, 1]


def test_count_only_counts_connections_to_the_same_host():
    out = features_of([{"ts": 1.0, "id.resp_h": "10.0.0.2"}, {"ts": 1.1, "id.resp_h": "10.0.0.3"},
                       {"ts": 1.2, "id.resp_h": "10.0.0.2"}])
    assert out["count"].tolist() == [1, 1, 2]
    assert out["srv_count"].tolist() == [1, 2, 3]
    assert out["srv_diff_host_rate"].tolist() == [0.0, 1.0, 0.67]  # 2 hosts among 2, 3


def test_error_rates_split_syn_and_rej_errors():
    states = ["S0", "REJ", "SF", "RSTO", "SH"]
    out = features_of([{"ts": 1 + i / 10, "conn_state": s} for i, s in enumerate(states)])
    # SYN errors: S0, SH; REJ errors: REJ, RSTO (as NSL-KDD counts them)
    assert out["serror_rate"].tolist() == [1.0, 0.5, 0.33, 0.25, 0.4]
    assert out["rerror_rate"].tolist() == [0.0, 0.5, 0.33, 0.5, 0.4]


def test_same_and_different_service_rates_follow_kdd():
    ports = [80, 21, 80, 80]  # http, ftp, http, http to one host
    out = features_of([{"ts": 1 + i / 10, "id.resp_p": p} for i, p in enumerate(ports)])
    assert out["same_srv_rate"].tolist() == [1.0, 0.5, 0.67, 0.75]
    # KDD's diff_srv_rate: distinct services / count, 0 while only one service is seen
    assert out["diff_srv_rate"].tolist() == [0.0, 1.0, 0.67, 0.5]
    assert out["srv_count"].tolist() == [1, 1, 2, 3]


def test_unsorted_input_gives_the_sorted_features_in_file_order():
    rng = np.random.default_rng(7)
    rows = [{"ts": float(t), "id.resp_h": f"10.0.0.{h}", "id.resp_p": int(p),
             "conn_state": str(s)}
            for t, h, p, s in zip(np.round(rng.uniform(0, 20, 200), 1), rng.integers(1, 4, 200),
                                  rng.choice([80, 21, 25], 200),
                                  rng.choice(["SF", "S0", "REJ"], 200), strict=True)]
    conns = connections(rows)
    in_time_order = conns.sort_values("ts", kind="stable")
    expected = derive_kdd_features(in_time_order).sort_index()
    got = derive_kdd_features(conns)
    pd.testing.assert_frame_equal(got, expected)
    assert not in_time_order.index.equals(conns.index)  # the input really was unsorted


def test_rows_with_equal_timestamps_count_the_earlier_file_rows_only():
    out = features_of([{"ts": 5.0}, {"ts": 5.0}, {"ts": 5.0}])
    assert out["count"].tolist() == [1, 2, 3]


def test_time_window_spans_at_most_511_connections():
    out = features_of([{"ts": 1.0, "id.orig_p": 1024 + i} for i in range(600)])
    assert out["count"].max() == 511
    assert out["count"].iloc[509] == 510
    assert (out["count"].iloc[510:] == 511).all()
    assert (out["srv_count"].iloc[510:] == 511).all()


def test_connection_511_back_has_left_the_time_window():
    hosts = ["10.0.0.7"] + ["10.0.0.2"] * 510 + ["10.0.0.7"]
    out = features_of([{"ts": 1.0, "id.resp_h": h, "id.orig_p": 1024 + i}
                       for i, h in enumerate(hosts)])
    # the window is the current connection and the 510 before it: row 0 is one too far back
    assert out["count"].iloc[-1] == 1
    assert out["srv_count"].iloc[-1] == 511


# --- the host window (last connections) ------------------------------------------------------


def test_host_window_of_100_caps_dst_host_count_for_150_connections():
    rows = [{"ts": float(i), "id.orig_p": 30000 + i} for i in range(150)]
    out = features_of(rows, host_window=100)
    assert out["dst_host_count"].tolist() == [*range(1, 101), *[100] * 50]
    assert out["dst_host_srv_count"].iloc[-1] == 100


def test_default_host_window_counts_up_to_255():
    rows = [{"ts": float(i), "id.orig_p": 30000 + i} for i in range(300)]
    out = features_of(rows)
    assert out["dst_host_count"].iloc[149] == 150
    assert out["dst_host_count"].max() == 255
    assert out["count"].max() == 3  # one connection a second: 3 within [t - 2, t]


def test_host_window_counts_connections_not_seconds():
    rows = [{"ts": i * 100.0, "id.resp_h": "10.0.0.2" if i % 2 else "10.0.0.3"}
            for i in range(10)]
    out = features_of(rows, host_window=4)
    assert out["count"].tolist() == [1] * 10
    assert out["dst_host_count"].tolist() == [1, 1, 2, 2, 2, 2, 2, 2, 2, 2]
    assert out["dst_host_srv_count"].tolist() == [1, 2, 3, 4, 4, 4, 4, 4, 4, 4]
    assert out["dst_host_srv_diff_host_rate"].tolist() == [0, 1, 0.67, 0.5, *[0.5] * 6]


def test_same_source_port_rate_is_among_same_host_connections():
    ports = [5000, 5000, 6000, 5000]
    out = features_of([{"ts": float(i), "id.orig_p": p} for i, p in enumerate(ports)])
    assert out["dst_host_same_src_port_rate"].tolist() == [1.0, 1.0, 0.33, 0.75]


# --- the vectorised windows against a plain loop ---------------------------------------------


def reference_window_features(features: pd.DataFrame, conns: pd.DataFrame, host_window: int,
                              time_window: float = 2.0) -> pd.DataFrame:
    """The traffic features by their definition, one row at a time (slow, obviously right)."""
    ts = conns["ts"].to_numpy()
    order = np.argsort(ts, kind="stable")
    host = conns["id.resp_h"].to_numpy()
    port = conns["id.orig_p"].to_numpy()
    service = features["service"].to_numpy()
    flag = features["flag"].to_numpy()
    syn = np.isin(flag, ["S0", "S1", "S2", "S3", "SH"])
    rej = np.isin(flag, ["REJ", "RSTO", "RSTOS0", "RSTR"])
    out = pd.DataFrame(index=conns.index, columns=[*TIME_FEATURES, *HOST_FEATURES], dtype=float)

    def rate(part, whole):
        return np.round(part / whole, 2)

    def diversity(values, whole):
        distinct = len(set(values))
        return rate(distinct, whole) if distinct > 1 else 0.0

    for k, i in enumerate(order):
        recent = order[max(0, k - 510):k + 1]
        by_time = [j for j in recent if ts[j] >= ts[i] - time_window]
        by_count = list(order[max(0, k - host_window + 1):k + 1])
        for window, prefix, cap in ((by_time, "", 511), (by_count, "dst_host_", 255)):
            same_host = [j for j in window if host[j] == host[i]]
            same_srv = [j for j in window if service[j] == service[i]]
            count, srv = len(same_host), len(same_srv)
            values = {
                "count": min(count, cap), "srv_count": min(srv, cap),
                "serror_rate": rate(syn[same_host].sum(), count),
                "rerror_rate": rate(rej[same_host].sum(), count),
                "srv_serror_rate": rate(syn[same_srv].sum(), srv),
                "srv_rerror_rate": rate(rej[same_srv].sum(), srv),
                "same_srv_rate": rate(sum(service[j] == service[i] for j in same_host), count),
                "diff_srv_rate": diversity(service[same_host], count),
                "srv_diff_host_rate": diversity(host[same_srv], srv),
                "same_src_port_rate": rate(sum(port[j] == port[i] for j in same_host), count),
            }
            if prefix:
                for name, source in HOST_FEATURES.items():
                    out.loc[i, name] = values[source]
            else:
                for name in TIME_FEATURES:
                    out.loc[i, name] = values[name]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("host_window", [255, 9])
def test_vectorised_windows_match_a_row_by_row_reference(host_window):
    rng = np.random.default_rng(host_window)
    n = 300
    conns = pd.DataFrame(index=range(n))
    conns["ts"] = np.round(rng.uniform(0, 30, n) * 4) / 4  # ties and exact 2 s edges
    conns["proto"] = rng.choice(["tcp", "tcp", "udp", "icmp"], n)
    conns["conn_state"] = rng.choice(["SF", "S0", "S1", "SH", "REJ", "RSTO", "RSTR", "OTH"], n)
    conns["id.orig_h"] = "10.0.1.1"
    conns["id.orig_p"] = rng.choice([1025, 1026, 8, 3], n)
    conns["id.resp_h"] = rng.choice(["10.0.0.2", "10.0.0.3", "10.0.0.4"], n, p=[.6, .3, .1])
    conns["id.resp_p"] = rng.choice([80, 21, 25, 0, 3], n)
    conns["service"] = None
    features = derive_kdd_features(conns, host_window=host_window)
    expected = reference_window_features(features, conns, host_window)
    pd.testing.assert_frame_equal(features[expected.columns], expected, check_dtype=False)
