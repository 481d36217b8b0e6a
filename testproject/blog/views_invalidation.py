"""Pages cached with ``cache_result`` and kept right by the registrations in ``invalidation.py``.

* ``/cached/``: the home page's list, cached under the ``blog:articles`` tag: any
  saved, deleted or bulk-written article (or renamed author) drops it, in every
  worker process.
* ``/cached/articles/<slug>/``: one article, cached under its own key
  (``blog:article:<slug>``), which the Article registration names.
* ``/cached/wordcount/``: an async view awaiting a cached async "service call".
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path

from django_perf.cache import cache_result

from .invalidation import ARTICLES, article_key
from .models import Article


@cache_result(ttl=300, tags=[ARTICLES])
def home_articles(limit: int = 20) -> list[dict[str, Any]]:
    """The published articles the home page lists (plain data: cheap to cache)."""
    rows = (
        Article.objects.filter(status=Article.Status.PUBLISHED)
        .select_related("author")
        .only("title", "slug", "published_at", "author__name")[:limit]
    )
    return [
        {
            "title": a.title,
            "slug": a.slug,
            "published_at": a.published_at,
            "author": {"name": a.author.name},
        }
        for a in rows
    ]


@cache_result(ttl=300, key=article_key)
def article_summary(slug: str) -> dict[str, Any] | None:
    article = Article.objects.select_related("author").filter(slug=slug).first()
    if article is None:
        return None  # not cached (cache_none=False): a new article shows up at once
    return {"title": article.title, "author": article.author.name, "words": article.word_count}


@cache_result(ttl=60, tags=[ARTICLES], early="probabilistic")
async def word_count() -> dict[str, int]:
    """Stands for a slow remote call: refreshed ahead of expiry, one caller at a time."""
    await asyncio.sleep(0.05)
    total = 0
    async for article in Article.objects.filter(status=Article.Status.PUBLISHED).only("word_count"):
        total += article.word_count
    return {"words": total}


def cached_home(request: HttpRequest) -> HttpResponse:
    return render(request, "blog/home.html", {"articles": home_articles()})


def cached_article(request: HttpRequest, slug: str) -> JsonResponse:
    summary = article_summary(slug)
    if summary is None:
        raise Http404(f"No article {slug!r}")
    return JsonResponse(summary)


async def cached_word_count(request: HttpRequest) -> JsonResponse:
    return JsonResponse(await word_count())


urlpatterns = [
    path("", cached_home, name="cached-home"),
    path("articles/<slug:slug>/", cached_article, name="cached-article"),
    path("wordcount/", cached_word_count, name="cached-wordcount"),
]
