"""The test project's URLs plus views that exercise the seams monitoring reads."""

from django.http import HttpResponse
from django.urls import include, path

from django_perf import tally


def cache_events(request):
    """Counts what the tiered cache counts during a request (the django_perf.tally seam)."""
    tally.count("cache.memory.hit", 3)
    tally.count("cache.memory.miss")
    tally.count("cache.redis.hit")
    tally.count("cache.database.error")
    tally.count("unrelated.event")
    return HttpResponse("cached")


urlpatterns = [
    path("test/cache/", cache_events, name="test-cache"),
    path("", include("testproject.urls")),
]


def not_found(request, exception):
    return HttpResponse("not found", status=404)


handler404 = not_found
