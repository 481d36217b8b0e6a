"""Turn the dashboard's numbers into what the templates show: cards, charts, table cells.

Kept apart from the views so that the page and the JSON endpoint render the
very same fragments (the page polls the endpoint and swaps them in).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from django.utils.safestring import SafeString

from . import charts
from .charts import Line, format_bytes, format_ms, format_number, format_percent, format_rate

__all__ = [
    "WINDOW_NAMES",
    "overview_cards",
    "overview_charts",
    "route_charts",
    "route_rows",
    "slow_rows",
    "status_rows",
]

NONE = "\N{EN DASH}"  # what a card or cell shows when there is no number
WINDOW_NAMES = {"5m": "5 minutes", "1h": "hour", "24h": "24 hours", "7d": "7 days"}


def _last(window: str) -> str:
    return f"the last {WINDOW_NAMES.get(window, window)}"


def _ms(value: float | None) -> str:
    return NONE if value is None else format_ms(value)


def _card(label: str, value: str, detail: str = "", state: str = "") -> dict[str, str]:
    return {"label": label, "value": value, "detail": detail, "state": state}


def request_cards(data: dict[str, Any]) -> list[dict[str, str]]:
    """Requests/s, error rate and latency percentiles of ``data["totals"]``."""
    totals = data["totals"]
    count = totals["count"]
    errors = totals["status_classes"].get("5xx", 0)
    error_state = "bad" if totals["error_rate"] >= 0.05 else "warn" if errors else ""
    return [
        _card(
            "Requests/s",
            format_rate(totals["rate"]) if count else NONE,
            f"{count:,} requests in {_last(data['window'])}",
        ),
        _card(
            "Error rate",
            format_percent(totals["error_rate"]) if count else NONE,
            f"{errors:,} server errors (5xx)",
            error_state,
        ),
        _card("p50 latency", _ms(totals["p50_ms"]), "median request"),
        _card("p95 latency", _ms(totals["p95_ms"]), "95% of requests are faster"),
        _card("p99 latency", _ms(totals["p99_ms"]), "99% of requests are faster"),
    ]


def cache_cards(cache: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    if not cache:
        return [_card("Cache hit ratio", NONE, "no cache lookups counted during requests")]
    cards = []
    for tier, numbers in cache.items():
        lookups = numbers["hits"] + numbers["misses"]
        ratio = numbers["hit_ratio"]
        detail = f"{numbers['hits']:,} hits of {lookups:,} lookups"
        if numbers["errors"]:
            detail += f", {numbers['errors']:,} errors"
        value = NONE if ratio is None else format_percent(ratio)
        state = "warn" if numbers["errors"] else ""
        cards.append(_card(f"Cache hit ratio: {tier}", value, detail, state))
    return cards


def pool_cards(pools: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, str]]:
    cards = []
    for kind, title in (("database", "Database pool"), ("redis", "Redis pool")):
        for alias, pool in pools.get(kind, {}).items():
            limit = pool["max_size"]
            value = f"{pool['in_use']} in use" + (f" of {limit}" if limit else "")
            detail = f"{pool['size']} open across {pool['processes']} process"
            detail += "es" if pool["processes"] != 1 else ""
            state = ""
            if pool["waiting"]:
                detail += f"; {pool['waiting']} waiting"
                state = "warn"
            if pool["errors"]:
                detail += f"; {pool['errors']} errors so far"
            cards.append(_card(f"{title}: {alias}", value, detail, state))
    if not cards:
        cards.append(_card("Pools", NONE, "no system samples yet (MONITORING_SYSTEM_INTERVAL)"))
    return cards


def host_cards(hosts: list[dict[str, Any]]) -> list[dict[str, str]]:
    if not hosts:
        return [
            _card(
                "Hosts",
                NONE,
                "no system sample in the last 2 minutes: workers sample every "
                "MONITORING_SYSTEM_INTERVAL seconds",
            )
        ]
    cards = []
    for host in hosts:
        cpu = host["cpu_percent"]
        value = NONE if cpu is None else f"CPU {format_number(cpu)}%"
        parts = []
        if host["memory_percent"] is not None:
            memory = f"memory {format_number(host['memory_percent'])}%"
            if host["memory_used"] is not None and host["memory_total"]:
                used, total = host["memory_used"], host["memory_total"]
                memory += f" ({format_bytes(used)} of {format_bytes(total)})"
            parts.append(memory)
        workers = host["processes"]
        parts.append(
            f"{workers} process{'es' if workers != 1 else ''} using "
            f"{format_bytes(host['process_rss'])}"
        )
        state = "warn" if (cpu or 0) >= 90 or (host["memory_percent"] or 0) >= 90 else ""
        cards.append(_card(host["host"], value, "; ".join(parts), state))
    return cards


def overview_cards(data: dict[str, Any]) -> list[dict[str, str]]:
    return (
        request_cards(data)
        + cache_cards(data["cache"])
        + pool_cards(data["pools"])
        + host_cards(data["hosts"])
    )


def _no_requests(data: dict[str, Any], subject: str = "requests") -> str:
    return (
        f"No {subject} were recorded in {_last(data['window'])}. PerformanceMiddleware records "
        f"every request, and each worker moves what it recorded to the {data['store']} store "
        "every MONITORING_FLUSH_INTERVAL seconds."
    )


def request_charts(data: dict[str, Any], prefix: str = "chart") -> list[SafeString]:
    series = data["series"]
    starts, step = series["starts"], data["step"]
    has_requests = bool(data["totals"]["count"])
    empty = _no_requests(data)
    rate = series["requests_per_s"] if has_requests else [None] * len(starts)
    return [
        charts.line_chart(
            f"{prefix}-requests",
            "Requests per second",
            starts=starts,
            step=step,
            lines=[Line("requests/s", rate)],
            fmt=format_number,
            empty=empty,
        ),
        charts.line_chart(
            f"{prefix}-latency",
            "Latency percentiles",
            starts=starts,
            step=step,
            lines=[
                Line("p50", series["p50_ms"]),
                Line("p95", series["p95_ms"]),
                Line("p99", series["p99_ms"]),
            ],
            fmt=format_ms,
            empty=empty,
        ),
        charts.line_chart(
            f"{prefix}-errors",
            "Error rate (5xx)",
            starts=starts,
            step=step,
            lines=[Line("errors", series["error_rate"])],
            fmt=format_percent,
            empty=empty,
        ),
    ]


def cache_chart(data: dict[str, Any], prefix: str = "chart") -> SafeString:
    series = data["series"]
    return charts.line_chart(
        f"{prefix}-cache",
        "Cache hit ratio",
        starts=series["starts"],
        step=data["step"],
        lines=[Line(tier, values) for tier, values in series["hit_ratio"].items()],
        fmt=format_percent,
        y_max=1.0,
        empty=(
            f"No cache lookups were counted during requests in {_last(data['window'])}. "
            "The tiered cache (django_perf.cache.TieredCache) counts hits and misses per tier "
            "for each request PerformanceMiddleware records."
        ),
    )


def memory_chart(data: dict[str, Any]) -> SafeString:
    series = data["series"]
    return charts.line_chart(
        "chart-memory",
        "Process memory (resident, all workers per host)",
        starts=series["starts"],
        step=data["step"],
        lines=[Line(host, values) for host, values in series["memory"].items()],
        fmt=format_bytes,
        empty=(
            f"No system samples in {_last(data['window'])}. Each worker samples its memory every "
            "MONITORING_SYSTEM_INTERVAL seconds (0 turns sampling off), and samples are kept "
            "for MONITORING_MINUTE_RETENTION seconds."
        ),
    )


def overview_charts(data: dict[str, Any]) -> list[SafeString]:
    return [*request_charts(data), cache_chart(data), memory_chart(data)]


def _short_ms(ms: float) -> str:
    return f"{ms / 1000:g}s" if ms >= 1000 else f"{ms:g}"


def _bin_label(upper: float | None, lower: float) -> str:
    """``"0-1"``, ``"200-500"``, ``"0.5-1s"``, ``">10s"`` (milliseconds unless marked s)."""
    if upper is None:
        return f">{_short_ms(lower)}"
    if upper >= 1000 and lower < 1000:
        return f"{lower / 1000:g}-{_short_ms(upper)}"
    return f"{_short_ms(lower).rstrip('s')}-{_short_ms(upper)}"


def route_charts(data: dict[str, Any]) -> list[SafeString]:
    empty = _no_requests(data, "requests to this route")
    histogram = data["latency_histogram"]
    lowers = [0.0] + [b["upper_ms"] for b in histogram[:-1]]
    bins = list(zip(histogram, lowers, strict=True))
    return [
        *request_charts(data, "route-chart"),
        cache_chart(data, "route-chart"),
        charts.bar_chart(
            "route-chart-histogram",
            "Latency histogram",
            bars=[(_bin_label(b["upper_ms"], previous), b["count"]) for b, previous in bins],
            empty=empty,
            axis_label="request duration (ms, or s where marked); bar height: requests",
        ),
        charts.bar_chart(
            "route-chart-queries",
            "Database queries per request",
            bars=[(b["label"], b["count"]) for b in data["query_counts"]],
            empty=empty,
            axis_label="queries per request; bar height: requests",
        ),
    ]


def route_rows(routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table cells for the route table, formatted."""
    rows = []
    for r in routes:
        size = r["avg_response_bytes"]
        rows.append(
            {
                "route": r["route"],
                "count": f"{r['count']:,}",
                "rate": format_number(r["rate"]),
                "errors": format_percent(r["error_rate"]),
                "error_state": "bad" if r["error_rate"] >= 0.05 else "",
                "p50": _ms(r["p50_ms"]),
                "p95": _ms(r["p95_ms"]),
                "p99": _ms(r["p99_ms"]),
                "queries": NONE if r["avg_queries"] is None else format_number(r["avg_queries"]),
                "bytes": NONE if size is None else format_bytes(size),
                "n_plus_one": r["n_plus_one"],
                "slow": r["slow"],
            }
        )
    return rows


def _when(timestamp: float) -> datetime:
    return timezone.localtime(datetime.fromtimestamp(timestamp, UTC))


def slow_rows(slow: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The slow log's entries, formatted (newest data first as given)."""
    return [
        {
            **entry,
            "when": _when(entry["at"]),
            "duration": format_ms(entry["duration_ms"]),
            "db": format_ms(entry["db_ms"]),
        }
        for entry in slow
    ]


def status_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Status codes with their share of the route's requests."""
    codes = data["status_codes"]
    total = sum(codes.values())
    return [
        {
            "code": code,
            "count": f"{count:,}",
            "share": format_percent(count / total) if total else NONE,
            "state": "bad" if code.startswith("5") else "warn" if code.startswith("4") else "",
        }
        for code, count in codes.items()
    ]
