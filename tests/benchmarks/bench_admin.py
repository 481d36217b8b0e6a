"""What the admin dashboard costs to read, on the database store, for a busy site's day.

A day of metrics: 40 series a minute (20 routes x 2 status classes, 15 histogram
buckets and the usual sums each), merged by maintenance as in production. The
dashboard polls its JSON endpoint every 10 s, so the read matters:

* reading the 24-hour window per hour (the store's rollups, minutes only at the
  edges) against reading every minute row of it (what the store did before);
* the dashboard's whole 24-hour and 1-hour data (one read, time series, cards,
  routes, slow log, memory over time) against ``perf_stats``'s report of the
  same window.

    DJANGO_PERF_TEST_DB=postgres python -m tests.benchmarks admin
"""

from __future__ import annotations

import time

from tests.benchmarks.harness import Case, Comparison, Goal

ROUTES = 20
MINUTES = 24 * 60


def _fill() -> int:
    """Write a day of minutes and merge them as maintenance would; return the read's `now`."""
    from django_perf.monitoring.series import Key, Series
    from django_perf.monitoring.store import get_store

    store = get_store()
    store.clear()
    now = int(time.time())
    now -= now % 60
    for minute in range(MINUTES):
        batch = {}
        for r in range(ROUTES):
            for status in ("2xx", "4xx"):
                series = Series()
                series.buckets = dict.fromkeys(range(400, 415), 3)
                series.requests, series.weight = 45, 45.0
                series.duration_us, series.queries, series.query_us = 450_000, 90, 40_000
                series.extra = {"queries.default": 90, "query_us.default": 40_000,
                                "cache.memory.hit": 30, "cache.memory.miss": 5,
                                "qcount.2": 45}  # fmt: skip
                batch[Key(now - minute * 60, f"/route/{r}/", "GET", status)] = series
        store.write(batch)
    while store.maintain(force=True) and _raw_left():
        pass
    return now


def _raw_left() -> bool:
    from django_perf.monitoring.models import MetricSeries

    return MetricSeries.objects.filter(resolution=MetricSeries.RAW).exists()


def comparisons() -> list[Comparison]:
    from django_perf.dashboard import data
    from django_perf.monitoring import stats
    from django_perf.monitoring.models import MetricSeries
    from django_perf.monitoring.store import get_store
    from django_perf.monitoring.store.database import DatabaseStore

    now = _fill()
    store = get_store()
    assert isinstance(store, DatabaseStore)
    since, until = now + 1 - 86400, now + 1

    def timed(fn) -> Case:
        def sample() -> float:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

        return sample

    def minute_rows() -> int:
        query = MetricSeries.objects.filter(
            resolution__in=(MetricSeries.RAW, MetricSeries.MINUTE),
            start__gte=since,
            start__lt=until,
        )
        return len(list(store._rows(query)))

    def hour_rows() -> int:
        return len(store.read(since, until))

    return [
        Comparison(
            f"read 24 hours of metrics ({ROUTES * 2} series a minute), database store",
            baseline=Case("every minute row (the read before hourly rollups)", timed(minute_rows)),
            candidates=[
                Case("hours inside, minutes at the edges", timed(hour_rows), Goal("<=", 0.1)),
            ],
            repeat=5,
        ),
        Comparison(
            "the dashboard's data against perf_stats's report, 24-hour window",
            baseline=Case("stats.report('24h')", timed(lambda: stats.report("24h"))),
            candidates=[
                Case(
                    "dashboard overview('24h')",
                    timed(lambda: data.overview("24h")),
                    Goal("<=", 1.5),
                ),
            ],
            repeat=5,
        ),
        Comparison(
            "the dashboard's data against perf_stats's report, 1-hour window",
            baseline=Case("stats.report('1h')", timed(lambda: stats.report("1h"))),
            candidates=[
                Case(
                    "dashboard overview('1h')",
                    timed(lambda: data.overview("1h")),
                    Goal("<=", 1.5),
                ),
            ],
            repeat=5,
            teardown=store.clear,
        ),
    ]
