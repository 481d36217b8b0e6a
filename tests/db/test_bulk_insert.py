"""bulk_insert: every field type round-trips, defaults apply as save() would, keys come back."""

from __future__ import annotations

import datetime
import decimal
import uuid
import zoneinfo

import pytest
from django.db import connection, models
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.text import slugify

from django_perf.db import RowValueError, bulk_insert, bulk_upsert
from testproject.bulkdemo.models import Item, Kitchen, Stamped, Token
from testproject.pgdemo.models import Minted, Tagged

from .conftest import UTC, kitchen_row

pytestmark = pytest.mark.django_db

COMPARED = [f for f in kitchen_row() if f not in {"blob"}]


def stored(pk: int) -> dict:
    return Kitchen.objects.filter(pk=pk).values().get()


def test_every_field_type_round_trips_from_dicts():
    token = Token.objects.create(label="t")
    row = kitchen_row(token=token)
    (pk,) = bulk_insert(Kitchen, [row], returning=True)
    saved = stored(pk)
    for name in COMPARED:
        assert saved[name] == row[name], name
    assert bytes(saved["blob"]) == row["blob"]
    assert saved["token_id"] == token.pk


def test_every_field_type_round_trips_from_instances():
    token = Token.objects.create(label="t")
    obj = Kitchen(**kitchen_row(), token=token)
    (pk,) = bulk_insert(Kitchen, [obj], returning=True)
    assert obj.pk == pk
    assert obj._state.adding is False
    saved = stored(pk)
    for name in COMPARED:
        assert saved[name] == getattr(obj, name), name


def test_nulls_round_trip():
    nullable = ["small", "integer", "big", "positive", "ratio", "amount", "maybe", "day"]
    nullable += ["moment", "clock", "span", "data", "blob", "ip", "token"]
    (pk,) = bulk_insert(Kitchen, [kitchen_row(**dict.fromkeys(nullable))], returning=True)
    saved = stored(pk)
    for name in nullable:
        assert saved["token_id" if name == "token" else name] is None, name


def test_values_go_through_each_fields_conversion():
    """Strings and other types a field accepts are converted by the field itself."""
    rows = [
        kitchen_row(
            integer="17",
            amount=5,
            ratio=3,
            day="2020-01-02",
            moment="2020-01-02T03:04:05+02:00",
            clock="04:05:06",
            span="1 02:03:04",
            ident="12345678123456781234567812345678",
            flag="t",
            small=True,
        )
    ]
    (pk,) = bulk_insert(Kitchen, rows, returning=True)
    saved = stored(pk)
    assert saved["integer"] == 17
    assert saved["amount"] == decimal.Decimal("5.000")
    assert saved["ratio"] == 3.0
    assert saved["day"] == datetime.date(2020, 1, 2)
    assert saved["moment"] == datetime.datetime(2020, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert saved["clock"] == datetime.time(4, 5, 6)
    assert saved["span"] == datetime.timedelta(days=1, hours=2, minutes=3, seconds=4)
    assert saved["ident"] == uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert saved["flag"] is True
    assert saved["small"] == 1


@pytest.mark.postgres
def test_postgresql_ranges_are_the_column_types():
    from django_perf.db import RowValueError

    with pytest.raises(RowValueError, match="out of range for SmallIntegerField"):
        bulk_insert(Kitchen, [kitchen_row(small=40_000)])


def test_aware_datetimes_in_other_zones_keep_their_instant():
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    moment = datetime.datetime(2024, 7, 1, 12, 0, tzinfo=paris)
    (pk,) = bulk_insert(Kitchen, [kitchen_row(moment=moment)], returning=True)
    assert stored(pk)["moment"] == datetime.datetime(2024, 7, 1, 10, 0, tzinfo=UTC)


def test_naive_datetimes_are_made_aware_with_djangos_warning():
    naive = datetime.datetime(2024, 1, 1, 12, 0)
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        (pk,) = bulk_insert(Kitchen, [kitchen_row(moment=naive)], returning=True)
    assert stored(pk)["moment"] == naive.replace(tzinfo=UTC)


def test_text_choices_are_stored_by_value():
    from django.db import models

    class Mood(models.TextChoices):
        HAPPY = "happy-value", "Happy"

    (pk,) = bulk_insert(Kitchen, [kitchen_row(slug=Mood.HAPPY)], returning=True)
    assert stored(pk)["slug"] == "happy-value"


def test_defaults_apply_to_missing_values_as_save_would():
    (pk,) = bulk_insert(Kitchen, [{"name": "bare"}], returning=True)
    obj = Kitchen.objects.get(pk=pk)
    reference = Kitchen(name="bare")
    reference.save()
    reference.refresh_from_db()
    for name in ["text", "flag", "counter", "email", "status", "small", "data"]:
        assert getattr(obj, name) == getattr(reference, name), name
    assert isinstance(obj.ident, uuid.UUID)
    assert obj.ident != reference.ident  # a callable default runs per row
    assert obj.status == "new"  # db_default
    assert obj.created is not None  # db_default=Now()


def test_callable_defaults_run_once_per_row():
    pks = bulk_insert(Kitchen, [{"name": "a"}, {"name": "b"}, {"name": "c"}], returning=True)
    idents = set(Kitchen.objects.filter(pk__in=pks).values_list("ident", flat=True))
    assert len(idents) == 3


def test_rows_mixing_given_and_database_defaults():
    """Rows that give a db_default column and rows that do not, in one call."""
    rows = [{"name": "given", "status": "set"}, {"name": "default"}, Kitchen(name="instance")]
    rows[2].status  # noqa: B018 (an unsaved instance holds DatabaseDefault)
    pks = bulk_insert(Kitchen, rows[:2], returning=True)
    pks += bulk_insert(Kitchen, rows[2:], returning=True)
    statuses = dict(Kitchen.objects.filter(pk__in=pks).values_list("name", "status"))
    assert statuses == {"given": "set", "default": "new", "instance": "new"}


def test_returning_gives_keys_in_input_order():
    rows = [{"name": f"r{i}", "counter": i} for i in range(50)]
    pks = bulk_insert(Kitchen, rows, returning=True)
    assert len(set(pks)) == 50
    counters = dict(Kitchen.objects.filter(pk__in=pks).values_list("pk", "counter"))
    assert [counters[pk] for pk in pks] == list(range(50))


def test_explicit_primary_keys_are_kept():
    pks = bulk_insert(Kitchen, [{"id": 9001, "name": "a"}, {"name": "b"}], returning=True)
    assert pks[0] == 9001
    assert Kitchen.objects.filter(pk__in=pks).count() == 2


def test_application_chosen_primary_keys():
    chosen = uuid.uuid4()
    pks = bulk_insert(Token, [{"id": chosen, "label": "a"}, Token(label="b")], returning=True)
    assert pks[0] == chosen
    assert set(Token.objects.values_list("pk", flat=True)) == set(pks)


@pytest.mark.postgres
@pytest.mark.parametrize("copy_from", [10_000, 1], ids=["unnest", "copy"])
def test_returning_keys_the_database_makes_without_a_sequence(copy_from):
    """A db_default key has no sequence to take keys from first: they come from RETURNING."""
    chosen = uuid.uuid4()
    rows = [{"name": "a"}, {"id": chosen, "name": "b"}, Minted(name="c"), {"name": "d"}]
    with override_settings(DJANGO_PERF={"BULK_COPY_MIN_ROWS": copy_from}):
        pks = bulk_insert(Minted, rows, returning=True)
    assert pks[1] == chosen
    assert all(isinstance(pk, uuid.UUID) for pk in pks)
    names = dict(Minted.objects.values_list("pk", "name"))
    assert [names[pk] for pk in pks] == ["a", "b", "c", "d"]
    assert rows[2].pk == pks[2]
    assert not rows[2]._state.adding


@pytest.mark.postgres
def test_a_rows_changed_listener_gets_keys_the_database_makes(
    changes, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert bulk_insert(Minted, [{"name": "a"}, {"name": "b"}]) == 2
    (call,) = changes.calls
    assert set(call["pks"]) == set(Minted.objects.values_list("pk", flat=True))


def free_slug(field: models.SlugField, instance: models.Model, add: bool) -> str:
    """An AutoSlugField-style ``pre_save()``: keep a given slug, else query for a free one."""
    slug = getattr(instance, field.attname) or slugify(instance.name)
    base, n = slug, 1
    while type(instance).objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    setattr(instance, field.attname, slug)
    return slug


def test_a_pre_save_that_queries_runs(monkeypatch):
    """Queries were refused while reading instances, and the refusal ended in StopIteration."""
    monkeypatch.setattr(models.SlugField, "pre_save", free_slug)
    Kitchen.objects.create(name="Hello", slug="hello")
    assert bulk_insert(Kitchen, [Kitchen(name="Hello"), Kitchen(name="Other")]) == 2
    assert sorted(Kitchen.objects.values_list("slug", flat=True)) == ["hello", "hello-2", "other"]


def test_a_deferred_field_whose_pre_save_reads_it_is_refused(monkeypatch):
    """Reading it would load it, a query per row: refused as any deferred field is."""
    monkeypatch.setattr(models.SlugField, "pre_save", free_slug)
    Kitchen.objects.create(name="a")
    obj = Kitchen.objects.defer("slug").get()
    obj.pk = None
    obj._state.adding = True
    with pytest.raises(RowValueError) as raised:
        bulk_insert(Kitchen, [obj])
    assert (raised.value.index, raised.value.field) == (0, "slug")
    assert "slug" not in vars(obj)  # Django did not load it
    assert Kitchen.objects.count() == 1


def test_without_returning_it_counts_rows():
    assert bulk_insert(Kitchen, [{"name": "a"}, {"name": "b"}]) == 2
    assert Kitchen.objects.count() == 2


def test_fields_limits_what_is_read_and_the_rest_gets_defaults():
    row = kitchen_row(counter=99, status="given")
    (pk,) = bulk_insert(Kitchen, [row], fields=["name", "integer"], returning=True)
    saved = stored(pk)
    assert saved["name"] == row["name"]
    assert saved["integer"] == row["integer"]
    assert saved["counter"] == 7  # Python default, not the row's 99
    assert saved["status"] == "new"  # db_default, not the row's value
    assert saved["small"] is None


def test_related_instances_and_attnames_both_work():
    token = Token.objects.create(label="t")
    pks = bulk_insert(
        Kitchen,
        [{"name": "a", "token": token}, {"name": "b", "token_id": token.pk}],
        returning=True,
    )
    assert list(Kitchen.objects.filter(pk__in=pks).values_list("token_id", flat=True)) == [
        token.pk,
        token.pk,
    ]


def test_an_iterator_of_rows_is_accepted():
    assert bulk_insert(Kitchen, ({"name": str(i)} for i in range(3))) == 3


def test_no_rows_no_queries():
    with CaptureQueriesContext(connection) as queries:
        assert bulk_insert(Kitchen, []) == 0
        assert bulk_insert(Kitchen, [], returning=True) == []
    assert len(queries) == 0


def test_a_queryset_or_manager_names_the_table():
    assert bulk_insert(Kitchen.objects, [{"name": "a"}]) == 1
    assert bulk_insert(Kitchen.objects.all(), [{"name": "b"}]) == 1
    assert Kitchen.objects.count() == 2


@pytest.mark.postgres
def test_postgresql_uses_one_binary_copy():
    rows = [
        {"qty": i, "name": "n", "body": "b", "price": 1, "ts": datetime.datetime.now(UTC),
         "active": True}
        for i in range(1000)
    ]  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        bulk_insert(Item, rows)
    copies = [q["sql"] for q in queries if q["sql"].startswith("COPY")]
    assert copies == [
        'COPY "bulkdemo_item" ("qty", "name", "body", "price", "ts", "active") '
        "FROM STDIN (FORMAT BINARY)"
    ]
    assert Item.objects.count() == 1000


@pytest.mark.postgres
def test_arrays_round_trip():
    rows = [
        {"name": "a", "tags": ["x", "y"], "scores": [1, None, 3], "grid": [[1, 2], [3, 4]]},
        {"name": "b", "tags": [], "scores": None},
        Tagged(name="c", tags=["z"], scores=["7"]),
    ]
    pks = bulk_insert(Tagged, rows, returning=True)
    saved = {t.name: t for t in Tagged.objects.filter(pk__in=pks)}
    assert saved["a"].tags == ["x", "y"]
    assert saved["a"].scores == [1, None, 3]
    assert saved["a"].grid == [[1, 2], [3, 4]]
    assert saved["b"].tags == []
    assert saved["b"].scores is None
    assert saved["c"].scores == [7]


@pytest.mark.postgres
def test_types_without_a_binary_dumper_use_text_copy():
    """A column type psycopg cannot dump in binary (an enum here) makes the COPY textual."""
    from django_perf.db import postgres

    with connection.cursor() as cursor:
        cursor.execute("CREATE TYPE test_mood AS ENUM ('sad', 'happy')")
        cursor.execute("CREATE TABLE test_moods (id int, mood test_mood)")
    columns = postgres.table_columns(connection, "test_moods")
    with postgres.cursor(connection) as (wrapped, raw):
        ordered = [columns["id"], columns["mood"]]
        assert postgres.copy_format(raw, ordered) == "text"
        assert postgres.copy_format(raw, [columns["id"]]) == "binary"
        postgres.copy_rows(connection, raw, "test_moods", ordered, [(1, "happy"), (2, None)])
        wrapped.execute("SELECT id, mood::text FROM test_moods ORDER BY id")
        assert wrapped.fetchall() == [(1, "happy"), (2, None)]


@pytest.mark.sqlite
def test_sqlite_inserts_through_bulk_create():
    with CaptureQueriesContext(connection) as queries:
        pks = bulk_insert(Kitchen, [kitchen_row(), {"name": "b"}], returning=True)
    assert any(q["sql"].startswith("INSERT INTO") for q in queries)
    assert Kitchen.objects.filter(pk__in=pks).count() == 2


GIVEN = datetime.datetime(2001, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)


def test_auto_now_values_a_row_gives_are_kept_and_missing_ones_filled():
    before = timezone.now()
    bulk_insert(Stamped, [{"code": "given", "created": GIVEN, "updated": GIVEN}, {"code": "now"}])
    given, filled = Stamped.objects.get(code="given"), Stamped.objects.get(code="now")
    assert (given.created, given.updated) == (GIVEN, GIVEN)
    assert before <= filled.created <= timezone.now()
    assert before <= filled.updated <= timezone.now()


def test_upserted_new_rows_keep_the_auto_now_values_they_give():
    result = bulk_upsert(
        Stamped, [{"code": "b", "created": GIVEN, "updated": GIVEN}], ["code"], ["updated"]
    )
    assert result.inserted_pks == [Stamped.objects.get().pk]
    assert Stamped.objects.values_list("created", "updated").get() == (GIVEN, GIVEN)
