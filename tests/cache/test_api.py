"""The BaseCache API, sync and async, on every tier layout (Django's suite covers more cases)."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from django_perf.cache import TieredCache
from django_perf.cache.models import CacheEntry
from tests.cache.conftest import DATABASE, MEMORY, redis_tier

LAYOUTS = [
    pytest.param(("memory",), id="memory"),
    pytest.param(("memory", "database"), id="memory+database"),
    pytest.param(("database",), id="database"),
    pytest.param(("redis",), id="redis", marks=pytest.mark.redis),
    pytest.param(("memory", "redis"), id="memory+redis", marks=pytest.mark.redis),
    pytest.param(("memory", "redis", "database"), id="all", marks=pytest.mark.redis),
]


@pytest.fixture(params=LAYOUTS)
def cache(request, make_cache, coherent, db) -> TieredCache:
    tiers = []
    for kind in request.param:
        if kind == "memory":
            tiers.append(MEMORY)
        elif kind == "database":
            tiers.append(DATABASE)
        else:
            tiers.append(redis_tier(request.getfixturevalue("redis_url")))
    return coherent(make_cache(*tiers, STRICT=True))


VALUES = {
    "str": "text ✓",
    "int": 42,
    "big int": 2**80,
    "negative": -7,
    "float": 1.5,
    "true": True,
    "none": None,
    "bytes": b"\x00\xff",
    "list": [1, [2, 3]],
    "tuple": (1, "a"),
    "dict": {"a": [1, 2], "b": {"c": None}},
    "set": {1, 2},
    "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    "decimal": decimal.Decimal("1.10"),
    "large": "x" * 50_000,  # compressed in shared tiers
}


@pytest.mark.parametrize("name", list(VALUES))
def test_values_round_trip_with_their_type(cache, name):
    value = VALUES[name]
    cache.set("key", value)
    got = cache.get("key", "missing")
    assert got == value
    assert type(got) is type(value)


def test_a_caller_mutating_a_result_does_not_change_the_cache(cache):
    cache.set("profile", {"tags": ["a"]})
    first = cache.get("profile")
    first["tags"].append("mutated")
    assert cache.get("profile") == {"tags": ["a"]}
    assert cache.get_many(["profile"])["profile"] == {"tags": ["a"]}


def test_the_value_passed_to_set_is_not_shared_either(cache):
    value = {"n": [1]}
    cache.set("k", value)
    value["n"].append(2)
    assert cache.get("k") == {"n": [1]}


def test_none_is_a_value_and_missing_keys_give_the_default(cache):
    cache.set("nothing", None)
    assert cache.get("nothing", "default") is None
    assert cache.has_key("nothing")
    assert cache.get("absent", "default") == "default"
    assert not cache.has_key("absent")
    assert "nothing" in cache


def test_add_only_when_absent(cache):
    assert cache.add("k", 1) is True
    assert cache.add("k", 2) is False
    assert cache.get("k") == 1
    assert cache.add("gone", 1, timeout=0) is True
    assert cache.get("gone") is None
    assert cache.add("k", 3, timeout=0) is False


def test_timeouts_zero_none_and_positive(cache):
    cache.set("k", "v")
    cache.set("k", "v2", timeout=0)  # zero: not stored, and the old value is gone
    assert cache.get("k") is None
    cache.set("forever", 1, timeout=None)
    cache.set("brief", 1, timeout=1)  # not less: a loaded machine can take 0.3 s per call
    assert cache.get("brief") == 1
    time.sleep(1.1)
    assert cache.get("brief") is None
    assert cache.get("forever") == 1


def test_incr_and_decr(cache):
    cache.set("n", 10)
    assert cache.incr("n") == 11
    assert cache.incr("n", 5) == 16
    assert cache.decr("n", 20) == -4
    assert cache.get("n") == -4
    cache.set("f", 0.5)
    assert cache.incr("f") == 1.5
    cache.set("big", 2**63 - 1)
    assert cache.incr("big") == 2**63  # past 64 bits: still correct, no longer atomic
    assert cache.get("big") == 2**63
    with pytest.raises(ValueError, match="not found"):
        cache.incr("absent")
    cache.set("none", None)
    with pytest.raises(TypeError):
        cache.incr("none")


def test_incr_by_a_non_integer_delta_adds_it_as_locmem_does(cache):
    cache.set("n", 1)
    assert cache.incr("n", 1.5) == 2.5
    if cache._store.shared and cache._store.memory is not None:
        cache._store.memory.flush()  # read the shared tiers again (another process would)
    assert cache.get("n") == 2.5
    assert cache.incr("n", 1) == 3.5
    assert cache.incr("n", True) == 4.5
    assert cache.get("n") == 4.5


def test_incr_keeps_the_expiry(cache):
    cache.set("n", 1, timeout=1)
    assert cache.incr("n") == 2
    time.sleep(1.1)
    assert cache.get("n") is None


def test_touch(cache):
    # 1 s, not less: on a loaded machine set() then touch() through three tiers can take 0.3 s.
    cache.set("k", "v", timeout=1)
    assert cache.touch("k", 10) is True
    time.sleep(1.1)
    assert cache.get("k") == "v"
    assert cache.touch("k", None) is True
    assert cache.touch("absent") is False
    assert cache.touch("k", 0) is True
    assert cache.get("k") is None


def test_delete_and_delete_many(cache):
    cache.set_many({"a": 1, "b": 2, "c": 3})
    assert cache.delete("a") is True
    assert cache.delete("a") is False
    cache.delete_many(["b", "absent"])
    assert cache.get_many(["a", "b", "c"]) == {"c": 3}


def test_get_many_set_many_with_versions_and_keys_of_any_type(cache):
    assert cache.set_many({"a": 1, 2: "two", "n": None}) == []
    assert cache.get_many(["a", 2, "n", "x"]) == {"a": 1, 2: "two", "n": None}
    cache.set_many({"a": "v2"}, version=2)
    assert cache.get_many(["a"], version=2) == {"a": "v2"}
    assert cache.get("a") == 1
    assert cache.get_many([]) == {}


def test_get_or_set(cache):
    assert cache.get_or_set("k", lambda: "computed") == "computed"
    assert cache.get_or_set("k", lambda: "again") == "computed"
    assert cache.get_or_set("n", None) is None
    assert cache.has_key("n")


def test_versions_move_a_value(cache):
    cache.set("k", "v")
    assert cache.incr_version("k") == 2
    assert cache.get("k") is None
    assert cache.get("k", version=2) == "v"


def test_clear(cache):
    cache.set_many({"a": 1, "b": 2})
    cache.clear()
    assert cache.get_many(["a", "b"]) == {}


def test_unpicklable_values_raise_and_nothing_is_written(cache):
    import threading

    cache.set("k", "old")
    with pytest.raises(TypeError):
        cache.set("k", threading.Lock())
    assert cache.get("k") == "old"


def test_the_async_api(cache):
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        await cache.aset("a", {"x": [1]})
        out["get"] = await cache.aget("a")
        out["default"] = await cache.aget("absent", "d")
        out["add"] = (await cache.aadd("a", 2), await cache.aadd("b", 2))
        out["incr"] = (await cache.aincr("b", 3), await cache.adecr("b"))
        out["has"] = (await cache.ahas_key("b"), await cache.ahas_key("absent"))
        await cache.aset_many({"c": 3, "d": None})
        out["many"] = await cache.aget_many(["a", "c", "d", "absent"])
        out["touch"] = (await cache.atouch("c", 100), await cache.atouch("absent"))
        out["get_or_set"] = await cache.aget_or_set("e", lambda: "made")
        out["delete"] = (await cache.adelete("c"), await cache.adelete("c"))
        await cache.adelete_many(["a", "d"])
        out["after"] = await cache.aget_many(["a", "c", "d", "b"])
        out["version"] = await cache.aincr_version("b")
        await cache.aclear()
        out["cleared"] = await cache.aget_many(["b", "e"], version=None)
        await cache.aclose()
        return out

    assert async_to_sync(scenario)() == {
        "get": {"x": [1]},
        "default": "d",
        "add": (False, True),
        "incr": (5, 4),
        "has": (True, False),
        "many": {"a": {"x": [1]}, "c": 3, "d": None},
        "touch": (True, False),
        "get_or_set": "made",
        "delete": (True, False),
        "after": {"b": 4},
        "version": 2,
        "cleared": {},
    }


def test_async_l1_hits_and_l1_only_caches_never_leave_the_event_loop(make_cache, monkeypatch):
    """L1 is used from asyncio directly; only lower tiers take a worker-thread hop."""
    memory_only = make_cache(MEMORY)
    memory_only.set("warm", [1])

    def no_hop(*args, **kwargs):
        raise AssertionError("a thread hop was taken")

    monkeypatch.setattr("django_perf.cache.backend.sync_to_async", no_hop)

    async def scenario() -> list[Any]:
        await memory_only.aset("a", 1)
        return [
            await memory_only.aget("warm"),
            await memory_only.aget("a"),
            await memory_only.aadd("b", 2),
            await memory_only.aincr("b"),
            await memory_only.aget_many(["a", "b"]),
            await memory_only.adelete("a"),
            await memory_only.atouch("b", 5),
        ]

    assert async_to_sync(scenario)() == [[1], 1, True, 3, {"a": 1, "b": 3}, True, True]


@pytest.mark.django_db
def test_async_l1_hit_in_front_of_the_database_takes_no_hop(make_cache, monkeypatch):
    cache = make_cache(MEMORY, DATABASE)
    cache.set("k", {"v": 1})
    monkeypatch.setattr(
        "django_perf.cache.backend.sync_to_async",
        lambda *a, **k: pytest.fail("a thread hop was taken for an L1 hit"),
    )
    assert async_to_sync(cache.aget)("k") == {"v": 1}


@pytest.mark.redis
@pytest.mark.django_db
@pytest.mark.parametrize(
    "order",
    [("database", "memory"), ("memory", "database", "redis"), ("redis", "memory", "database")],
    ids="+".join,
)
def test_tiers_in_any_order(request, make_cache, coherent, order):
    tiers = {"memory": MEMORY, "database": DATABASE}
    tiers["redis"] = redis_tier(request.getfixturevalue("redis_url"))
    cache = coherent(make_cache(*(tiers[kind] for kind in order), STRICT=True))
    cache.set("k", [1])
    cache.set("n", 1)
    for tier in cache._store.tiers:  # every tier got the write
        if tier.kind == "memory":
            assert tier.contains(cache.make_key("k"))
        else:
            assert tier.get(cache.make_key("k")) is not None
    first = cache._store.tiers[0]  # lose k from the first tier only
    if first.kind == "memory":
        first.flush()
    else:
        first.delete_many([cache.make_key("k")])
    assert cache.get("k") == [1]  # read from the next tier, promoted to the first
    assert cache.add("n", 5) is False
    assert cache.incr("n", 2) == 3
    assert cache.delete("k") is True
    assert cache.get_many(["k", "n"]) == {"n": 3}


@pytest.mark.redis
def test_concurrent_async_get_many_leave_the_l1_fast_path_in_place(
    make_cache, redis_url, coherent, monkeypatch
):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url)))
    memory = cache._store.memory
    cache.set("cold", "c")
    memory.flush()  # "cold" is in Redis only now
    cache.set("hot", "v")

    async def scenario() -> Any:
        found = await cache.aget_many(["cold"])
        promoted = memory.contains(cache.make_key("cold"))
        for _ in range(20):  # worker threads reading the lower tiers at the same time
            await asyncio.gather(*(cache.aget_many([f"miss{i}", f"m{i}"]) for i in range(32)))
        return found, promoted

    assert asyncio.run(scenario()) == ({"cold": "c"}, True)  # what was found below is in L1
    monkeypatch.setattr(
        "django_perf.cache.backend.sync_to_async",
        lambda *a, **k: pytest.fail("a thread hop was taken for an L1 hit"),
    )
    assert asyncio.run(cache.aget("hot")) == "v"  # still served from L1, in the event loop


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_set_whose_lifetime_ends_on_the_way_leaves_no_old_value(
    make_cache, redis_url, coherent, monkeypatch
):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url), DATABASE))
    cache.set("k", "old", 3600)
    database = cache._store.database
    real_set = database.set

    def slow_set(*args: Any, **kwargs: Any) -> None:  # e.g. waiting on a row lock
        time.sleep(0.4)
        real_set(*args, **kwargs)

    monkeypatch.setattr(database, "set", slow_set)
    cache.set("k", "new", 0.3)  # expired by the time Redis is written
    assert cache.get("k") is None
    assert cache._store.redis.get(cache.make_key("k")) is None


@pytest.mark.redis
def test_a_set_with_a_lifetime_below_a_millisecond_drops_the_old_value(
    make_cache, redis_url, coherent
):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url)))
    cache.set("k", "old", 3600)
    cache.set("k", "new", 1e-7)
    assert cache.get("k") is None


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_incr_of_a_float_or_a_big_int_keeps_its_whole_lifetime(make_cache, redis_url, coherent):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url, MAX_TIMEOUT=1), DATABASE))
    database = cache._store.database
    cache.set("f", 1.5, 3600)
    cache.set("big", 2**70, 3600)
    assert (cache.incr("f"), cache.incr("big")) == (2.5, 2**70 + 1)
    for key in ("f", "big"):  # the table keeps the timeout, not Redis's one second
        assert database.get(cache.make_key(key))[1] > time.time() + 3000
    cache.touch("f", 7200)
    assert cache.incr("f") == 3.5
    assert database.get(cache.make_key("f"))[1] > time.time() + 7000


@pytest.mark.django_db(transaction=True)
def test_a_real_in_the_integer_column_is_a_miss(make_cache):
    if connection.vendor != "sqlite":
        pytest.skip("only SQLite keeps a REAL in an integer column")
    cache = make_cache(MEMORY, DATABASE)
    cache.set("n", 1)
    table = connection.ops.quote_name(CacheEntry._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET number = 2.5")
    cache._store.memory.flush()
    assert cache.get("n") is None  # rejected (and deleted), never a TypeError
    assert cache.stats()["database"]["rejected"] == 1
    assert not CacheEntry.objects.exists()
