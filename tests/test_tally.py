"""Per-request tallies: scoped, isolated between threads and asyncio tasks, free outside a scope."""

import asyncio
import threading

from django_perf.tally import count, current, tallying


def test_counts_land_in_the_open_scope():
    with tallying() as tally:
        count("cache.l1.hit")
        count("cache.l1.hit")
        count("db.time", 0.25)
    assert tally == {"cache.l1.hit": 2, "db.time": 0.25}
    assert tally["never.counted"] == 0


def test_nothing_is_recorded_outside_a_scope():
    count("orphan")
    assert current() is None
    with tallying() as tally:
        pass
    assert tally == {}


def test_nested_scopes_restore_the_outer_one():
    with tallying() as outer:
        count("a")
        with tallying() as inner:
            count("b")
        count("c")
    assert outer == {"a": 1, "c": 1}
    assert inner == {"b": 1}
    assert current() is None


def test_threads_do_not_see_each_others_counts():
    results = {}
    barrier = threading.Barrier(8)

    def request(n):
        with tallying() as tally:
            barrier.wait()
            for _ in range(n):
                count("hit")
            barrier.wait()
        results[n] = tally["hit"]

    threads = [threading.Thread(target=request, args=(n,)) for n in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {n: n for n in range(1, 9)}


def test_asyncio_tasks_do_not_see_each_others_counts():
    async def request(n):
        with tallying() as tally:
            for _ in range(n):
                count("hit")
                await asyncio.sleep(0)
        return tally["hit"]

    async def main():
        return await asyncio.gather(*(request(n) for n in range(1, 21)))

    assert asyncio.run(main()) == list(range(1, 21))
