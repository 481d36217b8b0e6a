"""Cached functions shared by the test process and worker processes (same names, same keys).

Each call counts itself in Redis (``calls:<name>``), so a test can tell how
many times a function ran across every process. ``DJANGO_PERF_TEST_SLOW``
sets how long the slow functions take in a process (seconds).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from django_perf.cache import cache_result

LEASE = 1.5  # seconds: short, so that a dead holder's lease runs out quickly


def slow() -> float:
    return float(os.environ.get("DJANGO_PERF_TEST_SLOW", "0.5"))


def counter() -> Any:
    import redis

    return redis.Redis.from_url(os.environ["DJANGO_PERF_TEST_COUNTER_URL"])


def count(name: str) -> int:
    client = counter()
    try:
        return client.incr(f"calls:{name}")
    finally:
        client.close()


def calls(name: str) -> int:
    client = counter()
    try:
        return int(client.get(f"calls:{name}") or 0)
    finally:
        client.close()


@cache_result(ttl=60, lease=LEASE)
async def report(x: int) -> dict[str, Any]:
    """An async service call: slow, and the same for every caller."""
    count("report")
    await asyncio.sleep(slow())
    return {"x": x, "pid": os.getpid()}


@cache_result(ttl=60, lease=LEASE)
def summary(x: int) -> dict[str, Any]:
    count("summary")
    time.sleep(slow())
    return {"x": x, "pid": os.getpid()}


@cache_result(ttl=60, lease=LEASE)
def failing(x: int) -> None:
    count("failing")
    time.sleep(slow())
    raise ValueError(f"no summary for {x}")
