"""A miss after invalidate() never gets the old value from a background refresh that failed."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from django_perf.cache import cache_result

LAYOUTS = [
    pytest.param(("memory",), id="memory"),
    pytest.param(("memory", "redis"), id="memory+redis", marks=pytest.mark.redis),
]
STATE: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _state() -> Any:
    STATE.update(value="v1", fail=False, started=threading.Event(), gate=threading.Event())
    yield
    STATE["gate"].set()


def failing_once() -> bool:
    """True for the call that fails (the refresh), which waits for the gate first."""
    if not STATE["fail"]:
        return False
    STATE["fail"] = False
    STATE["started"].set()
    return True


@cache_result(ttl=0.3, early="stale", stale_ttl=60)  # stale_on_error is False
def price(x: int) -> str:
    if failing_once():
        STATE["gate"].wait(5)
        raise RuntimeError("service down")
    return STATE["value"]


@cache_result(ttl=0.3, early="stale", stale_ttl=60)
async def aprice(x: int) -> str:
    if failing_once():
        await asyncio.to_thread(STATE["gate"].wait, 5)
        raise RuntimeError("service down")
    return STATE["value"]


@pytest.mark.parametrize("kinds", LAYOUTS)
def test_a_miss_after_invalidate_does_not_join_a_failing_refresh(configure_cache, kinds):
    configure_cache(*kinds)
    assert price(1) == "v1"
    time.sleep(0.35)  # stale
    STATE["fail"] = True
    assert price(1) == "v1"  # served stale; the refresh starts and blocks
    assert STATE["started"].wait(2)
    STATE["value"] = "v2"
    assert price.invalidate(1)
    threading.Timer(0.2, STATE["gate"].set).start()  # the refresh then fails
    assert price(1) == "v2"


@pytest.mark.parametrize("kinds", LAYOUTS)
def test_an_async_miss_after_invalidate_does_not_join_a_failing_refresh(configure_cache, kinds):
    configure_cache(*kinds)

    async def scenario() -> None:
        assert await aprice(1) == "v1"
        await asyncio.sleep(0.35)
        STATE["fail"] = True
        assert await aprice(1) == "v1"  # served stale; the refresh task starts
        while not STATE["started"].is_set():
            await asyncio.sleep(0.01)
        STATE["value"] = "v2"
        assert await aprice.invalidate(1)
        asyncio.get_running_loop().call_later(0.2, STATE["gate"].set)
        assert await aprice(1) == "v2"

    asyncio.run(scenario())
