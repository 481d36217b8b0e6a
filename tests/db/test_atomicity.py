"""Each bulk helper writes all rows or none, and rows_changed reports exactly what committed."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.test import override_settings

from django_perf.db import bulk_insert, bulk_update, bulk_upsert
from testproject.bulkdemo.models import Account, Kitchen

transactional = pytest.mark.django_db(transaction=True)


def account(code: str, **overrides):
    return {"tenant": "t", "code": code, "email": f"{code}@x.org", "name": code, **overrides}


def accounts(count: int) -> list[Account]:
    pks = bulk_insert(Account, [account(str(i)) for i in range(count)], returning=True)
    return list(Account.objects.filter(pk__in=pks).order_by("pk"))


# Both staging paths of bulk_update/bulk_upsert: unnest (default for small sets) and COPY.
paths = pytest.mark.parametrize(
    "copy_from", [None, 1], ids=["unnest", "copy"]
)  # BULK_COPY_MIN_ROWS


def staging(copy_from):
    return override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from or 10_000})


@transactional
def test_insert_that_fails_on_one_row_writes_nothing(changes):
    Account.objects.create(**account("taken"))
    rows = [account(str(i)) for i in range(1000)]
    rows[700] = account("other", email="taken@x.org")  # the database refuses this one
    with pytest.raises(IntegrityError):
        bulk_insert(Account, rows)
    assert Account.objects.count() == 1
    assert changes.calls == []


@transactional
@paths
def test_update_that_fails_on_one_row_writes_nothing(changes, copy_from):
    rows = accounts(300)
    for obj in rows:
        obj.name = "changed"
    rows[-1].email = rows[0].email  # unique violation on the last row
    with staging(copy_from), pytest.raises(IntegrityError):
        bulk_update(Account, rows, ["name", "email"])
    assert not Account.objects.filter(name="changed").exists()
    assert changes.calls == [
        {"sender": Account, "pks": [a.pk for a in rows], "action": "insert", "using": "default"}
    ]  # only the insert that built the fixture


@transactional
@paths
def test_upsert_that_fails_on_one_row_writes_nothing(changes, copy_from):
    accounts(10)
    rows = [account(str(i), name="updated") for i in range(10)]
    rows += [account(f"new{i}") for i in range(10)]
    rows[-1]["email"] = "3@x.org"  # a new row taking an existing row's unique email
    with staging(copy_from), pytest.raises(IntegrityError):
        bulk_upsert(Account, rows, ["tenant", "code"], ["name"])
    assert Account.objects.count() == 10
    assert not Account.objects.filter(name="updated").exists()
    assert len(changes.calls) == 1  # the fixture's insert


@transactional
def test_a_failure_inside_the_callers_transaction_leaves_it_usable(changes):
    Account.objects.create(**account("taken"))
    with transaction.atomic():
        bulk_insert(Account, [account("kept")])
        with pytest.raises(IntegrityError):
            bulk_insert(Account, [account("lost"), account("dup", email="taken@x.org")])
        Account.objects.create(**account("after"))  # the transaction still works
    assert set(Account.objects.values_list("code", flat=True)) == {"taken", "kept", "after"}
    assert [c["action"] for c in changes.calls] == ["insert"]
    kept = Account.objects.get(code="kept").pk
    assert changes.calls[0]["pks"] == [kept]


@transactional
def test_nothing_is_sent_when_the_callers_transaction_rolls_back(changes):
    class Abort(Exception):
        pass

    def write_then_abort():
        with transaction.atomic():
            (pk,) = bulk_insert(Kitchen, [{"name": "a"}], returning=True)
            assert bulk_update(Kitchen, [{"id": pk, "name": "b"}], ["name"]) == 1
            assert bulk_upsert(Account, [account("x")], ["email"], ["name"]).inserted == 1
            raise Abort

    with pytest.raises(Abort):
        write_then_abort()
    assert changes.calls == []
    assert not Kitchen.objects.exists()


@transactional
def test_the_signal_waits_for_the_commit(changes):
    with transaction.atomic():
        pks = bulk_insert(Kitchen, [{"name": "a"}, {"name": "b"}], returning=True)
        assert changes.calls == []
    assert changes.calls == [
        {"sender": Kitchen, "pks": pks, "action": "insert", "using": "default"}
    ]


@transactional
def test_insert_reports_the_new_keys_even_without_returning(changes):
    assert bulk_insert(Kitchen, [{"name": "a"}, {"name": "b"}]) == 2
    (call,) = changes.calls
    assert sorted(call["pks"]) == sorted(Kitchen.objects.values_list("pk", flat=True))


@transactional
@paths
def test_update_reports_exactly_the_rows_it_changed(changes, copy_from):
    rows = accounts(6)
    changes.calls.clear()
    updates = [{"id": rows[1].pk, "name": "x"}, {"id": rows[4].pk, "name": "y"}]
    updates.append({"id": 10_000, "name": "no such row"})
    with staging(copy_from):
        assert bulk_update(Account, updates, ["name"]) == 2
    assert changes.calls == [
        {"sender": Account, "pks": [rows[1].pk, rows[4].pk], "action": "update",
         "using": "default"}
    ]  # fmt: skip


@transactional
@paths
def test_update_by_another_unique_key_reports_primary_keys(changes, copy_from):
    rows = accounts(3)
    changes.calls.clear()
    with staging(copy_from):
        count = bulk_update(Account, [{"email": "2@x.org", "name": "z"}], ["name"], key="email")
    assert count == 1
    assert changes.calls[0]["pks"] == [rows[2].pk]


@transactional
@paths
def test_upsert_reports_inserted_and_updated_rows_but_not_skipped_ones(changes, copy_from):
    rows = accounts(2)
    changes.calls.clear()
    with staging(copy_from):
        result = bulk_upsert(Account, [account("0", name="new"), account("9")], ["email"], ["name"])
    new = Account.objects.get(code="9").pk
    assert (result.inserted, result.updated, result.skipped) == (1, 1, 0)
    assert changes.calls == [
        {"sender": Account, "pks": [new, rows[0].pk], "action": "upsert", "using": "default"}
    ]
    changes.calls.clear()
    with staging(copy_from):
        result = bulk_upsert(Account, [account("1"), account("8")], ["email"], [])
    assert (result.inserted, result.updated, result.skipped) == (1, 0, 1)
    assert changes.calls[0]["pks"] == [Account.objects.get(code="8").pk]


@transactional
def test_nothing_is_sent_when_nothing_was_touched(changes):
    assert bulk_update(Kitchen, [{"id": 123, "name": "gone"}], ["name"]) == 0
    assert bulk_insert(Kitchen, []) == 0
    assert changes.calls == []
