"""Counters: ``stats()`` per tier, and the per-request tally names monitoring reads."""

from __future__ import annotations

import pytest
import redis

from django_perf.tally import tallying
from tests.cache.conftest import DATABASE, MEMORY, redis_tier

pytestmark = pytest.mark.django_db


@pytest.mark.redis
def test_a_read_through_every_tier_is_counted_per_tier(make_cache, coherent, redis_url):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url), DATABASE))
    cache.set("k", [1])
    client = redis.Redis.from_url(redis_url)
    client.delete(cache.make_key("k"))
    cache._store.memory.flush()
    with tallying() as tally:
        assert cache.get("k") == [1]  # L1 miss, L2 miss, L3 hit, promoted to L2 and L1
        assert cache.get("k") == [1]  # L1 hit
        assert cache.get("absent") is None  # a miss everywhere
    assert dict(tally) == {
        "cache.memory.miss": 2,
        "cache.memory.hit": 1,
        "cache.redis.miss": 2,
        "cache.database.hit": 1,
        "cache.database.miss": 1,
    }
    stats = cache.stats()
    assert list(stats) == ["memory", "redis", "database", "coherence"]
    assert stats["memory"] | {"bytes": 0} == {
        "hits": 1,
        "misses": 2,
        "errors": 0,
        "promotions": 1,
        "evictions": 0,
        "expirations": 0,
        "entries": 1,
        "bytes": 0,
        "max_entries": 10_000,
        "max_bytes": 64 * 2**20,
        "coherent": True,
    }
    assert stats["memory"]["bytes"] > 0
    assert stats["redis"] == {
        "hits": 0,
        "misses": 2,
        "errors": 0,
        "rejected": 0,
        "skipped": 0,
        "promotions": 1,
        "evictions": 0,
        "expirations": 0,
        "breaker": "closed",
        "breaker_opened": 0,
    }
    assert (stats["database"]["hits"], stats["database"]["misses"]) == (1, 1)
    assert stats["coherence"]["state"] == "up"
    client.close()


def test_l1_evictions_entries_and_bytes(make_cache):
    cache = make_cache({"KIND": "memory", "MAX_ENTRIES": 5})
    for i in range(8):
        cache.set(f"k{i}", "x" * 100)
    stats = cache.stats()["memory"]
    assert (stats["entries"], stats["evictions"]) == (5, 3)
    assert 5 * 100 < stats["bytes"] < 5 * 1000


def test_a_cache_without_redis_reports_no_channel(make_cache):
    stats = make_cache(MEMORY, DATABASE).stats()
    assert list(stats) == ["memory", "database"]
    assert make_cache(MEMORY).wait_for_coherence(0) is True


@pytest.mark.redis
def test_the_redis_tiers_pools_show_in_django_perf_pool_stats(redis_url):
    from django.core.cache import caches
    from django.test import override_settings

    from django_perf.db import pool_stats

    tiers = [MEMORY, redis_tier(redis_url)]
    config = {"BACKEND": "django_perf.cache.TieredCache", "OPTIONS": {"TIERS": tiers}}
    with override_settings(CACHES={"default": config}):
        cache = caches["default"]
        cache.set("k", 1)
        pools = cache.connection_pools()
        assert len(pools) == 1
        assert pools[0] is cache._store.redis.writer().connection_pool
        (stats,) = [s for s in pool_stats() if s["kind"] == "cache"]
        assert stats["alias"] == "default"
        assert stats["size"] >= 1


def test_a_cache_without_redis_offers_no_pools(make_cache):
    assert make_cache(MEMORY, DATABASE).connection_pools() == []
