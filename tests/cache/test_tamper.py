"""Tampered entries in Redis or the table are misses: deleted, logged, counted, never unpickled."""

from __future__ import annotations

import pickle

import pytest
import redis
from django.test import override_settings

from django_perf.cache.codec import HEADER_SIZE
from django_perf.cache.models import CacheEntry
from django_perf.tally import tallying
from tests.cache.conftest import DATABASE, MEMORY, redis_tier

pytestmark = pytest.mark.django_db

EXPLOITED: list[str] = []


class Exploit:
    """Unpickling this records that it happened: a stand-in for ``os.system(...)``."""

    def __reduce__(self):
        return (EXPLOITED.append, ("code ran",))


@pytest.fixture(autouse=True)
def _no_exploit_ran():
    EXPLOITED.clear()
    yield
    assert EXPLOITED == [], "a tampered value was unpickled"


def forged_payloads(cache, key: str) -> dict[str, bytes]:
    """What an attacker with write access to Redis or the table could store."""
    genuine = cache._store.codec.encode(cache.make_key(key), ["genuine"]).payload
    with override_settings(SECRET_KEY="the attacker's own secret"):
        other_site = cache._store.codec.encode(cache.make_key(key), Exploit()).payload
    return {
        "bare pickle": pickle.dumps(Exploit()),
        "genuine header, exploit body": genuine[:HEADER_SIZE] + pickle.dumps(Exploit()),
        "signed with another SECRET_KEY": other_site,
        "a flipped bit": genuine[:-1] + bytes([genuine[-1] ^ 1]),
    }


@pytest.mark.redis
@pytest.mark.parametrize(
    "kind",
    [
        "bare pickle",
        "genuine header, exploit body",
        "signed with another SECRET_KEY",
        "a flipped bit",
    ],
)
def test_a_tampered_redis_value_is_rejected(make_cache, coherent, redis_url, caplog, kind):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url)))
    full = cache.make_key("k")
    client = redis.Redis.from_url(redis_url)
    client.set(full, forged_payloads(cache, "k")[kind])
    with tallying() as tally:
        assert cache.get("k", "miss") == "miss"
    assert client.exists(full) == 0  # deleted
    stats = cache.stats()["redis"]
    assert (stats["rejected"], stats["misses"], stats["hits"]) == (1, 1, 0)
    assert tally["cache.redis.error"] == 1
    assert "an entry of the redis tier failed on reading ':1:k'" in caplog.text
    assert "never deserialized" in caplog.text
    client.close()


@pytest.mark.redis
def test_a_tampered_redis_value_falls_through_to_the_genuine_l3_row(
    make_cache, coherent, redis_url
):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url), DATABASE))
    cache.set("k", ["genuine"])
    client = redis.Redis.from_url(redis_url)
    full = cache.make_key("k")
    client.set(full, forged_payloads(cache, "k")["genuine header, exploit body"])
    cache._store.memory.flush()
    assert cache.get("k") == ["genuine"]
    assert cache._store.codec.decode(full, client.get(full)).value == ["genuine"]  # refilled
    assert cache.stats()["redis"]["rejected"] == 1
    client.close()


@pytest.mark.redis
def test_get_many_rejects_only_the_tampered_keys(make_cache, coherent, redis_url):
    cache = coherent(make_cache(redis_tier(redis_url)))
    cache.set_many({"a": 1, "b": [2], "c": "three"})
    client = redis.Redis.from_url(redis_url)
    client.set(cache.make_key("b"), pickle.dumps(Exploit()))
    client.set(cache.make_key("a"), b"12abc")  # not an integer, not a payload
    assert cache.get_many(["a", "b", "c"]) == {"c": "three"}
    assert cache.stats()["redis"]["rejected"] == 2
    client.close()


@pytest.mark.parametrize(
    "kind",
    [
        "bare pickle",
        "genuine header, exploit body",
        "signed with another SECRET_KEY",
        "a flipped bit",
    ],
)
def test_a_tampered_table_row_is_rejected(make_cache, caplog, kind):
    cache = make_cache(MEMORY, DATABASE)
    cache.set("k", ["genuine"])
    cache._store.memory.flush()
    CacheEntry.objects.update(value=forged_payloads(cache, "k")[kind])
    with tallying() as tally:
        assert cache.get("k", "miss") == "miss"
    assert not CacheEntry.objects.exists()  # deleted
    assert cache.stats()["database"]["rejected"] == 1
    assert tally["cache.database.error"] == 1
    assert "an entry of the database tier failed on reading ':1:k'" in caplog.text


def test_a_row_moved_to_another_key_is_rejected(make_cache):
    cache = make_cache(DATABASE)
    cache.set("is_admin:alice", True)
    cache.set("is_admin:mallory", False)
    alice = CacheEntry.objects.get(cache_key=cache.make_key("is_admin:alice"))
    CacheEntry.objects.filter(cache_key=cache.make_key("is_admin:mallory")).update(
        value=alice.value
    )
    assert cache.get("is_admin:mallory", "miss") == "miss"
    assert cache.get("is_admin:alice") is True
