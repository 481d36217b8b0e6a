"""The database store: flushes from many writers, merges and rollups that never change a count."""

import json
import threading
import time

import pytest
from django.db import connections
from django.test import Client

from django_perf.monitoring import flush, stats
from django_perf.monitoring.models import MetricSeries, SystemSample
from django_perf.monitoring.series import Key, Series
from django_perf.monitoring.store import Sample
from django_perf.monitoring.store.database import DatabaseStore

NOW = 1_800_000_000  # a fixed "now" (on a minute and hour boundary) for the rollup tests


def make_series(requests, duration_us=1000, **extra):
    series = Series()
    for _ in range(requests):
        series.buckets[5] = series.buckets.get(5, 0) + 1
    series.requests = requests
    series.weight = float(requests)
    series.duration_us = duration_us * requests
    series.queries = 2 * requests
    series.extra.update(extra)
    return series


def counts(store, seconds=3600, now=NOW):
    return {r.route: r.count for r in stats.route_stats(seconds, now=now, store=store)}


@pytest.mark.django_db
def test_a_flush_moves_the_buffer_into_the_store(recorder):
    client = Client()
    for _ in range(3):
        client.get("/monitoring/fast/")
    client.get("/no/such/")
    assert flush() == 4
    assert len(recorder.buffer) == 0
    assert flush() == 0  # nothing twice
    found = {r.route: r for r in stats.route_stats(300)}
    assert found["/monitoring/fast/"].count == 3
    assert found["/monitoring/fast/"].status_classes == {"2xx": 3}
    assert found["<unmatched>"].count == 1
    assert MetricSeries.objects.filter(resolution=MetricSeries.RAW).count() == 2


@pytest.mark.django_db
def test_a_failed_flush_keeps_the_batch_for_the_next_try(recorder, caplog):
    Client().get("/monitoring/fast/")
    broken = DatabaseStore(alias="no-such-database")
    assert flush(store=broken) == 0
    assert "Could not flush 1 series" in caplog.text
    assert len(recorder.buffer) == 1
    with pytest.raises(Exception, match="no-such-database"):
        flush(store=broken, strict=True)
    assert flush() == 1
    assert counts(DatabaseStore(), 300, time.time()) == {"/monitoring/fast/": 1}


@pytest.mark.django_db
def test_maintenance_merges_raw_rows_without_changing_any_number():
    store = DatabaseStore()
    key = Key(NOW - 120, "/a/", "GET", "2xx")
    for _ in range(5):
        store.write({key: make_series(2, **{"queries.default": 4})})
    store.write({Key(NOW - 60, "/b/", "POST", "5xx"): make_series(1)})
    before = stats.report("1h", now=NOW, store=store)
    assert store.maintain(now=NOW) is True
    assert store.maintain(now=NOW) is False  # the lease is held: one pass per interval
    after = stats.report("1h", now=NOW, store=store)
    assert before["routes"] == after["routes"]
    assert after["totals"]["count"] == 11
    assert after["database"] == {"default": {"queries": 20, "time_ms": 0.0, "avg_query_ms": 0.0}}
    rows = MetricSeries.objects.values_list("resolution", "route")
    assert sorted(rows) == [
        (-1, "/a/"),
        (-1, "/b/"),
        (60, "/a/"),
        (60, "/b/"),
        (3600, "/a/"),
        (3600, "/b/"),
    ]
    # Lifetime totals (for Prometheus counters) add raw rows not merged yet.
    store.write({key: make_series(1)})
    totals = {row.key.route: row.series.requests for row in store.read_totals()}
    assert totals == {"/a/": 11, "/b/": 1}
    store.maintain(now=NOW, force=True)
    assert {row.key.route: row.series.requests for row in store.read_totals()} == totals


@pytest.mark.django_db
def test_old_minutes_roll_up_into_hours_and_expire():
    store = DatabaseStore(minute_retention=3600, hour_retention=86400)
    old = NOW - 2 * 3600
    for minute in range(0, 3600, 60):  # one request per minute, two hours ago
        store.write(
            {Key(old + minute, "/old/", "GET", "2xx"): make_series(1, duration_us=minute + 64)}
        )
    store.write({Key(NOW - 60, "/new/", "GET", "2xx"): make_series(1)})
    store.maintain(now=NOW, force=True)  # raw rows become minutes, hours and totals at once
    assert counts(store, 86400) == {"/old/": 60, "/new/": 1}
    store.maintain(now=NOW, force=True)  # minutes past retention go: their hour holds them
    minutes = MetricSeries.objects.filter(resolution=MetricSeries.MINUTE)
    assert [(m.start, m.route) for m in minutes] == [(NOW - 60, "/new/")]
    hours = MetricSeries.objects.filter(resolution=MetricSeries.HOUR).order_by("start")
    assert [(h.start, h.route) for h in hours] == [(old, "/old/"), (NOW - 3600, "/new/")]
    assert Series.from_payload(json.loads(hours[0].payload)).requests == 60
    assert counts(store, 86400) == {"/old/": 60, "/new/": 1}
    [point] = [p for p in stats.time_series(86400, 3600, now=NOW, store=store) if p.count == 60]
    assert point.start == old
    store.maintain(now=NOW + 2 * 86400, force=True)
    assert not MetricSeries.objects.filter(resolution=MetricSeries.HOUR).exists()


@pytest.mark.django_db
def test_long_windows_read_hours_inside_and_minutes_at_the_edges():
    """A day reads about 30 times fewer rows per hour than per minute, and the same counts."""
    store = DatabaseStore(minute_retention=2 * 86400)
    now = int(time.time())
    now -= now % 3600
    # One request every 7 minutes for 30 hours, up to 10 minutes past the current hour.
    starts = [t - t % 60 for t in range(now - 30 * 3600 + 35 * 60, now + 600, 7 * 60)]
    for start in starts:
        store.write({Key(start, "/a/", "GET", "2xx"): make_series(1)})
    store.write({Key(now - 120, "/raw/", "GET", "2xx"): make_series(1)})
    store.maintain(force=True)
    store.write({Key(now + 60, "/raw/", "GET", "2xx"): make_series(1)})  # not merged yet

    for since, until in [
        (now - 86400 + 1234, now + 601),  # edges inside hours at both ends
        (now - 7 * 3600, now),  # on hour boundaries
        (now - 25 * 3600 - 59, now - 3 * 3600 + 61),
    ]:
        rows = store.read(since, until)
        found = {}
        for row in rows:
            found[row.key.route] = found.get(row.key.route, 0) + row.series.requests
        assert found.get("/a/", 0) == sum(1 for t in starts if since <= t < until)
        assert found.get("/raw/", 0) == sum(1 for t in (now - 120, now + 60) if since <= t < until)
        assert MetricSeries.HOUR in {row.resolution for row in rows}
        assert len(rows) < (until - since) / 7 / 60 / 3  # far fewer rows than requests
    short = store.read(now - 3600, now + 601)
    assert {row.resolution for row in short} <= {MetricSeries.RAW, MetricSeries.MINUTE}

    # Past minute retention the first edge reads its whole hour: the window reaches back.
    store = DatabaseStore(minute_retention=3600)
    store.maintain(now=now + 3600, force=True)  # drops the minutes older than `now`
    since = now - 5 * 3600 - 600  # ten minutes before an hour boundary
    found = sum(row.series.requests for row in store.read(since, now) if row.key.route == "/a/")
    assert found == sum(1 for t in starts if now - 6 * 3600 <= t < now)


@pytest.mark.django_db
def test_a_route_longer_than_the_column_is_found_by_its_own_name():
    """The column keeps 254 characters and "…"; perf_stats --route passes the route itself."""
    route = "/^reports/(?P<year>[0-9]{4})/" + "(?P<part>[a-z]+)/" * 20 + "$"
    assert len(route) > 255
    store = DatabaseStore()
    store.write({Key(NOW - 60, route, "GET", "2xx"): make_series(2)})
    found = stats.route_stats(300, route=route, now=NOW, store=store)
    assert [(r.route, r.count) for r in found] == [(route, 2)]
    [listed] = stats.route_stats(300, now=NOW, store=store)  # the admin lists the cut label
    assert (len(listed.route), listed.route[-1]) == (255, "…")
    by_label = stats.route_stats(300, route=listed.route, now=NOW, store=store)
    assert [(r.route, r.count) for r in by_label] == [(listed.route, 2)]


@pytest.mark.django_db
def test_system_samples_keep_the_latest_per_process_and_minute():
    store = DatabaseStore()
    store.write({}, [Sample("web-1", 10, NOW + 1.0, {"process": {"rss": 1}})])
    store.write({}, [Sample("web-1", 10, NOW + 2.0, {"process": {"rss": 2}})])
    store.write({}, [Sample("web-2", 11, NOW + 3.0, {"system": {"cpu_percent": 50.0}})])
    assert SystemSample.objects.count() == 2
    hosts = stats.system_stats(60, now=NOW + 30, store=store)
    assert [h["host"] for h in hosts] == ["web-1", "web-2"]
    assert hosts[0]["processes"][0]["rss"] == 2
    assert hosts[1]["system"]["cpu_percent"] == 50.0
    assert stats.system_stats(10, now=NOW + 300, store=store) == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_flushes_and_maintenance_lose_and_double_nothing():
    """Eight writers and two maintainers at once, each thread on its own connection."""
    store = DatabaseStore(lease_seconds=0)
    errors = []
    key = Key(NOW - 60, "/busy/", "GET", "2xx")
    written = [0] * 8

    def writer(n):
        try:
            for _ in range(25):
                try:
                    store.write({key: make_series(n + 1)})
                    written[n] += n + 1
                except Exception as error:  # SQLite may refuse a writer under contention
                    if "locked" not in str(error):
                        raise
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    def maintainer():
        try:
            for _ in range(15):
                try:
                    store.maintain(now=NOW)
                except Exception as error:
                    if "locked" not in str(error):
                        raise
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    threads += [threading.Thread(target=maintainer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(written) > 0
    assert counts(store) == {"/busy/": sum(written)}
    store.maintain(now=NOW, force=True)
    assert counts(store) == {"/busy/": sum(written)}
    assert {r.key.route: r.series.requests for r in store.read_totals()} == {"/busy/": sum(written)}


@pytest.mark.django_db(transaction=True)
def test_a_maintenance_pass_lets_other_writers_in_between_short_transactions():
    """SQLite has one write lock: a pass holding it past the busy timeout (5 s) fails the
    site's own writes. A pass is many short transactions, and writers get in between."""
    from django_perf.monitoring.models import MetricsLease

    store = DatabaseStore(lease_seconds=0)
    for flush_number in range(6):  # 3,000 raw rows over 500 labels
        minute = NOW - 60 * (flush_number % 3)
        store.write({Key(minute, f"/r{i}/", "GET", "2xx"): make_series(1) for i in range(500)})
    lease_table = MetricsLease._meta.db_table
    statements, started, errors = [], threading.Event(), []

    def spy(execute, sql, params, many, context):
        statements.append((time.monotonic(), sql))
        if sql.startswith("UPDATE") and lease_table in sql:
            started.set()
        return execute(sql, params, many, context)

    def maintain():
        try:
            with connections["default"].execute_wrapper(spy):
                store.maintain(force=True)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            started.set()
            connections.close_all()

    thread = threading.Thread(target=maintain)
    thread.start()
    started.wait(10)
    waits, written_at = [], []
    while thread.is_alive():
        before = time.monotonic()
        store.write({Key(NOW, "/site/", "GET", "2xx"): make_series(1)})
        written_at.append(time.monotonic())
        waits.append(written_at[-1] - before)
    thread.join()
    assert not errors
    transactions = sum(
        1 for _, sql in statements if sql.startswith("UPDATE") and lease_table in sql
    )
    assert transactions > 3
    last_statement = max(at for at, _ in statements)
    assert any(at < last_statement for at in written_at), "no write got in during the pass"
    assert max(waits) < 2.0
    totals = {r.key.route: r.series.requests for r in store.read_totals()}
    assert sum(n for route, n in totals.items() if route.startswith("/r")) == 3000
    assert totals["/site/"] == len(written_at)
    assert not MetricSeries.objects.filter(resolution=MetricSeries.RAW).exclude(route="/site/")


@pytest.mark.django_db(transaction=True)
def test_two_maintainers_at_once_merge_each_raw_row_once():
    """Forced passes in two threads (one holder) race for the same raw rows, batch by batch."""
    store = DatabaseStore(lease_seconds=0)
    for _ in range(4):
        store.write({Key(NOW - 60, f"/r{i}/", "GET", "2xx"): make_series(2) for i in range(400)})
    errors = []

    def maintain():
        try:
            for _ in range(3):
                store.maintain(force=True)
        except Exception as error:
            if "locked" not in str(error):
                errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=maintain) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store.maintain(force=True)
    assert not MetricSeries.objects.filter(resolution=MetricSeries.RAW).exists()
    assert {r.key.route: r.series.requests for r in store.read_totals()} == {
        f"/r{i}/": 8 for i in range(400)
    }
    assert counts(store, 300) == {f"/r{i}/": 8 for i in range(400)}
