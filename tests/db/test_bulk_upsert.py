"""bulk_upsert: INSERT ... ON CONFLICT with inserted and updated counts."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_perf.db import UpsertResult, bulk_insert, bulk_upsert
from testproject.bulkdemo.models import Account, Kitchen
from testproject.pgdemo.models import Coded, Tagged

from .conftest import kitchen_row

pytestmark = pytest.mark.django_db

paths = pytest.mark.parametrize("copy_from", [10_000, 1], ids=["unnest", "copy"])


def account(tenant: str, code: str, **overrides):
    row = {"tenant": tenant, "code": code, "email": f"{tenant}.{code}@x.org", "name": code}
    return {**row, **overrides}


@paths
def test_counts_inserted_and_updated_rows(copy_from):
    bulk_insert(Account, [account("t", "a", visits=1), account("t", "b", visits=2)])
    rows = [account("t", "a", name="A", visits=10), account("t", "c", name="C", visits=30)]
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        result = bulk_upsert(Account, rows, ["tenant", "code"], ["name"])
    assert result == UpsertResult(inserted=1, updated=1, skipped=0)
    assert result.total == 2
    stored = {a.code: a for a in Account.objects.all()}
    assert (stored["a"].name, stored["a"].visits) == ("A", 1)  # visits not in update_fields
    assert (stored["c"].name, stored["c"].visits) == ("C", 30)
    assert stored["b"].name == "b"
    assert result.inserted_pks == [stored["c"].pk]
    assert result.updated_pks == [stored["a"].pk]


@paths
def test_empty_update_fields_leave_existing_rows_alone(copy_from):
    bulk_insert(Account, [account("t", "a")])
    rows = [account("t", "a", name="ignored"), account("t", "b")]
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        result = bulk_upsert(Account, rows, ["tenant", "code"], [])
    assert (result.inserted, result.updated, result.skipped) == (1, 0, 1)
    assert Account.objects.get(code="a").name == "a"
    assert Account.objects.filter(code="b").exists()


@paths
def test_primary_key_as_conflict_target(copy_from):
    (pk,) = bulk_insert(Kitchen, [{"name": "old"}], returning=True)
    rows = [{"id": pk, "name": "new"}, {"id": pk + 100, "name": "added"}]
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        result = bulk_upsert(Kitchen, rows, ["pk"], ["name"])
    assert (result.inserted, result.updated) == (1, 1)
    assert dict(Kitchen.objects.values_list("pk", "name")) == {pk: "new", pk + 100: "added"}


@paths
def test_new_rows_get_defaults_and_every_type_round_trips(copy_from):
    existing = Kitchen.objects.create(name="existing")
    rows = [
        {"id": existing.pk, "name": "renamed"},
        {"id": existing.pk + 1, **kitchen_row(name="fresh")},
        {"id": existing.pk + 2, "name": "bare"},
    ]
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        result = bulk_upsert(Kitchen, rows, ["pk"], ["name"])
    assert (result.inserted, result.updated) == (2, 1)
    stored = {k["name"]: k for k in Kitchen.objects.values()}
    assert set(stored) == {"renamed", "fresh", "bare"}
    assert stored["bare"]["status"] == "new"  # db_default
    assert stored["bare"]["counter"] == 7  # Python default
    for name, value in kitchen_row(name="fresh").items():
        actual = stored["fresh"][name]
        assert (bytes(actual) if name == "blob" else actual) == value, name


def test_empty_update_fields_skip_only_conflicts_on_the_unique_fields():
    """A row that breaks another constraint raises, as ON CONFLICT (key) DO NOTHING does.

    SQLite's INSERT OR IGNORE dropped it silently, and the counts did not add up.
    """
    bulk_insert(Account, [account("t", "a")])
    rows = [account("t", "a"), account("t", "b", email="t.a@x.org")]  # (t, a)'s email
    with pytest.raises(IntegrityError):
        bulk_upsert(Account, rows, ["tenant", "code"], [])
    assert list(Account.objects.values_list("code", flat=True)) == ["a"]


def test_rows_mixing_given_and_generated_primary_keys():
    rows = [account("t", "a"), account("t", "b", id=7000)]
    result = bulk_upsert(Account, rows, ["email"], [])
    assert result.inserted == 2
    assert Account.objects.filter(pk=7000, code="b").exists()
    assert sorted(result.inserted_pks) == sorted(Account.objects.values_list("pk", flat=True))


def test_chunks_share_one_transaction():
    rows = [account("t", str(i)) for i in range(7)]
    with override_settings(DJANGO_PERF={"BULK_BATCH_SIZE": 3}):
        result = bulk_upsert(Account, rows, ["tenant", "code"], ["name"])
    assert result.inserted == 7
    assert Account.objects.count() == 7


@pytest.mark.postgres
def test_postgresql_tells_inserts_from_updates_in_one_statement():
    bulk_insert(Account, [account("t", "a")])
    with CaptureQueriesContext(connection) as queries:
        bulk_upsert(Account, [account("t", "a"), account("t", "b")], ["tenant", "code"], ["name"])
    (statement,) = [q["sql"] for q in queries if q["sql"].startswith("INSERT")]
    assert 'ON CONFLICT ("tenant", "code") DO UPDATE SET "name" = EXCLUDED."name"' in statement
    assert "(t.xmax = 0)" in statement


@pytest.mark.postgres
@paths
def test_char_n_values_keep_every_character(copy_from):
    """A bare ``character`` cast means char(1): the upsert cut the values to one letter."""
    bulk_insert(Coded, [{"code": "ab", "label": "old"}])
    rows = [{"code": "ab", "label": "abcdef"}, {"code": "abc", "label": "ghijkl"}]
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        result = bulk_upsert(Coded, rows, ["code"], ["label"])
    assert (result.inserted, result.updated) == (1, 1)
    stored = {
        code.strip(): label.strip() for code, label in Coded.objects.values_list("code", "label")
    }
    assert stored == {"ab": "abcdef", "abc": "ghijkl"}


@pytest.mark.postgres
def test_arrays_upsert():
    bulk_insert(Tagged, [{"name": "a", "tags": ["x"]}])
    rows = [{"name": "a", "tags": ["y"], "grid": [[1]]}, {"name": "b", "tags": ["z", "w"]}]
    result = bulk_upsert(Tagged, rows, ["name"], ["tags", "grid"])
    assert (result.inserted, result.updated) == (1, 1)
    assert dict(Tagged.objects.values_list("name", "tags")) == {"a": ["y"], "b": ["z", "w"]}


@paths
def test_a_querysets_filter_does_not_bound_the_conflict(copy_from):
    """ON CONFLICT sees every row of the table: so does the lookup off PostgreSQL."""
    bulk_insert(Account, [account("other", "a"), account("acme", "z")])
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        result = bulk_upsert(
            Account.objects.filter(tenant="acme"),
            [account("other", "a", name="A2")],
            ["tenant", "code"],
            ["name"],
        )
    stored = Account.objects.get(tenant="other", code="a")
    assert (result.inserted, result.updated, result.updated_pks) == (0, 1, [stored.pk])
    assert stored.name == "A2"
    assert Account.objects.count() == 2


@paths
def test_an_updated_column_left_out_goes_back_to_its_db_default(copy_from):
    [pk] = bulk_insert(Kitchen, [{"name": "k", "status": "cooked"}], returning=True)
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        result = bulk_upsert(Kitchen, [{"id": pk, "name": "k2"}], ["id"], ["name", "status"])
    assert (result.inserted, result.updated) == (0, 1)
    assert Kitchen.objects.values_list("name", "status").get(pk=pk) == ("k2", "new")
