"""Bad input fails before any SQL, with ValueError/TypeError naming the row index and the field."""

from __future__ import annotations

import datetime
import decimal

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from django_perf.db import RowTypeError, RowValueError, bulk_insert, bulk_update, bulk_upsert
from testproject.blog.models import Article
from testproject.bulkdemo.models import Account, Item, Kitchen, Token

pytestmark = pytest.mark.django_db
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def ok(**overrides):
    return {"name": "fine", **overrides}


def account(code, **overrides):
    return {"tenant": "t", "code": code, "email": f"{code}@x.org", "name": str(code), **overrides}


CASES = {
    # (call, exception, words in the message, row index, field)
    "unknown field in fields": (
        lambda: bulk_insert(Kitchen, [ok()], fields=["name", "nmae"]),
        RowValueError, ["Kitchen has no field 'nmae'"], None, "nmae",
    ),
    "unknown key in a row, with a suggestion": (
        lambda: bulk_insert(Kitchen, [ok(), ok(countr=1)]),
        RowValueError, ["row 1", "'countr'", "did you mean 'counter'"], 1, "countr",
    ),
    "many-to-many is not a column": (
        lambda: bulk_update(Article, [{"id": 1, "tags": []}], ["tags"]),
        RowValueError, ["'tags' is not a column"], None, "tags",
    ),
    "reverse relation is not a column": (
        lambda: bulk_insert(Article, [{}], fields=["comments"]),
        RowValueError, ["'comments' is not a column"], None, "comments",
    ),
    "a row that is neither an instance nor a dict": (
        lambda: bulk_insert(Kitchen, [ok(), ok(), ("a", 1)]),
        RowTypeError, ["row 2 is a tuple", "Kitchen instances or dicts"], 2, None,
    ),
    "an instance of another model": (
        lambda: bulk_insert(Kitchen, [ok(), Token(label="x")]),
        RowTypeError, ["row 1 is a Token"], 1, None,
    ),
    "one dict instead of a list": (
        lambda: bulk_insert(Kitchen, ok()), TypeError, ["not one row"], None, None,
    ),
    "fields given as one string": (
        lambda: bulk_update(Kitchen, [{"id": 1, "name": "x"}], "name"),
        TypeError, ["must be a list of field names"], None, None,
    ),
    "no value and no default": (
        lambda: bulk_insert(Item, [{"qty": 1, "name": "n", "body": "", "price": 1,
                                    "active": True}]),
        RowValueError, ["row 0 has no value for 'ts'", "no default"], 0, "ts",
    ),
    "None for a NOT NULL column": (
        lambda: bulk_insert(Kitchen, [ok(), ok(name=None)]),
        RowValueError, ["row 1, field 'name'", "None is not allowed"], 1, "name",
    ),
    "an integer the field cannot parse": (
        lambda: bulk_insert(Kitchen, [ok(), ok(), ok(integer="12a")]),
        RowValueError, ["row 2, field 'integer'", "12a"], 2, "integer",
    ),
    "an integer out of the column's range": (
        lambda: bulk_insert(Kitchen, [ok(big=2**63)]),
        RowValueError, ["row 0, field 'big'", "out of range", "9223372036854775807"], 0, "big",
    ),
    "a decimal too large for its digits": (
        lambda: bulk_insert(Kitchen, [ok(amount=decimal.Decimal("9999999.9996"))]),
        RowValueError, ["field 'amount'", "numeric(10, 3)"], 0, "amount",
    ),
    "a decimal that is not a number": (
        lambda: bulk_insert(Kitchen, [ok(amount=decimal.Decimal("NaN"))]),
        RowValueError, ["field 'amount'", "must be a decimal number"], 0, "amount",
    ),
    "text longer than max_length": (
        lambda: bulk_insert(Kitchen, [ok(name="x" * 21)]),
        RowValueError, ["field 'name'", "21 characters", "at most 20"], 0, "name",
    ),
    "an impossible date": (
        lambda: bulk_insert(Kitchen, [ok(day="2021-02-30")]),
        RowValueError, ["row 0, field 'day'", "invalid date"], 0, "day",
    ),
    "a malformed uuid": (
        lambda: bulk_insert(Kitchen, [ok(ident="not-a-uuid")]),
        RowValueError, ["field 'ident'", "not a valid UUID"], 0, "ident",
    ),
    "a value JSON cannot encode": (
        lambda: bulk_insert(Kitchen, [ok(data={"when": object()})]),
        RowTypeError, ["field 'data'", "not JSON serializable"], 0, "data",
    ),
    "an expression": (
        lambda: bulk_update(Kitchen, [{"id": 1, "counter": F("counter") + 1}], ["counter"]),
        RowTypeError, ["field 'counter'", "expression"], 0, "counter",
    ),
    "an unsaved related instance": (
        lambda: bulk_insert(Kitchen, [ok(token=Token(label="new", id=None))]),
        RowValueError, ["field 'token'", "not saved yet"], 0, "token",
    ),
    "a related instance of the wrong model": (
        lambda: bulk_insert(Kitchen, [ok(token=Kitchen(name="k"))]),
        RowTypeError, ["field 'token'", "takes Token instances"], 0, "token",
    ),
    "both a relation's name and its attname": (
        lambda: bulk_insert(Kitchen, [ok(token=None, token_id=None)]),
        RowValueError, ["row 0 gives both 'token' and 'token_id'"], 0, "token",
    ),
    "a row without the key": (
        lambda: bulk_update(Kitchen, [{"id": 1, "name": "a"}, {"name": "b"}], ["name"]),
        RowValueError, ["row 1 has no value for the key 'id'"], 1, "id",
    ),
    "a row whose key is None": (
        lambda: bulk_update(Account, [account("a"), account(None)], ["name"],
                            key=["tenant", "code"]),
        RowValueError, ["row 1 has no value for the key 'code'"], 1, "code",
    ),
    "a row without a field to update": (
        lambda: bulk_update(Kitchen, [{"id": 1, "name": "a"}, {"id": 2}], ["name"]),
        RowValueError, ["row 1 has no value for 'name'"], 1, "name",
    ),
    "duplicate keys in one update": (
        lambda: bulk_update(Kitchen, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"},
                                      {"id": "1", "name": "c"}], ["name"]),
        RowValueError, ["rows 0 and 2 have the same key 1"], 2, "id",
    ),
    "duplicate composite keys in one upsert": (
        lambda: bulk_upsert(Account, [account("a"), account("a", email="other@x.org")],
                            ["tenant", "code"], ["name"]),
        RowValueError, ["rows 0 and 1 have the same unique_fields ('t', 'a')"], 1, "tenant",
    ),
    "a key that is not unique": (
        lambda: bulk_update(Kitchen, [{"name": "a", "counter": 1}], ["counter"], key="name"),
        ValueError, ["'name' does not identify one row"], None, None,
    ),
    "upsert on fields without a unique constraint": (
        lambda: bulk_upsert(Account, [account("a")], ["name"], ["email"]),
        ValueError, ["'name' does not identify one row"], None, None,
    ),
    "updating the key itself": (
        lambda: bulk_update(Account, [account("a")], ["email", "name"], key="email"),
        ValueError, ["'email' is the key"], None, None,
    ),
    "upsert updating its conflict key": (
        lambda: bulk_upsert(Account, [account("a")], ["email"], ["email"]),
        ValueError, ["'email' is part of the key"], None, None,
    ),
    "nothing to update": (
        lambda: bulk_update(Kitchen, [{"id": 1}], []), ValueError, ["no field to update"], None,
        None,
    ),
    "a sliced queryset": (
        lambda: bulk_update(Kitchen.objects.all()[:5], [{"id": 1, "name": "a"}], ["name"]),
        TypeError, ["sliced queryset"], None, None,
    ),
    "NaN inside JSON": (
        lambda: bulk_insert(Kitchen, [ok(), ok(data={"x": float("nan")})]),
        RowValueError, ["row 1", "'data'", "NaN and Infinity have no JSON form"], 1, "data",
    ),
    "Infinity inside JSON, on update": (
        lambda: bulk_update(Kitchen, [{"id": 1, "data": [float("inf")]}], ["data"]),
        RowValueError, ["row 0", "'data'", "no JSON form"], 0, "data",
    ),
    "both pk and id in a row": (
        lambda: bulk_update(Kitchen, [{"pk": 1, "id": 1, "name": "a"}], ["name"]),
        RowValueError, ["row 0 gives both 'pk' and 'id'"], 0, "id",
    ),
    "not a model": (
        lambda: bulk_insert("bulkdemo.Kitchen", [ok()]), TypeError, ["takes a model class"],
        None, None,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_before_any_sql(case):
    call, exception, words, index, field = CASES[case]
    Kitchen.objects.create(name="existing")  # so that an update would have a row to touch
    with CaptureQueriesContext(connection) as queries, pytest.raises(exception) as raised:
        call()
    message = str(raised.value)
    for word in words:
        assert word in message
    assert getattr(raised.value, "index", None) == index
    assert getattr(raised.value, "field", None) == field
    assert [q["sql"] for q in queries] == []


def test_deferred_fields_on_instances_are_refused_before_any_sql():
    Kitchen.objects.create(name="a")
    obj = Kitchen.objects.only("id").get()
    with pytest.raises(RowValueError) as raised:
        bulk_update(Kitchen, [obj], ["name"])
    assert "field 'name' is deferred" in str(raised.value)
    assert "name" not in vars(obj)  # Django did not load it (which would take a query)


def test_a_deferred_field_on_an_instance_among_dicts_is_refused_too():
    """Read through vars() among dicts, it would otherwise silently get its default."""
    Kitchen.objects.create(name="a", counter=99)
    obj = Kitchen.objects.defer("counter").get()
    obj.pk = None
    obj._state.adding = True
    with CaptureQueriesContext(connection) as queries, pytest.raises(RowValueError) as raised:
        bulk_insert(Kitchen, [{"name": "d"}, obj])
    assert "row 1, field 'counter' is deferred" in str(raised.value)
    assert (raised.value.index, raised.value.field) == (1, "counter")
    assert [q["sql"] for q in queries] == []
    assert Kitchen.objects.count() == 1


def test_dict_rows_may_name_the_primary_key_pk():
    [pk] = bulk_insert(Kitchen, [{"pk": 41, "name": "a"}], returning=True)
    assert pk == 41
    assert bulk_update(Kitchen, [{"pk": 41, "name": "b"}], ["name"]) == 1
    result = bulk_upsert(Kitchen, [{"pk": 41, "name": "c"}], ["pk"], ["name"])
    assert (result.inserted, result.updated) == (0, 1)
    assert Kitchen.objects.get(pk=41).name == "c"


def test_errors_are_plain_value_and_type_errors():
    assert issubclass(RowValueError, ValueError)
    assert issubclass(RowTypeError, TypeError)


def test_a_bad_row_anywhere_writes_nothing():
    rows = [ok(name=f"r{i}") for i in range(500)] + [ok(integer="oops")]
    with pytest.raises(RowValueError, match="row 500"):
        bulk_insert(Kitchen, rows)
    assert not Kitchen.objects.exists()


def _against_memory_order(objs: list) -> list:
    """``objs`` in descending address order, the reverse of how bulk_update reads them."""
    return sorted(objs, key=id, reverse=True)


def test_update_errors_name_rows_by_their_place_in_the_callers_list():
    saved = Item.objects.bulk_create(
        Item(qty=i, name=f"n{i}", body="", price=decimal.Decimal(1), ts=NOW, active=True)
        for i in range(60)
    )
    objs = _against_memory_order(list(Item.objects.order_by("pk")))
    assert len(saved) == len(objs)
    for index in (3, 40):  # row 40 comes first in memory order
        objs[index].name = "x" * 101
    with CaptureQueriesContext(connection) as queries, pytest.raises(RowValueError) as raised:
        bulk_update(Item, objs, ["name"])
    assert (raised.value.index, raised.value.field) == (3, "name")
    assert "row 3, field 'name'" in str(raised.value)
    assert [q["sql"] for q in queries] == []


def test_update_duplicate_keys_name_rows_by_their_place_in_the_callers_list():
    rows = _against_memory_order([{"id": i, "name": f"n{i}"} for i in range(20)])
    rows[9]["id"] = rows[2]["id"]
    rows[15]["id"] = rows[11]["id"]  # the second pair comes first in memory order
    with pytest.raises(RowValueError) as raised:
        bulk_update(Kitchen, rows, ["name"])
    assert f"rows 2 and 9 have the same key {rows[2]['id']}" in str(raised.value)
    assert raised.value.index == 9
