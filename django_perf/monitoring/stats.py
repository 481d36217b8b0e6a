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

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .histogram import Histogram
from .series import QUERY_COUNT_BOUNDS, Series
from .store import MetricsStore, Row, Sample, SlowRequest, get_store

__all__ = [
    "SCHEMA",
    "WINDOWS",
    "Point",
    "RouteStats",
    "cache_stats",
    "database_stats",
    "latency_histogram",
    "memory_series",
    "overall",
    "parse_window",
    "pool_usage",
    "query_count_distribution",
    "read",
    "report",
    "requests_per_recorded",
    "rounded_rate",
    "route_stats",
    "slow_requests",
    "status_codes",
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


def rounded_rate(per_second: float) -> float:
    """A rate to four decimals, or three significant digits when smaller (1 a week is not 0)."""
    if per_second <= 0 or per_second >= 0.001:
        return round(per_second, 4)
    return round(per_second, 2 - math.floor(math.log10(per_second)))


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
            rate=rounded_rate(s.weight / seconds) if seconds else 0.0,
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
    """``[since, until)``: the last ``seconds`` up to now, from the start of their first minute.

    The stores keep minutes, so the minute the window starts in is read whole
    (by either store); rates divide by the span actually read, ``until - since``.
    """
    until = int(time.time() if now is None else now) + 1
    since = until - seconds
    return since - since % 60, until


def _span(seconds: int, now: float | None) -> int:
    since, until = _window(seconds, now)
    return until - since


def read(
    seconds: int,
    *,
    route: str | None = None,
    now: float | None = None,
    store: MetricsStore | None = None,
) -> list[Row]:
    """The stored rows of the last ``seconds`` (optionally one route)."""
    since, until = _window(seconds, now)
    return (store or get_store()).read(since, until, checked_route(route))


def checked_route(route: str | None) -> str | None:
    """``route`` if a store can look it up (ValueError if not); a route from a URL can hold
    anything."""
    if route is not None and "\x00" in route:  # PostgreSQL text cannot hold it: a DataError
        raise ValueError(f"route {route!r} holds a NUL character; no route has one.")
    return route


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
    span = _span(seconds, now)
    results = [acc.result(name, span) for name, acc in by_route.items()]
    return sorted(results, key=lambda r: (-r.count, r.route))


def overall(rows: Iterable[Row], seconds: int, *, now: float | None = None) -> RouteStats:
    """All routes together (``rows`` read for the last ``seconds`` before ``now``)."""
    acc = _Accumulator()
    for row in rows:
        acc.add(row)
    return acc.result(ALL_ROUTES, _span(seconds, now))


@dataclass
class Point:
    """One step of a time series (``hit_ratio``: cache hits / lookups per tier, in the step)."""

    start: int
    count: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    avg_queries: float | None
    hit_ratio: dict[str, float | None] = field(default_factory=dict)


def time_series(
    seconds: int,
    step: int = 60,
    *,
    route: str | None = None,
    now: float | None = None,
    store: MetricsStore | None = None,
    rows: Iterable[Row] | None = None,
) -> list[Point]:
    """The last ``seconds`` in steps of ``step`` seconds (empty steps included, oldest first).

    Steps finer than the stored resolution (an hour, for windows over six hours
    and for data older than ``MONITORING_MINUTE_RETENTION``) show that data in the
    step its hour starts in. Pass ``rows`` (from :func:`read` of the same window)
    to reuse a read.
    """
    if step < 60 or step % 60:
        raise ValueError(f"step must be a whole number of minutes in seconds, not {step!r}")
    if rows is None:
        rows = read(seconds, route=route, now=now, store=store)
    since, until = _window(seconds, now)
    first = since - since % step
    slots: dict[int, list[Row]] = {}
    for row in rows:
        slot = max(row.key.start, first)
        slots.setdefault(slot - slot % step, []).append(row)
    points = []
    for start in range(first, until, step):
        in_step = slots.get(start)
        if not in_step:
            points.append(Point(start, 0, 0.0, None, None, None, None))
            continue
        acc = _Accumulator()
        for row in in_step:
            acc.add(row)
        r = acc.result("", step)
        ratios = {tier: c["hit_ratio"] for tier, c in cache_stats(in_step).items()}
        points.append(
            Point(start, r.count, r.error_rate, r.p50_ms, r.p95_ms, r.p99_ms, r.avg_queries, ratios)
        )
    return points


def memory_series(
    seconds: int,
    step: int = 60,
    *,
    now: float | None = None,
    store: MetricsStore | None = None,
) -> dict[str, list[float | None]]:
    """Resident memory of all processes, per host and step (bytes; None where unsampled).

    Each step adds up the latest sample of each process taken in it. Samples are
    kept ``MONITORING_MINUTE_RETENTION`` seconds, so older steps are None.
    """
    since, until = _window(seconds, now)
    first = since - since % step
    starts = range(first, until, step)
    latest: dict[tuple[int, str, int], float] = {}
    for sample in (store or get_store()).read_sample_history(since, until):
        rss = sample.data.get("process", {}).get("rss")
        if rss is not None:
            slot = int(sample.taken_at) - int(sample.taken_at) % step
            latest[(max(slot, first), sample.host, sample.pid)] = rss  # oldest first: latest wins
    hosts: dict[str, list[float | None]] = {}
    index = {start: i for i, start in enumerate(starts)}
    for (slot, host, _), rss in latest.items():
        values = hosts.setdefault(host, [None] * len(starts))
        i = index.get(slot)
        if i is not None:
            values[i] = (values[i] or 0) + rss
    return dict(sorted(hosts.items()))


# Latency bins for display (milliseconds): the upper bound of each, the last open-ended.
LATENCY_BINS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


def requests_per_recorded(row: Row) -> float:
    """How many requests one recorded request of ``row`` stands for (1 / sample rate)."""
    series = row.series
    return series.weight / series.requests if series.requests else 0.0


def latency_histogram(
    rows: Iterable[Row], bounds_ms: Iterable[float] = LATENCY_BINS_MS
) -> list[dict[str, Any]]:
    """Requests per latency bin: ``{"label", "upper_ms", "count"}`` (the last bin open-ended)."""
    bounds = sorted(bounds_ms)
    totals = [0.0] * (len(bounds) + 1)
    for row in rows:
        scale = requests_per_recorded(row)
        below = 0
        cumulative = Histogram(row.series.buckets).cumulative([b * 1000 for b in bounds])
        for i, (_, seen) in enumerate(cumulative):
            totals[i] += (seen - below) * scale
            below = seen
        totals[-1] += (row.series.requests - below) * scale
    bins = []
    lower = 0.0
    for upper, count in zip([*bounds, None], totals, strict=True):
        label = f"{_num(lower)}-{_num(upper)} ms" if upper is not None else f">{_num(lower)} ms"
        bins.append({"label": label, "upper_ms": upper, "count": round(count)})
        lower = upper or lower
    return bins


def query_count_distribution(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Requests by how many database queries each ran: ``{"label", "upper", "count"}``.

    Bins are 0, then up to each of :data:`~.series.QUERY_COUNT_BOUNDS`, then more.
    """
    bounds = QUERY_COUNT_BOUNDS
    totals = [0.0] * (len(bounds) + 2)  # 0 queries, each bound, more
    for row in rows:
        scale = requests_per_recorded(row)
        counted = 0.0
        for name, value in row.series.extra.items():
            if name.startswith("qcount."):
                bound = name[len("qcount.") :]
                i = len(bounds) + 1 if bound == "inf" else bounds.index(int(bound)) + 1
                totals[i] += value * scale
                counted += value
        totals[0] += max(row.series.requests - counted, 0) * scale
    bins = [{"label": "0", "upper": 0, "count": round(totals[0])}]
    lower = 0
    for i, upper in enumerate(bounds, start=1):
        label = str(upper) if upper == lower + 1 else f"{lower + 1}-{upper}"
        bins.append({"label": label, "upper": upper, "count": round(totals[i])})
        lower = upper
    bins.append({"label": f">{lower}", "upper": None, "count": round(totals[-1])})
    return bins


def status_codes(rows: Iterable[Row]) -> dict[str, int]:
    """Requests per exact status code (``"200"``, ``"404"``, ...), most frequent first."""
    codes: dict[str, float] = {}
    for row in rows:
        scale = requests_per_recorded(row)
        others = 0.0
        for name, value in row.series.extra.items():
            if name.startswith("status."):
                code = name[len("status.") :]
                codes[code] = codes.get(code, 0) + value * scale
                if code.startswith("2"):
                    others += value
        if row.key.status == "2xx":
            ok = (row.series.requests - others) * scale
            if ok > 0:
                codes["200"] = codes.get("200", 0) + ok
    counted = {code: round(n) for code, n in codes.items() if round(n)}
    return dict(sorted(counted.items(), key=lambda item: (-item[1], item[0])))


def slow_requests(
    seconds: int,
    *,
    route: str | None = None,
    limit: int = 20,
    now: float | None = None,
    store: MetricsStore | None = None,
) -> list[SlowRequest]:
    """The slowest requests of the last ``seconds`` in the slow log (one route, or all)."""
    since, _ = _window(seconds, now)
    found = (store or get_store()).read_slow(since, checked_route(route))
    return sorted(found, key=lambda r: -r.duration_ms)[:limit]


def pool_usage(hosts: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Pools summed over every sampled process: ``{"database"|"redis": {alias: numbers}}``.

    ``hosts`` is :func:`system_stats`'s result. Numbers: ``in_use`` and ``size``
    (connections open), ``max_size`` (None when any process's pool has no limit
    or does not say), ``waiting``, ``errors`` and ``processes`` (how many processes
    reported the pool).
    """
    found: dict[str, dict[str, dict[str, Any]]] = {"database": {}, "redis": {}}
    for host in hosts:
        for process in host["processes"]:
            for kind, key in (("database", "db_pools"), ("redis", "redis_pools")):
                for alias, pool in (process.get(key) or {}).items():
                    if not isinstance(pool, dict) or "error" in pool:
                        continue
                    if (pool.get("details") or {}).get("servers") == 0:
                        continue  # a tiered cache without a Redis tier: no pool to show
                    total = found[kind].setdefault(
                        alias,
                        {"in_use": 0, "size": 0, "max_size": 0, "waiting": 0, "errors": 0,
                         "processes": 0},
                    )  # fmt: skip
                    total["processes"] += 1
                    total["in_use"] += _int(pool.get("in_use"))
                    total["size"] += _int(pool.get("size", pool.get("created")))
                    total["waiting"] += _int(pool.get("waiting"))
                    total["errors"] += _int(pool.get("errors"))
                    limit = pool.get("max_size", pool.get("max_connections"))
                    if total["max_size"] is not None and _is_count(limit) and limit < 2**31:
                        total["max_size"] += limit
                    else:
                        total["max_size"] = None
    return found


def _is_count(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(value: Any) -> int:
    return int(value) if _is_count(value) else 0


def _num(value: float) -> str:
    return f"{value:g}"


def cache_stats(rows: Iterable[Row]) -> dict[str, dict[str, Any]]:
    """Cache events per tier counted during requests: hits, misses, errors and the hit ratio.

    Counts are scaled to the traffic the recorded requests stand for (1 / sample rate).
    """
    tiers: dict[str, dict[str, float]] = {}
    for row in rows:
        scale = requests_per_recorded(row)
        for name, value in row.series.extra.items():
            parts = name.split(".")
            if parts[0] == "cache" and len(parts) == 3 and parts[2] in ("hit", "miss", "error"):
                tier = tiers.setdefault(parts[1], {"hit": 0, "miss": 0, "error": 0})
                tier[parts[2]] += value * scale
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
    """Queries and database time per alias, over the requests in ``rows`` (scaled as above)."""
    aliases: dict[str, list[float]] = {}
    for row in rows:
        scale = requests_per_recorded(row)
        for name, value in row.series.extra.items():
            kind, _, alias = name.partition(".")
            if kind in ("queries", "query_us") and alias:
                entry = aliases.setdefault(alias, [0, 0])
                entry[0 if kind == "queries" else 1] += value * scale
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
    routes = route_stats(seconds, rows=rows, now=now)
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
        "totals": overall(rows, seconds, now=now).as_dict(),
        "routes": [r.as_dict() for r in routes[:limit]],
        "routes_total": len(routes),
        "cache": cache_stats(rows),
        "database": database_stats(rows),
        "hosts": system_stats(now=now, store=store),
    }
