"""PerformanceMiddleware in process: what it records per request, sync and async."""

import asyncio
import inspect
import logging
import random

import pytest
from asgiref.sync import SyncToAsync, iscoroutinefunction, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.db import connections
from django.test import AsyncClient, Client

from django_perf.monitoring.middleware import PerformanceMiddleware
from django_perf.monitoring.recorder import UNMATCHED_ROUTE
from testproject.blog.seed import SeedSize, seed

pytestmark = pytest.mark.django_db


def series_by_route(recorder):
    recorder.fold()  # requests queue up until the flusher (or a test) folds them into series
    found = {}
    for key, series in recorder.buffer.series.items():
        found.setdefault(key.route, []).append((key, series))
    return found


def only(recorder, route):
    [(key, series)] = series_by_route(recorder)[route]
    return key, series


def test_records_the_url_pattern_never_the_raw_path(recorder):
    client = Client()
    for slug in ("one", "two", "three"):
        assert client.get(f"/articles/{slug}/").status_code == 404
    key, series = only(recorder, "/articles/<slug:slug>/")
    assert (key.method, key.status) == ("GET", "4xx")
    assert series.requests == 3
    assert not any("one" in route for route in series_by_route(recorder))


def test_the_home_page_is_labelled_by_its_empty_pattern(recorder):
    Client().get("/")
    assert set(series_by_route(recorder)) == {"/"}


def test_unmatched_urls_fold_into_one_label(recorder):
    client = Client()
    for i in range(20):
        client.get(f"/no/such/page/{i}/")
    assert set(series_by_route(recorder)) == {UNMATCHED_ROUTE}
    assert only(recorder, UNMATCHED_ROUTE)[1].requests == 20


def test_method_status_class_duration_and_bytes(recorder):
    client = Client(raise_request_exception=False)
    client.get("/monitoring/fast/")
    client.post("/monitoring/upload/", data=b"x" * 1234, content_type="application/octet-stream")
    client.get("/monitoring/fail/")
    client.generic("BREW", "/monitoring/fast/")
    routes = series_by_route(recorder)
    fast = {(k.method, k.status): s for k, s in routes["/monitoring/fast/"]}
    assert set(fast) == {("GET", "2xx"), ("OTHER", "2xx")}
    get = fast[("GET", "2xx")]
    assert get.response_bytes == len(b'{"ok": true}')
    assert get.duration_us > 0
    assert sum(get.buckets.values()) == 1
    [(key, upload)] = routes["/monitoring/upload/"]
    assert key.method == "POST"
    assert upload.request_bytes == 1234
    assert upload.response_bytes == len(b"1234")
    [(key, _)] = routes["/monitoring/fail/"]
    assert key.status == "5xx"


def test_queries_per_alias_and_n_plus_one(recorder):
    seed(SeedSize(authors=5, articles=5, comments=1, events=1))
    Client().get("/monitoring/queries/8/")
    _, series = only(recorder, "/monitoring/queries/<int:n>/")
    assert series.queries == 8
    assert series.extra["queries.default"] == 8
    assert series.query_us == series.extra["query_us.default"] > 0
    assert series.n_plus_one == 1  # 8 identical statements >= the threshold of 5
    Client().get("/monitoring/queries/3/")
    _, series = only(recorder, "/monitoring/queries/<int:n>/")
    assert series.queries == 11
    assert series.n_plus_one == 1  # 3 repeats are under the threshold


def test_slow_requests_are_logged_with_a_breakdown_and_n_plus_one(perf, caplog):
    client = Client()
    for path in ("/monitoring/fast/", "/monitoring/queries/4/"):
        client.get(path)  # warm: a first request also imports its view and URLconf
    recorder = perf(MONITORING_SLOW_REQUEST_MS=100, MONITORING_N_PLUS_ONE_THRESHOLD=3)
    client = Client()
    with caplog.at_level(logging.WARNING, logger="django_perf.monitoring"):
        client.get("/monitoring/fast/")
        client.get("/monitoring/slow/200/")
        client.get("/monitoring/queries/4/")  # fast enough: not logged
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1, messages
    assert messages[0].startswith("Slow request GET /monitoring/slow/<int:ms>/ 200 in ")
    assert "db 0.0 ms in 0 queries" in messages[0]
    assert ", cache 0.0 ms, rest " in messages[0]
    [(_, slow)] = series_by_route(recorder)["/monitoring/slow/<int:ms>/"]
    assert slow.slow == 1

    perf(MONITORING_SLOW_REQUEST_MS=0.001, MONITORING_N_PLUS_ONE_THRESHOLD=3)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="django_perf.monitoring"):
        Client().get("/monitoring/queries/4/")
    [message] = [r.getMessage() for r in caplog.records]
    assert "in 4 queries (default 4)" in message
    assert "N+1 suspected: 4x SELECT" in message
    assert caplog.records[0].route == "/monitoring/queries/<int:n>/"


def test_cache_events_per_tier_come_from_the_request_tally(recorder, monitoring_urls):
    Client().get("/test/cache/")
    Client().get("/test/cache/")
    _, series = only(recorder, "/test/cache/")
    assert series.extra["cache.memory.hit"] == 6
    assert series.extra["cache.memory.miss"] == 2
    assert series.extra["cache.redis.hit"] == 2
    assert series.extra["cache.database.error"] == 2
    assert "unrelated.event" not in series.extra


def test_the_tiered_caches_hits_and_misses_are_recorded_per_tier(recorder):
    from django.core.cache import cache

    cache.delete("monitoring-demo")
    Client().get("/monitoring/cached/")  # misses memory and database, then a memory hit
    Client().get("/monitoring/cached/")  # memory hits
    _, series = only(recorder, "/monitoring/cached/")
    assert series.extra["cache.memory.miss"] >= 1
    assert series.extra["cache.database.miss"] >= 1
    assert series.extra["cache.memory.hit"] >= 2
    assert set(series.extra) >= {"queries.default", "query_us.default"}


def test_excluded_paths_are_not_recorded(perf):
    recorder = perf(MONITORING_EXCLUDE_PATHS=["/monitoring/fast", "/health/"])
    client = Client()
    client.get("/monitoring/fast/")
    client.get("/health/")
    client.get("/monitoring/async/")
    assert set(series_by_route(recorder)) == {"/monitoring/async/"}


def test_sampling_records_a_fraction_and_scales_counts_back(perf):
    recorder = perf(MONITORING_SAMPLE_RATE=0.25)
    random.seed(7)
    client = Client()
    for _ in range(400):
        client.get("/monitoring/fast/")
    recorder.fold()
    series = recorder.buffer.series.values()  # one, or two across a minute boundary
    requests = sum(s.requests for s in series)
    assert 60 <= requests <= 140  # binomial(400, 0.25): mean 100, sd 8.7
    assert sum(s.weight for s in series) == requests * 4


def test_disabled_middleware_removes_itself(perf):
    from django.core.exceptions import MiddlewareNotUsed

    perf(MONITORING_ENABLED=False)
    with pytest.raises(MiddlewareNotUsed):
        PerformanceMiddleware(lambda request: None)


def test_under_asgi_django_awaits_the_middleware_itself(recorder):
    """On an async handler the instance's own ``__call__`` is the coroutine (no sync call first)."""

    async def async_view_chain(request):
        return None

    on_async = PerformanceMiddleware(async_view_chain)
    on_sync = PerformanceMiddleware(lambda request: None)
    assert isinstance(on_async, PerformanceMiddleware)
    assert inspect.iscoroutinefunction(type(on_async).__call__)
    assert iscoroutinefunction(on_async)  # what Django's handler checks
    assert not inspect.iscoroutinefunction(type(on_sync).__call__)
    assert not iscoroutinefunction(on_sync)


def test_streaming_bytes_are_counted_as_they_pass_and_recorded_at_the_end(recorder):
    response = Client().get("/monitoring/stream/500/")
    assert not recorder.fold()  # nothing recorded until the body has passed
    chunks = iter(response.streaming_content)
    first = next(chunks)
    assert first == b"000000000\n"
    assert not recorder.fold()
    rest = b"".join(chunks)
    assert len(first) + len(rest) == 5000
    _, series = only(recorder, "/monitoring/stream/<int:chunks>/")
    assert series.response_bytes == 5000
    response.close()
    assert only(recorder, "/monitoring/stream/<int:chunks>/")[1].requests == 1  # not twice


def test_a_stream_closed_early_is_recorded_with_what_was_sent(recorder):
    response = Client().get("/monitoring/stream/100/")
    chunks = iter(response.streaming_content)
    next(chunks), next(chunks)
    response.close()  # the client went away
    _, series = only(recorder, "/monitoring/stream/<int:chunks>/")
    assert series.response_bytes == 20


def test_queries_run_while_streaming_count_toward_the_request(recorder):
    seed(SeedSize(authors=2, articles=120, comments=1, events=1))
    response = Client().get("/monitoring/articles.txt")
    body = b"".join(response.streaming_content)
    assert body.count(b"\n") == 120
    _, series = only(recorder, "/monitoring/articles.txt")
    assert series.queries >= 1
    assert series.response_bytes == len(body)


@pytest.mark.django_db(transaction=True)
def test_async_views_and_async_streaming_under_asgi(recorder):
    async def run():
        client = AsyncClient()
        assert (await client.get("/monitoring/async/")).status_code == 200
        response = await client.get("/monitoring/astream/300/")
        body = b"".join([chunk async for chunk in response.streaming_content])
        return body

    body = asyncio.run(run())
    assert len(body) == 3000
    routes = series_by_route(recorder)
    assert routes["/monitoring/async/"][0][1].requests == 1
    assert routes["/monitoring/astream/<int:chunks>/"][0][1].response_bytes == 3000


SAME_REQUESTS = [
    ("GET", "/monitoring/fast/", {}),
    ("GET", "/monitoring/async/", {}),
    ("POST", "/monitoring/upload/",
     {"data": b"x" * 1234, "content_type": "application/octet-stream"}),
    ("GET", "/monitoring/fail/", {}),
    ("GET", "/monitoring/queries/4/", {}),
    ("GET", "/no/such/page/", {}),
    ("BREW", "/monitoring/fast/", {}),
]  # fmt: skip


def _serve_the_same_requests(client):
    """Every kind of outcome, through a Client (WSGI handler) or an AsyncClient (ASGI)."""
    if isinstance(client, AsyncClient):

        async def serve():
            for method, path, kwargs in SAME_REQUESTS:
                await client.generic(method, path, **kwargs)
            # The sync views ran on asgiref's executor thread, whose database connection
            # the test client leaves open: close it there, or later tests see the session.
            await sync_to_async(connections.close_all)()

        asyncio.run(serve())
    else:
        for method, path, kwargs in SAME_REQUESTS:
            client.generic(method, path, **kwargs)


def _recorded(recorder):
    """Everything recorded but durations, by (route, method, status class)."""
    recorder.fold()
    found = {}
    for key, series in recorder.buffer.series.items():
        extra = {k: v for k, v in series.extra.items() if not k.startswith("query_us")}
        found[(key.route, key.method, key.status)] = (
            series.requests, series.weight, series.request_bytes, series.response_bytes,
            series.queries, series.n_plus_one, series.slow, extra,
        )  # fmt: skip
    return found


def test_asgi_records_exactly_what_wsgi_records(perf, caplog):
    """The async path is inlined apart from the sync one: both must record the same."""
    seed(SeedSize(authors=5, articles=5, comments=1, events=1))
    settings = {"MONITORING_SLOW_REQUEST_MS": 0.001, "MONITORING_N_PLUS_ONE_THRESHOLD": 3}
    recorded, logged = [], []
    for client in (Client(raise_request_exception=False),
                   AsyncClient(raise_request_exception=False)):  # fmt: skip
        recorder = perf(**settings)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="django_perf.monitoring"):
            _serve_the_same_requests(client)
        recorded.append(_recorded(recorder))
        mine = [r for r in caplog.records if r.name == "django_perf.monitoring"]
        logged.append(sorted((r.route, r.status_code) for r in mine))
    wsgi, asgi = recorded
    assert asgi == wsgi
    assert set(wsgi) == {
        ("/monitoring/fast/", "GET", "2xx"),
        ("/monitoring/async/", "GET", "2xx"),
        ("/monitoring/upload/", "POST", "2xx"),
        ("/monitoring/fail/", "GET", "5xx"),
        ("/monitoring/queries/<int:n>/", "GET", "2xx"),
        (UNMATCHED_ROUTE, "GET", "4xx"),
        ("/monitoring/fast/", "OTHER", "2xx"),
    }
    assert wsgi[("/monitoring/upload/", "POST", "2xx")][2:4] == (1234, 4)
    assert wsgi[("/monitoring/queries/<int:n>/", "GET", "2xx")][4:7] == (4, 1, 1)
    assert len(logged[0]) == 7  # every request was slow
    assert logged[1] == logged[0]


def _asgi_request(path):
    """Serve one GET through Django's real ASGIHandler; return the status."""
    sent = []
    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    asyncio.run(ASGIHandler()(scope, receive, send))
    return sent[0]["status"]


def count_thread_hops(path, monkeypatch):
    hops = []
    original = SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    assert _asgi_request(path) == 200
    monkeypatch.setattr(SyncToAsync, "__call__", original)
    return hops


def test_no_thread_hop_under_asgi(recorder, settings, monkeypatch):
    settings.MIDDLEWARE = []
    baseline = count_thread_hops("/monitoring/async/", monkeypatch)
    settings.MIDDLEWARE = ["django_perf.monitoring.PerformanceMiddleware"]
    with_middleware = count_thread_hops("/monitoring/async/", monkeypatch)
    assert with_middleware == baseline  # Django's own signal hops only
    assert only(recorder, "/monitoring/async/")[1].requests == 1
