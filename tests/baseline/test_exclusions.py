"""Hosts and time ranges left out of a baseline: parsing (with errors naming the bad item)
and what applying them takes out."""

import re

import pytest

from tests.helpers.zeek_logs import BASELINE_START, baseline_rows, tsv_log
from utils.baseline.exclusions import Exclusions, parse_hosts, parse_ranges, parse_time
from utils.readers import read_records


@pytest.fixture(scope="module")
def records():
    return read_records(tsv_log(baseline_rows(600, hours=10, scanner="10.9.9.9",
                                              scan_targets=40)))


def test_hosts_are_addresses_or_networks_in_a_pasted_list():
    assert parse_hosts("10.0.0.5, 10.1.0.0/16\nfe80::1  2001:db8::/32;") == (
        "10.0.0.5", "10.1.0.0/16", "fe80::1", "2001:db8::/32")
    assert parse_hosts("  \n") == ()


@pytest.mark.parametrize("bad", ["10.0.0.300", "example.com", "10.0.0.0/33", "::g"])
def test_a_bad_host_is_named_in_the_error(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        parse_hosts(f"10.0.0.1, {bad}")


def test_ranges_take_epoch_seconds_or_iso_8601_per_line():
    ranges = parse_ranges("100/200\n\n2026-11-20T00:00:00Z,2026-11-20T06:00:00Z\n"
                          "2026-11-21T00:00/1795737600")
    assert ranges[0] == (100.0, 200.0)
    assert ranges[1] == (1795132800.0, 1795154400.0)
    assert ranges[2][0] == 1795219200.0  # a time without a zone is UTC


@pytest.mark.parametrize(("line", "named"), [
    ("yesterday/today", "yesterday"),
    ("100", "100"),
    ("300/200", "ends before it starts"),
    ("1/2/3", "one start and one end"),
    ("nan/5", "nan"),
])
def test_a_bad_range_is_named_in_the_error(line, named):
    with pytest.raises(ValueError, match=named):
        parse_ranges(f"1/2\n{line}")


def test_parse_time_accepts_numbers_and_refuses_booleans():
    assert parse_time(5) == 5.0
    assert parse_time("2026-11-20T00:00:00+01:00") == 1795129200.0
    with pytest.raises(ValueError):
        parse_time(True)


def test_exclusions_check_their_items_when_made():
    with pytest.raises(ValueError, match=r"10\.0\.0\.999"):
        Exclusions(hosts=("10.0.0.999",))
    with pytest.raises(ValueError, match="ends before it starts"):
        Exclusions(ranges=((5, 1),))
    made = Exclusions(hosts=["10.0.0.1"], ranges=[("100", "2026-11-20T00:00Z"), "1/2"])
    assert made.to_dict() == {"hosts": ["10.0.0.1"],
                              "ranges": [[100.0, 1795132800.0], [1.0, 2.0]]}


def test_a_host_is_left_out_from_either_end_of_a_connection(records):
    ids = records.identity
    server_rows = int((ids["id.resp_h"] == "10.0.0.3").sum())
    client_rows = int((ids["id.orig_h"] == "10.1.0.7").sum())
    kept, counts = Exclusions(hosts=("10.0.0.3", "10.1.0.7")).apply(records)
    both = int(((ids["id.resp_h"] == "10.0.0.3") & (ids["id.orig_h"] == "10.1.0.7")).sum())
    assert counts["by_host"] == {"10.0.0.3": server_rows, "10.1.0.7": client_rows}
    assert counts["excluded"] == server_rows + client_rows - both
    assert counts["kept"] == len(kept) == len(records) - counts["excluded"]
    assert not kept.identity["id.resp_h"].eq("10.0.0.3").any()
    assert not kept.identity["id.orig_h"].eq("10.1.0.7").any()
    # the kept rows keep their row numbers and their features, labels and identity agree
    assert kept.features.index.equals(kept.identity.index)
    assert kept.labels.index.equals(kept.identity.index)


def test_a_network_takes_out_every_address_in_it(records):
    kept, counts = Exclusions(hosts=("10.2.0.0/16",)).apply(records)
    assert counts["excluded"] == 40  # the scanner's targets
    assert not kept.identity["id.resp_h"].str.startswith("10.2.").any()
    assert Exclusions(hosts=("fe80::/10",)).apply(records)[1]["excluded"] == 0


def test_a_time_range_includes_its_start_and_excludes_its_end(records):
    ts = records.identity["ts"].sort_values().to_numpy()
    start, end = float(ts[100]), float(ts[200])
    kept, counts = Exclusions(ranges=((start, end),)).apply(records)
    assert counts["excluded"] == 100
    assert list(counts["by_range"].values()) == [100]
    assert ((kept.identity["ts"] < start) | (kept.identity["ts"] >= end)).all()


def test_iso_ranges_match_epoch_timestamps(records):
    hour = BASELINE_START + 3600
    _, counts = Exclusions(ranges=(("2025-11-24T16:00:00Z", "2025-11-24T17:00:00Z"),)
                              ).apply(records)
    inside = int((records.identity["ts"] < hour).sum())
    assert counts["excluded"] == inside > 0
    assert next(iter(counts["by_range"])) == "2025-11-24T16:00:00Z/2025-11-24T17:00:00Z"


def test_no_exclusions_keep_every_row(records):
    kept, counts = Exclusions().apply(records)
    assert len(kept) == len(records)
    assert counts == {"rows": len(records), "excluded": 0, "kept": len(records),
                      "by_host": {}, "by_range": {}}
    assert not Exclusions()


def test_an_ipv6_zone_does_not_hide_an_address():
    rows = baseline_rows(20)
    rows[0][2] = "fe80::1%eth0"
    records = read_records(tsv_log(rows))
    assert Exclusions(hosts=("fe80::1",)).apply(records)[1]["excluded"] == 1
