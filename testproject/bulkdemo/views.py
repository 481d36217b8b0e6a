"""Demo views for django_perf.db: batched reads in async and sync views, and their request scope.

``LoaderScopeMiddleware`` (in MIDDLEWARE) gives each request its own loader
cache; the loaders below are declared once, at import time.
"""

from __future__ import annotations

import asyncio
import threading

from django.http import HttpRequest, JsonResponse

from django_perf.db import Batcher, ModelLoader, async_connection
from testproject.blog.models import Article, Author

author_loader = ModelLoader(Author)


async def articles(request: HttpRequest) -> JsonResponse:
    """Recent articles with their authors: one query for the articles, one for all authors."""
    recent = [a async for a in Article.objects.order_by("-published_at", "pk")[:50]]
    authors = await asyncio.gather(*[author_loader.load(a.author_id) for a in recent])
    data = [{"title": a.title, "author": au.name} for a, au in zip(recent, authors, strict=True)]
    return JsonResponse({"articles": data})


def articles_sync(request: HttpRequest) -> JsonResponse:
    """The same page for WSGI: prefetch every author in one query, then read them."""
    recent = list(Article.objects.order_by("-published_at", "pk")[:50])
    author_loader.prefetch(a.author_id for a in recent)
    data = [{"title": a.title, "author": author_loader.get(a.author_id).name} for a in recent]
    return JsonResponse({"articles": data})


async def article_count(request: HttpRequest) -> JsonResponse:
    """Raw async SQL on the async pool: stays on the event loop, no thread hop."""
    async with async_connection() as connection:
        cursor = await connection.execute("SELECT count(*) FROM blog_article")
        (count,) = await cursor.fetchone()
    return JsonResponse({"articles": count})


# --- request scope probes: each request primes a value, waits for its partner, reads it back ---

probe = Batcher(lambda keys: dict.fromkeys(keys), name="probe")
_async_meetings: dict[str, tuple[list[int], asyncio.Event]] = {}
_thread_meetings: dict[str, threading.Barrier] = {}
_meetings_lock = threading.Lock()


async def scope_probe(request: HttpRequest) -> JsonResponse:
    """Prime "me" with this request's name, wait until the partner request did the same, load."""
    who, pair = request.GET["who"], request.GET["pair"]
    probe.prime("me", who)
    count, event = _async_meetings.setdefault(pair, ([0], asyncio.Event()))
    count[0] += 1
    if count[0] == 2:
        event.set()
    await asyncio.wait_for(event.wait(), timeout=10)
    return JsonResponse({"who": who, "saw": await probe.load("me")})


def scope_probe_sync(request: HttpRequest) -> JsonResponse:
    """The same from WSGI worker threads."""
    who, pair = request.GET["who"], request.GET["pair"]
    probe.prime("me", who)
    with _meetings_lock:
        barrier = _thread_meetings.setdefault(pair, threading.Barrier(2))
    barrier.wait(timeout=10)
    return JsonResponse({"who": who, "saw": probe.get("me")})
