"""Scoring on every core: an ordered, bounded map over a small thread pool.

Parsing (pandas' C tokenizer) and the distance products (BLAS) release the GIL, so threads
help on the parts that cost: measured on the 2-core machine, KDDTest+ end to end takes
65-75 ms on two threads against 82-88 ms on one; pandas bookkeeping and numpy's reduceat hold
the GIL and cap the gain (docs/MODEL.md, "Speed").

A process that scores this way should limit BLAS to one thread, once, when it starts
(``single_threaded_blas``: ``server.create_app``, test_performance.py, the benchmarks): BLAS's
own threads only compete with ours, and for the small products of scoring they were slower
even alone (104 ms against 89 ms). ``ordered_map`` itself changes nothing process-wide.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

from threadpoolctl import threadpool_limits

MAX_DEFAULT_THREADS = 4

T = TypeVar("T")
R = TypeVar("R")

_blas_limited = threading.Event()
_blas_lock = threading.Lock()
# One pool per thread count, kept for the life of the process: starting threads for every
# call cost the first (and every) call their start-up, and each new thread its first-touch
# buffers in BLAS. A forked child starts without them (the threads stay in the parent).
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _forget_pools_in_child() -> None:
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools_in_child)


def scoring_threads() -> int:
    """Default threads per scoring run: the usable cores, at most MAX_DEFAULT_THREADS."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_DEFAULT_THREADS, cores or 1))


def single_threaded_blas() -> None:
    """Limit BLAS to one thread for the rest of the process (idempotent).

    For a process's start-up: it changes every BLAS call of the process, and threadpoolctl
    scans every loaded library to do it (about 8 ms).
    """
    if _blas_limited.is_set():
        return
    with _blas_lock:
        if not _blas_limited.is_set():
            threadpool_limits(limits=1, user_api="blas")
            _blas_limited.set()


def ordered_map(fn: Callable[[T], R], items: Iterable[T], threads: int) -> Iterator[R]:
    """``map(fn, items)`` on ``threads`` threads, results in input order.

    At most ``2 * threads`` items are in flight, so memory stays bounded however long
    ``items`` is. Errors keep input order too: a failure of item n (or of producing it) is
    raised only after the results of items 0..n-1 have been yielded.
    """
    source = iter(items)
    head: list[T] = []
    failure: BaseException | None = None
    if threads > 1:  # a single item runs here: starting threads for it only costs time
        try:
            for item in itertools.islice(source, 2):
                head.append(item)
        except Exception as exc:  # re-raised in order, after the earlier results
            failure = exc
        if failure is not None or len(head) < 2:
            yield from map(fn, head)
            if failure is not None:
                raise failure
            return
    if threads <= 1:
        yield from map(fn, source)
        return
    source = itertools.chain(head, source)
    pending: deque[Future[R]] = deque()
    pool = _pool(threads)
    try:
        while True:
            while failure is None and len(pending) < 2 * threads:
                try:
                    item = next(source)
                except StopIteration:
                    break
                except Exception as exc:  # re-raised in order, after the earlier results
                    failure = exc
                    break
                pending.append(pool.submit(fn, item))
            if not pending:
                break
            yield pending.popleft().result()
        if failure is not None:
            raise failure
    finally:  # nothing of this call keeps running once it is over
        for future in pending:
            future.cancel()
        wait(pending)


def _pool(threads: int) -> ThreadPoolExecutor:
    pool = _pools.get(threads)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(threads)
            if pool is None:
                pool = ThreadPoolExecutor(max_workers=threads,
                                          thread_name_prefix="anomalyze-score")
                _pools[threads] = pool
    return pool
