"""Races inside one process: a read overlapping a write never puts the old value back in L1."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from django_perf.cache import TieredCache
from tests.cache.conftest import DATABASE, MEMORY, redis_tier

WAIT = 5


def read_during_write(cache: TieredCache, tier: Any, write: Callable[[], Any]) -> Any:
    """Run ``write`` and, while it is inside ``tier``, a ``get("k")`` that reads ``tier``
    before the write lands there and promotes what it read only after the write finished.
    """
    key = cache.make_key("k")
    cache._store.memory.flush()  # the read must go below L1
    writing, read, written = threading.Event(), threading.Event(), threading.Event()
    real_get, real_delete_many, real_set = tier.get, tier.delete_many, tier.set

    def delete_many(keys: list[str]) -> Any:
        writing.set()
        read.wait(WAIT)
        return real_delete_many(keys)

    def set_(*args: Any, **kwargs: Any) -> Any:
        writing.set()
        read.wait(WAIT)
        return real_set(*args, **kwargs)

    def get(k: str) -> Any:
        row = real_get(k)
        if k == key:
            read.set()
            written.wait(WAIT)
        return row

    def writer() -> None:
        write()
        written.set()

    out: dict[str, Any] = {}

    def reader() -> None:
        writing.wait(WAIT)
        out["read"] = cache.get("k")

    tier.delete_many, tier.set, tier.get = delete_many, set_, get
    try:
        threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        tier.delete_many, tier.set, tier.get = real_delete_many, real_set, real_get
    return out["read"]


@pytest.mark.django_db(transaction=True)
def test_a_read_overlapping_a_delete_does_not_bring_the_value_back(make_cache):
    cache = make_cache(MEMORY, DATABASE)
    cache.set("k", "old", 300)
    assert read_during_write(cache, cache._store.database, lambda: cache.delete("k")) == "old"
    assert cache.get("k") is None


@pytest.mark.redis
def test_a_read_overlapping_a_set_does_not_bring_the_old_value_back(
    make_cache, redis_url, coherent
):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url)))
    cache.set("k", "old", 300)
    write = lambda: cache.set("k", "new", 300)  # noqa: E731
    assert read_during_write(cache, cache._store.redis, write) == "old"
    assert cache.get("k") == "new"
