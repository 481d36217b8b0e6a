"""Batcher and ModelLoader: one query per tick and chunk, de-duplicated, ordered, per scope."""

from __future__ import annotations

import asyncio
import datetime
import math
import threading
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_perf.db import Batcher, ModelLoader, bulk_insert, loader_scope
from testproject.bulkdemo.models import Account, Item, Kitchen, Token

from .conftest import UTC

pytestmark = pytest.mark.django_db


def run(coroutine_function):
    """Run an async test body on this thread's event loop, with the test's DB connection."""
    return async_to_sync(coroutine_function)()


@pytest.fixture
def item_pks() -> list[int]:
    rows = [
        {"qty": i, "name": f"item {i}", "body": "", "price": i,
         "ts": datetime.datetime(2024, 1, 1, tzinfo=UTC), "active": i % 2 == 0}
        for i in range(1000)
    ]  # fmt: skip
    return bulk_insert(Item, rows, returning=True)


def selects(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith("SELECT")]


@pytest.mark.parametrize("max_batch_size", [1000, 100, 64, 7])
def test_1000_concurrent_loads_issue_one_query_per_chunk(item_pks, max_batch_size):
    loader = ModelLoader(Item, max_batch_size=max_batch_size)

    async def main():
        with loader_scope():
            return await asyncio.gather(*[loader.load(pk) for pk in item_pks])

    with CaptureQueriesContext(connection) as queries:
        items = run(main)
    assert len(selects(queries)) == math.ceil(1000 / max_batch_size)
    assert [item.pk for item in items] == item_pks


def test_duplicate_keys_are_fetched_once(item_pks):
    calls: list[list[int]] = []

    def batch(keys):
        calls.append(keys)
        return {key: key * 10 for key in keys}

    loader = Batcher(batch)

    async def main():
        with loader_scope():
            keys = [1, 2, 1, 3, 2, 1] * 50
            return keys, await asyncio.gather(*[loader.load(k) for k in keys])

    keys, values = run(main)
    assert calls == [[1, 2, 3]]
    assert values == [k * 10 for k in keys]


def test_results_follow_the_request_order_and_missing_keys_are_none(item_pks):
    loader = ModelLoader(Item)
    wanted = [item_pks[5], -1, item_pks[2], item_pks[5], 10**9]

    async def main():
        with loader_scope():
            return await loader.load_many(wanted)

    items = run(main)
    assert [item.pk if item else None for item in items] == [
        item_pks[5], None, item_pks[2], item_pks[5], None
    ]  # fmt: skip


def test_a_configurable_error_for_missing_keys(item_pks):
    loader = ModelLoader(Item, on_missing="raise")

    async def main():
        with loader_scope():
            found, missing = await asyncio.gather(
                loader.load(item_pks[0]), loader.load(-5), return_exceptions=True
            )
            return found, missing

    found, missing = run(main)
    assert found.pk == item_pks[0]
    assert isinstance(missing, Item.DoesNotExist)
    assert "-5" in str(missing)


def test_a_callable_builds_the_missing_error():
    loader = Batcher(lambda keys: {}, on_missing=lambda key: KeyError(f"no {key}"))

    async def main():
        with loader_scope():
            await loader.load("x")

    with pytest.raises(KeyError, match="no x"):
        run(main)


def test_every_waiter_gets_the_batch_exception_and_nothing_is_cached():
    attempts = []

    def batch(keys):
        attempts.append(keys)
        if len(attempts) == 1:
            raise ConnectionError("database went away")
        return {k: k for k in keys}

    loader = Batcher(batch)

    async def main():
        with loader_scope():
            first = await asyncio.gather(
                *[loader.load(k) for k in range(5)], return_exceptions=True
            )
            second = await asyncio.gather(*[loader.load(k) for k in range(5)])
            return first, second

    first, second = run(main)
    assert all(isinstance(e, ConnectionError) for e in first)
    assert len({id(e) for e in first}) == 1  # the one exception, given to each waiter
    assert second == [0, 1, 2, 3, 4]
    assert attempts == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]


def test_a_value_that_is_an_exception_fails_only_its_key():
    loader = Batcher(lambda keys: [ValueError(k) if k == 2 else k for k in keys])

    async def main():
        with loader_scope():
            return await asyncio.gather(
                *[loader.load(k) for k in [1, 2, 3]], return_exceptions=True
            )

    one, two, three = run(main)
    assert (one, three) == (1, 3)
    assert isinstance(two, ValueError)


def test_a_batch_function_returning_the_wrong_shape_fails_every_waiter():
    loader = Batcher(lambda keys: [1])

    async def main():
        with loader_scope():
            return await asyncio.gather(loader.load(1), loader.load(2), return_exceptions=True)

    errors = run(main)
    assert all(isinstance(e, ValueError) and "1 values for 2 keys" in str(e) for e in errors)


def test_loads_in_later_ticks_go_to_later_batches():
    calls = []
    loader = Batcher(lambda keys: calls.append(list(keys)) or {k: k for k in keys}, cache=False)

    async def main():
        with loader_scope():
            a = asyncio.ensure_future(loader.load(1))
            await asyncio.sleep(0)  # next tick: the first batch is dispatched
            b = loader.load(2)
            return await asyncio.gather(a, b)

    assert run(main) == [1, 2]
    assert calls == [[1], [2]]


def test_the_scope_caches_so_a_second_load_costs_nothing(item_pks):
    loader = ModelLoader(Item)

    async def main():
        with loader_scope():
            first = await loader.load(item_pks[0])
            await asyncio.sleep(0)
            return first, await loader.load(item_pks[0])

    with CaptureQueriesContext(connection) as queries:
        first, again = run(main)
    assert again is first
    assert len(selects(queries)) == 1


def test_async_batch_functions_work_too():
    async def batch(keys):
        await asyncio.sleep(0)
        return {k: -k for k in keys}

    loader = Batcher(batch)

    async def main():
        with loader_scope():
            return await loader.load_many([3, 4])

    assert run(main) == [-3, -4]


def test_loading_outside_a_scope_is_a_clear_error():
    loader = ModelLoader(Item)
    with pytest.raises(LookupError, match="LoaderScopeMiddleware"):
        loader.get(1)


def test_keys_are_converted_by_the_field(item_pks):
    loader = ModelLoader(Item)
    with loader_scope():
        assert loader.get(str(item_pks[0])).pk == item_pks[0]
        with pytest.raises(ValueError, match="'abc' is not a valid key"):
            loader.get("abc")


def test_one_to_many_loads_lists():
    tokens = [Token.objects.create(label=str(i)) for i in range(3)]
    bulk_insert(Kitchen, [{"name": "a", "token": tokens[0]}, {"name": "b", "token": tokens[0]},
                          {"name": "c", "token": tokens[1]}])  # fmt: skip
    loader = ModelLoader(Kitchen, key="token", many=True)

    async def main():
        with loader_scope():
            return await loader.load_many(tokens)

    groups = run(main)
    assert [sorted(k.name for k in group) for group in groups] == [["a", "b"], ["c"], []]


def test_a_queryset_shapes_what_is_loaded():
    bulk_insert(Account, [{"tenant": "t", "code": "a", "email": "a@x.org", "name": "A"}])
    loader = ModelLoader(Account.objects.only("email", "name"), key="email")
    with loader_scope(), CaptureQueriesContext(connection) as queries:
        account = loader.get("a@x.org")
    assert account.name == "A"
    assert '"bulkdemo_account"."visits"' not in queries[0]["sql"]


@pytest.mark.parametrize(
    ("shape", "still_deferred"),
    [
        (lambda qs: qs.only("name"), {"text", "counter"}),
        (lambda qs: qs.defer("token"), set()),
        (lambda qs: qs.defer("token_id", "text"), {"text"}),
    ],
    ids=["only-without-the-key", "defer-the-key", "defer-the-key-attname"],
)
def test_a_queryset_that_leaves_the_key_out_still_takes_one_query(shape, still_deferred):
    """Each row's key is read to match it: deferred, it cost a query per row to load."""
    tokens = [Token.objects.create(label=str(i)) for i in range(3)]
    bulk_insert(Kitchen, [{"name": f"k{i}", "token": tokens[i % 3]} for i in range(12)])
    loader = ModelLoader(shape(Kitchen.objects.all()), key="token", many=True)
    with loader_scope(), CaptureQueriesContext(connection) as queries:
        groups = loader.get_many(tokens)
    assert [len(group) for group in groups] == [4, 4, 4]
    assert len(queries) == 1
    deferred = groups[0][0].get_deferred_fields()
    assert "token_id" not in deferred
    assert still_deferred <= deferred  # the rest of the queryset's shape is kept


@pytest.mark.postgres
def test_postgresql_batches_use_one_array_parameter(item_pks):
    loader = ModelLoader(Item)
    with loader_scope(), CaptureQueriesContext(connection) as queries:
        loader.prefetch(item_pks[:300])
    (sql,) = selects(queries)
    assert '"bulkdemo_item"."id" = ANY(' in sql


# --- the sync form ------------------------------------------------------------------


def test_sync_prefetch_then_get(item_pks):
    loader = ModelLoader(Item, max_batch_size=400)
    with loader_scope():
        with CaptureQueriesContext(connection) as queries:
            loader.prefetch(item_pks)
        assert len(selects(queries)) == 3  # 400 + 400 + 200
        with CaptureQueriesContext(connection) as queries:
            names = [loader.get(pk).name for pk in item_pks[:10]]
        assert len(queries) == 0
    assert names == [f"item {i}" for i in range(10)]


def test_sync_get_many_fetches_only_what_is_missing(item_pks):
    loader = ModelLoader(Item)
    with loader_scope():
        loader.prime(item_pks[0], "primed")
        with CaptureQueriesContext(connection) as queries:
            values = loader.get_many([item_pks[0], item_pks[1], -1])
        assert values[0] == "primed"
        assert values[1].pk == item_pks[1]
        assert values[2] is None
        assert len(selects(queries)) == 1
        loader.clear(item_pks[0])
        assert loader.get(item_pks[0]).pk == item_pks[0]


def test_scopes_do_not_share_values(item_pks):
    loader = ModelLoader(Item)
    with loader_scope():
        loader.prime(item_pks[0], "first scope")
        with loader_scope():
            assert loader.get(item_pks[0]).name == "item 0"
        assert loader.get(item_pks[0]) == "first scope"
    with loader_scope():
        assert loader.get(item_pks[0]).name == "item 0"


def test_max_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="max_batch_size"):
        Batcher(lambda keys: {}, max_batch_size=0)


# --- failures never leave a waiter pending ------------------------------------------


def test_an_on_missing_that_raises_fails_only_its_key_and_every_waiter_settles():
    def on_missing(key):
        raise KeyError(f"no translation for {key}")  # raises instead of returning

    loader = Batcher(lambda keys: {k: k for k in keys if k == 2}, on_missing=on_missing)

    async def main():
        with loader_scope():
            loads = asyncio.gather(
                loader.load(1), loader.load(2), loader.load(3), return_exceptions=True
            )
            return await asyncio.wait_for(loads, timeout=5)  # TimeoutError if one hangs

    one, two, three = run(main)
    assert two == 2
    assert isinstance(one, KeyError)
    assert "no translation for 1" in str(one)
    assert isinstance(three, KeyError)
    assert "no translation for 3" in str(three)


def test_a_scope_reused_on_a_new_event_loop_does_not_join_the_dead_loops_waiters():
    calls: list[list[int]] = []

    def squares(keys):
        calls.append(list(keys))
        return {k: k * k for k in keys}

    square = Batcher(squares)

    async def abandoned():
        square.load(1)  # queued, never awaited: this loop ends before the batch runs
        square.load(2)
        raise ValueError("validation failed before awaiting")

    async def later():
        return await square.load_many([1, 3])

    result: dict[str, list] = {}

    def wsgi_view():  # two async_to_sync calls in one scope: two event loops
        with loader_scope():
            with pytest.raises(ValueError, match="validation failed"):
                async_to_sync(abandoned)()
            result["value"] = async_to_sync(later)()

    thread = threading.Thread(target=wsgi_view, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "load() joined a waiter list of a dead event loop"
    assert result["value"] == [1, 9]
    assert calls[-1] == [1, 3]


# --- keys the column cannot hold as given -------------------------------------------


def test_a_char_key_longer_than_the_column_matches_no_row_and_spoils_no_batch():
    long_key = "acme" + "x" * 30  # tenant is max_length=20
    bulk_insert(Account, [
        {"tenant": "acme", "code": "a", "email": "a@x.test", "name": "A"},
        {"tenant": long_key[:20], "code": "b", "email": "b@x.test", "name": "B"},
    ])  # fmt: skip
    by_tenant = ModelLoader(Account, key="tenant", many=True)
    one_by_tenant = ModelLoader(Account, key="tenant")

    async def main():
        with loader_scope():
            return await asyncio.gather(
                by_tenant.load("acme"), by_tenant.load(long_key), one_by_tenant.load(long_key)
            )

    acme, long_group, long_one = run(main)
    assert [account.code for account in acme] == ["a"]
    assert long_group == []
    assert long_one is None


def test_a_decimal_key_is_not_rounded_to_the_column_precision():
    ts = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    one, two = bulk_insert(Item, [
        {"qty": 1, "name": "a", "body": "", "price": Decimal("1.00"), "ts": ts, "active": True},
        {"qty": 2, "name": "b", "body": "", "price": Decimal("2.00"), "ts": ts, "active": True},
    ], returning=True)  # fmt: skip
    by_price = ModelLoader(Item, key="price", many=True)
    with loader_scope():
        # 1.001 rounded to numeric(12,2) would match the row priced 1.00, a key nobody asked for.
        rounded, exact = by_price.get_many([Decimal("1.001"), Decimal("2")])
        assert rounded == []
        assert [item.pk for item in exact] == [two]
        assert [item.pk for item in by_price.get(Decimal("1.0"))] == [one]


@pytest.mark.parametrize(("key", "big"), [("pk", 2**70), ("pk", -(2**70)), ("qty", 2**40)])
def test_a_key_outside_the_integer_column_range_is_missing_and_never_sent(key, big):
    ts = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    bulk_insert(Item, [{"qty": 5, "name": "a", "body": "", "price": 1, "ts": ts, "active": True}])
    item = Item.objects.get()
    good = item.pk if key == "pk" else item.qty
    loader = ModelLoader(Item, key=key)

    async def main():
        with loader_scope():
            return await asyncio.gather(loader.load(good), loader.load(big))

    assert run(main) == [item, None]
    with transaction.atomic(), loader_scope():  # as under ATOMIC_REQUESTS
        assert loader.get_many([good, big]) == [item, None]
        with CaptureQueriesContext(connection) as queries:
            assert loader.get(big) is None
            assert ModelLoader(Item, key=key, many=True).get(big) == []
            with pytest.raises(Item.DoesNotExist):
                ModelLoader(Item, key=key, on_missing="raise").get(big)
        low, high = connection.ops.integer_field_range(loader.field.get_internal_type())
        if not low <= big <= high:  # SQLite's columns hold 2**40, PostgreSQL's integer does not
            assert len(queries) == 0
        assert Item.objects.count() == 1  # the transaction is still usable
