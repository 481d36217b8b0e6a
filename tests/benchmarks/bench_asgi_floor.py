"""How much of PerformanceMiddleware's ASGI cost any recording middleware would pay.

Under ASGI the middleware's added CPU per request stays above 10 µs although
the same code costs under 4 µs in a tight loop. This benchmark puts it next to
two stand-ins on the same requests (the monitoring benchmark's trivial async
view, Django's ASGI handler, in process): a no-op async middleware, and the
least a middleware that records per-request counts can do (open the request's
tally scope, read the clock, queue one small tuple). Each row is CPU added per
request against no middleware, paired request by request.

    DJANGO_PERF_TEST_DB=postgres python -m tests.benchmarks asgi_floor
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.handlers.asgi import ASGIHandler

from django_perf.monitoring.middleware import PerformanceMiddleware, RequestTally, _tally_var
from django_perf.monitoring.recorder import FOLD_AT
from tests.benchmarks.bench_monitoring import PERF, _build, _stop_flusher, added, asgi_one
from tests.benchmarks.harness import Case, Comparison

REQUESTS = 3000


class NoopMiddleware:
    """An async-capable middleware that only awaits the next handler."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    async def __call__(self, request: Any) -> Any:
        return await self.get_response(request)


class LeastRecordingMiddleware(PerformanceMiddleware):
    """Tally scope, one clock read and one queued tuple: nothing else.

    Awaited directly, like the real middleware under ASGI, and its tuple holds
    only atoms, as the real one's does: a queued ``ResolverMatch`` would keep
    up to ``FOLD_AT`` of them alive for the garbage collector to walk.
    """

    def __init__(self, get_response: Callable) -> None:
        super().__init__(get_response)
        self.pending = deque()  # its own: the recorder's queue holds the real middleware's tuples

    async def __acall__(self, request: Any) -> Any:
        tally = RequestTally(float)
        token = _tally_var.set(tally)
        start = perf_counter_ns()
        try:
            response = await self.get_response(request)
        finally:
            _tally_var.reset(token)
        match = request.resolver_match
        pending = self.pending
        pending.append((start, match and match.route, response.status_code))
        if len(pending) >= FOLD_AT:
            pending.clear()  # a stand-in: its tuples are not the fold's
        return response

    __call__ = __acall__  # type: ignore[assignment]


HERE = __name__


def comparisons() -> list[Comparison]:
    none = asgi_one(_build(ASGIHandler, []))
    noop = asgi_one(_build(ASGIHandler, [f"{HERE}.NoopMiddleware"]))
    least = asgi_one(_build(ASGIHandler, [f"{HERE}.LeastRecordingMiddleware"]))
    perf = asgi_one(_build(ASGIHandler, PERF))
    return [
        Comparison(
            "ASGI in process, CPU added per request (ratio: to the least recording middleware)",
            baseline=Case("least recording middleware", added(none, least, REQUESTS)),
            candidates=[
                Case("no-op async middleware", added(none, noop, REQUESTS)),
                Case("django-perf PerformanceMiddleware", added(none, perf, REQUESTS)),
            ],
            teardown=_stop_flusher,
        )
    ]
