"""A lower-tier hit is copied upward with the lifetime it has left (capped per tier), never anew."""

from __future__ import annotations

import time

import pytest
import redis

from django_perf.cache.models import CacheEntry
from tests.cache.conftest import DATABASE, MEMORY, redis_tier

pytestmark = pytest.mark.django_db


def age_row(cache, key: str, seconds_left: float) -> float:
    """Make the L3 row of ``key`` expire in ``seconds_left`` (as if time had passed)."""
    expires_at = time.time() + seconds_left
    full = cache.make_key(key)
    updated = CacheEntry.objects.filter(key_hash=cache._store.database.key_hash(full)).update(
        expires_at=expires_at
    )
    assert updated == 1
    return expires_at


def test_an_l3_hit_is_promoted_into_l1_with_its_remaining_lifetime(make_cache):
    cache = make_cache(MEMORY, DATABASE)
    cache.set("k", {"v": 1}, timeout=100)
    expires_at = age_row(cache, "k", 4)
    cache._store.memory.flush()
    assert cache.get("k") == {"v": 1}
    promoted = cache._store.memory.expires_at(cache.make_key("k"))
    assert promoted == pytest.approx(expires_at, abs=0.01)  # not now+30, not now+100
    assert cache.stats()["memory"]["promotions"] == 1
    assert cache.stats()["database"]["hits"] == 1


def test_an_expired_lower_entry_is_not_promoted(make_cache):
    cache = make_cache(MEMORY, DATABASE)
    cache.set("k", "v", timeout=100)
    age_row(cache, "k", -1)
    cache._store.memory.flush()
    assert cache.get("k") is None
    assert cache.stats()["memory"]["entries"] == 0


def test_the_l1_cap_limits_what_is_promoted_and_written(make_cache):
    cache = make_cache({"KIND": "memory", "MAX_TIMEOUT": 5}, DATABASE)
    cache.set("forever", "v", timeout=None)
    assert cache._store.memory.expires_at(cache.make_key("forever")) <= time.time() + 5
    cache._store.memory.flush()
    assert cache.get("forever") == "v"
    assert cache._store.memory.expires_at(cache.make_key("forever")) <= time.time() + 5
    row = CacheEntry.objects.get()
    assert row.expires_at is None  # L3 keeps it forever


def test_get_many_promotes_with_each_remaining_lifetime(make_cache):
    cache = make_cache(MEMORY, DATABASE)
    cache.set_many({"a": 1, "b": [2]}, timeout=100)
    a_expires = age_row(cache, "a", 3)
    b_expires = age_row(cache, "b", 7)
    cache._store.memory.flush()
    assert cache.get_many(["a", "b"]) == {"a": 1, "b": [2]}
    memory = cache._store.memory
    assert memory.expires_at(cache.make_key("a")) == pytest.approx(a_expires, abs=0.01)
    assert memory.expires_at(cache.make_key("b")) == pytest.approx(b_expires, abs=0.01)


@pytest.mark.redis
def test_an_l2_hit_is_promoted_with_the_expiry_redis_has_left(make_cache, coherent, redis_url):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url)))
    cache.set("k", ["v"], timeout=100)
    client = redis.Redis.from_url(redis_url)
    full = cache.make_key("k")
    # As if 96 s had passed: Redis keeps 4 s, and touch() rewrites the payload's expiry.
    cache.touch("k", 4)
    cache._store.memory.flush()
    assert cache.get("k") == ["v"]
    promoted = cache._store.memory.expires_at(full)
    assert promoted - time.time() == pytest.approx(4, abs=1)  # not 30 (L1 cap), not 100
    assert client.pttl(full) / 1000 == pytest.approx(4, abs=1)
    client.close()


@pytest.mark.redis
def test_an_integer_in_redis_is_promoted_with_its_ttl(make_cache, coherent, redis_url):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url)))
    cache.set("n", 5, timeout=6)
    client = redis.Redis.from_url(redis_url)
    assert client.get(cache.make_key("n")) == b"5"  # a plain number, so INCRBY works
    cache._store.memory.flush()
    assert cache.get("n") == 5
    promoted = cache._store.memory.expires_at(cache.make_key("n"))
    assert promoted - time.time() == pytest.approx(6, abs=1)
    client.close()


@pytest.mark.redis
def test_an_l3_hit_fills_l2_and_l1_with_what_l3_has_left(make_cache, coherent, redis_url):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url), DATABASE))
    cache.set("k", {"deep": True}, timeout=100)
    expires_at = age_row(cache, "k", 5)
    client = redis.Redis.from_url(redis_url)
    full = cache.make_key("k")
    client.delete(full)  # e.g. Redis restarted or evicted it
    cache._store.memory.flush()
    assert cache.get("k") == {"deep": True}
    assert client.pttl(full) / 1000 == pytest.approx(5, abs=1)
    assert cache._store.memory.expires_at(full) == pytest.approx(expires_at, abs=0.01)
    stats = cache.stats()
    assert (stats["redis"]["misses"], stats["database"]["hits"]) == (1, 1)
    assert (stats["redis"]["promotions"], stats["memory"]["promotions"]) == (1, 1)
    # The next process-wide read is an L2 hit with the same lifetime.
    cache._store.memory.flush()
    assert cache.get("k") == {"deep": True}
    assert cache.stats()["redis"]["hits"] == 1
    client.close()


@pytest.mark.redis
def test_a_redis_lifetime_cap_keeps_redis_small_and_l3_refills_it(make_cache, coherent, redis_url):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url, MAX_TIMEOUT=0.5), DATABASE))
    cache.set("k", "v", timeout=None)
    client = redis.Redis.from_url(redis_url)
    full = cache.make_key("k")
    assert 0 < client.pttl(full) <= 500
    time.sleep(0.6)
    assert client.get(full) is None
    cache._store.memory.flush()
    assert cache.get("k") == "v"  # from L3, which keeps it forever
    assert 0 < client.pttl(full) <= 500  # refilled, capped again
    client.close()


@pytest.mark.redis
def test_incr_of_a_value_l2_lost_continues_from_l3(make_cache, coherent, redis_url):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url), DATABASE))
    cache.set("n", 10)
    client = redis.Redis.from_url(redis_url)
    client.delete(cache.make_key("n"))
    assert cache.incr("n") == 11
    assert client.get(cache.make_key("n")) == b"11"
    cache._store.memory.flush()
    client.delete(cache.make_key("n"))
    assert cache.get("n") == 11  # L3 got the same delta
    client.close()


@pytest.mark.redis
def test_add_honours_a_live_value_only_l3_still_holds(make_cache, coherent, redis_url):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url), DATABASE))
    cache.set("k", "original")
    client = redis.Redis.from_url(redis_url)
    client.delete(cache.make_key("k"))
    cache._store.memory.flush()
    assert cache.add("k", "intruder") is False
    assert cache.get("k") == "original"
    cache._store.memory.flush()
    assert cache.get("k") == "original"  # Redis holds the original again
    client.close()
