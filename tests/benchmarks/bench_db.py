"""django_perf.db against the ORM, django-pgbulk, aiodataloader and hand-written SQL.

Run on PostgreSQL: ``DJANGO_PERF_TEST_DB=postgres python -m tests.benchmarks db``.

The table is ``bulkdemo_item``: 100,000 rows, six columns (integer, varchar,
text, numeric, timestamptz, boolean). In the bulk write and loader comparisons
the baseline is django-perf's helper and the ratio says how many times slower
the other path is (a goal ``ratio >= 50`` reads "at least 50 times faster");
the prepared statement and pool comparisons use the plain path as baseline.
Every sample starts from the same state: values change on every run, a
``VACUUM`` and a ``gc.collect()`` (untimed) clear the dead rows and the garbage
of the previous case (Django's bulk_update leaves millions of objects behind,
which would otherwise be collected during whichever case runs next), and only
the call itself is timed.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import random
import time
from collections.abc import Callable
from decimal import Decimal

from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection, connections, transaction

from django_perf.db import ModelLoader, PreparedQuery, bulk_insert, bulk_update, loader_scope
from tests.benchmarks.harness import Case, Comparison, Goal

TABLE_ROWS = 100_000
UPDATE_SIZES = (1_000, 10_000, 100_000)
INSERT_ROWS = 100_000
LOOKUPS = 1_000
JOIN_QUERIES = 2_000
REQUESTS = 200
UTC = datetime.UTC

rng = random.Random(2026)
runs = iter(range(1, 10**9))


def item_rows(count: int, offset: int = 0) -> list[dict]:
    start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    return [
        {
            "qty": i,
            "name": f"item {i}",
            "body": f"body of item {i} " + "x" * 160,
            "price": Decimal(i % 10_000) / 100,
            "ts": start + datetime.timedelta(seconds=i),
            "active": i % 3 == 0,
        }
        for i in range(offset, offset + count)
    ]


def vacuum() -> None:
    with connection.cursor() as cursor:
        cursor.execute("VACUUM bulkdemo_item")


def settle() -> None:
    """Untimed: collect the previous case's garbage, so that no case pays for another's."""
    gc.collect()


def timed(prepare: Callable[[], object], run: Callable[[object], object]) -> Callable[[], float]:
    """A sampler: untimed VACUUM, ``prepare()`` and garbage collection, then time ``run``."""

    def sample() -> float:
        vacuum()
        prepared = prepare()
        settle()
        start = time.perf_counter()
        run(prepared)
        return time.perf_counter() - start

    return sample


# --- bulk_update ------------------------------------------------------------------------


def update_comparisons(items: list) -> list[Comparison]:
    import pgbulk

    from testproject.bulkdemo.models import Item

    def changed(size: int) -> Callable[[], list]:
        chosen = rng.sample(items, size)

        def prepare() -> list:
            run = next(runs)
            for obj in chosen:
                obj.name = f"run {run} item {obj.qty}"
                obj.price = Decimal(run % 1000) + Decimal("0.25")
            return chosen

        return prepare

    def ours(objs: list) -> None:
        bulk_update(Item, objs, ["name", "price"])

    def django(objs: list) -> None:
        Item.objects.bulk_update(objs, ["name", "price"], batch_size=1000)

    def django_pgbulk(objs: list) -> None:
        pgbulk.update(Item.objects.all(), objs, ["name", "price"])

    def unnest(objs: list) -> None:
        import psycopg

        with transaction.atomic():
            cursor = psycopg.Cursor(connection.connection)
            cursor.execute(
                "UPDATE bulkdemo_item t SET name = s.name, price = s.price FROM unnest("
                "%s::bigint[], %s::varchar[], %s::numeric[]) s(id, name, price) WHERE t.id = s.id",
                [[o.pk for o in objs], [o.name for o in objs], [o.price for o in objs]],
            )

    def copy(objs: list) -> None:
        import psycopg

        with transaction.atomic():
            cursor = psycopg.Cursor(connection.connection)
            cursor.execute(
                "CREATE TEMP TABLE bench_update (id bigint, name varchar(100), "
                "price numeric(12, 2)) ON COMMIT DROP"
            )
            with cursor.copy("COPY bench_update FROM STDIN (FORMAT BINARY)") as out:
                out.set_types(["int8", "varchar", "numeric"])
                for obj in objs:
                    out.write_row((obj.pk, obj.name, obj.price))
            cursor.execute(
                "UPDATE bulkdemo_item t SET name = s.name, price = s.price "
                "FROM bench_update s WHERE t.id = s.id"
            )

    # The hand-written paths are compared in comparisons of their own: the ORM's
    # bulk_update leaves the machine slower for a while (memory, the server's caches),
    # which would otherwise fall on whichever case runs after it.
    comparisons = []
    for size in UPDATE_SIZES:
        prepare = changed(size)
        hand = Goal(">=", round(1 / 1.2, 3))  # django-perf within 1.2x of the hand-written path
        comparisons.append(
            Comparison(
                f"bulk_update of 2 fields, {size:,} rows, vs hand-written SQL "
                "(ratio: times slower than django-perf)",
                baseline=Case("django_perf.db.bulk_update", timed(prepare, ours)),
                candidates=[
                    Case("hand-written UPDATE FROM unnest()", timed(prepare, unnest), hand),
                    Case("hand-written COPY + UPDATE FROM", timed(prepare, copy), hand),
                ],
                unit="s/op",
                repeat=7,
            )
        )
    for size in UPDATE_SIZES:
        prepare = changed(size)
        libraries = [
            Case("django-pgbulk update()", timed(prepare, django_pgbulk),
                 Goal(">=", 5) if size == 100_000 else None),
        ]  # fmt: skip
        if size < 100_000:
            libraries.append(Case("QuerySet.bulk_update(batch_size=1000)",
                                  timed(prepare, django)))  # fmt: skip
        comparisons.append(
            Comparison(
                f"bulk_update of 2 fields, {size:,} rows, vs libraries "
                "(ratio: times slower than django-perf)",
                baseline=Case("django_perf.db.bulk_update", timed(prepare, ours)),
                candidates=libraries,
                unit="s/op",
                repeat=5,
            )
        )
    prepare = changed(100_000)
    comparisons.append(
        Comparison(
            "bulk_update of 2 fields, 100,000 rows, vs the ORM (one sample: ~40-80 s each)",
            baseline=Case("django_perf.db.bulk_update", timed(prepare, ours)),
            candidates=[
                Case(
                    "QuerySet.bulk_update(batch_size=1000)", timed(prepare, django), Goal(">=", 50)
                ),
            ],
            unit="s/op",
            repeat=1,
            warmup=0,
        )
    )
    return comparisons


# --- bulk_insert ------------------------------------------------------------------------


def insert_comparison(first_new_pk: int) -> Comparison:
    """Inputs are built once, outside the timing, as the raw COPY's tuples are.

    ``bulk_create`` sets primary keys on its instances, so it gets a fresh copy
    for each sample (also built outside the timing).
    """
    from testproject.bulkdemo.models import Item

    rows = item_rows(INSERT_ROWS, offset=TABLE_ROWS)
    columns = ["qty", "name", "body", "price", "ts", "active"]
    tuples = [tuple(row[c] for c in columns) for row in rows]
    instances = [Item(**row) for row in rows]  # bulk_insert leaves them unchanged

    def cleanup() -> None:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM bulkdemo_item WHERE id >= %s", [first_new_pk])
        vacuum()

    def sample_of(prepare: Callable[[], object], run: Callable[[object], object]):
        def sample() -> float:
            cleanup()
            prepared = prepare()
            settle()
            start = time.perf_counter()
            run(prepared)
            return time.perf_counter() - start

        return sample

    def raw_copy(_: object) -> None:
        with transaction.atomic():
            cursor = connection.connection.cursor()
            sql = f"COPY bulkdemo_item ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
            with cursor.copy(sql) as out:
                out.set_types(["int4", "varchar", "text", "numeric", "timestamptz", "bool"])
                for row in tuples:
                    out.write_row(row)

    def fresh_instances() -> list:
        return [Item(**row) for row in rows]

    def same(value: object) -> Callable[[], object]:
        return lambda: value

    return Comparison(
        f"insert {INSERT_ROWS:,} rows of 6 columns (ratio: times slower than django-perf)",
        baseline=Case(
            "django_perf.db.bulk_insert, instances",
            sample_of(same(instances), lambda o: bulk_insert(Item, o)),
        ),
        candidates=[
            Case(
                "raw binary COPY of tuples",
                sample_of(same(None), raw_copy),
                Goal(">=", round(1 / 1.3, 3)),
            ),
            Case(
                "QuerySet.bulk_create()",
                sample_of(fresh_instances, lambda o: Item.objects.bulk_create(o)),
                Goal(">=", 10),
            ),
            Case("bulk_insert, dicts", sample_of(same(rows), lambda o: bulk_insert(Item, o))),
            Case(
                "bulk_insert(returning=True), instances",
                sample_of(fresh_instances, lambda o: bulk_insert(Item, o, returning=True)),
            ),
        ],
        unit="s/op",
        repeat=5,
        teardown=cleanup,
    )


# --- batched reads ----------------------------------------------------------------------


def loader_comparison(pks: list[int]) -> Comparison:
    from aiodataloader import DataLoader

    from testproject.bulkdemo.models import Item

    item_loader = ModelLoader(Item)

    class OrmDataLoader(DataLoader):
        """aiodataloader as a Django user writes it: pk__in through the async ORM."""

        async def batch_load_fn(self, keys):
            found = await sync_to_async(
                lambda: {o.pk: o for o in Item.objects.filter(pk__in=keys)}
            )()
            return [found.get(key) for key in keys]

    class SameQueryDataLoader(DataLoader):
        """aiodataloader with ModelLoader's own query, to compare only the batching."""

        async def batch_load_fn(self, keys):
            found = await sync_to_async(item_loader._fetch)(keys)
            return [found.get(key) for key in keys]

    def sampler(lookup: Callable[[list[int]], object]) -> Callable[[], float]:
        def sample() -> float:
            keys = rng.sample(pks, LOOKUPS)
            settle()

            async def run() -> float:
                start = time.perf_counter()
                found = await lookup(keys)
                elapsed = time.perf_counter() - start
                assert [item.pk for item in found] == keys
                return elapsed

            return async_to_sync(run)()

        return sample

    async def ours(keys):
        with loader_scope():
            return await asyncio.gather(*[item_loader.load(k) for k in keys])

    async def aget(keys):
        return await asyncio.gather(*[Item.objects.aget(pk=k) for k in keys])

    async def dataloader(keys, cls=OrmDataLoader):
        loader = cls()
        return await asyncio.gather(*[loader.load(k) for k in keys])

    return Comparison(
        f"{LOOKUPS:,} concurrent lookups by pk (ratio: times slower than django-perf)",
        baseline=Case("ModelLoader.load()", sampler(ours)),
        candidates=[
            Case("asyncio.gather() of Model.objects.aget()", sampler(aget), Goal(">=", 25)),
            Case("aiodataloader, pk__in", sampler(dataloader), Goal(">=", 1.0)),
            Case(
                "aiodataloader, ModelLoader's query",
                sampler(lambda keys: dataloader(keys, SameQueryDataLoader)),
                Goal(">=", 1.0),
            ),
        ],
        unit="s/op",
        repeat=7,
    )


# --- prepared statements ------------------------------------------------------------------

JOIN = (
    "SELECT c.id, c.author_name, a.title, au.name FROM blog_comment c"
    " JOIN blog_article a ON a.id = c.article_id"
    " JOIN blog_author au ON au.id = a.author_id WHERE c.id = %s"
)


def prepared_comparison() -> Comparison:
    import psycopg

    from testproject.blog.models import Comment
    from testproject.blog.seed import seed

    seed()
    comment_ids = list(Comment.objects.values_list("pk", flat=True))
    query = PreparedQuery(JOIN)

    def ids() -> list[int]:
        return [rng.choice(comment_ids) for _ in range(JOIN_QUERIES)]

    def sampler(run: Callable[[list[int]], None]) -> Callable[[], float]:
        def sample() -> float:
            keys = ids()
            settle()
            start = time.perf_counter()
            run(keys)
            return time.perf_counter() - start

        return sample

    def plain(keys):
        for key in keys:
            with connection.cursor() as cursor:
                cursor.execute(JOIN, [key])
                cursor.fetchone()

    def prepared(keys):
        for key in keys:
            query.fetchone([key])

    params = {**connection.get_connection_params(), "autocommit": True, "prepare_threshold": 0}
    params.pop("cursor_factory")
    psycopg_connection = psycopg.connect(**params)

    def psycopg_prepared(keys):
        for key in keys:
            psycopg_connection.execute(JOIN, [key]).fetchone()

    return Comparison(
        f"{JOIN_QUERIES:,} three-table joins by key (prepared vs planned every time)",
        baseline=Case("Django cursor, unprepared (default)", sampler(plain)),
        candidates=[
            Case("PreparedQuery (PREPARE once, EXECUTE)", sampler(prepared), Goal("<=", 1.0)),
            Case("psycopg server binding, prepare_threshold=0", sampler(psycopg_prepared)),
        ],
        unit="s/op",
        repeat=7,
        teardown=psycopg_connection.close,
    )


# --- pools ------------------------------------------------------------------------------


def pool_comparison(pks: list[int]) -> Comparison:
    from testproject.bulkdemo.models import Item

    def sampler(alias: str) -> Callable[[], float]:
        def sample() -> float:
            keys = rng.sample(pks, REQUESTS)
            settle()
            start = time.perf_counter()
            for key in keys:  # one "request": a query, then Django's close at request end
                Item.objects.using(alias).get(pk=key)
                connections[alias].close()
            return time.perf_counter() - start

        return sample

    return Comparison(
        f"{REQUESTS} requests of one query each (connection per request vs native pool)",
        baseline=Case("no pool (CONN_MAX_AGE=0)", sampler("default")),
        candidates=[Case('OPTIONS["pool"] (psycopg_pool)', sampler("pooled"), Goal("<=", 1.0))],
        unit="s/op",
        repeat=7,
        teardown=connections["pooled"].close_pool,  # before the test database is dropped
    )


def comparisons() -> list[Comparison]:
    if connection.vendor != "postgresql":
        raise SystemExit(
            "bench_db measures PostgreSQL paths: run with DJANGO_PERF_TEST_DB=postgres"
        )
    from testproject.bulkdemo.models import Item

    pks = bulk_insert(Item, item_rows(TABLE_ROWS), returning=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE bulkdemo_item")
    items = list(Item.objects.order_by("pk"))
    result = [
        *update_comparisons(items),
        insert_comparison(first_new_pk=max(pks) + 1),
        loader_comparison(pks),
        prepared_comparison(),
    ]
    if "pooled" in connections:
        result.append(pool_comparison(pks))
    return result
