"""utils.allowlist: which rows an entry allows, from records, scored CSVs and ECS alerts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils.allowlist import AllowEntry, AllowList, AllowlistError, parse_entry


def entry(id: int, **fields) -> AllowEntry:
    return AllowEntry(**fields, reason="r", added_by="t", added_at="2026-01-01T00:00:00Z",
                      id=id)


FRAME = pd.DataFrame({
    "id.orig_h": ["10.0.0.5", "10.0.1.7", "192.168.1.1", "fe80::1", None, "not an ip"],
    "id.resp_h": ["10.0.0.9", "8.8.8.8", "10.0.0.9", "fe80::2", "10.0.0.9", "10.0.0.9"],
    "id.resp_p": [53, 443, 22, 80, 53, "-"],
    "service": ["dns", "ssl", "ssh", "http", None, "dns"],
})


@pytest.mark.parametrize(("fields", "expected"), [
    ({"host": "10.0.0.0/24"}, [1, 0, 1, 0, 1, 1]),  # either side
    ({"source": "10.0.0.0/16"}, [1, 1, 0, 0, 0, 0]),
    ({"destination": "10.0.0.9", "port": 53}, [1, 0, 0, 0, 1, 0]),
    ({"source": "10.0.0.5", "destination": "10.0.0.9", "service": "dns"}, [1, 0, 0, 0, 0, 0]),
    ({"service": "dns"}, [1, 0, 0, 0, 0, 1]),
    ({"host": "fe80::/64"}, [0, 0, 0, 1, 0, 0]),  # an IPv6 net never matches IPv4 rows
])
def test_every_field_an_entry_gives_must_match(fields, expected):
    ids = AllowList([entry(7, **fields)]).match_frame(FRAME)
    assert (ids > 0).astype(int).tolist() == expected
    assert set(ids.tolist()) <= {0, 7}


def test_only_the_rows_asked_about_are_matched_and_the_first_entry_wins():
    allow = AllowList([entry(1, port=53), entry(2, host="10.0.0.9")])
    ids = allow.match_frame(FRAME, rows=np.array([True, True, True, False, False, False]))
    assert ids.tolist() == [1, 0, 2, 0, 0, 0]


def test_an_entry_needing_a_column_the_rows_lack_matches_nothing():
    frame = pd.DataFrame({"service": ["dns", "http"]})  # KDD records: no addresses or port
    assert AllowList([entry(1, host="10.0.0.0/8")]).match_frame(frame).tolist() == [0, 0]
    assert AllowList([entry(1, port=53)]).match_frame(frame).tolist() == [0, 0]
    assert AllowList([entry(1, service="dns")]).match_frame(frame).tolist() == [1, 0]


def test_expired_entries_are_left_out():
    old = AllowEntry(port=53, reason="r", added_by="t", added_at="x",
                     expires_at="2001-01-01T00:00:00Z", id=1)
    assert not AllowList([old])
    assert AllowList([old]).match_frame(FRAME).tolist() == [0] * 6


def test_a_single_address_is_kept_as_the_address_and_a_network_as_cidr():
    assert parse_entry({"host": "10.0.0.7/32", "reason": "x"}, added_by="t").host == "10.0.0.7"
    net = parse_entry({"host": "10.0.0.0/24", "reason": "x"}, added_by="t")
    assert (net.host, net.kind) == ("10.0.0.0/24", "cidr")
    assert parse_entry({"port": "53", "reason": "x"}, added_by="t").port == 53
    with pytest.raises(AllowlistError) as info:
        parse_entry({"host": "10.0.0.7", "source": "10.0.0.1", "reason": "x"}, added_by="t")
    assert info.value.field == "host"
