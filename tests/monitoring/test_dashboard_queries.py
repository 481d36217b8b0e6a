"""What the admin dashboard reads from the store: slow log, distributions, memory over time.

Each store (database, Redis) is tested through the same public API, from
real requests recorded by the middleware where a request can produce it.
"""

import os
import time

import pytest
from django.test import Client

from django_perf.monitoring import flush, stats
from django_perf.monitoring.histogram import bucket_index
from django_perf.monitoring.series import Key, Series
from django_perf.monitoring.store import Row, Sample, SlowRequest
from django_perf.monitoring.store.base import SLOW_LOG_PER_ROUTE
from django_perf.monitoring.store.database import DatabaseStore
from django_perf.monitoring.store.redis import RedisStore

pytestmark = pytest.mark.django_db

NOW = 1_800_000_000


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis)])
def store(request, db):
    if request.param == "database":
        return DatabaseStore()
    return RedisStore(request.getfixturevalue("redis_url"), prefix="dash")


def slow(route, at, duration_ms, **fields):
    return SlowRequest(at=at, route=route, method="GET", status=200, path=route,
                       duration_ms=duration_ms, **fields)  # fmt: skip


def test_slow_requests_reach_the_slow_log_with_their_breakdown(perf, store):
    perf(MONITORING_SLOW_REQUEST_MS=150)
    client = Client()
    client.get("/monitoring/slow/200/")
    client.get("/monitoring/fast/")  # under the threshold: not logged
    assert flush(store=store) == 2
    [found] = stats.slow_requests(300, store=store)
    assert (found.route, found.path, found.method, found.status) == (
        "/monitoring/slow/<int:ms>/",
        "/monitoring/slow/200/",
        "GET",
        200,
    )
    assert found.duration_ms >= 200
    assert found.message.startswith("Slow request GET /monitoring/slow/<int:ms>/ 200 in ")
    assert found.host
    assert found.pid == os.getpid()
    assert time.time() - 60 < found.at <= time.time()
    assert stats.slow_requests(300, route="/monitoring/fast/", store=store) == []


def test_the_slow_log_is_newest_first_filtered_and_bounded_per_route(store):
    now = time.time()
    many = [slow("/a/", now - 100 + i, 600 + i) for i in range(SLOW_LOG_PER_ROUTE + 30)]
    store.write({}, slow=many)
    store.write({}, slow=[slow("/b/", now - 50, 900.0), slow("/b/", now - 4000, 5000.0)])
    if isinstance(store, DatabaseStore):
        store.maintain(force=True)  # the database trims in maintenance, Redis as it writes
    a = store.read_slow(now - 3600, "/a/")
    assert len(a) == SLOW_LOG_PER_ROUTE
    assert [r.duration_ms for r in a[:2]] == [729, 728]  # newest first; the oldest 30 dropped
    assert min(r.duration_ms for r in a) == 630
    assert [r.duration_ms for r in store.read_slow(now - 3600, "/b/")] == [900.0]
    assert len(store.read_slow(now - 3600)) == SLOW_LOG_PER_ROUTE + 1
    slowest = stats.slow_requests(3600, limit=3, now=now, store=store)
    assert [(r.route, r.duration_ms) for r in slowest] == [
        ("/b/", 900.0),
        ("/a/", 729),
        ("/a/", 728),
    ]
    store.clear()
    assert store.read_slow(0) == []


def test_a_failed_flush_keeps_slow_requests(perf, caplog):
    recorder = perf(MONITORING_SLOW_REQUEST_MS=5)
    Client().get("/monitoring/slow/10/")
    assert flush(store=DatabaseStore(alias="no-such-database")) == 0
    assert len(recorder.slow) == 1
    store = DatabaseStore()
    assert flush(store=store) == 1
    assert [r.path for r in store.read_slow(0)] == ["/monitoring/slow/10/"]


def test_query_counts_and_status_codes_per_request(recorder):
    client = Client(raise_request_exception=False)
    for _ in range(3):
        client.get("/monitoring/fast/")  # no query
    client.get("/monitoring/queries/1/")
    client.get("/monitoring/queries/4/")
    client.get("/monitoring/queries/30/")
    client.get("/monitoring/fail/")
    client.get("/no/such/page/")
    client.get("/monitoring/fast/", HTTP_HOST="evil.example")  # 400
    flush()
    rows = stats.read(300)
    bins = {b["label"]: b["count"] for b in stats.query_count_distribution(rows)}
    assert bins["0"] == 6  # fast x3, fail, 404, 400
    assert (bins["1"], bins["4-5"], bins["21-50"]) == (1, 1, 1)
    assert sum(bins.values()) == 9
    assert stats.status_codes(rows) == {"200": 6, "400": 1, "404": 1, "500": 1}
    fast = stats.read(300, route="/monitoring/fast/")
    assert stats.status_codes(fast) == {"200": 3}


def test_sampled_requests_scale_distributions_up(perf):
    perf(MONITORING_SAMPLE_RATE=0.5)
    store = DatabaseStore()
    series = Series()
    series.buckets = {100: 2}
    series.requests, series.weight = 2, 4.0
    series.extra = {"qcount.2": 1, "status.201": 1}
    store.write({Key(NOW - 60, "/a/", "GET", "2xx"): series})
    rows = store.read(NOW - 300, NOW)
    bins = {b["label"]: b["count"] for b in stats.query_count_distribution(rows)}
    assert (bins["0"], bins["2"]) == (2, 2)
    assert stats.status_codes(rows) == {"200": 2, "201": 2}


def test_latency_histogram_bins():
    series = Series()
    for duration_us, n in ((500, 3), (1_500, 2), (70_000, 1), (20_000_000, 1)):
        index = bucket_index(duration_us)
        series.buckets[index] = series.buckets.get(index, 0) + n
    series.requests, series.weight = 7, 7.0
    rows = [Row(Key(NOW, "/a/", "GET", "2xx"), 60, series)]
    bins = stats.latency_histogram(rows)
    counts = {b["label"]: b["count"] for b in bins}
    assert counts["0-1 ms"] == 3
    assert counts["1-2 ms"] == 2
    assert counts["50-100 ms"] == 1
    assert counts[">10000 ms"] == 1
    assert sum(counts.values()) == 7
    assert [b["count"] for b in stats.latency_histogram([])] == [0] * len(bins)


def test_memory_over_time_adds_processes_per_host_and_leaves_gaps(store):
    now = int(time.time())
    now -= now % 60
    samples = [
        Sample("web-1", 1, now - 250.0, {"process": {"rss": 100}}),
        Sample("web-1", 2, now - 240.0, {"process": {"rss": 50}}),
        Sample("web-1", 1, now - 130.0, {"process": {"rss": 120}}),
        Sample("web-2", 7, now - 10.0, {"process": {"rss": 70}}),
    ]
    for sample in samples:
        store.write({}, [sample])
    history = store.read_sample_history(now - 300, now + 60)
    assert [(s.host, s.pid) for s in history] == [
        ("web-1", 1),
        ("web-1", 2),
        ("web-1", 1),
        ("web-2", 7),
    ]
    store.write({}, [Sample("web-1", 2, now - 200.0, {"process": {"rss": 60}})])
    series = stats.memory_series(300, 60, now=now, store=store)
    # Steps start at now-300 ... now (the window is [now-299, now+1)); a step adds up the
    # latest sample of each process in it: 50 and then 60 for pid 2, at now-240 and now-200.
    assert series == {
        "web-1": [100, 60, 120, None, None, None],
        "web-2": [None, None, None, None, 70, None],
    }
    assert stats.memory_series(300, 60, now=now + 7200, store=store) == {}


def test_time_series_carries_the_hit_ratio_per_tier(store):
    def series(hits, misses):
        s = Series()
        s.buckets, s.requests, s.weight = {100: 1}, 1, 1.0
        s.extra = {"cache.memory.hit": hits, "cache.memory.miss": misses}
        return s

    store.write({Key(NOW - 120, "/a/", "GET", "2xx"): series(3, 1)})
    store.write({Key(NOW - 60, "/a/", "GET", "2xx"): series(0, 2)})
    points = stats.time_series(180, 60, now=NOW, store=store)
    assert [p.hit_ratio for p in points] == [{}, {"memory": 0.75}, {"memory": 0.0}, {}]


def test_pool_usage_adds_processes_up():
    hosts = [
        {
            "host": "web-1",
            "processes": [
                {"pid": 1, "db_pools": {"default": {"in_use": 2, "size": 3, "max_size": 4}},
                 "redis_pools": {"default": {"in_use": 1, "created": 2, "max_connections": 2**31}}},
                {"pid": 2, "db_pools": {"default": {"in_use": 1, "size": 2, "max_size": 4,
                                                    "waiting": 3, "errors": 1}}},
            ],
        },
        {"host": "web-2", "processes": [{"pid": 3, "db_pools": {"x": {"error": "down"}},
                                         "redis_pools": {"tiered": {"in_use": 0, "size": 0,
                                                                    "details": {"servers": 0}}}}]},
    ]  # fmt: skip
    usage = stats.pool_usage(hosts)
    assert usage["database"] == {
        "default": {"in_use": 3, "size": 5, "max_size": 8, "waiting": 3, "errors": 1,
                    "processes": 2},
    }  # fmt: skip
    assert usage["redis"]["default"]["max_size"] is None  # redis-py's "unlimited"
    assert "tiered" not in usage["redis"]  # a tiered cache without a Redis tier
    assert usage["redis"]["default"]["in_use"] == 1
