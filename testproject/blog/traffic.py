"""Real HTTP traffic through the demo site, so that a new user's Performance page has charts.

``manage.py demo`` calls :func:`warm_up` before it serves: the site is served
by a throwaway server thread on a free port and requested over HTTP (pages,
cached and query-heavy views, a 404, a slow request, a server error), and
what the monitoring middleware recorded is flushed to the metrics store with
a system sample. The browser test sends the same paths to a real server.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable
from contextlib import contextmanager
from typing import Any

from .models import Article, Author

__all__ = ["demo_paths", "send", "warm_up"]


def demo_paths(rounds: int = 1) -> list[str]:
    """A mix of the site's routes, busiest first: pages, cache, N+1, streaming, errors."""
    slugs = list(
        Article.objects.filter(status=Article.Status.PUBLISHED).values_list("slug", flat=True)[:8]
    )
    authors = list(Author.objects.values_list("pk", flat=True)[:4])
    paths: list[str] = []
    for _ in range(rounds):
        paths += ["/"] * 6
        paths += [f"/articles/{slug}/" for slug in slugs]
        paths += [f"/authors/{pk}/" for pk in authors]
        paths += ["/monitoring/fast/"] * 8 + ["/monitoring/async/"] * 2
        paths += ["/monitoring/cached/"] * 4 + ["/cache/"] * 2
        paths += ["/monitoring/queries/12/"] * 2 + ["/monitoring/stream/200/"]
        paths += ["/articles/no-such-article/"]
    paths += ["/monitoring/slow/650/", "/monitoring/fail/"]
    return paths


def send(base_url: str, paths: Iterable[str], timeout: float = 10.0) -> Counter[int]:
    """GET each path from ``base_url``; return how many responses had each status."""
    statuses: Counter[int] = Counter()
    for path in paths:
        try:
            with urllib.request.urlopen(base_url + path, timeout=timeout) as response:
                response.read()
                statuses[response.status] += 1
        except urllib.error.HTTPError as error:
            error.read()
            statuses[error.code] += 1
    return statuses


@contextmanager
def _quiet(*names: str) -> Any:
    """Silence loggers while the warm-up runs (its 404 and 500 are on purpose)."""
    loggers = [logging.getLogger(name) for name in names]
    before = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, state in zip(loggers, before, strict=True):
            logger.disabled = state


def warm_up(rounds: int = 3) -> Counter[int]:
    """Serve the site on a free port in this process, request it, and flush the metrics."""
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    from django_perf.conf import perf_settings
    from django_perf.monitoring import flush
    from django_perf.monitoring.recorder import get_recorder

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    sampler = None
    if perf_settings.MONITORING_SYSTEM_INTERVAL:
        from django_perf.monitoring.system import SystemSampler

        # Made (primed) before the traffic, sampled after it: CPU is measured over the run.
        sampler = SystemSampler(perf_settings.MONITORING_DISK_PATH)
    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler)
    server.set_app(get_wsgi_application())
    thread = threading.Thread(target=server.serve_forever, name="demo-warm-up", daemon=True)
    thread.start()
    try:
        with _quiet("django.request", "django.server", "django_perf.monitoring"):
            statuses = send(f"http://127.0.0.1:{server.server_address[1]}", demo_paths(rounds))
    finally:
        server.shutdown()
        server.server_close()
    if sampler is not None:
        get_recorder().add_sample(sampler.sample())
    flush()
    return statuses
