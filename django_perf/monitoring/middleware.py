"""``PerformanceMiddleware``: times every request and records it, sync or async, no thread hop.

Put it first in ``MIDDLEWARE`` so that it times the other middleware too. Per
request it records the route (the URL pattern, never the raw path), method,
status class and code, duration, request and response bytes, database queries
(how many per request, and time per alias), and cache hits and misses per tier
(read from :mod:`django_perf.tally`), into this process's buffer; the flusher
moves the buffer to the shared store. Slow requests are logged with a
breakdown and kept in the slow log; repeated identical SQL (N+1) is flagged.
"""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Callable
from time import perf_counter_ns, time
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponseBase

from .. import tally as tally_module
from ..conf import perf_settings
from . import queries
from .queries import QueryLog, RequestTally
from .recorder import METHODS, STATUS_CLASSES, UNMATCHED_ROUTE, get_recorder
from .series import Key, query_count_name, status_name
from .store.base import SlowRequest
from .streaming import CountingAsyncIterator, CountingIterator

__all__ = ["PerformanceMiddleware"]

logger = logging.getLogger("django_perf.monitoring")

Tally = tally_module.Tally
# The tally seam's context variable, set and reset around each request exactly as
# ``tallying()`` does, without the cost of a generator-based context manager. The
# request's query log rides on the same object (one context variable set per request).
_tally_var = tally_module._current
_new_tally = Tally.__new__  # a tally without running its Python __init__ (set default_factory)
NEVER = 1 << 62  # "no slow threshold", as a number the hot path can compare with
HOST = socket.gethostname()
MAX_PATH = 500  # characters of a slow request's path kept in the slow log


class PerformanceMiddleware:
    """Records each request's timings into the process buffer (see the module docstring)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        if not perf_settings.MONITORING_ENABLED:
            raise MiddlewareNotUsed("DJANGO_PERF['MONITORING_ENABLED'] is False")
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        self.exclude = tuple(perf_settings.MONITORING_EXCLUDE_PATHS)
        self.rate = float(perf_settings.MONITORING_SAMPLE_RATE)
        self.weight = 1.0 / self.rate
        slow = perf_settings.MONITORING_SLOW_REQUEST_MS
        self.slow_ns = NEVER if slow is None else int(slow * 1_000_000)
        self.n_plus_one = perf_settings.MONITORING_N_PLUS_ONE_THRESHOLD
        self.memory_rate = float(perf_settings.MONITORING_MEMORY_PROFILE_RATE)
        self.every_request = self.rate >= 1.0 and not self.memory_rate
        self.recorder = get_recorder()
        queries.install()
        self.recorder.start_flusher()

    # --- entry points ---------------------------------------------------------

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        if request.path_info.startswith(self.exclude):
            return self.get_response(request)
        if not self.every_request:
            if self.rate < 1.0 and random.random() >= self.rate:
                return self.get_response(request)
            if self.memory_rate and random.random() < self.memory_rate:
                from .memory import profile_request

                return profile_request(request, self._record_sync)
        # _record_sync(), inlined: this is the path every request takes.
        tally = _new_tally(RequestTally)
        tally.default_factory = float
        log = tally.queries = QueryLog()
        token = _tally_var.set(tally)
        start = perf_counter_ns()
        try:
            response = self.get_response(request)
        except BaseException:
            self._finish(request, 500, start, log, tally, 0)
            raise
        finally:
            _tally_var.reset(token)
        if response.streaming:
            return self._wrap_stream(request, response, start, log, tally)
        self._finish(request, response.status_code, start, log, tally, len(response.content))
        return response

    async def __acall__(self, request: HttpRequest) -> Any:
        if request.path_info.startswith(self.exclude) or (
            self.rate < 1.0 and random.random() >= self.rate
        ):
            return await self.get_response(request)
        if self.memory_rate and random.random() < self.memory_rate:
            from .memory import aprofile_request

            return await aprofile_request(request, self._record_async)
        return await self._record_async(request)

    def _record_sync(self, request: HttpRequest) -> Any:
        tally = _new_tally(RequestTally)
        tally.default_factory = float
        log = tally.queries = QueryLog()
        token = _tally_var.set(tally)
        start = perf_counter_ns()
        try:
            response = self.get_response(request)
        except BaseException:
            self._finish(request, 500, start, log, tally, 0)
            raise
        finally:
            _tally_var.reset(token)
        if response.streaming:
            return self._wrap_stream(request, response, start, log, tally)
        self._finish(request, response.status_code, start, log, tally, len(response.content))
        return response

    async def _record_async(self, request: HttpRequest) -> Any:
        tally = _new_tally(RequestTally)
        tally.default_factory = float
        log = tally.queries = QueryLog()
        token = _tally_var.set(tally)
        start = perf_counter_ns()
        try:
            response = await self.get_response(request)
        except BaseException:
            self._finish(request, 500, start, log, tally, 0)
            raise
        finally:
            _tally_var.reset(token)
        if response.streaming:
            return self._wrap_stream(request, response, start, log, tally)
        self._finish(request, response.status_code, start, log, tally, len(response.content))
        return response

    # --- recording ------------------------------------------------------------

    def _wrap_stream(
        self,
        request: HttpRequest,
        response: Any,
        start: int,
        log: QueryLog,
        tally: Tally,
    ) -> HttpResponseBase:
        """Count the body as it passes; record the request when the stream ends."""
        status = response.status_code

        def finish(sent: int) -> None:
            self._finish(request, status, start, log, tally, sent)

        content = response.streaming_content
        if response.is_async:
            response.streaming_content = CountingAsyncIterator(content, finish, _tally_var, tally)
        else:
            response.streaming_content = CountingIterator(iter(content), finish, _tally_var, tally)
        return response

    def _finish(
        self,
        request: HttpRequest,
        status: int,
        start: int,
        log: QueryLog,
        tally: Tally,
        sent: int,
    ) -> None:
        elapsed_ns = perf_counter_ns() - start
        recorder = self.recorder
        match = request.resolver_match
        if match is None:
            route = UNMATCHED_ROUTE
        else:
            route = recorder.labels.get(match.route) or recorder.label_for(match)
        now = int(time())
        received = request.META.get("CONTENT_LENGTH")
        extra: list[tuple[str, float]] | None = None
        n_plus_one: list[tuple[str, int]] = []
        if log.count:
            extra = [(query_count_name(log.count), 1)]
            for alias, (n, ns) in log.by_alias.items():
                extra.append(("queries." + alias, n))
                extra.append(("query_us." + alias, ns // 1000))
            if log.count >= self.n_plus_one:
                n_plus_one = log.repeated(self.n_plus_one)
        if tally:
            if extra is None:
                extra = []
            for name, value in tally.items():
                if name.startswith("cache.") and name.count(".") == 2:
                    extra.append((name, value))
        if status != 200:
            code = status_name(status)
            if code is not None:
                if extra is None:
                    extra = []
                extra.append((code, 1))
        slow = elapsed_ns > self.slow_ns
        key = (
            now - now % 60,
            route,
            METHODS.get(request.method, "OTHER"),  # type: ignore[arg-type]
            STATUS_CLASSES.get(status, "other"),
        )
        recorder.buffer.record(
            key,
            elapsed_ns // 1000,
            self.weight,
            int(received) if received and received.isdigit() else 0,
            sent,
            log.count,
            log.ns // 1000,
            slow,
            bool(n_plus_one),
            extra or (),
        )
        if slow:
            message = slow_request_message(
                Key._make(key), status, elapsed_ns, log, tally, n_plus_one
            )
            logger.warning(
                message,
                extra={"route": route, "duration_ms": elapsed_ns / 1e6, "status_code": status},
            )
            recorder.add_slow(
                SlowRequest(
                    at=time(),
                    route=route,
                    method=key[2],
                    status=status,
                    path=request.path[:MAX_PATH],
                    duration_ms=round(elapsed_ns / 1e6, 3),
                    queries=log.count,
                    db_ms=round(log.ns / 1e6, 3),
                    host=HOST,
                    pid=recorder.pid,
                    message=message,
                )
            )


def slow_request_message(
    key: Key,
    status: int,
    elapsed_ns: int,
    log: QueryLog,
    tally: Tally,
    n_plus_one: list[tuple[str, int]],
) -> str:
    """``Slow request GET /route/ 200 in 812.3 ms: db ..., cache ..., rest ...; N+1: ...``."""
    total_ms = elapsed_ns / 1e6
    db_ms = log.ns / 1e6
    aliases = ", ".join(f"{alias} {n}" for alias, (n, _) in sorted(log.by_alias.items()))
    db = f"db {db_ms:.1f} ms in {log.count} queries" + (f" ({aliases})" if aliases else "")
    tiers: dict[str, list[str]] = {}
    cache_seconds = 0.0
    for name, value in sorted(tally.items()):
        parts = name.split(".")
        if parts[0] != "cache" or len(parts) != 3:
            continue
        if parts[2] == "seconds":
            cache_seconds += value
        else:
            tiers.setdefault(parts[1], []).append(f"{value:g} {parts[2]}")
    cache_ms = cache_seconds * 1000
    counts = "; ".join(f"{tier} {', '.join(events)}" for tier, events in tiers.items())
    cache = f"cache {cache_ms:.1f} ms" + (f" ({counts})" if counts else "")
    rest_ms = max(total_ms - db_ms - cache_ms, 0.0)
    message = (
        f"Slow request {key.method} {key.route} {status} in {total_ms:.1f} ms: "
        f"{db}, {cache}, rest {rest_ms:.1f} ms"
    )
    if n_plus_one:
        suspects = "; ".join(f"{n}x {_shorten(sql)}" for sql, n in n_plus_one[:3])
        message += f"; N+1 suspected: {suspects}"
    return message


def _shorten(sql: str, limit: int = 160) -> str:
    sql = " ".join(sql.split())
    return sql if len(sql) <= limit else sql[: limit - 3] + "..."
