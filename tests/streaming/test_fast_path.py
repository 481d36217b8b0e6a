"""The PostgreSQL fast path: when it applies, and that it writes exactly what Python writes."""

import datetime as dt
import json
import random
import struct
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count, F, Value
from django.db.models.functions import Upper
from django.test import RequestFactory, override_settings

from django_perf.streaming import PATH_HEADER, stream_queryset
from django_perf.streaming.fastpath import copy_sql, why_not
from django_perf.streaming.query import Column, plan_query
from testproject.blog.models import Article, Author, Event
from tests.streaming import expected
from tests.streaming.expected import FORMATS, PLAIN_FIELDS

pytestmark = pytest.mark.django_db


def stream(queryset, format="json", **kwargs) -> tuple[str, bytes]:
    response = stream_queryset(RequestFactory().get("/"), queryset, format=format, **kwargs)
    return response[PATH_HEADER], b"".join(response)


def test_only_postgresql_has_a_fast_path():
    reason = why_not(plan_query(Event.objects.all(), ["id"]), "json")
    if connection.vendor == "postgresql":
        assert reason is None
    else:
        assert reason == "the database is sqlite; the fast path needs PostgreSQL"


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("queryset", "fields", "format", "reason"),
    [
        (Event.objects.all(), ["id", "payload"], "json", "column 'payload' is computed"),
        (Event.objects.annotate(up=Upper("kind")), ["id", "up"], "json", "column 'up' is computed"),
        (Event.objects.annotate(x=F("count") + 1), ["x", "id"], "ndjson", "column 'x' is computed"),
        (Event.objects.annotate(one=Value(1)), ["id", "one"], "csv", "column 'one' is computed"),
        (Event.objects.all(), ["id"], "csv", "a one-column CSV"),
        (Event.objects.all(), ["id"], "json", None),
        (Event.objects.all(), ["article__author__name", "article__rating"], "csv", None),
        (Article.objects.all(), ["author", "tags__name"], "json", None),
    ],
)
def test_when_the_fast_path_applies(queryset, fields, format, reason):
    found = why_not(plan_query(queryset, fields), format)
    if reason is None:
        assert found is None
    else:
        assert reason in found


@pytest.mark.postgres
def test_datetimes_need_utc_for_the_fast_path():
    plan = plan_query(Event.objects.all(), ["id", "occurred_at"])
    with override_settings(USE_TZ=False):
        assert "not in UTC with USE_TZ = True" in why_not(plan, "json")
    assert why_not(plan, "json") is None


@pytest.mark.postgres
def test_decimals_with_more_than_six_places_are_left_to_python():
    from django.db.models import DecimalField
    from django.db.models.expressions import Col

    field = DecimalField(max_digits=20, decimal_places=7)
    column = Column("tiny", "decimal", field, Col("t", field), plain=True)
    plan = plan_query(Event.objects.all(), ["id", "amount"])
    plan.columns.append(column)
    assert "has 7 decimal places" in why_not(plan, "json")


@pytest.mark.postgres
def test_the_setting_and_the_argument_turn_the_fast_path_off():
    queryset = Event.objects.filter(pk__lt=0)
    assert stream(queryset, fields=["id", "kind"])[0] == "copy"
    assert stream(queryset, fields=["id", "kind"], fast_path=False)[0] == "python"
    with override_settings(DJANGO_PERF={"STREAMING_FAST_PATH": False}):
        assert stream(queryset, fields=["id", "kind"])[0] == "python"
        assert stream(queryset, fields=["id", "kind"], fast_path=True)[0] == "copy"


def test_an_impossible_filter_streams_an_empty_document():
    queryset = Event.objects.filter(pk__in=[])  # Django knows it is empty: no SQL at all
    assert copy_sql(plan_query(queryset, ["id", "kind"]), "json") is None
    assert stream(queryset, fields=["id", "kind"])[1] == b"[]"
    assert stream(queryset, "csv", fields=["id", "kind"])[1] == b"id,kind\n"


@pytest.mark.parametrize("format", ["json", "csv"])
def test_a_grouped_values_queryset_streams_its_aggregates_on_both_paths(format):
    """values("kind").annotate(n=Count(...)): the aggregate is a column of every row."""
    for i, kind in enumerate(["view", "view", "click"]):
        Event.objects.create(
            uuid=uuid.UUID(int=i), kind=kind, occurred_at=dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
            day=dt.date(2024, 1, 2), local_time=dt.time(1, 2), duration=dt.timedelta(seconds=1),
            score=1.5, amount=Decimal("1.23"), count=1, total=2, payload={}, note="n",
        )  # fmt: skip
    grouped = Event.objects.values("kind").annotate(n=Count("id")).order_by("kind")
    _, body = stream(grouped, format)
    if format == "json":
        assert json.loads(body) == list(grouped) == [{"kind": "click", "n": 1},
                                                      {"kind": "view", "n": 2}]  # fmt: skip
    else:
        assert body == b"kind,n\nclick,1\nview,2\n"


def random_text(rng: random.Random) -> str:
    alphabet = 'abc ,"\\\n\r\t\x01\x03\x1f\x7fé☃𝄞\u2028'
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def random_float(rng: random.Random) -> float:
    while True:
        choice = rng.random()
        if choice < 0.3:
            value = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        elif choice < 0.6:
            value = 10 ** rng.uniform(-12, 22) * rng.choice([1, -1])
        else:
            value = round(rng.uniform(-1e6, 1e6), rng.randint(0, 6))
        if value == value and abs(value) != float("inf"):  # NaN and infinities are edge rows
            return value


@pytest.mark.postgres
@pytest.mark.parametrize("format", FORMATS)
def test_random_values_come_out_identical_on_both_paths(format):
    """Random bit patterns, unicode and durations through COPY's SQL and through Python."""
    rng = random.Random(2026)
    author = Author.objects.create(
        name="a", email="fuzz@example.com", joined_at=dt.datetime.now(dt.UTC)
    )
    article = Article.objects.create(author=author, title="t", slug="fuzz", body="b",
                                     published_at=dt.datetime.now(dt.UTC))  # fmt: skip
    events = []
    for i in range(1500):
        day = dt.date(rng.randint(1, 9999), rng.randint(1, 12), rng.randint(1, 28))
        micro = rng.choice([0, rng.randint(0, 999), rng.randint(0, 999999)])
        at = dt.datetime.combine(day, dt.time(rng.randint(0, 23), 59, 1, micro), tzinfo=dt.UTC)
        events.append(
            Event(
                uuid=uuid.UUID(int=rng.getrandbits(128)),
                article=article if i % 2 else None,
                kind=random_text(rng)[:20],
                occurred_at=at,
                day=at.date(),
                local_time=at.time(),
                duration=dt.timedelta(microseconds=rng.randint(-(10**15), 10**15)),
                score=random_float(rng),
                amount=Decimal(rng.randint(-(10**12) + 1, 10**12 - 1)) / 10**4,
                count=rng.randint(-(2**31), 2**31 - 1),
                total=rng.randint(-(2**63), 2**63 - 1),
                is_bot=rng.random() < 0.5,
                consented=rng.choice([True, False, None]),
                note=rng.choice([None, random_text(rng)]),
            )
        )
    Event.objects.bulk_create(events)
    queryset = Event.objects.filter(pk__in=[event.pk for event in events]).order_by("uuid")
    fast = stream(queryset, format, fields=PLAIN_FIELDS, chunk_size=333)
    python = stream(queryset, format, fields=PLAIN_FIELDS, chunk_size=333, fast_path=False)
    assert fast[0] == "copy"
    assert fast[1] == python[1]
    assert python[1] == expected.body(format, PLAIN_FIELDS, queryset=queryset)


@pytest.mark.postgres
def test_percent_signs_in_the_query_survive_a_copy_without_parameters():
    for kind in ("view", "visit", "click"):
        Event.objects.create(
            kind=kind, occurred_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), day=dt.date(2024, 1, 1),
            local_time=dt.time(0), duration=dt.timedelta(0), score=0, amount=0, count=0, total=0,
        )  # fmt: skip
    queryset = Event.objects.extra(where=["kind LIKE 'vi%%'"]).order_by("id")
    _sql, params = copy_sql(plan_query(queryset, ["id", "kind"]), "csv")
    assert params == ()
    path, body = stream(queryset, "csv", fields=["id", "kind"])
    assert path == "copy"
    assert body == stream(queryset, "csv", fields=["id", "kind"], fast_path=False)[1]
    view, visit = (Event.objects.get(kind=kind).pk for kind in ("view", "visit"))
    assert body.split(b"\n")[1:] == [b"%d,view" % view, b"%d,visit" % visit, b""]


@pytest.mark.parametrize(
    ("text", "spelled"),
    [
        ("2024-01-02 03:04:05+00", "2024-01-02T03:04:05Z"),
        ("2024-01-02 03:04:05.6+00", "2024-01-02T03:04:05.600Z"),
        ("2024-01-02 03:04:05.000501+00", "2024-01-02T03:04:05.000Z"),
        ("0001-01-01 00:00:00.999999+00", "0001-01-01T00:00:00.999Z"),
        (None, None),
    ],
)
def test_postgresql_timestamp_text_is_respelled_as_django_writes_datetimes(text, spelled):
    from django_perf.streaming.encoders import pg_utc_timestamp

    assert pg_utc_timestamp(text) == spelled


@pytest.mark.postgres
def test_the_python_path_reads_timestamps_as_text_only_when_all_are_plain_columns():
    """Read as text, respelled in Python; with a computed timestamp too, read as datetimes."""
    from django.db.backends.postgresql.psycopg_any import BaseTzLoader
    from psycopg import pq

    for second in range(3):
        at = dt.datetime(2024, 1, 1, 0, 0, second, second * 1500, tzinfo=dt.UTC)
        Event.objects.create(
            kind="k", occurred_at=at,
            day=dt.date(2024, 1, 1), local_time=dt.time(0), duration=dt.timedelta(0), score=0,
            amount=0, count=0, total=0,
        )  # fmt: skip
    plain = Event.objects.order_by("id")
    shifted = plain.annotate(later=F("occurred_at") + dt.timedelta(microseconds=1))
    for queryset, fields in ((plain, ["id", "occurred_at"]), (shifted, ["occurred_at", "later"])):
        body = stream(queryset, fields=fields, fast_path=False)[1]
        assert body == expected.body("json", fields, queryset=queryset)
    adapters = connection.connection.adapters
    loader = adapters.get_loader(adapters.types["timestamptz"].oid, pq.Format.TEXT)
    assert issubclass(loader, BaseTzLoader)  # the connection's own loader is back


@pytest.mark.postgres
@pytest.mark.parametrize("fast_path", [False, True])
def test_an_array_of_timestamps_is_spelled_as_django_writes_datetimes(fast_path):
    """The timestamp-as-text loader also reaches array elements: it must not apply then."""
    from testproject.pgdemo.models import Tagged

    at = dt.datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=dt.UTC)
    Tagged.objects.create(name="a", seen_at=at, stamps=[at, at + dt.timedelta(days=1)])
    Tagged.objects.create(name="b", seen_at=at, stamps=None)
    queryset = Tagged.objects.order_by("id")
    fields = ["id", "seen_at", "stamps", "name"]
    for format in FORMATS:
        body = stream(queryset, format, fields=fields, fast_path=fast_path)[1]
        assert body == expected.body(format, fields, queryset=queryset), format


@pytest.mark.postgres
@pytest.mark.parametrize("fast_path", [False, True])
def test_closing_a_stream_early_inside_atomic_leaves_the_transaction_usable(fast_path):
    # The test runs inside a transaction (the db fixture), as a management command or a
    # task reading a stream inside atomic() does. Cancelling a COPY aborts the
    # transaction it runs in; the caller's own work and its next queries must survive it.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO blog_event (uuid, kind, occurred_at, day, local_time, duration, score,"
            " amount, count, total, is_bot, payload, note)"
            " SELECT gen_random_uuid(), 'bulk', now(), current_date, '01:02:03',"
            " interval '1 second', g * 1.5, 1, g, g, false, '{}', repeat('x', 100)"
            " FROM generate_series(1, 50000) g"
        )
    Event.objects.filter(kind="bulk", count__lte=10).update(kind="mine")
    response = stream_queryset(
        RequestFactory().get("/"),
        Event.objects.order_by("id"),
        fields=["id", "note"],
        chunk_size=100,
        fast_path=fast_path,
    )
    assert response[PATH_HEADER] == ("copy" if fast_path else "python")
    body = iter(response.streaming_content)
    next(body)
    # What a WSGI server does when the client goes away (PEP 3333: close the iterable).
    response._iterator.close()
    assert Event.objects.filter(kind="mine").count() == 10
