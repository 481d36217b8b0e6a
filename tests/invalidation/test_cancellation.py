"""A cancelled async caller (request timeout, client gone) leaves no Redis lock behind."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from django_perf.cache import cache_result
from django_perf.cache.decorator import _leasing_in_thread
from django_perf.cache.locks import HOLD, Lease

pytestmark = pytest.mark.redis

CALLS: list[int] = []


@cache_result(ttl=60, lease=0.6, wait=2)
async def rates(x: int) -> dict[str, int]:
    CALLS.append(x)
    return {"x": x}


def test_a_caller_cancelled_while_waiting_for_the_lock_never_takes_it(configure_cache):
    cache = configure_cache("memory", "redis")
    client = cache._store.redis.writer()
    lock = cache.make_key(rates.key(1)) + "|lock"

    async def scenario() -> None:
        other = Lease(client, lock, 5)  # another process computes this key
        assert other.acquire()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(rates(1), 0.2)
        other.release()  # ... and stops without a value
        await asyncio.sleep(0.3)  # the abandoned wait would take the lock by now
        assert not client.exists(lock)
        started = time.monotonic()
        assert await rates(1) == {"x": 1}
        assert time.monotonic() - started < 1  # not the full wait behind a leaked lock
        assert not client.exists(lock)

    CALLS.clear()
    asyncio.run(scenario())
    assert CALLS == [1]


@pytest.mark.parametrize("shape", ["outcome", "lease"])
def test_a_lease_taken_just_as_the_caller_is_cancelled_is_released(configure_cache, shape):
    cache = configure_cache("memory", "redis")
    client = cache._store.redis.writer()
    lock = cache.make_key(f"cancelled-{shape}") + "|lock"
    taken = threading.Event()

    def take(stop: threading.Event) -> Any:  # already past its last look at ``stop``
        time.sleep(0.2)
        lease = Lease(client, lock, 0.6)
        assert lease.acquire()
        taken.set()
        return (HOLD, lease) if shape == "outcome" else lease

    async def scenario() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_leasing_in_thread(take), 0.05)

    asyncio.run(scenario())
    assert taken.wait(2)
    deadline = time.monotonic() + 0.5  # well under the lease: released, not expired
    while client.exists(lock) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not client.exists(lock)
    time.sleep(0.5)  # and no renewal brings it back
    assert not client.exists(lock)
