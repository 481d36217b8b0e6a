"""``PerformanceMiddleware``: times every request and records it, sync or async, no thread hop.

Put it first in ``MIDDLEWARE`` so that it times the other middleware too. Per
request it records the route (the URL pattern, never the raw path), method,
status class and code, duration, request and response bytes, database queries
(how many per request, and time per alias), and cache hits and misses per tier
(read from :mod:`django_perf.tally`). A request only queues what it found
(:meth:`_finish`); the recorder folds the queue into series and the flusher
moves them to the shared store. Slow requests are logged with a
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
from .recorder import FOLD_AT, UNMATCHED_ROUTE, get_recorder
from .series import METHODS, STATUS_CLASSES, Key, request_weight
from .store.base import SlowRequest
from .streaming import CountingAsyncIterator, CountingIterator

__all__ = ["PerformanceMiddleware"]

logger = logging.getLogger("django_perf.monitoring")

Tally = tally_module.Tally
# The tally seam's context variable, set and reset around each request exactly as
# ``tallying()`` does, without the cost of a generator-based context manager. The
# request's query log rides on the same object (one context variable set per request).
_tally_var = tally_module._current
NO_QUERIES = QueryLog()  # the query log of a request that ran none (never added to)
NEVER = 1 << 62  # "no slow threshold", as a number the hot path can compare with
HOST = socket.gethostname()
MAX_PATH = 500  # characters of a slow request's path kept in the slow log


class PerformanceMiddleware:
    """Records each request's timings into the process buffer (see the module docstring)."""

    sync_capable = True
    async_capable = True

    def __new__(cls, get_response: Callable[[HttpRequest], Any]) -> PerformanceMiddleware:
        # Under ASGI, an instance whose own __call__ is the coroutine: Django then awaits
        # it directly, one call fewer on a path that runs cold (see _AsyncPerformanceMiddleware).
        if cls is PerformanceMiddleware and iscoroutinefunction(get_response):
            cls = _AsyncPerformanceMiddleware
        return super().__new__(cls)

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        if not perf_settings.MONITORING_ENABLED:
            raise MiddlewareNotUsed("DJANGO_PERF['MONITORING_ENABLED'] is False")
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        self.exclude = tuple(perf_settings.MONITORING_EXCLUDE_PATHS)
        self.rate = float(perf_settings.MONITORING_SAMPLE_RATE)
        self.weight = request_weight(self.rate)
        slow = perf_settings.MONITORING_SLOW_REQUEST_MS
        self.slow_ns = NEVER if slow is None else int(slow * 1_000_000)
        self.n_plus_one = perf_settings.MONITORING_N_PLUS_ONE_THRESHOLD
        self.memory_rate = float(perf_settings.MONITORING_MEMORY_PROFILE_RATE)
        self.every_request = self.rate >= 1.0 and not self.memory_rate
        # What the fold needs from this middleware, queued with each request as one field.
        self.params = (self.weight, self.n_plus_one, self.slow_ns)
        self.recorder = get_recorder()
        self.pending = self.recorder.pending
        queries.install()
        self.recorder.start_flusher()

    # --- entry points ---------------------------------------------------------

    def __call__(self, request: HttpRequest, chosen: bool = False) -> Any:
        """Serve ``request`` and record it, unless it is excluded or not sampled.

        ``chosen=True`` skips those checks (see :meth:`_record`).
        """
        if self.is_async:
            return self.__acall__(request, chosen)
        if not chosen:
            if request.path_info.startswith(self.exclude):
                return self.get_response(request)
            if not self.every_request:
                if self.rate < 1.0 and random.random() >= self.rate:
                    return self.get_response(request)
                if self.memory_rate and random.random() < self.memory_rate:
                    from .memory import profile_request

                    return profile_request(request, self._record)
        tally = RequestTally(float)
        token = _tally_var.set(tally)
        start = perf_counter_ns()
        try:
            response = self.get_response(request)
        except BaseException:
            self._finish(request, 500, start, tally, 0)
            raise
        finally:
            _tally_var.reset(token)
        if response.streaming:
            return self._wrap_stream(request, response, start, tally)
        self._finish(request, response.status_code, start, tally, len(response.content))
        return response

    async def __acall__(self, request: HttpRequest, chosen: bool = False) -> Any:
        """The async form of :meth:`__call__`."""
        if not chosen:
            if request.path_info.startswith(self.exclude):
                return await self.get_response(request)
            if not self.every_request:
                if self.rate < 1.0 and random.random() >= self.rate:
                    return await self.get_response(request)
                if self.memory_rate and random.random() < self.memory_rate:
                    from .memory import aprofile_request

                    return await aprofile_request(request, self._record)
        # _finish(), inlined: under ASGI this code runs cold, after the rest of Django and
        # a thread hop, where each call and line costs several times more.
        tally = RequestTally(float)
        token = _tally_var.set(tally)
        start = perf_counter_ns()
        try:
            response = await self.get_response(request)
        except BaseException:
            self._finish(request, 500, start, tally, 0)
            raise
        finally:
            _tally_var.reset(token)
        end = perf_counter_ns()
        if response.streaming:
            return self._wrap_stream(request, response, start, tally)
        match = request.resolver_match
        recorder = self.recorder
        if match is None:
            route = UNMATCHED_ROUTE
        else:
            route = recorder.labels.get(match.route) or recorder.label_for(match)
        elapsed_ns = end - start
        status = response.status_code
        pending = self.pending
        pending.append(
            (
                end,
                route,
                request.method,  # type: ignore[arg-type]
                request.META.get("CONTENT_LENGTH"),
                status,
                elapsed_ns,
                len(response.content),
                tally if tally or tally.queries else None,
                self.params,
            )
        )
        if elapsed_ns > self.slow_ns:
            self._log_slow(request, route, status, elapsed_ns, tally)
        if len(pending) >= FOLD_AT:
            recorder.fold()
        return response

    def _record(self, request: HttpRequest) -> Any:
        """Serve and record ``request`` without the exclusion and sampling checks.

        What the memory profiler runs for the requests it samples; a coroutine under ASGI.
        """
        return self(request, True)

    # --- recording ------------------------------------------------------------

    def _wrap_stream(
        self, request: HttpRequest, response: Any, start: int, tally: RequestTally
    ) -> HttpResponseBase:
        """Count the body as it passes; record the request when the stream ends."""
        status = response.status_code

        def finish(sent: int) -> None:
            self._finish(request, status, start, tally, sent)

        content = response.streaming_content
        if response.is_async:
            response.streaming_content = CountingAsyncIterator(content, finish, _tally_var, tally)
        else:
            response.streaming_content = CountingIterator(iter(content), finish, _tally_var, tally)
        return response

    def _finish(
        self, request: HttpRequest, status: int, start: int, tally: RequestTally, sent: int
    ) -> None:
        """Queue the finished request for the recorder's fold (the per-request hot path).

        Only what the fold cannot find later is read here: the route label (so the
        queue holds a string, not the resolver match), request headers, the tally.
        """
        end = perf_counter_ns()  # the fold turns it into wall time
        match = request.resolver_match
        recorder = self.recorder
        if match is None:
            route = UNMATCHED_ROUTE
        else:
            route = recorder.labels.get(match.route) or recorder.label_for(match)
        elapsed_ns = end - start
        pending = self.pending
        pending.append(
            (
                end,
                route,
                request.method,  # type: ignore[arg-type]
                request.META.get("CONTENT_LENGTH"),
                status,
                elapsed_ns,
                sent,
                tally if tally or tally.queries else None,
                self.params,
            )
        )
        if elapsed_ns > self.slow_ns:
            self._log_slow(request, route, status, elapsed_ns, tally)
        if len(pending) >= FOLD_AT:
            recorder.fold()

    def _log_slow(
        self, request: HttpRequest, route: str, status: int, elapsed_ns: int, tally: RequestTally
    ) -> None:
        """Log a slow request with its breakdown, and keep it in the slow log."""
        recorder = self.recorder
        method = METHODS.get(request.method, "OTHER")  # type: ignore[arg-type]
        log = tally.queries or NO_QUERIES
        n_plus_one = log.repeated(self.n_plus_one)
        message = slow_request_message(
            Key(0, route, method, STATUS_CLASSES.get(status, "other")),
            status,
            elapsed_ns,
            log,
            tally,
            n_plus_one,
        )
        logger.warning(
            message,
            extra={"route": route, "duration_ms": elapsed_ns / 1e6, "status_code": status},
        )
        recorder.add_slow(
            SlowRequest(
                at=time(),
                route=route,
                method=method,
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


class _AsyncPerformanceMiddleware(PerformanceMiddleware):
    """``PerformanceMiddleware`` built on an async handler: calling it is ``__acall__``."""

    __call__ = PerformanceMiddleware.__acall__  # type: ignore[assignment]


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
