"""pool_stats() for databases, async pools and Redis caches, watched while under load."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.core.cache import caches
from django.db import connections, transaction
from django.test import override_settings

from django_perf.db import (
    PoolStats,
    async_connection,
    async_pool,
    close_async_pools,
    pool_stats,
)
from testproject.blog.models import Author
from tests.support.http import serve

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
postgres_only = pytest.mark.postgres


def stats_of(kind: str, alias: str) -> PoolStats:
    return next(s for s in pool_stats() if s["kind"] == kind and s["alias"] == alias)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


class Holders:
    """Threads that each take a database connection and hold it, in a transaction or idle."""

    def __init__(self, alias: str, count: int, *, in_transaction: bool = True) -> None:
        self.alias = alias
        self.in_transaction = in_transaction
        self.release = threading.Event()
        self.holding = threading.Semaphore(0)
        self.threads = [threading.Thread(target=self._hold) for _ in range(count)]

    def _hold(self) -> None:
        try:
            if self.in_transaction:
                with transaction.atomic(using=self.alias):
                    self._use_and_wait()
            else:
                self._use_and_wait()
        finally:
            connections[self.alias].close()  # back to the pool, or closed

    def _use_and_wait(self) -> None:
        connections[self.alias].cursor().execute("SELECT 1")
        self.holding.release()
        self.release.wait(20)

    def __enter__(self) -> Holders:
        for thread in self.threads:
            thread.start()
        return self

    def wait_holding(self, count: int) -> None:
        for _ in range(count):
            assert self.holding.acquire(timeout=20)

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        for thread in self.threads:
            thread.join(20)


@pytest.mark.django_db
def test_every_database_alias_is_reported():
    aliases = {(s["kind"], s["alias"]) for s in pool_stats()}
    assert ("database", "default") in aliases
    for stats in pool_stats():
        assert stats["size"] == stats["in_use"] + stats["idle"]
        assert set(stats) >= {"size", "in_use", "idle", "waiting", "errors"}
        json.dumps(stats)  # plain data, ready for a metrics store


def test_per_thread_connections_are_counted_without_a_pool():
    # One thread inside a transaction (SQLite's BEGIN IMMEDIATE admits only one
    # at a time) and two holding an idle connection: all open, one in use.
    connections["default"].close()
    before = stats_of("database", "default")
    with Holders("default", 1) as busy, Holders("default", 2, in_transaction=False) as idle:
        busy.wait_holding(1)
        idle.wait_holding(2)
        loaded = stats_of("database", "default")
        assert loaded["pooled"] is False
        assert loaded["size"] == before["size"] + 3
        assert loaded["in_use"] == before["in_use"] + 1
        assert loaded["idle"] == before["idle"] + 2
    wait_until(lambda: stats_of("database", "default")["size"] == before["size"])


@postgres_only
def test_native_pool_stats_change_under_load():
    idle = stats_of("database", "pooled")
    assert idle["pooled"] is True
    assert idle["max_size"] == 3
    with Holders("pooled", 4) as holders:
        holders.wait_holding(3)  # the pool's max_size: the fourth thread waits
        wait_until(lambda: stats_of("database", "pooled")["waiting"] == 1)
        busy = stats_of("database", "pooled")
        assert (busy["size"], busy["in_use"], busy["idle"]) == (3, 3, 0)
        holders.release.set()
        holders.wait_holding(1)  # the waiting thread got a connection once others returned
    wait_until(lambda: stats_of("database", "pooled")["in_use"] == 0)
    after = stats_of("database", "pooled")
    assert after["idle"] == after["size"] >= 1
    assert after["waiting"] == 0
    assert after["details"]["requests_num"] >= 4


@postgres_only
def test_async_pool_runs_raw_sql_and_reports_its_load():
    Author.objects.create(name="a", email="a@x.org", joined_at="2024-01-01T00:00:00Z")

    async def main():
        release = asyncio.Event()
        holding = []

        async def hold():
            async with async_connection() as conn:
                cursor = await conn.execute("SELECT count(*), current_setting('TimeZone')")
                holding.append(await cursor.fetchone())
                await release.wait()

        tasks = [asyncio.create_task(hold()) for _ in range(3)]
        while len(holding) < 3:
            await asyncio.sleep(0.01)
        busy = stats_of("async", "default")
        release.set()
        await asyncio.gather(*tasks)
        after = stats_of("async", "default")
        await close_async_pools()
        return holding, busy, after

    with override_settings(DJANGO_PERF={"ASYNC_POOL": {"min_size": 0, "max_size": 5}}):
        holding, busy, after = async_to_sync(main)()
    assert holding == [(1, "UTC")] * 3  # sees committed rows; Django's time zone
    assert (busy["kind"], busy["pooled"], busy["in_use"], busy["size"]) == ("async", True, 3, 3)
    assert (after["in_use"], after["idle"]) == (0, 3)
    assert not [s for s in pool_stats() if s["kind"] == "async"]  # closed pools are gone


@pytest.mark.django_db
@pytest.mark.sqlite
def test_async_pools_are_for_postgresql():
    async def main():
        async with async_connection():
            pass

    with pytest.raises(ValueError, match="async pools are for PostgreSQL"):
        async_to_sync(main)()


@pytest.mark.redis
@pytest.mark.django_db
def test_redis_cache_pool_stats_change_under_load(redis_url):
    # django-redis keeps one pool per URL and process: a database of our own gets a new one.
    config = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": redis_url.rsplit("/", 1)[0] + "/7",
        "OPTIONS": {"CONNECTION_POOL_KWARGS": {"max_connections": 10}},
    }
    with override_settings(CACHES={"default": {**config, "KEY_PREFIX": "stats"}}):
        caches["default"].set("warm", 1)
        base = stats_of("cache", "default")
        assert base["max_size"] == 10
        started = threading.Semaphore(0)

        def block():
            client = caches["default"].client.get_client()
            started.release()
            client.blpop(["django-perf-test-never"], timeout=1)

        threads = [threading.Thread(target=block) for _ in range(3)]
        for thread in threads:
            thread.start()
        for _ in threads:
            started.acquire(timeout=10)
        wait_until(lambda: stats_of("cache", "default")["in_use"] == 3)
        for thread in threads:
            thread.join(10)
        after = stats_of("cache", "default")
    assert after["in_use"] == 0
    assert after["idle"] >= 3
    assert after["size"] == after["idle"]


@postgres_only
def test_uvicorn_closes_the_async_pool_at_shutdown(server_env):
    with serve("uvicorn", server_env) as server:
        response = httpx.get(f"{server.url}/db/article-count/", timeout=20)
        assert response.json() == {"articles": 0}
        server.stop()
        log = server.log()
    assert "Closed the async database pool for 'default'." in log
    assert "lifespan' protocol appears unsupported" not in log


@postgres_only
def test_opening_an_async_pool_registers_its_close_for_lifespan_shutdown(monkeypatch):
    from django_perf import lifespan

    monkeypatch.setattr(lifespan, "_hooks", [])  # only the hooks this test causes

    async def scenario():
        async with async_connection() as connection:
            await connection.execute("SELECT 1")
        pool = await async_pool()
        assert lifespan._hooks == [close_async_pools]
        assert await lifespan.run_shutdown_hooks() == []
        return pool

    pool = async_to_sync(scenario)()
    assert pool.closed
