"""bulk_update: set-based on PostgreSQL (unnest or COPY + temp table by size), correct elsewhere."""

from __future__ import annotations

import datetime
import decimal

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_perf.db import bulk_insert, bulk_update
from testproject.bulkdemo.models import Account, Item, Kitchen
from testproject.pgdemo.models import Coded, Tagged

from .conftest import UTC, kitchen_row

pytestmark = pytest.mark.django_db

paths = pytest.mark.parametrize("copy_from", [10_000, 1], ids=["unnest", "copy"])


def items(count: int) -> list[Item]:
    rows = [
        {"qty": i, "name": f"n{i}", "body": "b", "price": decimal.Decimal(i),
         "ts": datetime.datetime(2024, 1, 1, tzinfo=UTC), "active": True}
        for i in range(count)
    ]  # fmt: skip
    pks = bulk_insert(Item, rows, returning=True)
    return list(Item.objects.filter(pk__in=pks).order_by("pk"))


@paths
def test_updates_the_given_fields_and_returns_the_count(copy_from):
    rows = items(20)
    for obj in rows:
        obj.name = f"new{obj.qty}"
        obj.price = obj.price + decimal.Decimal("0.5")
        obj.qty = -1  # not in fields: must not be written
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        assert bulk_update(Item, rows, ["name", "price"]) == 20
    stored = {o.pk: o for o in Item.objects.all()}
    for obj in rows:
        assert stored[obj.pk].name == obj.name
        assert stored[obj.pk].price == obj.price
        assert stored[obj.pk].qty != -1


# Exponent notation, more places than the column keeps (rounded by PostgreSQL),
# negative zero, the largest value that fits, tiny values: decimals are staged as
# text on PostgreSQL, and must land exactly as the ORM's save() stores them.
AWKWARD_DECIMALS = ["1E+2", "5E-4", "0.005", "-0.005", "-0", "1234567890.125", "9999999999.99",
                    "1.23456789", "-7.5E-1", "0"]  # fmt: skip


@paths
def test_decimals_land_as_the_orm_stores_them(copy_from):
    values = [decimal.Decimal(text) for text in AWKWARD_DECIMALS]
    ours, orm = items(len(values)), items(len(values))
    for mine, theirs, value in zip(ours, orm, values, strict=True):
        mine.price = theirs.price = value
        theirs.save(update_fields=["price"])
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        assert bulk_update(Item, ours, ["price"]) == len(values)
    stored = dict(Item.objects.values_list("pk", "price"))
    assert [str(stored[o.pk]) for o in ours] == [str(stored[o.pk]) for o in orm]


@paths
def test_every_field_type_round_trips(copy_from):
    (pk,) = bulk_insert(Kitchen, [{"name": "before"}], returning=True)
    row = {"id": pk, **kitchen_row()}
    fields = [name for name in row if name != "id"]
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        assert bulk_update(Kitchen, [row], fields) == 1
    stored = Kitchen.objects.filter(pk=pk).values().get()
    for name in fields:
        expected = row[name]
        actual = bytes(stored[name]) if name == "blob" else stored[name]
        assert actual == expected, name


@paths
def test_nulls_round_trip(copy_from):
    (pk,) = bulk_insert(Kitchen, [kitchen_row()], returning=True)
    fields = ["small", "amount", "moment", "data", "ip", "span", "blob", "maybe"]
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        bulk_update(Kitchen, [{"id": pk, **dict.fromkeys(fields)}], fields)
    stored = Kitchen.objects.filter(pk=pk).values(*fields).get()
    assert stored == dict.fromkeys(fields)


def test_rows_whose_key_matches_nothing_are_skipped():
    rows = items(2)
    updates = [{"id": rows[0].pk, "name": "x"}, {"id": 999_999, "name": "y"}]
    assert bulk_update(Item, updates, ["name"]) == 1
    assert Item.objects.get(pk=rows[0].pk).name == "x"


def test_a_unique_field_as_key():
    bulk_insert(Account, [{"tenant": "t", "code": "a", "email": "a@x.org", "name": "A"}])
    assert bulk_update(Account, [{"email": "a@x.org", "name": "new"}], ["name"], key="email") == 1
    assert Account.objects.get().name == "new"


@paths
def test_a_composite_unique_key(copy_from):
    bulk_insert(
        Account,
        [
            {"tenant": "t1", "code": "a", "email": "1@x.org", "name": "one"},
            {"tenant": "t2", "code": "a", "email": "2@x.org", "name": "two"},
        ],
    )
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        count = bulk_update(
            Account,
            [{"tenant": "t2", "code": "a", "visits": 5}],
            ["visits"],
            key=["tenant", "code"],
        )
    assert count == 1
    assert dict(Account.objects.values_list("tenant", "visits")) == {"t1": 0, "t2": 5}


@paths
def test_a_filtered_queryset_bounds_the_update(copy_from):
    rows = items(4)
    for obj in rows:
        obj.name = "changed"
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        count = bulk_update(Item.objects.filter(qty__in=[1, 2]), rows, ["name"])
    assert count == 2
    names = dict(Item.objects.values_list("qty", "name"))
    assert names == {0: "n0", 1: "changed", 2: "changed", 3: "n3"}


@paths
@pytest.mark.parametrize(
    "scope",
    [
        lambda: Item.objects.filter(qty__gt=100),  # matches no row
        lambda: Item.objects.none(),
        lambda: Item.objects.filter(pk__in=[]),
    ],
    ids=["filter-matching-nothing", "none", "empty-in"],
)
def test_a_queryset_that_matches_nothing_updates_nothing(copy_from, scope):
    rows = items(3)
    for obj in rows:
        obj.name = "changed"
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        assert bulk_update(scope(), rows, ["name"]) == 0
    assert set(Item.objects.values_list("name", flat=True)) == {"n0", "n1", "n2"}


def test_large_calls_are_chunked_in_one_transaction():
    rows = items(7)
    for obj in rows:
        obj.name = "chunked"
    with (
        override_settings(DJANGO_PERF={"BULK_BATCH_SIZE": 3}),
        CaptureQueriesContext(connection) as queries,
    ):
        assert bulk_update(Item, rows, ["name"]) == 7
    updates = [q for q in queries if q["sql"].startswith("UPDATE")]
    if connection.vendor == "postgresql":
        assert len(updates) == 3  # 3 + 3 + 1 rows
    assert Item.objects.filter(name="chunked").count() == 7


def statements(queries: CaptureQueriesContext) -> list[str]:
    """The statements run, without transaction control (the test runs in a transaction)."""
    control = {"BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK"}
    return [q["sql"] for q in queries if q["sql"].split()[0] not in control]


@pytest.mark.postgres
def test_small_sets_use_unnest_and_large_ones_copy_into_a_temporary_table():
    rows = items(5)
    with CaptureQueriesContext(connection) as queries:
        bulk_update(Item, rows, ["name"])
    (update,) = statements(queries)
    assert "FROM unnest($1::bigint[], $2::character varying[]) AS s" in update
    with (
        override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": 5}),
        CaptureQueriesContext(connection) as queries,
    ):
        bulk_update(Item, rows, ["name"])
    # The test runs in a transaction, so the temporary table is dropped at once; an
    # outermost call leaves that to ON COMMIT DROP.
    assert [s.split()[0] for s in statements(queries)] == ["CREATE", "COPY", "UPDATE", "DROP"]


@pytest.mark.postgres
@paths
def test_char_n_values_and_keys_keep_every_character(copy_from):
    """A bare ``character`` cast means char(1): it cut values and matched the wrong key."""
    bulk_insert(Coded, [{"code": "a", "label": "old"}, {"code": "ab", "label": "old"}])
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        count = bulk_update(Coded, [{"code": "ab", "label": "abcdef"}], ["label"], key="code")
    assert count == 1
    stored = {
        code.strip(): label.strip() for code, label in Coded.objects.values_list("code", "label")
    }
    assert stored == {"a": "old", "ab": "abcdef"}


@pytest.mark.postgres
def test_arrays_always_go_through_copy():
    """unnest() would flatten array columns, so they are staged with COPY at any size."""
    (pk,) = bulk_insert(Tagged, [{"name": "a", "tags": ["x"]}], returning=True)
    with CaptureQueriesContext(connection) as queries:
        bulk_update(Tagged, [{"id": pk, "tags": ["y", "z"], "grid": [[1, 2], [3, 4]]}],
                    ["tags", "grid"])  # fmt: skip
    assert any(q["sql"].startswith("COPY") for q in queries)
    stored = Tagged.objects.get()
    assert (stored.tags, stored.grid) == (["y", "z"], [[1, 2], [3, 4]])


@pytest.mark.sqlite
def test_sqlite_looks_keys_up_then_updates_row_by_row():
    rows = items(3)
    with CaptureQueriesContext(connection) as queries:
        assert bulk_update(Item, [{"id": rows[1].pk, "name": "x"}], ["name"]) == 1
    select, update = statements(queries)
    assert select.startswith("SELECT")
    assert update == '1 times: UPDATE "bulkdemo_item" SET "name" = %s WHERE "id" = %s'
    assert Item.objects.get(pk=rows[1].pk).name == "x"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_outermost_call_leaves_the_temporary_table_to_on_commit_drop():
    rows = items(3)
    with (
        override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": 1}),
        CaptureQueriesContext(connection) as queries,
    ):
        bulk_update(Item, rows, ["name"])
    assert [s.split()[0] for s in statements(queries)] == ["CREATE", "COPY", "UPDATE"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relpersistence = 't'")
        assert cursor.fetchone() == (0,)
