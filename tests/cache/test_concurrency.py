"""Threads and asyncio tasks hammering the same keys: no errors, no torn values, exact counters."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from django_perf.cache import TieredCache
from tests.cache.conftest import DATABASE, MEMORY, redis_tier

KEYS = [f"k{i}" for i in range(4)]
THREADS = 8
ROUNDS = 150

LAYOUTS = [
    pytest.param(("memory",), id="memory"),
    pytest.param(("memory", "database"), id="memory+database"),
    pytest.param(("memory", "redis"), id="memory+redis", marks=pytest.mark.redis),
    pytest.param(("memory", "redis", "database"), id="all", marks=pytest.mark.redis),
]


def value(writer: int, seq: int) -> dict[str, Any]:
    """A value that shows whether it arrived whole: its parts must agree with each other."""
    return {"writer": writer, "seq": seq, "body": [writer * 1000 + seq] * 40, "sum": writer + seq}


def whole(found: Any) -> bool:
    if found is None:
        return True
    w, s = found["writer"], found["seq"]
    return found["sum"] == w + s and found["body"] == [w * 1000 + s] * 40


@pytest.fixture(params=LAYOUTS)
def params(request, transactional_db) -> dict[str, Any]:
    tiers = []
    for kind in request.param:
        if kind == "memory":
            tiers.append(MEMORY)
        elif kind == "database":
            tiers.append(DATABASE)
        else:
            tiers.append(redis_tier(request.getfixturevalue("redis_url")))
    return {"OPTIONS": {"TIERS": tiers, "STRICT": True}}


@pytest.fixture
def location(make_cache, params, coherent, sqlite_wal) -> str:
    """A store for the test; every thread builds its own cache instance on it, as Django does."""
    cache = coherent(make_cache(*params["OPTIONS"]["TIERS"], STRICT=True))
    cache.set("counter", 0, timeout=None)
    return cache._store.config.name


@pytest.fixture
def sqlite_wal(transactional_db) -> Iterator[None]:
    """SQLite in WAL mode, as the docs advise for concurrent writers."""
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")
    yield
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=DELETE")


def hammer(cache: TieredCache, writer: int, rng: random.Random, torn: list[Any]) -> None:
    for seq in range(ROUNDS):
        key = rng.choice(KEYS)
        op = rng.random()
        if op < 0.35:
            found = cache.get(key)
            if not whole(found):
                torn.append(found)
        elif op < 0.6:
            cache.set(key, value(writer, seq))
        elif op < 0.7:
            cache.add(key, value(writer, seq))
        elif op < 0.8:
            cache.delete(key)
        elif op < 0.9:
            for found in cache.get_many(KEYS).values():
                if not whole(found):
                    torn.append(found)
        else:
            cache.set_many({k: value(writer, seq) for k in KEYS[:2]})
        cache.incr("counter")


def sqlite_tuned() -> None:
    """This thread's SQLite connection as the docs advise: no fsync per commit in WAL mode."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous=NORMAL")


def test_threads_hammering_the_same_keys(params, location):
    errors: list[BaseException] = []
    torn: list[Any] = []
    start = threading.Barrier(THREADS)

    def worker(writer: int) -> None:
        cache = TieredCache(location, params)
        try:
            sqlite_tuned()
            start.wait()
            hammer(cache, writer, random.Random(writer), torn)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert torn == []
    cache = TieredCache(location, params)
    assert cache.get("counter") == THREADS * ROUNDS  # incr is atomic
    assert all(whole(cache.get(key)) for key in KEYS)


def test_asyncio_tasks_hammering_the_same_keys(params, location):
    cache = TieredCache(location, params)
    torn: list[Any] = []

    async def task(writer: int) -> None:
        rng = random.Random(writer)
        for seq in range(ROUNDS // 5):
            key = rng.choice(KEYS)
            op = rng.random()
            if op < 0.4:
                found = await cache.aget(key)
                if not whole(found):
                    torn.append(found)
            elif op < 0.7:
                await cache.aset(key, value(writer, seq))
            elif op < 0.8:
                await cache.adelete(key)
            else:
                for found in (await cache.aget_many(KEYS)).values():
                    if not whole(found):
                        torn.append(found)
            await cache.aincr("counter")

    async def main() -> None:
        await asyncio.gather(*(task(n) for n in range(20)))

    async_to_sync(main)()
    assert torn == []
    assert cache.get("counter") == 20 * (ROUNDS // 5)


def test_concurrent_adds_have_exactly_one_winner(params, location):
    winners: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(writer: int) -> None:
        cache = TieredCache(location, params)
        try:
            sqlite_tuned()
            start.wait()
            for round_ in range(20):
                if cache.add(f"lock:{round_}", writer):
                    winners.append(round_)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(winners) == list(range(20))
