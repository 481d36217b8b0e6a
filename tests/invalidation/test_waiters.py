"""Callers of one key in a process wait for their leader, even one slower than ``wait``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from django_perf.cache import cache_result
from django_perf.cache.locks import Lease

CALLS: list[str] = []
HUNG = threading.Event()  # set: the hanging calls return
HANGING = {"left": 0}  # how many of the next calls hang


def record(name: str) -> None:
    CALLS.append(name)


@pytest.fixture(autouse=True)
def _reset() -> Any:
    CALLS.clear()
    HUNG.clear()
    HANGING["left"] = 0
    yield
    HUNG.set()  # let a hung call finish


@cache_result(ttl=60, wait=0.2)
def slow_report(x: int) -> int:
    """Three times slower than ``wait``."""
    record("slow_report")
    time.sleep(0.6)
    return x


@cache_result(ttl=60, wait=0.2)
async def aslow_report(x: int) -> int:
    record("aslow_report")
    await asyncio.sleep(0.6)
    return x


@cache_result(ttl=60, wait=0.05)  # presumed stuck after 0.5 s
def flaky(x: int) -> str:
    record("flaky")
    if HANGING["left"] > 0:
        HANGING["left"] -= 1
        HUNG.wait(10)
        return "late"
    return "value"


@cache_result(ttl=60, wait=0.05)
def times_out(x: int) -> None:
    record("times_out")
    time.sleep(0.2)
    raise TimeoutError("the service did not answer")


@cache_result(ttl=60, wait=1e9)  # "for ever": 10x of it is past threading.TIMEOUT_MAX
def patient(x: int) -> int:
    record("patient")
    time.sleep(0.3)
    return x


def in_threads(fn: Callable[[], Any], count: int) -> list[Any]:
    """``fn()`` in ``count`` threads at once: each one's value or exception."""
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            results[index] = fn()
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_threads_wait_for_a_leader_slower_than_wait(configure_cache):
    configure_cache("memory")
    assert in_threads(lambda: slow_report(1), 20) == [1] * 20
    assert CALLS == ["slow_report"]


def test_a_wait_longer_than_a_thread_can_wait_still_waits(configure_cache):
    configure_cache("memory")
    assert in_threads(lambda: patient(1), 3) == [1] * 3
    assert CALLS == ["patient"]


def test_tasks_wait_for_a_leader_slower_than_wait(configure_cache):
    configure_cache("memory")

    async def crowd() -> list[Any]:
        return await asyncio.gather(*(aslow_report(1) for _ in range(20)))

    assert asyncio.run(crowd()) == [1] * 20
    assert CALLS == ["aslow_report"]


@pytest.mark.redis
def test_threads_wait_while_their_leader_waits_out_another_process(configure_cache):
    cache = configure_cache("memory", "redis")
    lock = cache.make_key(slow_report.key(2)) + "|lock"
    other = Lease(cache._store.redis.writer(), lock, 5)  # another process computes the key
    assert other.acquire()
    timer = threading.Timer(0.5, other.release)  # for longer than wait
    timer.start()
    try:
        assert in_threads(lambda: slow_report(2), 20) == [2] * 20
    finally:
        timer.join()
    assert CALLS == ["slow_report"]  # the leader's own, after its wait for the lock


def test_one_waiter_takes_over_from_a_stuck_leader(configure_cache, caplog):
    configure_cache("memory")
    HANGING["left"] = 1
    leader = threading.Thread(target=flaky, args=(1,))
    leader.start()
    while not CALLS:  # the leader is in the function
        time.sleep(0.01)
    started = time.monotonic()
    assert in_threads(lambda: flaky(1), 10) == ["value"] * 10
    assert 0.45 < time.monotonic() - started < 2
    assert CALLS == ["flaky", "flaky"]  # the stuck leader and one waiter, not ten
    assert "has not finished in 0.5 s" in caplog.text
    HUNG.set()
    leader.join(5)


def test_a_waiter_outlasted_by_two_stuck_leaders_raises_timeout_error(configure_cache):
    configure_cache("memory")
    HANGING["left"] = 2
    leader = threading.Thread(target=flaky, args=(2,))
    leader.start()
    while not CALLS:
        time.sleep(0.01)
    gave_up: list[float] = []
    started = time.monotonic()

    def call() -> Any:
        try:
            return flaky(2)
        except TimeoutError:
            gave_up.append(time.monotonic() - started)
            raise

    threading.Timer(1.5, HUNG.set).start()  # the stuck calls return at last
    results = in_threads(call, 5)
    assert CALLS == ["flaky", "flaky"]
    # One waiter took over and was stuck too; the others gave up after two leaders.
    assert (
        sorted(map(str, results))
        == ["late"] + [f"waited 0.5 s for another caller computing {flaky.key(2)!r}"] * 4
    )
    assert all(0.95 < seconds < 1.45 for seconds in gave_up)
    leader.join(5)


def test_a_timeout_error_of_the_function_is_not_taken_for_a_stuck_leader(configure_cache):
    configure_cache("memory")
    results = in_threads(lambda: times_out(1), 10)
    assert all(isinstance(result, TimeoutError) for result in results)
    assert {str(result) for result in results} == {"the service did not answer"}
    assert CALLS == ["times_out"]


def test_one_waiter_takes_over_from_a_cancelled_leader(configure_cache):
    configure_cache("memory")

    async def crowd() -> list[Any]:
        leader = asyncio.ensure_future(aslow_report(3))
        await asyncio.sleep(0.05)  # it leads
        waiters = [asyncio.ensure_future(aslow_report(3)) for _ in range(10)]
        await asyncio.sleep(0.05)
        leader.cancel()
        return await asyncio.gather(*waiters)

    assert asyncio.run(crowd()) == [3] * 10
    assert CALLS == ["aslow_report", "aslow_report"]
