"""Each process's in-memory buffer of series, filled by requests and emptied by the flusher.

The buffer is never the source of truth, only a holding area between two
flushes: :meth:`Buffer.take` swaps it out whole, and a flush that fails puts
the batch back. Memory stays bounded whatever the traffic: at most
``max_series`` series are held; past that, the oldest minutes are dropped
(their requests counted in :attr:`Buffer.dropped`), and a minute that alone
holds too many series folds new labels into the ``<other>`` route.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from time import perf_counter_ns, time_ns
from typing import TYPE_CHECKING

from .histogram import bucket_index
from .series import METHODS, STATUS_CLASSES, Key, Series, query_count_name, status_name

if TYPE_CHECKING:
    from .queries import RequestTally

__all__ = ["OTHER_ROUTE", "Buffer", "Finished"]

OTHER_ROUTE = "<other>"
# A request body's Content-Length is counted only up to 11 digits (under 100 GB); a larger
# claim counts as 0. At that size the stores' 64-bit sums hold 92 million such requests.
MAX_CONTENT_LENGTH_DIGITS = 11

# One finished request, as the middleware queues it: (perf_counter_ns() at its end, route
# label, method, CONTENT_LENGTH header or None, status, duration ns, response bytes, the
# request's tally if it counted anything or ran a query (else None), the middleware's
# parameters: (weight = 1 / sample rate, N+1 threshold, slow threshold ns)). Without a tally
# the tuple holds no mutable containers, so the garbage collector stops tracking it: queued
# requests add no collection work.
Params = tuple[float, int, int]
Finished = tuple[int, str, str, "str | None", int, int, int, "RequestTally | None", Params]


class Buffer:
    """Series by key, guarded by a lock (requests record from many threads)."""

    def __init__(self, max_series: int = 5000) -> None:
        self.max_series = max_series
        self.series: dict[Key, Series] = {}
        self.lock = threading.Lock()
        self.dropped = 0.0  # requests (weighted) lost to the memory bound

    def __len__(self) -> int:
        return len(self.series)

    def record(
        self,
        key: tuple,
        duration_us: int,
        weight: float,
        request_bytes: int,
        response_bytes: int,
        queries: int,
        query_us: int,
        slow: bool,
        n_plus_one: bool,
        extra: Iterable[tuple[str, float]] = (),
    ) -> None:
        """Add one request to its series (the per-request hot path: keep it lean).

        ``key`` is ``(minute start, route, method, status class)``: a :class:`Key`
        or the plain tuple, which compares and hashes the same and is cheaper to make.
        """
        with self.lock:
            series = self.series.get(key)
            if series is None:
                series = self._new_series(key)
            _add_request(series, duration_us, weight, request_bytes, response_bytes, slow)
            if queries:
                series.queries += queries
                series.query_us += query_us
            if n_plus_one:
                series.n_plus_one += 1
            if extra:
                sums = series.extra
                for name, value in extra:
                    sums[name] = sums.get(name, 0) + value

    def fold(self, pending: deque[Finished]) -> int:
        """Move finished requests from ``pending`` into their series; return how many moved.

        One lock for the lot, and every step inline: this loop is where each request's
        metrics are computed, so it stays tight. A request in the same minute, route,
        method and status as the one before (most of them) reuses that one's series
        without building its key. Safe with other threads appending to ``pending`` or
        folding it too: each request is popped exactly once.
        """
        popleft = pending.popleft
        methods, status_classes = METHODS, STATUS_CLASSES
        folded = 0
        to_epoch_ns = time_ns() - perf_counter_ns()  # the queue holds perf_counter_ns() times
        # The previous request's minute, as a range of perf_counter_ns() times [lo, hi), and
        # its series with the route, method and status it was found by.
        lo = hi = minute = 0
        last_route = last_method = last_status = None
        series = None
        with self.lock:
            series_of = self.series
            while pending:
                try:
                    request = popleft()
                except IndexError:  # emptied by another thread's fold meanwhile
                    break
                (
                    end_ns,
                    route,
                    method,
                    received,
                    status,
                    elapsed_ns,
                    sent,
                    tally,
                    (weight, n1, slow_ns),
                ) = request
                folded += 1
                if not lo <= end_ns < hi:  # another minute than the previous request's
                    second = (end_ns + to_epoch_ns) // 1_000_000_000
                    minute = second - second % 60
                    lo = minute * 1_000_000_000 - to_epoch_ns
                    hi = lo + 60_000_000_000
                    last_route = None
                if route != last_route or method != last_method or status != last_status:
                    key = (
                        minute,
                        route,
                        methods.get(method, "OTHER"),
                        status_classes.get(status, "other"),
                    )
                    series = series_of.get(key)
                    if series is None:
                        series = self._new_series(key)
                    last_route, last_method, last_status = route, method, status
                _add_request(
                    series,
                    elapsed_ns // 1000,
                    weight,
                    int(received) if received and _is_content_length(received) else 0,
                    sent,
                    elapsed_ns > slow_ns,
                )
                if status != 200:
                    code = status_name(status)
                    if code is not None:
                        series.extra[code] = series.extra.get(code, 0) + 1
                if tally is not None:
                    _add_tally(series, tally, n1)
        return folded

    def _new_series(self, key: tuple) -> Series:
        # Called with the lock held. ``key`` may be a plain tuple (the hot path skips Key()).
        if len(self.series) >= self.max_series:
            self._make_room(key[0])
            if len(self.series) >= self.max_series:
                key = Key(key[0], OTHER_ROUTE, key[2], key[3])
                existing = self.series.get(key)
                if existing is not None:
                    return existing
        series = self.series[Key._make(key)] = Series()  # stored keys are always Keys
        return series

    def _make_room(self, current_start: int) -> None:
        """Drop the oldest minute(s) older than ``current_start`` until under the bound."""
        while len(self.series) > self.max_series - 1:
            oldest = min(key[0] for key in self.series)
            if oldest >= current_start:
                return
            for key in [k for k in self.series if k[0] == oldest]:
                self.dropped += self.series.pop(key).weight

    def take(self) -> dict[Key, Series]:
        """Remove and return everything buffered (for a flush)."""
        with self.lock:
            batch, self.series = self.series, {}
        return batch

    def put_back(self, batch: dict[Key, Series]) -> None:
        """Merge a batch whose flush failed back in, then drop the oldest minutes over the bound."""
        with self.lock:
            for key, series in batch.items():
                mine = self.series.get(key)
                if mine is None:
                    self.series[key] = series
                else:
                    mine.merge(series)
            if self.series:
                self._make_room(max(key[0] for key in self.series))


def _is_content_length(header: str) -> bool:
    """Whether a ``Content-Length`` header is one a real body could have.

    ASCII digits only (``"²".isdigit()`` is true, and ``int()`` rejects it) and
    under :data:`MAX_CONTENT_LENGTH_DIGITS` digits: the header is the client's
    claim, and a forged huge one would overflow the stores' 64-bit sums.
    """
    return len(header) <= MAX_CONTENT_LENGTH_DIGITS and header.isascii() and header.isdigit()


def _add_request(
    series: Series,
    duration_us: int,
    weight: float,
    request_bytes: int,
    response_bytes: int,
    slow: bool,
) -> None:
    """Add one request's duration (to the histogram) and its fixed sums to ``series``."""
    buckets = series.buckets
    index = bucket_index(duration_us)
    buckets[index] = buckets.get(index, 0) + 1
    series.requests += 1
    series.weight += weight
    series.duration_us += duration_us
    series.request_bytes += request_bytes
    series.response_bytes += response_bytes
    if slow:
        series.slow += 1


def _add_tally(series: Series, tally: RequestTally, n_plus_one_threshold: int) -> None:
    """Add a request's queries (count, time, per alias, N+1) and cache events to ``series``."""
    extra = series.extra
    log = tally.queries
    if log is not None and log.count:
        series.queries += log.count
        series.query_us += log.ns // 1000
        name = query_count_name(log.count)
        extra[name] = extra.get(name, 0) + 1
        for alias, (n, ns) in log.by_alias.items():
            name = "queries." + alias
            extra[name] = extra.get(name, 0) + n
            name = "query_us." + alias
            extra[name] = extra.get(name, 0) + ns // 1000
        if log.repeated(n_plus_one_threshold):
            series.n_plus_one += 1
    for name, value in tally.items():
        if name.startswith("cache.") and name.count(".") == 2:
            extra[name] = extra.get(name, 0) + value
