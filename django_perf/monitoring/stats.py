"""Read the shared store: per-route statistics, time series, cache, database and system numbers.

This is the query API that ``manage.py perf_stats``, the Prometheus endpoint
and the admin metrics page share. Everything here reads the store (all
workers, all hosts), never this process's buffer.

>>> from django_perf.monitoring import stats
>>> for row in stats.route_stats(3600):          # the last hour
...     print(row.route, row.count, row.p95_ms)
>>> stats.time_series(3600, step=300, route="/articles/<slug:slug>/")
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .histogram import Histogram
from .series import Series
from .store import MetricsStore, Row, Sample, get_store

__all__ = [
    "SCHEMA",
    "WINDOWS",
    "Point",
    "RouteStats",
    "cache_stats",
    "database_stats",
    "parse_window",
    "report",
    "route_stats",
    "system_stats",
    "time_series",
]

SCHEMA = "django-perf/perf_stats/1"
WINDOWS = {"5m": 300, "1h": 3600, "24h": 86400, "7d": 7 * 86400}
ALL_ROUTES = "<all>"


def parse_window(window: str) -> int:
    """Seconds in ``window`` (one of :data:`WINDOWS`); ValueError naming the accepted ones."""
    try:
        return WINDOWS[window]
    except KeyError:
        raise ValueError(f"unknown window {window!r}; use one of {', '.join(WINDOWS)}") from None


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000, 3)


@dataclass
class RouteStats:
    """What a route did in a window (all workers): counts, latency percentiles, averages."""

    route: str
    count: int  # requests, scaled up by the sample rate
    rate: float  # requests per second over the window
    error_rate: float  # share of 5xx responses
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    avg_ms: float | None
    avg_queries: float | None
    avg_db_ms: float | None
    avg_request_bytes: float | None
    avg_response_bytes: float | None
    slow: int
    n_plus_one: int
    status_classes: dict[str, int] = field(default_factory=dict)
    methods: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Accumulator:
    def __init__(self) -> None:
        self.series = Series()
        self.statuses: dict[str, float] = {}
        self.methods: dict[str, float] = {}

    def add(self, row: Row) -> None:
        self.series.merge(row.series)
        weight = row.series.weight
        self.statuses[row.key.status] = self.statuses.get(row.key.status, 0) + weight
        self.methods[row.key.method] = self.methods.get(row.key.method, 0) + weight

    def result(self, route: str, seconds: int) -> RouteStats:
        s = self.series
        n = s.requests
        p50, p90, p95, p99 = Histogram(s.buckets).quantiles((0.5, 0.9, 0.95, 0.99))
        errors = self.statuses.get("5xx", 0)

        def avg(total: float, scale: float = 1) -> float | None:
            return round(total / n / scale, 3) if n else None

        return RouteStats(
            route=route,
            count=round(s.weight),
            rate=round(s.weight / seconds, 4) if seconds else 0.0,
            error_rate=round(errors / s.weight, 4) if s.weight else 0.0,
            p50_ms=_ms(p50),
            p90_ms=_ms(p90),
            p95_ms=_ms(p95),
            p99_ms=_ms(p99),
            avg_ms=avg(s.duration_us, 1000),
            avg_queries=avg(s.queries),
            avg_db_ms=avg(s.query_us, 1000),
            avg_request_bytes=avg(s.request_bytes),
            avg_response_bytes=avg(s.response_bytes),
            slow=round(s.slow * (s.weight / n)) if n else 0,
            n_plus_one=round(s.n_plus_one * (s.weight / n)) if n else 0,
            status_classes={k: round(v) for k, v in sorted(self.statuses.items())},
            methods={k: round(v) for k, v in sorted(self.methods.items())},
        )


def _window(seconds: int, now: float | None) -> tuple[int, int]:
    until = int(time.time() if now is None else now) + 1
    return until - seconds, until


def read(
    seconds: int,
    *,
    route: str | None = None,
    now: float | None = None,
    store: MetricsStore | None = None,
) -> list[Row]:
    """The stored rows of the last ``seconds`` (optionally one route)."""
    since, until = _window(seconds, now)
    return (store or get_store()).read(since, until, route)


def route_stats(
    seconds: int,
    *,
    route: str | None = None,
    now: float | None = None,
    store: MetricsStore | None = None,
    rows: Iterable[Row] | None = None,
) -> list[RouteStats]:
    """One :class:`RouteStats` per route seen in the last ``seconds``, busiest first."""
    if rows is None:
        rows = read(seconds, route=route, now=now, store=store)
    by_route: dict[str, _Accumulator] = {}
    for row in rows:
        by_route.setdefault(row.key.route, _Accumulator()).add(row)
    results = [acc.result(name, seconds) for name, acc in by_route.items()]
    return sorted(results, key=lambda r: (-r.count, r.route))


def overall(rows: Iterable[Row], seconds: int) -> RouteStats:
    """All routes together."""
    acc = _Accumulator()
    for row in rows:
        acc.add(row)
    return acc.result(ALL_ROUTES, seconds)


@dataclass
class Point:
    """One step of a time series."""

    start: int
    count: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    avg_queries: float | None


def time_series(
    seconds: int,
    step: int = 60,
    *,
    route: str | None = None,
    now: float | None = None,
    store: MetricsStore | None = None,
) -> list[Point]:
    """The last ``seconds`` in steps of ``step`` seconds (empty steps included, oldest first).

    Steps finer than the stored resolution (an hour, for data older than
    ``MONITORING_MINUTE_RETENTION``) show that data in the step its hour starts in.
    """
    if step < 60 or step % 60:
        raise ValueError(f"step must be a whole number of minutes in seconds, not {step!r}")
    rows = read(seconds, route=route, now=now, store=store)
    since, until = _window(seconds, now)
    first = since - since % step
    accs: dict[int, _Accumulator] = {}
    for row in rows:
        slot = max(row.key.start, first)
        accs.setdefault(slot - slot % step, _Accumulator()).add(row)
    points = []
    for start in range(first, until, step):
        acc = accs.get(start)
        if acc is None:
            points.append(Point(start, 0, 0.0, None, None, None, None))
            continue
        r = acc.result("", step)
        points.append(
            Point(start, r.count, r.error_rate, r.p50_ms, r.p95_ms, r.p99_ms, r.avg_queries)
        )
    return points


def cache_stats(rows: Iterable[Row]) -> dict[str, dict[str, Any]]:
    """Cache events per tier counted during requests: hits, misses, errors and the hit ratio."""
    tiers: dict[str, dict[str, float]] = {}
    for row in rows:
        for name, value in row.series.extra.items():
            parts = name.split(".")
            if parts[0] == "cache" and len(parts) == 3 and parts[2] in ("hit", "miss", "error"):
                tier = tiers.setdefault(parts[1], {"hit": 0, "miss": 0, "error": 0})
                tier[parts[2]] += value
    result = {}
    for tier, counts in sorted(tiers.items()):
        lookups = counts["hit"] + counts["miss"]
        result[tier] = {
            "hits": round(counts["hit"]),
            "misses": round(counts["miss"]),
            "errors": round(counts["error"]),
            "hit_ratio": round(counts["hit"] / lookups, 4) if lookups else None,
        }
    return result


def database_stats(rows: Iterable[Row]) -> dict[str, dict[str, Any]]:
    """Queries and database time per alias, over the requests in ``rows``."""
    aliases: dict[str, list[float]] = {}
    for row in rows:
        for name, value in row.series.extra.items():
            kind, _, alias = name.partition(".")
            if kind in ("queries", "query_us") and alias:
                entry = aliases.setdefault(alias, [0, 0])
                entry[0 if kind == "queries" else 1] += value
    return {
        alias: {
            "queries": round(queries),
            "time_ms": round(us / 1000, 3),
            "avg_query_ms": round(us / 1000 / queries, 3) if queries else None,
        }
        for alias, (queries, us) in sorted(aliases.items())
    }


def system_stats(
    max_age: float = 120, *, now: float | None = None, store: MetricsStore | None = None
) -> list[dict[str, Any]]:
    """The latest sample of every process seen in the last ``max_age`` seconds, by host."""
    now = time.time() if now is None else now
    samples: list[Sample] = (store or get_store()).read_samples(int(now - max_age))
    hosts: dict[str, dict[str, Any]] = {}
    for sample in sorted(samples, key=lambda s: s.taken_at):
        host = hosts.setdefault(sample.host, {"host": sample.host, "processes": []})
        host["sampled_at"] = sample.taken_at
        host["system"] = sample.data.get("system", {})
        process = {"pid": sample.pid, "sampled_at": sample.taken_at}
        process.update(sample.data.get("process", {}))
        for key in ("db_pools", "redis_pools", "caches"):
            if key in sample.data:
                process[key] = sample.data[key]
        host["processes"].append(process)
    for host in hosts.values():
        host["processes"].sort(key=lambda p: p["pid"])
    return [hosts[name] for name in sorted(hosts)]


SORT_KEYS = {
    "count": lambda r: -r.count,
    "rate": lambda r: -r.rate,
    "errors": lambda r: -r.error_rate,
    "p50": lambda r: -(r.p50_ms or 0),
    "p95": lambda r: -(r.p95_ms or 0),
    "p99": lambda r: -(r.p99_ms or 0),
    "queries": lambda r: -(r.avg_queries or 0),
    "bytes": lambda r: -(r.avg_response_bytes or 0),
    "route": lambda r: r.route,
}


def report(
    window: str = "1h",
    *,
    route: str | None = None,
    sort: str = "count",
    limit: int | None = 20,
    now: float | None = None,
    store: MetricsStore | None = None,
) -> dict[str, Any]:
    """Everything ``perf_stats`` shows, as the documented JSON document (schema :data:`SCHEMA`)."""
    seconds = parse_window(window)
    if sort not in SORT_KEYS:
        raise ValueError(f"unknown sort {sort!r}; use one of {', '.join(SORT_KEYS)}")
    store = store or get_store()
    now = time.time() if now is None else now
    rows = read(seconds, route=route, now=now, store=store)
    routes = route_stats(seconds, rows=rows)
    routes.sort(key=lambda r: (SORT_KEYS[sort](r), r.route))
    since, until = _window(seconds, now)
    return {
        "schema": SCHEMA,
        "generated_at": round(now, 3),
        "window": window,
        "window_seconds": seconds,
        "since": since,
        "until": until,
        "store": store.name,
        "route_filter": route,
        "sort": sort,
        "totals": overall(rows, seconds).as_dict(),
        "routes": [r.as_dict() for r in routes[:limit]],
        "routes_total": len(routes),
        "cache": cache_stats(rows),
        "database": database_stats(rows),
        "hosts": system_stats(now=now, store=store),
    }
