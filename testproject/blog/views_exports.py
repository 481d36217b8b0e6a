"""Event exports streamed with django_perf.streaming: JSON, NDJSON and CSV, sync and async views.

``/exports/events.<format>`` and ``/exports/async/events.<format>`` stream
every event (``?fields=a,b`` picks columns, ``?path=python`` turns the
PostgreSQL fast path off, ``?chunk_size=``, ``?envelope=``, ``?filename=``);
``/exports/gzip/events.<format>`` does so through GZipMiddleware and
ConditionalGetMiddleware; ``/exports/items.<format>`` streams a generator
rather than a queryset. Exporting needs the ``blog.view_event`` permission.

With ``settings.EXPORT_TEST_HOOKS`` (tests only) the query can be made slow
(``?slow=`` seconds per row) or fail at a row (``?fail_at=<id>&fail=db|python``).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.db import connection, models
from django.db.models import ExpressionWrapper, F
from django.http import HttpRequest, HttpResponse
from django.urls import re_path
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import conditional_page

from django_perf.streaming import stream_csv, stream_json, stream_ndjson, stream_queryset

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


def events_queryset(request: HttpRequest):
    """All events by id, with the test hooks applied when they are switched on."""
    queryset = Event.objects.order_by("id")
    if request.GET.get("empty"):
        queryset = queryset.filter(pk__lt=0)
    if not getattr(settings, "EXPORT_TEST_HOOKS", False):
        return queryset
    fail_at = int(request.GET["fail_at"]) if "fail_at" in request.GET else None
    slow = float(request.GET.get("slow", 0))
    if connection.vendor == "postgresql" and request.GET.get("fail") != "python":
        # In SQL, so both paths (and COPY) fail mid-stream: unordered, so rows stream as
        # the scan finds them instead of after a sort.
        if fail_at is not None:
            failing = ["1 / (blog_event.id - %s) <> 0"]
            queryset = queryset.order_by().extra(where=failing, params=[fail_at])
        if slow:
            queryset = queryset.extra(where=["pg_sleep(%s) IS NOT NULL"], params=[slow])
    elif fail_at is not None or slow:
        hook = _HookField(fail_at=fail_at, slow=slow)
        queryset = queryset.annotate(hook=ExpressionWrapper(F("id"), output_field=hook))
    return queryset


def _options(request: HttpRequest) -> dict:
    fields = request.GET.get("fields")
    return {
        "fields": fields.split(",") if fields else None,
        "chunk_size": int(request.GET.get("chunk_size", 2000)),
        "envelope": request.GET.get("envelope") or None,
        "filename": request.GET.get("filename") or None,
        "fast_path": False if request.GET.get("path") == "python" else None,
    }


@permission_required("blog.view_event", raise_exception=True)
def events(request: HttpRequest, format: str) -> HttpResponse:
    return stream_queryset(request, events_queryset(request), format=format, **_options(request))


@permission_required("blog.view_event", raise_exception=True)
async def events_async(request: HttpRequest, format: str) -> HttpResponse:
    return stream_queryset(request, events_queryset(request), format=format, **_options(request))


@gzip_page
@conditional_page
@permission_required("blog.view_event", raise_exception=True)
def events_gzip(request: HttpRequest, format: str) -> HttpResponse:
    return stream_queryset(request, events_queryset(request), format=format, **_options(request))


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


FORMAT = r"(?P<format>json|ndjson|csv)"

urlpatterns = [
    re_path(rf"^events\.{FORMAT}$", events, name="events"),
    re_path(rf"^async/events\.{FORMAT}$", events_async, name="events-async"),
    re_path(rf"^gzip/events\.{FORMAT}$", events_gzip, name="events-gzip"),
    re_path(rf"^items\.{FORMAT}$", items, name="items"),
]
