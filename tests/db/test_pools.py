"""pool_stats() for databases, async pools and Redis caches, watched while under load."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync, sync_to_async
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
from django_perf.db.async_pools import async_pool_stats
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

    # asyncio.run, not async_to_sync: on asgiref's one-call loops there is no pool.
    with override_settings(DJANGO_PERF={"ASYNC_POOL": {"min_size": 0, "max_size": 5}}):
        holding, busy, after = asyncio.run(main())
    assert holding == [(1, "UTC")] * 3  # sees committed rows; Django's time zone
    assert (busy["kind"], busy["pooled"], busy["in_use"], busy["size"]) == ("async", True, 3, 3)
    assert (after["in_use"], after["idle"]) == (0, 3)
    assert not [s for s in pool_stats() if s["kind"] == "async"]  # closed pools are gone


@postgres_only
def test_async_pool_options_given_keep_the_other_defaults():
    async def sizes() -> tuple[int, int, float]:
        pool = await async_pool()
        try:
            return pool.min_size, pool.max_size, pool.timeout
        finally:
            await close_async_pools()

    with override_settings(DJANGO_PERF={"ASYNC_POOL": {"max_size": 20}}):
        assert asyncio.run(sizes()) == (1, 20, 10.0)  # not psycopg_pool's 4 and 30 s


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


def cache_entries() -> list[PoolStats]:
    return [s for s in pool_stats() if s["kind"] == "cache"]


def redis_clients(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return len(client.client_list()) - 1  # not this one
    finally:
        client.close()


@pytest.fixture
def fresh_stores() -> Any:
    """TieredCache stores (and their invalidation listeners) made by the test are closed."""
    from django_perf.cache.store import reset_stores

    yield
    reset_stores()


def tiered(location: str, *tiers: dict[str, Any]) -> dict[str, Any]:
    return {"BACKEND": "django_perf.cache.TieredCache", "LOCATION": location,
            "OPTIONS": {"TIERS": [{"KIND": "memory", "MAX_TIMEOUT": 30}, *tiers]}}  # fmt: skip


@pytest.mark.django_db
def test_a_tiered_cache_without_redis_is_not_a_redis_cache(fresh_stores):
    with override_settings(CACHES={"default": tiered("stats-memory-only")}):
        caches["default"].set("k", 1)
        assert caches["default"].connection_pools() == []
        assert cache_entries() == []


@pytest.mark.redis
@pytest.mark.django_db
def test_reading_stats_builds_no_tiered_cache_and_opens_nothing(redis_url, fresh_stores):
    # Building a TieredCache with a Redis tier starts its invalidation listener: pool_stats()
    # reads only a backend the process already uses.
    redis_tier = {"KIND": "redis", "LOCATION": redis_url}
    with override_settings(CACHES={"default": tiered("stats-unused", redis_tier)}):
        before = redis_clients(redis_url)
        assert in_thread(cache_entries) == []
        time.sleep(0.5)  # a listener started by it would have connected by now
        assert redis_clients(redis_url) <= before
        caches["default"].set("k", 1)  # the process's store now exists, and its pool
        (entry,) = cache_entries()
        assert (entry["alias"], entry["details"]) == ("default", {"servers": 1})
        assert entry["size"] >= 1
        # Another thread (the monitoring flusher's) sees the same pool.
        (there,) = in_thread(cache_entries)
        assert (there["alias"], there["size"]) == ("default", entry["size"])


@pytest.mark.redis
@pytest.mark.django_db
def test_django_redis_pools_are_seen_from_every_thread(redis_url):
    config = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": redis_url.rsplit("/", 1)[0] + "/8",
        "OPTIONS": {"CONNECTION_POOL_KWARGS": {"max_connections": 5}},
    }
    with override_settings(CACHES={"default": config}):
        caches["default"].set("k", 1)
        (here,) = cache_entries()
        (there,) = in_thread(cache_entries)  # as the monitoring flusher reads them
    assert there["size"] == here["size"] >= 1
    assert there["max_size"] == 5


@pytest.mark.redis
@pytest.mark.django_db
def test_djangos_own_redis_backend_is_not_reported(redis_url):
    # Its pools belong to each thread's backend object: another thread would see none.
    config = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    with override_settings(CACHES={"default": config}):
        caches["default"].set("k", 1)
        assert cache_entries() == []
        assert in_thread(cache_entries) == []


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


def in_thread(function: Callable[[], Any], timeout: float = 15.0) -> Any:
    """``function()`` run in a thread of its own (as sync code runs), which must end in time."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = function()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the call never returned"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def backend_is_gone(pid: int) -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] == 0


async def backend_and_time_zone() -> tuple[int, str]:
    async with async_connection() as connection:
        cursor = await connection.execute("SELECT pg_backend_pid(), current_setting('TimeZone')")
        return await cursor.fetchone()


@postgres_only
def test_async_connection_from_sync_code_returns_and_leaves_nothing_open():
    # A WSGI view or a management command: async_to_sync runs the coroutine on an event
    # loop of its own that ends with the call; a pool left there kept it from ending.
    for _ in range(2):
        pid, time_zone = in_thread(async_to_sync(backend_and_time_zone))
        assert time_zone == "UTC"  # set up like the pool's connections
        assert async_pool_stats() == []
        wait_until(lambda pid=pid: backend_is_gone(pid))  # closed, not idle in a pool


@postgres_only
def test_a_pool_on_a_loop_that_ends_is_closed_with_it():
    # asyncio.run() in sync code, or async_pool() inside async_to_sync: the loop's end
    # closes its pool instead of waiting forever for the pool's background tasks.
    async def pool_and_query() -> tuple[Any, tuple[int, str]]:
        return await async_pool(), await backend_and_time_zone()

    for run in (lambda: asyncio.run(pool_and_query()), async_to_sync(pool_and_query)):
        pool, (_, time_zone) = in_thread(run)
        assert time_zone == "UTC"
        assert pool.closed
        assert async_pool_stats() == []


@postgres_only
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_pool_on_a_loop_closed_without_asyncio_run_is_dropped():
    # run_until_complete() then close(): nothing cancels the loop's tasks, so the pool
    # cannot be closed at the loop's end. The next look at the pools drops it (the
    # pool's own tasks die with the loop; their "destroyed but pending" noise is theirs).
    def run() -> int:
        loop = asyncio.new_event_loop()
        try:
            pid, _ = loop.run_until_complete(backend_and_time_zone())
        finally:
            loop.close()
        return pid

    pid = in_thread(run)
    assert async_pool_stats() == []
    wait_until(lambda: backend_is_gone(pid))  # its idle connection was ended


@postgres_only
def test_a_long_lived_loop_keeps_its_pool_across_requests():
    # A server's loop (uvicorn): every request borrows from the same pool, also a sync
    # view's async_to_sync, which asgiref runs on the server's loop.
    loop = asyncio.new_event_loop()
    server = threading.Thread(target=loop.run_forever, daemon=True)
    server.start()

    def request(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(15)

    async def async_view() -> Any:
        assert (await backend_and_time_zone())[1] == "UTC"
        return await async_pool()

    async def sync_view() -> Any:
        assert (await sync_to_async(async_to_sync(backend_and_time_zone))())[1] == "UTC"
        return await async_pool()

    try:
        pool = request(async_view())
        assert request(async_view()) is pool
        assert request(sync_view()) is pool
        assert not pool.closed
        assert pool.get_stats()["requests_num"] == 3  # every request borrowed from it
        assert [s["alias"] for s in async_pool_stats()] == ["default"]
        request(close_async_pools())
        assert pool.closed
    finally:
        loop.call_soon_threadsafe(loop.stop)
        server.join(15)
        loop.close()
