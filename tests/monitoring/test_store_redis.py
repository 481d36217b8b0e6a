"""The Redis store: atomic increments, minute and hour hashes with expiry, lifetime totals."""

import time

import pytest
import redis

from django_perf.monitoring import stats
from django_perf.monitoring.series import Key, Series
from django_perf.monitoring.store import Sample
from django_perf.monitoring.store.redis import RedisStore

pytestmark = pytest.mark.redis

NOW = 1_800_000_000


def make_series(requests, **extra):
    series = Series()
    series.buckets[100] = requests
    series.requests = requests
    series.weight = float(requests)
    series.duration_us = 900 * requests
    series.extra.update(extra)
    return series


def test_batches_add_up_and_read_back(redis_url):
    store = RedisStore(redis_url, prefix="t")
    key = Key(NOW - 120, "/a/", "GET", "2xx")
    store.write({key: make_series(2, **{"cache.redis.hit": 3.0})})
    store.write({key: make_series(3, **{"cache.redis.hit": 1.0})})
    store.write({Key(NOW - 60, "/b/", "POST", "5xx"): make_series(1)})
    found = {r.route: r for r in stats.route_stats(300, now=NOW, store=store)}
    assert found["/a/"].count == 5
    assert found["/b/"].error_rate == 1.0
    rows = store.read(NOW - 300, NOW, route="/a/")
    assert [row.series.extra["cache.redis.hit"] for row in rows] == [4.0]
    assert {r.key.route: r.series.requests for r in store.read_totals()} == {"/a/": 5, "/b/": 1}
    assert stats.cache_stats(rows) == {
        "redis": {"hits": 4, "misses": 0, "errors": 0, "hit_ratio": 1.0}
    }


def test_a_route_holding_the_field_separator_reads_back(redis_url):
    store = RedisStore(redis_url, prefix="sep")
    route = "^a\x1fb/$"  # a re_path regex may hold any character
    store.write({Key(NOW - 60, route, "GET", "2xx"): make_series(2)})
    assert [(r.key.route, r.series.requests) for r in store.read(NOW - 300, NOW)] == [(route, 2)]
    assert [r.series.requests for r in store.read(NOW - 300, NOW, route=route)] == [2]
    assert {r.key.route: r.series.requests for r in store.read_totals()} == {route: 2}


def test_keys_expire_after_their_retention(redis_url):
    store = RedisStore(redis_url, prefix="t", minute_retention=3600, hour_retention=86400)
    start = NOW - 120
    store.write({Key(start, "/a/", "GET", "2xx"): make_series(1)}, [Sample("h", 1, NOW - 5.0)])
    client = redis.Redis.from_url(redis_url)

    def expires_at(name):  # EXPIRETIME needs Redis 7; TTL works everywhere
        return time.time() + client.ttl(name)

    assert expires_at(f"t:m:{start}") == pytest.approx(start + 60 + 3600, abs=2)
    hour = start - start % 3600
    assert expires_at(f"t:h:{hour}") == pytest.approx(hour + 3600 + 86400, abs=2)
    assert client.ttl("t:total") == -1  # lifetime totals never expire
    assert expires_at(f"t:sys:{NOW - 60}") == pytest.approx(NOW + 3600, abs=2)


def test_long_windows_read_hours_and_short_ones_minutes(redis_url):
    store = RedisStore(redis_url, prefix="t")
    old = NOW - 3 * 86400
    store.write({Key(old, "/old/", "GET", "2xx"): make_series(4)})
    store.write({Key(NOW - 30, "/new/", "GET", "2xx"): make_series(1)})
    week = {r.route: r.count for r in stats.route_stats(7 * 86400, now=NOW, store=store)}
    assert week == {"/old/": 4, "/new/": 1}
    assert [r.route for r in stats.route_stats(300, now=NOW, store=store)] == ["/new/"]
    points = stats.time_series(7 * 86400, 86400, now=NOW, store=store)
    assert [(p.start <= old < p.start + 86400, p.count) for p in points if p.count] == [
        (True, 4),
        (False, 1),
    ]


def test_a_down_redis_fails_the_write_so_the_batch_is_kept(redis_server):
    from django_perf.monitoring.buffer import Buffer
    from django_perf.monitoring.flusher import flush
    from django_perf.monitoring.recorder import Recorder

    store = RedisStore(redis_server.url, prefix="t")
    recorder = Recorder()
    recorder.buffer = Buffer()
    recorder.buffer.record(Key(NOW, "/a/", "GET", "2xx"), 10, 1.0, 0, 0, 0, 0, False, False)
    redis_server.stop()
    assert flush(recorder, store) == 0
    assert len(recorder.buffer) == 1
    redis_server.start()
    assert flush(recorder, store) == 1
    assert stats.route_stats(300, now=NOW, store=store)[0].count == 1


def test_a_batch_redis_applies_in_part_is_not_sent_again(redis_url, caplog):
    """Redis keeps what EXEC applied when it refuses a command: a retry would count it twice."""
    from django_perf.monitoring.buffer import Buffer
    from django_perf.monitoring.flusher import flush
    from django_perf.monitoring.recorder import Recorder

    store = RedisStore(redis_url, prefix="t")
    full = make_series(1)
    full.request_bytes = 2**63 - 10
    store.write({Key(NOW - 120, "/full/", "GET", "2xx"): full})
    recorder = Recorder()
    recorder.buffer = Buffer()
    overflowing = make_series(1)
    overflowing.request_bytes = 100  # the stored sum has no room left for it
    recorder.buffer.series = {
        Key(NOW - 120, "/full/", "GET", "2xx"): overflowing,
        Key(NOW - 60, "/good/", "GET", "2xx"): make_series(5),
    }
    with caplog.at_level("ERROR", logger="django_perf.monitoring"):
        for _ in range(3):
            flush(recorder, store)
    assert len(recorder.buffer) == 0  # not put back
    counts = {r.route: r.count for r in stats.route_stats(300, now=NOW, store=store)}
    assert counts["/good/"] == 5  # counted once, not once per flush
    [record] = caplog.records
    assert "refused 1 of a flush's commands" in record.getMessage()


@pytest.mark.parametrize("prefix", ["shop:metrics", "shop[1]:m*t?"])
def test_clear_deletes_the_stores_own_keys_and_nothing_else_under_its_prefix(redis_url, prefix):
    """The admin's reset: a store under a longer prefix and unrelated keys survive it."""
    from django_perf.monitoring.store import SlowRequest

    client = redis.Redis.from_url(redis_url)
    store = RedisStore(redis_url, prefix=prefix)
    staging = RedisStore(redis_url, prefix=f"{prefix}:staging")
    key = Key(NOW - 120, "/a/", "GET", "2xx")
    slow = [SlowRequest(time.time(), "/a/", "GET", 200, "/a/", 900.0)]
    staging.write({key: make_series(3)}, [Sample("h", 1, time.time())], slow)
    for name in (f"{prefix}:session:abc", f"{prefix}:m:latest", f"{prefix}x:total", "shop:total"):
        client.set(name, "x")
    others = set(client.keys())
    store.write({key: make_series(5)}, [Sample("h", 1, time.time())], slow)
    assert len(set(client.keys()) - others) == 6  # minute, hour, totals, samples, slow x2
    store.clear()
    assert store.read_totals() == []
    assert set(client.keys()) == others
    assert [r.series.requests for r in staging.read_totals()] == [3]
    assert len(staging.read_slow(0)) == 1
