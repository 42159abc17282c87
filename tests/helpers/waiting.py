"""Waiting for background work (retrains, reloads, log lines) without fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(condition: Callable[[], T], what: str, deadline: float = 30.0,
         interval: float = 0.1) -> T:
    """The first truthy value of ``condition()``, tried until ``deadline`` seconds pass.

    Bounded, and as fast as the machine allows.
    """
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"gave up waiting for {what}")
