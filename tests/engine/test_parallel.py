"""The ordered thread map that scoring runs on: order, errors in order, bounded memory."""

from __future__ import annotations

import threading
import time

import pytest

from settings import load_settings
from utils.parallel import ordered_map, scoring_threads

THREADS_ENV = "ANOMALYZE_SCORING_THREADS"


def slow_identity(item: int) -> int:
    time.sleep(0.002 * (5 - item % 5))  # later items finish first
    return item


def test_results_come_back_in_input_order_on_several_threads():
    assert list(ordered_map(slow_identity, range(20), threads=3)) == list(range(20))


def test_one_thread_runs_on_the_calling_thread():
    caller = threading.get_ident()
    assert list(ordered_map(lambda _: threading.get_ident(), range(3), threads=1)) == [caller] * 3


def test_a_single_item_runs_on_the_calling_thread_whatever_the_thread_count():
    caller = threading.get_ident()
    assert list(ordered_map(lambda _: threading.get_ident(), [0], threads=4)) == [caller]


def test_a_source_failing_after_one_item_still_gives_that_item_first():
    def source():
        yield 7
        raise ValueError("source broke")

    got = []
    with pytest.raises(ValueError, match="source broke"):
        for result in ordered_map(slow_identity, source(), threads=2):
            got.append(result)
    assert got == [7]


def test_work_really_runs_on_other_threads():
    caller = threading.get_ident()
    seen = set(ordered_map(lambda _: threading.get_ident(), range(8), threads=2))
    assert caller not in seen


def test_a_failing_item_is_raised_after_the_results_before_it():
    def fail_on_three(item: int) -> int:
        if item == 3:
            raise ValueError("item 3")
        return slow_identity(item)

    got = []
    with pytest.raises(ValueError, match="item 3"):
        for result in ordered_map(fail_on_three, range(10), threads=2):
            got.append(result)
    assert got == [0, 1, 2]


def test_a_failing_source_is_raised_after_the_results_of_what_it_gave():
    def source():
        yield from range(3)
        raise ValueError("source broke")

    got = []
    with pytest.raises(ValueError, match="source broke"):
        for result in ordered_map(slow_identity, source(), threads=2):
            got.append(result)
    assert got == [0, 1, 2]


def test_at_most_twice_the_threads_are_in_flight():
    lock = threading.Lock()
    taken = released = 0
    peak = 0

    def source():
        nonlocal taken, peak
        for item in range(40):
            with lock:
                taken += 1
                peak = max(peak, taken - released)
            yield item

    for _ in ordered_map(slow_identity, source(), threads=3):
        with lock:
            released += 1
    assert taken == released == 40
    assert peak <= 2 * 3 + 1


def test_abandoning_the_results_stops_taking_work():
    taken = []

    def source():
        for item in range(1000):
            taken.append(item)
            yield item

    results = ordered_map(slow_identity, source(), threads=2)
    assert next(results) == 0
    results.close()
    assert len(taken) <= 5


def test_thread_count_comes_from_the_settings_and_defaults_to_the_cores(monkeypatch):
    assert load_settings("api", {THREADS_ENV: "3"})["SCORING_THREADS"] == 3
    assert load_settings("api", {})["SCORING_THREADS"] is None  # scoring's own default:
    monkeypatch.setenv(THREADS_ENV, "3")  # the library never reads the environment itself
    assert 1 <= scoring_threads() <= 4


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_thread_count_is_a_clear_error(value):
    with pytest.raises(ValueError, match=THREADS_ENV):
        load_settings("api", {THREADS_ENV: value})
