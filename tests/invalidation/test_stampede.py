"""Stampede protection: one computation per cold key across threads, asyncio tasks and processes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis as redis_py
from django.conf import settings

from tests.invalidation import functions
from tests.invalidation.conftest import tiers_for
from tests.invalidation.worker import Worker, crowd

pytestmark = pytest.mark.redis  # Redis counts the calls of every process


@pytest.fixture(autouse=True)
def _counter(redis_url, monkeypatch) -> None:
    monkeypatch.setenv("DJANGO_PERF_TEST_COUNTER_URL", redis_url)
    monkeypatch.setenv("DJANGO_PERF_TEST_SLOW", "0.5")


StartWorkers = Callable[..., list[Worker]]


@pytest.fixture
def start_workers(redis_url) -> Iterator[StartWorkers]:
    started: list[Worker] = []

    def start(kinds: tuple[str, ...], location: str, count: int, **env: str) -> list[Worker]:
        config = {
            "location": location,
            "tiers": tiers_for(kinds, redis_url),
            "secret": settings.SECRET_KEY,
        }
        workers = [Worker(config, ready=False, **env) for _ in range(count)]
        started.extend(workers)
        for worker in workers:  # they start side by side
            worker.wait_ready()
        return workers

    yield start
    for worker in started:
        worker.close()


@pytest.mark.parametrize("name", ["report", "summary"])
def test_threads_and_tasks_of_one_process_compute_a_cold_key_once(configure_cache, name):
    configure_cache("memory")
    outcome = crowd(getattr(functions, name), [1], 50, 50, time.time() + 0.2)
    assert outcome["errors"] == []
    assert outcome["results"] == 100
    assert len(outcome["distinct"]) == 1
    assert functions.calls(name) == 1


def everyone(
    workers: list[Worker], name: str, per_worker: int, here: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every worker and this process call ``name(1)`` at the same moment."""
    start_at = time.time() + 1.0
    for worker in workers:
        worker.send(
            "crowd", fn=name, args=[1], threads=per_worker, tasks=per_worker, start_at=start_at
        )
    mine = crowd(getattr(functions, name), [1], here, here, start_at)
    return [worker.reply(60) for worker in workers], mine


def test_four_processes_and_a_hundred_callers_compute_a_cold_key_once(
    configure_cache, start_workers
):
    kinds = ("memory", "redis")
    cache = configure_cache(*kinds, location="stampede-redis")
    workers = start_workers(kinds, "stampede-redis", 4)

    theirs, mine = everyone(workers, "report", per_worker=10, here=50)

    assert functions.calls("report") == 1
    outcomes = [*theirs, mine]
    assert [o["errors"] for o in outcomes] == [[]] * 5
    assert sum(o["results"] for o in outcomes) == 4 * 20 + 100
    assert len({value for o in outcomes for value in o["distinct"]}) == 1  # one computation's
    assert cache.get(functions.report.key(1)) is not None


def test_without_redis_each_process_computes_once(configure_cache, start_workers):
    kinds = ("memory",)
    configure_cache(*kinds, location="stampede-memory")
    workers = start_workers(kinds, "stampede-memory", 4)

    theirs, mine = everyone(workers, "summary", per_worker=10, here=50)

    assert functions.calls("summary") == 5  # four workers and this process
    for outcome in [*theirs, mine]:
        assert outcome["errors"] == []
        assert len(outcome["distinct"]) == 1


def test_waiters_get_the_exception_and_nothing_is_cached(configure_cache):
    configure_cache("memory")
    # Threads only: tasks would call this sync function through asyncio.to_thread, whose
    # few threads would reach it one batch at a time, after the failure (nothing cached).
    outcome = crowd(functions.failing, [1], 40, 0, time.time() + 0.2)
    assert outcome["results"] == 0
    assert outcome["errors"] == ["ValueError: no summary for 1"] * 40
    assert functions.calls("failing") == 1
    with pytest.raises(ValueError, match="no summary for 1"):
        functions.failing(1)
    assert functions.calls("failing") == 2  # nothing was cached


def test_other_processes_wait_and_get_the_value_or_the_exception(configure_cache, start_workers):
    kinds = ("memory", "redis")
    configure_cache(*kinds, location="stampede-wait")
    first, second = start_workers(kinds, "stampede-wait", 2, DJANGO_PERF_TEST_SLOW="1.0")

    first.send("call", fn="summary", args=[3])
    time.sleep(0.3)  # the first process holds the lease and computes
    second.send("call", fn="summary", args=[3])
    computed = first.reply()
    waited = second.reply()
    assert computed == waited == {"x": 3, "pid": first.pid}
    assert functions.calls("summary") == 1

    first.send("call", fn="failing", args=[3])
    time.sleep(0.3)
    second.send("call", fn="failing", args=[3])
    with pytest.raises(RuntimeError, match="ValueError: no summary for 3"):
        first.reply()
    with pytest.raises(RuntimeError, match="ValueError: no summary for 3"):
        second.reply()  # raised there too, without running the function again
    assert functions.calls("failing") == 1


def test_when_the_lock_holder_dies_a_waiter_takes_over_within_the_lease(
    configure_cache, start_workers, redis_url
):
    kinds = ("memory", "redis")
    cache = configure_cache(*kinds, location="stampede-kill")
    (holder,) = start_workers(kinds, "stampede-kill", 1, DJANGO_PERF_TEST_SLOW="60")
    (waiter,) = start_workers(kinds, "stampede-kill", 1, DJANGO_PERF_TEST_SLOW="0")
    lock = cache.make_key(functions.summary.key(5)) + "|lock"
    client = redis_py.Redis.from_url(redis_url)
    try:
        holder.send("call", fn="summary", args=[5])
        deadline = time.monotonic() + 10
        while not client.exists(lock):
            assert time.monotonic() < deadline, "the holder never took the lock"
            time.sleep(0.01)
        waiter.send("call", fn="summary", args=[5])
        time.sleep(functions.LEASE)  # the holder renews its lease meanwhile
        assert client.exists(lock)
        assert functions.calls("summary") == 1  # the waiter is still waiting

        killed_at = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)
        result = waiter.reply(30)
        took_over_after = time.monotonic() - killed_at
    finally:
        client.close()

    assert result == {"x": 5, "pid": waiter.pid}
    assert functions.calls("summary") == 2
    assert took_over_after <= functions.LEASE + 0.5, took_over_after
