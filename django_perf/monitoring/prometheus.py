"""The Prometheus endpoint: the shared store's numbers in the text exposition format.

One scrape sees every worker on every host, because it reads the shared store
rather than this process's memory (no multiprocess directory, no per-worker
ports). Counters are lifetime totals (they only grow, as Prometheus expects,
while the sample rate stays the same: see the docs); latency is a histogram
with the usual ``le`` buckets, derived from the log-linear buckets; the last
five minutes' percentiles and the latest system samples are gauges.

Access: a bearer token (``MONITORING_METRICS_TOKEN``) or a logged-in staff
user with the ``django_perf.view_metrics`` permission. Anything else gets 401
(not logged in, no or wrong token) or 403 (logged in without the permission).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from ..conf import perf_settings
from .histogram import Histogram
from .store import MetricsStore, get_store

__all__ = ["LATENCY_BUCKETS", "PERMISSION", "StoreCollector", "metrics_view"]

# Seconds, as Prometheus clients use by default (plus 2.5 s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PERMISSION = "django_perf.view_metrics"
CACHE_EVENTS = ("hit", "miss", "error")  # the cache.<tier>.<event> sums that count events


class StoreCollector:
    """A prometheus_client collector that reads the shared store at each scrape."""

    def __init__(self, store: MetricsStore | None = None, now: float | None = None) -> None:
        self.store = store or get_store()
        self.now = now

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        from . import stats

        labels = ["route", "method", "status"]
        requests = CounterMetricFamily(
            "django_perf_http_requests", "HTTP requests served, all workers.", labels=labels
        )
        duration = HistogramMetricFamily(
            "django_perf_http_request_duration_seconds",
            "Request duration (recorded requests), all workers.",
            labels=labels,
        )
        received = CounterMetricFamily(
            "django_perf_http_request_body_bytes", "Request body bytes received.", labels=labels
        )
        sent = CounterMetricFamily(
            "django_perf_http_response_body_bytes", "Response body bytes sent.", labels=labels
        )
        slow = CounterMetricFamily(
            "django_perf_http_slow_requests", "Requests over the slow threshold.", labels=["route"]
        )
        n_plus_one = CounterMetricFamily(
            "django_perf_http_n_plus_one_requests",
            "Requests that repeated identical SQL (N+1 suspects).",
            labels=["route"],
        )
        queries = CounterMetricFamily(
            "django_perf_db_queries", "Database queries run by requests.", labels=["route", "alias"]
        )
        query_seconds = CounterMetricFamily(
            "django_perf_db_query_seconds",
            "Database time spent by requests.",
            labels=["route", "alias"],
        )
        cache = CounterMetricFamily(
            "django_perf_cache_events",
            "Cache hits, misses and errors per tier during requests.",
            labels=["tier", "event"],
        )
        # Rows are per (route, method, status class): the counters labelled more coarsely
        # are summed first, so each label set is exposed once. Counts are scaled to the
        # traffic they stand for (1 / sample rate), like requests_total. Summed in one
        # order at every scrape: float sums in a fixed order never shrink when a term grows.
        per_route: dict[str, list[float]] = {}
        per_alias: dict[tuple[str, str], list[float]] = {}
        cache_events: dict[tuple[str, str], float] = {}
        for row in sorted(self.store.read_totals(), key=lambda row: row.key):
            key, series = row.key, row.series
            scale = stats.requests_per_recorded(row)
            values = [key.route, key.method, key.status]
            requests.add_metric(values, series.weight)
            buckets = [
                (_le(bound / 1_000_000), count)
                for bound, count in Histogram(series.buckets).cumulative(
                    [b * 1_000_000 for b in LATENCY_BUCKETS]
                )
            ]
            buckets.append(("+Inf", series.requests))
            duration.add_metric(values, buckets, sum_value=series.duration_us / 1_000_000)
            received.add_metric(values, series.request_bytes * scale)
            sent.add_metric(values, series.response_bytes * scale)
            totals = per_route.setdefault(key.route, [0, 0])
            totals[0] += series.slow * scale
            totals[1] += series.n_plus_one * scale
            for name, value in series.extra.items():
                kind, _, rest = name.partition(".")
                if kind in ("queries", "query_us") and rest:
                    entry = per_alias.setdefault((key.route, rest), [0, 0])
                    entry[kind == "query_us"] += value * scale
                elif kind == "cache" and rest.count(".") == 1:
                    tier, event = rest.split(".")
                    if event in CACHE_EVENTS:  # not "seconds": time, not an event
                        cache_events[(tier, event)] = (
                            cache_events.get((tier, event), 0) + value * scale
                        )
        for route, (n_slow, n_n1) in sorted(per_route.items()):
            slow.add_metric([route], n_slow)
            n_plus_one.add_metric([route], n_n1)
        for (route, alias), (n_queries, query_us) in sorted(per_alias.items()):
            queries.add_metric([route, alias], n_queries)
            query_seconds.add_metric([route, alias], query_us / 1_000_000)
        for (tier, event), value in sorted(cache_events.items()):
            cache.add_metric([tier, event], value)
        yield from (requests, duration, received, sent, slow, n_plus_one, queries, query_seconds)
        yield cache

        recent = GaugeMetricFamily(
            "django_perf_http_request_duration_5m_seconds",
            "Request duration percentiles over the last five minutes, all workers.",
            labels=["route", "quantile"],
        )
        for route in stats.route_stats(300, now=self.now, store=self.store):
            for quantile, value in (
                ("0.5", route.p50_ms),
                ("0.95", route.p95_ms),
                ("0.99", route.p99_ms),
            ):
                if value is not None:
                    recent.add_metric([route.route, quantile], value / 1000)
        yield recent
        yield from _system_gauges(stats.system_stats(now=self.now, store=self.store))


def _le(seconds: float) -> str:
    return f"{seconds:g}"


def _system_gauges(hosts: list[dict[str, Any]]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    host_metrics = {
        "cpu_percent": ("django_perf_host_cpu_percent", "Host CPU use, percent."),
        "memory_used": ("django_perf_host_memory_used_bytes", "Host memory in use."),
        "memory_available": ("django_perf_host_memory_available_bytes", "Host memory available."),
        "memory_percent": ("django_perf_host_memory_percent", "Host memory use, percent."),
        "disk_used": ("django_perf_host_disk_used_bytes", "Used bytes of MONITORING_DISK_PATH."),
        "disk_percent": ("django_perf_host_disk_percent", "Use of MONITORING_DISK_PATH, percent."),
        "net_bytes_sent": ("django_perf_host_network_sent_bytes", "Bytes sent by the host."),
        "net_bytes_recv": (
            "django_perf_host_network_received_bytes",
            "Bytes received by the host.",
        ),
    }
    process_metrics = {
        "rss": ("django_perf_process_resident_memory_bytes", "Resident memory of the process."),
        "cpu_percent": ("django_perf_process_cpu_percent", "CPU use of the process, percent."),
        "threads": ("django_perf_process_threads", "Threads of the process."),
        "open_files": ("django_perf_process_open_files", "Open file descriptors of the process."),
    }
    families = {
        key: GaugeMetricFamily(name, text, labels=["host"])
        for key, (name, text) in host_metrics.items()
    }
    load = GaugeMetricFamily("django_perf_host_load", "Load average.", labels=["host", "period"])
    processes = {
        key: GaugeMetricFamily(name, text, labels=["host", "pid"])
        for key, (name, text) in process_metrics.items()
    }
    for host in hosts:
        system = host.get("system", {})
        for key, family in families.items():
            if system.get(key) is not None:
                family.add_metric([host["host"]], system[key])
        for period, value in zip(("1m", "5m", "15m"), system.get("load", []), strict=False):
            load.add_metric([host["host"], period], value)
        for process in host["processes"]:
            for key, family in processes.items():
                if process.get(key) is not None:
                    family.add_metric([host["host"], str(process["pid"])], process[key])
    yield from families.values()
    yield load
    yield from processes.values()


def _authorized(request: HttpRequest) -> int:
    """200 if the request may read the metrics, else the status to refuse it with."""
    token = perf_settings.MONITORING_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        try:
            # Servers decode header bytes as latin-1: these are the bytes the client sent,
            # which for a non-ASCII token are its UTF-8 encoding. Stripped as bytes: str.strip()
            # would also take 0x85 and 0xA0, which end UTF-8 characters such as 'à'.
            sent = header[len("Bearer ") :].encode("latin-1").strip()
        except UnicodeEncodeError:
            return 401
        return 200 if hmac.compare_digest(sent, token.encode()) else 401
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return 401
    return 200 if user.is_staff and user.has_perm(PERMISSION) else 403


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /perf/metrics``: Prometheus text exposition of the shared store."""
    status = _authorized(request)
    if status != 200:
        response = HttpResponse(
            "Metrics need a bearer token (DJANGO_PERF['MONITORING_METRICS_TOKEN']) or a staff "
            f"login with the {PERMISSION} permission.\n",
            status=status,
            content_type="text/plain",
        )
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="django-perf metrics"'
        return response
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    except ImportError:
        return HttpResponse(
            'The metrics endpoint needs prometheus-client: pip install "django-perf[prometheus]"\n',
            status=501,
            content_type="text/plain",
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector())  # type: ignore[arg-type]
    response = HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
