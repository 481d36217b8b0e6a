"""Event exports streamed with django_perf.streaming: JSON, NDJSON and CSV, sync and async views.

``/exports/events.<format>`` and ``/exports/async/events.<format>`` stream
every event (``?fields=a,b`` picks columns, ``?path=python`` turns the
PostgreSQL fast path off, ``?chunk_size=``, ``?envelope=``, ``?filename=``);
``/exports/gzip/events.<format>`` does so through Django's GZipMiddleware and
ConditionalGetMiddleware, ``/exports/gzip-one/events.<format>`` through
django-perf's GZipMiddleware; ``/exports/items.<format>`` streams a generator
rather than a queryset. Exporting needs the ``blog.view_event`` permission.

With ``settings.EXPORT_TEST_HOOKS`` (tests only) the query can be made slow
(``?slow=`` seconds per row) or fail at a row (``?fail_at=<id>&fail=db|python``).
"""

from __future__ import annotations

import time
from itertools import islice

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.core.handlers.asgi import ASGIRequest
from django.db import connection, models
from django.db.models import ExpressionWrapper, F
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict, StreamingHttpResponse
from django.urls import re_path
from django.utils.decorators import decorator_from_middleware
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import conditional_page

from django_perf.streaming import stream_csv, stream_json, stream_ndjson, stream_queryset
from django_perf.streaming.middleware import GZipMiddleware

from .models import Event

app_name = "exports"


class InjectedFailure(RuntimeError):
    """Raised by the test hook that breaks an export mid-stream."""


class _HookField(models.IntegerField):
    """An annotation's output field whose conversion sleeps or fails, to test streaming."""

    def __init__(self, *, fail_at: int | None = None, slow: float = 0.0) -> None:
        super().__init__()
        self.fail_at, self.slow = fail_at, slow

    def from_db_value(self, value, expression, connection):
        if self.slow:
            time.sleep(self.slow)
        if value == self.fail_at:
            raise InjectedFailure(f"injected failure at event {value}")
        return value


def events_queryset(params: QueryDict):
    """All events by id, with the test hooks applied when they are switched on."""
    queryset = Event.objects.order_by("id")
    if params.get("empty"):
        queryset = queryset.filter(pk__lt=0)
    if params.get("max_id"):
        queryset = queryset.filter(pk__lte=int(params["max_id"]))
    if not getattr(settings, "EXPORT_TEST_HOOKS", False):
        return queryset
    fail_at = int(params["fail_at"]) if "fail_at" in params else None
    slow = float(params.get("slow", 0))
    if connection.vendor == "postgresql" and params.get("fail") != "python":
        # In SQL, so both paths (and COPY) fail or slow down mid-stream. Unordered, so that
        # rows stream as the scan finds them instead of after a sort of them all.
        if fail_at is not None:
            failing = ["1 / (blog_event.id - %s) IS NOT NULL"]
            queryset = queryset.order_by().extra(where=failing, params=[fail_at])
        if slow:
            sleeping = ["pg_sleep(%s) IS NOT NULL"]
            queryset = queryset.order_by().extra(where=sleeping, params=[slow])
    elif fail_at is not None or slow:
        hook = _HookField(fail_at=fail_at, slow=slow)
        queryset = queryset.annotate(hook=ExpressionWrapper(F("id"), output_field=hook))
    return queryset


def export_options(params: QueryDict, queryset) -> dict:
    """stream_queryset() arguments from the query string."""
    fields = params.get("fields")
    fields = fields.split(",") if fields else None
    if fields and "hook" in queryset.query.annotations:
        fields.append("hook")  # the hook's conversion only runs on a selected column
    return {
        "fields": fields,
        "chunk_size": int(params.get("chunk_size", 2000)),
        "envelope": params.get("envelope") or None,
        "filename": params.get("filename") or None,
        "fast_path": False if params.get("path") == "python" else None,
    }


@permission_required("blog.view_event", raise_exception=True)
def events(request: HttpRequest, format: str) -> HttpResponse:
    queryset = events_queryset(request.GET)
    return stream_queryset(
        request, queryset, format=format, **export_options(request.GET, queryset)
    )


@permission_required("blog.view_event", raise_exception=True)
async def events_async(request: HttpRequest, format: str) -> HttpResponse:
    queryset = events_queryset(request.GET)
    return stream_queryset(
        request, queryset, format=format, **export_options(request.GET, queryset)
    )


@gzip_page
@conditional_page
@permission_required("blog.view_event", raise_exception=True)
def events_gzip(request: HttpRequest, format: str) -> HttpResponse:
    queryset = events_queryset(request.GET)
    return stream_queryset(
        request, queryset, format=format, **export_options(request.GET, queryset)
    )


@decorator_from_middleware(GZipMiddleware)
@conditional_page
@permission_required("blog.view_event", raise_exception=True)
def events_gzip_one_member(request: HttpRequest, format: str) -> HttpResponse:
    """As events_gzip, with django-perf's GZipMiddleware (one gzip member under ASGI too)."""
    queryset = events_queryset(request.GET)
    return stream_queryset(
        request, queryset, format=format, **export_options(request.GET, queryset)
    )


def _numbers(count: int):
    for number in range(count):
        yield {"n": number, "square": number * number, "label": f"item {number}"}


async def _anumbers(count: int):
    for row in _numbers(count):
        yield row


STREAMERS = {"json": stream_json, "ndjson": stream_ndjson, "csv": stream_csv}


@permission_required("blog.view_event", raise_exception=True)
def items(request: HttpRequest, format: str) -> HttpResponse:
    """A plain generator (``?source=async`` for an async one) streamed without a queryset."""
    count = int(request.GET.get("count", 1000))
    source = _anumbers(count) if request.GET.get("source") == "async" else _numbers(count)
    return STREAMERS[format](source, request=request, chunk_size=100)


# --- what the benchmarks compare streaming with (tests/benchmarks/bench_streaming.py) ------


@permission_required("blog.view_event", raise_exception=True)
def baseline_json_response(request: HttpRequest) -> HttpResponse:
    """Not streamed: every row in a list, then JsonResponse."""
    queryset = events_queryset(request.GET)
    fields = export_options(request.GET, queryset)["fields"] or ()
    return JsonResponse(list(queryset.values(*fields)), safe=False)


def _handwritten_sync(queryset, size):
    import orjson  # the speedups extra; only the benchmarks call this

    rows = queryset.iterator(chunk_size=size)
    opening = b"["
    while batch := list(islice(rows, size)):
        yield opening + orjson.dumps(batch)[1:-1]
        opening = b","
    yield b"[]" if opening == b"[" else b"]"


async def _handwritten_async(queryset, size):
    import orjson

    batch, opening = [], b"["
    async for row in queryset.aiterator(chunk_size=size):
        batch.append(row)
        if len(batch) == size:
            yield opening + orjson.dumps(batch)[1:-1]
            batch, opening = [], b","
    if batch:
        yield opening + orjson.dumps(batch)[1:-1]
        opening = b","
    yield b"[]" if opening == b"[" else b"]"


@permission_required("blog.view_event", raise_exception=True)
def baseline_handwritten(request: HttpRequest) -> HttpResponse:
    """What one writes by hand: orjson per chunk of iterator() (aiterator() under ASGI)."""
    queryset = events_queryset(request.GET)
    fields = export_options(request.GET, queryset)["fields"] or ()
    values = queryset.values(*fields)
    if isinstance(request, ASGIRequest):
        body = _handwritten_async(values, 2000)
    else:
        body = _handwritten_sync(values, 2000)
    return StreamingHttpResponse(body, content_type="application/json")


FORMAT = r"(?P<format>json|ndjson|csv)"

urlpatterns = [
    re_path(rf"^events\.{FORMAT}$", events, name="events"),
    re_path(rf"^async/events\.{FORMAT}$", events_async, name="events-async"),
    re_path(rf"^gzip/events\.{FORMAT}$", events_gzip, name="events-gzip"),
    re_path(rf"^gzip-one/events\.{FORMAT}$", events_gzip_one_member, name="events-gzip-one"),
    re_path(rf"^items\.{FORMAT}$", items, name="items"),
    re_path(r"^baseline/json-response\.json$", baseline_json_response, name="json-response"),
    re_path(r"^baseline/handwritten\.json$", baseline_handwritten, name="handwritten"),
]
