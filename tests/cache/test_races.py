"""Races inside one process: a read overlapping a write never puts the old value back in L1."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from django_perf.cache import TieredCache
from tests.cache.conftest import DATABASE, MEMORY, redis_tier

WAIT = 5


def read_during_write(
    cache: TieredCache,
    tier: Any,
    write: Callable[[], Any],
    read: Callable[[], Any] | None = None,
) -> Any:
    """Run ``write`` and, while it is inside ``tier``, a read (``get("k")`` by default) that
    reads ``tier`` before the write lands there and promotes what it read only after the
    write finished.
    """
    reading = read or (lambda: cache.get("k"))
    key = cache.make_key("k")
    cache._store.memory.flush()  # the read must go below L1
    writing, read, written = threading.Event(), threading.Event(), threading.Event()
    real_get, real_delete_many, real_set = tier.get, tier.delete_many, tier.set
    real_get_many = tier.get_many

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

    def get_many(keys: list[str]) -> Any:
        rows = real_get_many(keys)
        if key in keys:
            read.set()
            written.wait(WAIT)
        return rows

    def writer() -> None:
        write()
        written.set()

    out: dict[str, Any] = {}

    def reader() -> None:
        writing.wait(WAIT)
        out["read"] = reading()

    tier.delete_many, tier.set, tier.get, tier.get_many = delete_many, set_, get, get_many
    try:
        threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        tier.delete_many, tier.set, tier.get = real_delete_many, real_set, real_get
        tier.get_many = real_get_many
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


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_table_read_overlapping_a_delete_does_not_bring_the_value_back_into_redis(
    make_cache, redis_url, coherent
):
    """The read found the row before the delete; its SET NX into Redis lands after it."""
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url), DATABASE))
    cache.set("k", "old", 300)
    store = cache._store
    store.redis.delete_many([cache.make_key("k")])  # only the table has it
    assert read_during_write(cache, store.database, lambda: cache.delete("k")) == "old"
    assert store.redis.get(cache.make_key("k")) is None
    assert cache.get("k") is None

    cache.set_many({"k": "old", "other": "kept"}, 300)
    store.redis.delete_many([cache.make_key("k"), cache.make_key("other")])
    read = lambda: cache.get_many(["k", "other"])  # noqa: E731
    assert read_during_write(cache, store.database, lambda: cache.delete("k"), read) == {
        "k": "old",
        "other": "kept",
    }
    assert store.redis.get(cache.make_key("k")) is None
    assert store.redis.get(cache.make_key("other")) is not None  # its promotion stands
    assert cache.get_many(["k", "other"]) == {"other": "kept"}
