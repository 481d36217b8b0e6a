"""``manage.py perf_stats``: what every worker recorded, read from the shared metrics store."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_perf.monitoring import stats

CLEAR_SCREEN = "\x1b[H\x1b[2J"
MAX_WATCH_SECONDS = 86_400  # one refresh a day; longer is surely a typo


def _fmt(value: Any, suffix: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "-"


class Command(BaseCommand):
    help = (
        "Show request metrics from every worker (count, rate, error rate, p50/p95/p99, "
        "queries, bytes per route), cache hit ratios per tier, database and Redis pool "
        "stats and system metrics per host, read from the shared metrics store."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--window", default="1h", help=f"period to show: {', '.join(stats.WINDOWS)} (1h)"
        )
        parser.add_argument(
            "--route", help="only this route (its URL pattern, e.g. /articles/<slug:slug>/)"
        )
        parser.add_argument(
            "--sort", default="count", help=f"order of routes: {', '.join(stats.SORT_KEYS)} (count)"
        )
        parser.add_argument("--limit", default="20", help="how many routes to show (20)")
        parser.add_argument(
            "--json", action="store_true", help="print the report as JSON (schema in the docs)"
        )
        parser.add_argument(
            "--watch", metavar="N", help="refresh every N seconds until interrupted"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        window = options["window"]
        if window not in stats.WINDOWS:
            raise CommandError(
                f"--window {window!r} is not accepted; use one of {', '.join(stats.WINDOWS)}."
            )
        sort = options["sort"]
        if sort not in stats.SORT_KEYS:
            raise CommandError(
                f"--sort {sort!r} is not accepted; use one of {', '.join(stats.SORT_KEYS)}."
            )
        limit = _positive(options["limit"], "--limit", integer=True)
        watch = options["watch"]
        if watch is not None:
            watch = _positive(watch, "--watch", maximum=MAX_WATCH_SECONDS)
        as_json = options["json"]

        def once() -> None:
            try:
                data = stats.report(window, route=options["route"], sort=sort, limit=int(limit))
            except Exception as error:
                raise CommandError(f"Could not read the metrics store: {error}") from error
            if as_json:
                self.stdout.write(json.dumps(data, indent=None if watch else 2))
            else:
                if watch:
                    self.stdout.write(CLEAR_SCREEN, ending="")
                self.stdout.write(render(data))
            self.stdout.flush()

        if watch is None:
            once()
            return
        try:
            while True:
                once()
                time.sleep(watch)
        except KeyboardInterrupt:
            return


def _positive(
    value: str, option: str, *, integer: bool = False, maximum: float | None = None
) -> float:
    kind = "a whole number" if integer else "a number of seconds"
    accepted = f"{kind} above 0" + (f" and at most {maximum:g}" if maximum is not None else "")
    try:
        if not value.isascii():  # int() and float() read other scripts' digits: U+0661 as 1
            raise ValueError(value)
        number = int(value) if integer else float(value)
    except (AttributeError, TypeError, ValueError):
        number = math.nan
    finite = integer or math.isfinite(number)  # (a huge int is finite, and too big for a float)
    if not (finite and number > 0) or (maximum is not None and number > maximum):
        raise CommandError(f"{option} {value!r} is not accepted; use {accepted}.")
    return number


def _pool(pool: Any) -> str:
    if not isinstance(pool, dict):
        return str(pool)
    shown = ("size", "in_use", "idle", "waiting", "max_size", "errors", "error")
    return " ".join(f"{k}={pool[k]}" for k in shown if pool.get(k) is not None) or "-"


def render(data: dict[str, Any]) -> str:
    """The report as text tables."""
    lines = [
        f"django-perf: last {data['window']} from the {data['store']} store"
        + (f", route {data['route_filter']}" if data["route_filter"] else "")
        + f" ({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(data['generated_at']))})",
        "",
    ]
    header = ("route", "count", "req/s", "err%", "p50 ms", "p95 ms", "p99 ms", "queries", "bytes")
    rows = [header]
    for r in [*data["routes"], data["totals"]]:
        rows.append(
            (
                r["route"],
                str(r["count"]),
                _fmt(r["rate"], digits=2),
                _fmt(r["error_rate"] * 100, digits=1),
                _fmt(r["p50_ms"]),
                _fmt(r["p95_ms"]),
                _fmt(r["p99_ms"]),
                _fmt(r["avg_queries"]),
                _bytes(r["avg_response_bytes"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0 or n == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    if data["routes_total"] > len(data["routes"]):
        lines.append(f"({data['routes_total'] - len(data['routes'])} more routes; see --limit)")
    if data["cache"]:
        lines += ["", "cache (during requests)"]
        for tier, c in data["cache"].items():
            ratio = "-" if c["hit_ratio"] is None else f"{c['hit_ratio'] * 100:.1f}%"
            lines.append(
                f"  {tier:<10} hits {c['hits']}  misses {c['misses']}  errors {c['errors']}  "
                f"hit ratio {ratio}"
            )
    if data["database"]:
        lines += ["", "database (during requests)"]
        for alias, d in data["database"].items():
            lines.append(
                f"  {alias:<10} queries {d['queries']}  time {d['time_ms']:.1f} ms  "
                f"avg {_fmt(d['avg_query_ms'], ' ms', 2)}"
            )
    for host in data["hosts"]:
        s = host.get("system", {})
        load = "/".join(f"{x:.2f}" for x in s.get("load", []))
        lines += [
            "",
            f"host {host['host']}: cpu {_fmt(s.get('cpu_percent'), '%')}  "
            f"memory {_fmt(s.get('memory_percent'), '%')}  load {load}  "
            f"disk {_fmt(s.get('disk_percent'), '%')} of {s.get('disk_path', '-')}",
        ]
        for p in host["processes"]:
            line = (
                f"  pid {p['pid']:<7} rss {_bytes(p.get('rss'))}"
                f"  cpu {_fmt(p.get('cpu_percent'), '%')}"
                f"  threads {_fmt(p.get('threads'))}  open files {_fmt(p.get('open_files'))}"
                f"  gc {'/'.join(str(c) for c in p.get('gc_collections', []))}"
            )
            lines.append(line)
            for kind in ("db_pools", "redis_pools"):
                for name, pool in (p.get(kind) or {}).items():
                    lines.append(f"    {kind[:-6]} pool {name}: {_pool(pool)}")
    if not data["routes"] and not data["hosts"]:
        lines += ["", "No metrics in this window yet (workers flush every few seconds)."]
    return "\n".join(lines)
