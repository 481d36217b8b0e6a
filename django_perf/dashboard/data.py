"""What the dashboard shows, read from the shared metrics store in one pass per page.

Everything comes from :mod:`django_perf.monitoring.stats` (all workers, all
hosts); this module only picks the window's step, reads the store once and
shapes the numbers for the cards, the charts, the route table and the JSON
endpoint. Both functions return plain JSON-ready dicts.
"""

from __future__ import annotations

import time
from typing import Any

from ..monitoring import stats
from ..monitoring.store import MetricsStore, get_store

__all__ = [
    "DEFAULT_WINDOW",
    "SCHEMA",
    "SORTS",
    "STEPS",
    "WINDOWS",
    "overview",
    "parse_sort",
    "route_detail",
]

SCHEMA = "django-perf/dashboard/1"
WINDOWS = stats.WINDOWS
DEFAULT_WINDOW = "1h"
# Seconds per chart step: minutes for short windows; windows over six hours are stored
# (and read) per hour, so their steps are whole hours.
STEPS = {"5m": 60, "1h": 60, "24h": 3600, "7d": 3 * 3600}
SORTS = tuple(stats.SORT_KEYS)
ROUTE_ROWS = 100  # routes in the table; the rest are counted, not listed
SLOW_ROWS = 20


def parse_sort(sort: str, order: str | None) -> tuple[str, str]:
    """Validate the route table's ``sort`` and ``order``; ValueError says what is accepted."""
    if sort not in stats.SORT_KEYS:
        raise ValueError(f"unknown sort {sort!r}; use one of {', '.join(SORTS)}")
    default = "asc" if sort == "route" else "desc"
    order = order or default
    if order not in ("asc", "desc"):
        raise ValueError(f"unknown order {order!r}; use asc or desc")
    return sort, order


def _sorted_routes(routes: list[stats.RouteStats], sort: str, order: str) -> list:
    key = stats.SORT_KEYS[sort]
    routes = sorted(routes, key=lambda r: (key(r), r.route))  # the stats' own order: desc
    natural = "asc" if sort == "route" else "desc"
    return routes if order == natural else routes[::-1]


def _hosts(hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """CPU and memory per host, from the latest system samples."""
    shown = []
    for host in hosts:
        system = host.get("system", {})
        processes = host["processes"]
        shown.append(
            {
                "host": host["host"],
                "sampled_at": host.get("sampled_at"),
                "cpu_percent": system.get("cpu_percent"),
                "cpu_count": system.get("cpu_count"),
                "load": system.get("load"),
                "memory_percent": system.get("memory_percent"),
                "memory_used": system.get("memory_used"),
                "memory_total": system.get("memory_total"),
                "processes": len(processes),
                "process_rss": sum(p.get("rss") or 0 for p in processes),
                "process_cpu_percent": round(sum(p.get("cpu_percent") or 0 for p in processes), 1),
            }
        )
    return shown


def _series(points: list[stats.Point], step: int) -> dict[str, Any]:
    """Chart columns from time-series points (None where a step had no request)."""
    tiers = sorted({tier for p in points for tier in p.hit_ratio})
    return {
        "starts": [p.start for p in points],
        "requests_per_s": [stats.rounded_rate(p.count / step) for p in points],
        "error_rate": [p.error_rate if p.count else None for p in points],
        "p50_ms": [p.p50_ms for p in points],
        "p95_ms": [p.p95_ms for p in points],
        "p99_ms": [p.p99_ms for p in points],
        "hit_ratio": {tier: [p.hit_ratio.get(tier) for p in points] for tier in tiers},
    }


def overview(
    window: str = DEFAULT_WINDOW,
    *,
    sort: str = "count",
    order: str | None = None,
    now: float | None = None,
    store: MetricsStore | None = None,
) -> dict[str, Any]:
    """The dashboard of the last ``window``: totals, cache, pools, hosts, charts and routes."""
    seconds = stats.parse_window(window)
    sort, order = parse_sort(sort, order)
    store = store or get_store()
    now = time.time() if now is None else now
    step = STEPS[window]
    rows = stats.read(seconds, now=now, store=store)
    every = stats.route_stats(seconds, rows=rows, now=now)
    # The busiest routes are listed whatever the sort; the sort orders those.
    busiest = sorted(every, key=lambda r: (-r.count, r.route))[:ROUTE_ROWS]
    routes = _sorted_routes(busiest, sort, order)
    hosts = stats.system_stats(now=now, store=store)
    series = _series(stats.time_series(seconds, step, now=now, store=store, rows=rows), step)
    series["memory"] = stats.memory_series(seconds, step, now=now, store=store)
    return {
        "schema": SCHEMA,
        "generated_at": round(now, 3),
        "window": window,
        "window_seconds": seconds,
        "step": step,
        "store": store.describe(),
        "sort": sort,
        "order": order,
        "totals": stats.overall(rows, seconds, now=now).as_dict(),
        "cache": stats.cache_stats(rows),
        "database": stats.database_stats(rows),
        "pools": stats.pool_usage(hosts),
        "hosts": _hosts(hosts),
        "series": series,
        "routes": [r.as_dict() for r in routes],
        "routes_total": len(every),
        "slow": [r.as_dict() for r in stats.slow_requests(seconds, limit=5, now=now, store=store)],
    }


def route_detail(
    route: str,
    window: str = DEFAULT_WINDOW,
    *,
    now: float | None = None,
    store: MetricsStore | None = None,
) -> dict[str, Any]:
    """One route over the last ``window``: its numbers, charts and distributions, slow log."""
    seconds = stats.parse_window(window)
    store = store or get_store()
    now = time.time() if now is None else now
    step = STEPS[window]
    rows = stats.read(seconds, route=route, now=now, store=store)
    totals = stats.overall(rows, seconds, now=now).as_dict()
    totals["route"] = route
    points = stats.time_series(seconds, step, route=route, now=now, store=store, rows=rows)
    return {
        "schema": SCHEMA,
        "generated_at": round(now, 3),
        "window": window,
        "window_seconds": seconds,
        "step": step,
        "store": store.describe(),
        "route": route,
        "totals": totals,
        "cache": stats.cache_stats(rows),
        "database": stats.database_stats(rows),
        "series": _series(points, step),
        "latency_histogram": stats.latency_histogram(rows),
        "query_counts": stats.query_count_distribution(rows),
        "status_codes": stats.status_codes(rows),
        "slow": [
            r.as_dict()
            for r in stats.slow_requests(
                seconds, route=route, limit=SLOW_ROWS, now=now, store=store
            )
        ],
    }
