"""A page that leans on the tiered cache, to show it serving through a Redis outage."""

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from .models import Article, Author


def blog_counts() -> dict[str, int]:
    return {"articles": Article.objects.count(), "authors": Author.objects.count()}


def cache_demo(request: HttpRequest) -> HttpResponse:
    """Blog counts cached for a minute, and a visit counter kept only in the cache."""
    counts = cache.get_or_set("demo:counts", blog_counts, 60)
    cache.add("demo:visits", 0, None)
    try:
        visits = cache.incr("demo:visits")
    except ValueError:  # evicted between add() and incr(): start again
        cache.set("demo:visits", 1, None)
        visits = 1
    body = f"articles={counts['articles']} authors={counts['authors']} visits={visits}\n"
    return HttpResponse(body, content_type="text/plain")
