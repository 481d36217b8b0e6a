"""Demo endpoints for monitoring: fast, query-heavy (N+1), streaming, async, failing, slow.

Included from ``testproject/urls.py`` under ``monitoring/``; the metrics they
produce show up in ``manage.py perf_stats`` and at ``/perf/metrics``.
"""

import asyncio
import time

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from .models import Article, Author


def fast(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


async def fast_async(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True, "async": True})


def n_plus_one(request: HttpRequest, n: int) -> HttpResponse:
    """The classic N+1: one query per author instead of one join."""
    names = [Author.objects.filter(pk=pk).values_list("name", flat=True).first() for pk in range(n)]
    return JsonResponse({"authors": len([name for name in names if name])})


def stream(request: HttpRequest, chunks: int) -> StreamingHttpResponse:
    def rows():
        for i in range(chunks):
            yield f"{i:09d}\n".encode()  # 10 bytes per chunk

    return StreamingHttpResponse(rows(), content_type="text/plain")


async def stream_async(request: HttpRequest, chunks: int) -> StreamingHttpResponse:
    async def rows():
        for i in range(chunks):
            await asyncio.sleep(0)
            yield f"{i:09d}\n".encode()

    return StreamingHttpResponse(rows(), content_type="text/plain")


def stream_articles(request: HttpRequest) -> StreamingHttpResponse:
    """Queries run while the body streams count toward the request."""

    def rows():
        for title in Article.objects.values_list("title", flat=True).iterator(chunk_size=50):
            yield title.encode() + b"\n"

    return StreamingHttpResponse(rows(), content_type="text/plain")


def cached(request: HttpRequest) -> HttpResponse:
    """Reads through the tiered cache; its hits and misses per tier show up per route."""
    value = cache.get("monitoring-demo")
    if value is None:
        value = Article.objects.count()
        cache.set("monitoring-demo", value, 30)
    return JsonResponse({"articles": value, "again": cache.get("monitoring-demo")})


def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a demo server error")


def slow(request: HttpRequest, ms: int) -> HttpResponse:
    time.sleep(ms / 1000)
    return HttpResponse("slept")


@csrf_exempt
def upload(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(len(request.body)))


urlpatterns = [
    path("fast/", fast, name="monitoring-fast"),
    path("async/", fast_async, name="monitoring-async"),
    path("queries/<int:n>/", n_plus_one, name="monitoring-queries"),
    path("stream/<int:chunks>/", stream, name="monitoring-stream"),
    path("astream/<int:chunks>/", stream_async, name="monitoring-astream"),
    path("articles.txt", stream_articles, name="monitoring-articles"),
    path("cached/", cached, name="monitoring-cached"),
    path("fail/", fail, name="monitoring-fail"),
    path("slow/<int:ms>/", slow, name="monitoring-slow"),
    path("upload/", upload, name="monitoring-upload"),
]
