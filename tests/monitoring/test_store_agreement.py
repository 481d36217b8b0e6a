"""The database and Redis stores read the same minutes for a window and keep them as long."""

import time

import pytest
import redis

from django_perf.monitoring import stats
from django_perf.monitoring.models import MetricSeries
from django_perf.monitoring.series import Key, Series
from django_perf.monitoring.store.database import DatabaseStore
from django_perf.monitoring.store.redis import RedisStore

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


def one_route(requests: int) -> Series:
    series = Series()
    series.buckets[100] = series.requests = requests
    series.weight = float(requests)
    series.duration_us = 100 * requests
    return series


def stores(redis_url, prefix, **retention):
    database = DatabaseStore(**retention)
    return database, RedisStore(redis_url, prefix=prefix, **retention)


def seen(store, seconds, now):
    [route] = stats.route_stats(seconds, now=now, store=store)
    points = stats.time_series(seconds, 60, now=now, store=store)
    return route.count, route.rate, [(p.start, p.count) for p in points if p.count]


def now_away_from_a_minute_edge() -> int:
    """The real time (the stores check retention against it), not near a minute's end."""
    while time.time() % 60 > 55:
        time.sleep(0.5)
    return int(time.time())


def test_a_window_that_starts_mid_minute_reads_the_same_minutes_on_both(redis_url):
    now = now_away_from_a_minute_edge()
    minute = now - now % 60
    since, until = now + 1 - 300, now + 1  # the last five minutes
    first = since - since % 60
    batch = {
        Key(first - 60, "/a/", "GET", "2xx"): one_route(100),  # before the window: never read
        Key(first, "/a/", "GET", "2xx"): one_route(7),  # the minute the window starts in
        Key(minute, "/a/", "GET", "2xx"): one_route(1),  # the current minute
    }
    database, redis_store = stores(redis_url, "agree")
    for store in (database, redis_store):
        store.write(batch)
    database.maintain(now=now, force=True)  # raw rows become minutes
    expected = (8, round(8 / (until - first), 4), [(first, 7), (minute, 1)])
    assert seen(database, 300, now) == seen(redis_store, 300, now) == expected


def test_the_hour_window_at_the_shortest_minute_retention_reads_minutes_on_both(redis_url):
    """With minutes kept an hour, the hour window's first minute is still there."""
    now = now_away_from_a_minute_edge()
    minute = now - now % 60
    batch = {Key(minute - 60 * k, "/a/", "GET", "2xx"): one_route(1) for k in range(0, 60, 5)}
    database, redis_store = stores(redis_url, "agree-h", minute_retention=3600)
    for store in (database, redis_store):
        store.write(batch)
    database.maintain(now=now, force=True)
    count, _, points = seen(database, 3600, now)
    assert (count, len(points)) == (12, 12)  # one point per minute written, no hour lumped in
    assert seen(redis_store, 3600, now) == seen(database, 3600, now)


def test_minutes_and_hours_are_kept_for_their_retention_after_they_end(redis_url):
    """The database store deletes a period when Redis lets it expire: at its end + retention."""
    start = 1_800_000_000  # on an hour boundary
    database, redis_store = stores(redis_url, "agree-r", minute_retention=3600, hour_retention=7200)
    batch = {Key(start + 1800, "/a/", "GET", "2xx"): one_route(1)}
    database.write(batch)
    redis_store.write(batch)
    client = redis.Redis.from_url(redis_url)
    try:  # (EXPIRETIME needs Redis 7; the TTL, read now, says the same within a second)
        expires = {key: time.time() + client.ttl(key) for key in client.keys("agree-r:[mh]:*")}
    finally:
        client.close()
    assert expires == {
        f"agree-r:m:{start + 1800}".encode(): pytest.approx(start + 1800 + 60 + 3600, abs=2),
        f"agree-r:h:{start}".encode(): pytest.approx(start + 3600 + 7200, abs=2),
    }

    def kept():
        rows = MetricSeries.objects.filter(resolution__in=(MetricSeries.MINUTE, MetricSeries.HOUR))
        return sorted(rows.values_list("resolution", flat=True))

    minute_end, hour_end = start + 1860, start + 3600
    database.maintain(now=minute_end + 3600 - 1, force=True)
    assert kept() == [60, 3600]  # the minute and its hour
    database.maintain(now=minute_end + 3600, force=True)
    assert kept() == [3600]
    database.maintain(now=hour_end + 7200 - 1, force=True)
    assert kept() == [3600]
    database.maintain(now=hour_end + 7200, force=True)
    assert kept() == []
