"""The dashboard's pages and JSON endpoint, on real traffic recorded by the middleware."""

import re
import time
from html import unescape
from urllib.parse import quote

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from django_perf.monitoring import flush, stats
from django_perf.monitoring.series import Key, Series
from django_perf.monitoring.store import Sample, get_store
from tests.admin.conftest import DASHBOARD, DATA, ROUTE

pytestmark = pytest.mark.django_db


def charts_in(html):
    """{chart id: (points drawn, lines drawn) or "empty"} for each chart in ``html``."""
    found = {}
    for figure in re.findall(r'<figure class="perf-chart" id="([^"]+)">(.*?)</figure>', html, re.S):
        chart_id, body = figure
        if "perf-chart-empty" in body:
            found[chart_id] = "empty"
        elif 'data-bars="' in body:
            found[chart_id] = int(re.search(r'data-bars="(\d+)"', body).group(1))
        else:
            points, lines = re.search(r'data-points="(\d+)" data-lines="(\d+)"', body).groups()
            found[chart_id] = (int(points), int(lines))
    return found


def cards_in(html):
    cards = re.findall(
        r'perf-card-label">(.*?)</div>\s*<div class="perf-card-value">(.*?)</div>', html, re.S
    )
    return dict(cards)


def series(requests, duration_us=2000, **extra):
    s = Series()
    s.buckets = {1000: requests}
    s.requests, s.weight, s.duration_us = requests, float(requests), duration_us * requests
    s.extra.update(extra)
    return s


def test_an_empty_store_explains_itself_in_every_chart(client_for):
    html = client_for("viewer").get(DASHBOARD).content.decode()
    assert charts_in(html) == dict.fromkeys(
        ["chart-requests", "chart-latency", "chart-errors", "chart-cache", "chart-memory"],
        "empty",
    )
    assert "No requests were recorded in the last hour." in html
    assert "MONITORING_SYSTEM_INTERVAL" in html
    assert "no routes to list yet" in html
    assert "No request took longer than 500 ms" in html
    assert cards_in(html)["Requests/s"] == "\N{EN DASH}"


def test_traffic_shows_in_cards_charts_and_the_route_table(client_for, traffic):
    html = client_for("viewer").get(DASHBOARD).content.decode()
    cards = cards_in(html)
    assert cards["Requests/s"].endswith("/s")
    assert cards["Error rate"] == "10%"  # one 500 among ten requests
    assert "ms" in cards["p95 latency"]
    # /monitoring/cached/ reads twice per request: miss then hit, then hit and hit.
    assert cards["Cache hit ratio: memory"] == "75%"
    drawn = charts_in(html)
    # A value for every minute of the hour: 61, or 60 when the window starts on a minute.
    assert drawn["chart-requests"][0] in (60, 61)
    assert drawn["chart-latency"] == (3, 3)  # one minute of traffic: p50, p95, p99 dots
    assert drawn["chart-cache"][1] >= 1
    assert drawn["chart-memory"] == "empty"  # the test process takes no system samples
    assert "perf-lone" in html  # lone points are drawn as labelled dots
    table = html[html.index('id="perf-route-table"') :]
    routes = [
        (link, unescape(name))
        for link, name in re.findall(r'class="perf-route"><a href="([^"]+)">([^<]+)</a>', table)
    ]
    assert [name for _, name in routes][:1] == ["/monitoring/fast/"]  # busiest first
    assert {name for _, name in routes} >= {
        "/monitoring/fast/",
        "/monitoring/queries/<int:n>/",
        "/monitoring/fail/",
        "<unmatched>",
    }
    href = {name: link for link, name in routes}["/monitoring/queries/<int:n>/"]
    assert href == f"{ROUTE}?route={quote('/monitoring/queries/<int:n>/', safe='')}&amp;window=1h"


def test_the_route_table_sorts_both_ways(client_for, traffic):
    client = client_for("viewer")

    def order(query):
        html = client.get(DASHBOARD + query).content.decode()
        table = html[html.index('id="perf-route-table"') :]
        return [unescape(n) for n in re.findall(r'class="perf-route"><a [^>]+>([^<]+)</a>', table)]

    by_name = order("?sort=route")
    assert by_name == sorted(by_name)
    assert order("?sort=route&order=desc") == by_name[::-1]
    by_queries = order("?sort=queries")
    assert by_queries[0] == "/monitoring/queries/<int:n>/"
    assert order("?sort=queries&order=asc")[-1] == "/monitoring/queries/<int:n>/"
    html = client.get(DASHBOARD + "?sort=p95&order=asc").content.decode()
    # The sorted column links to the other direction; the others to their natural one.
    assert 'href="?window=1h&amp;sort=p95&amp;order=desc"' in html
    assert 'href="?window=1h&amp;sort=p99&amp;order=desc"' in html
    assert 'href="?window=1h&amp;sort=route&amp;order=asc"' in html
    assert 'aria-sort="ascending"' in html


def test_bad_parameters_are_refused_with_the_reason(client_for):
    client = client_for("viewer")
    page = client.get(DASHBOARD + "?window=2h")
    assert page.status_code == 400
    assert b"unknown window '2h'; use one of 5m, 1h, 24h, 7d" in page.content
    assert client.get(DASHBOARD + "?sort=speed").status_code == 400
    assert client.get(DASHBOARD + "?sort=p95&order=up").status_code == 400
    assert b"the route parameter is missing" in client.get(ROUTE).content
    response = client.get(DATA + "?window=1y")
    assert response.status_code == 400
    assert response.json() == {"error": "unknown window '1y'; use one of 5m, 1h, 24h, 7d"}
    # A route no store can hold (PostgreSQL text refuses NUL): a 400, not a DataError's 500.
    for url in (ROUTE + "?route=%2Fa%00", DATA + "?route=%2Fa%00"):
        response = client.get(url)
        assert response.status_code == 400
        assert b"holds a NUL character" in response.content


def test_a_failing_store_is_a_server_error_not_a_bad_request(client_for, traffic):
    """A corrupt stored row raises a ValueError inside the store: the request was fine."""
    from django_perf.monitoring.models import MetricSeries

    route = quote(MetricSeries.objects.values_list("route", flat=True).first(), safe="")
    MetricSeries.objects.update(payload="{truncated")
    client = client_for("viewer")
    client.raise_request_exception = False
    for url in (DASHBOARD, DATA, f"{ROUTE}?route={route}", f"{DATA}?route={route}"):
        assert client.get(url).status_code == 500, url


def test_the_busiest_routes_are_listed_whatever_the_sort(client_for):
    minute = int(time.time()) // 60 * 60 - 60
    get_store().write({Key(minute, f"/r{n:03}/", "GET", "2xx"): series(n + 1) for n in range(150)})
    client = client_for("viewer")
    for query in ("", "?sort=route", "?sort=count&order=asc", "?sort=p95"):
        data = client.get(DATA + query).json()
        listed = {r["route"] for r in data["routes"]}
        assert listed == {f"/r{n:03}/" for n in range(50, 150)}, query
        assert data["routes_total"] == 150
    by_route = client.get(DATA + "?sort=route").json()["routes"]
    assert [r["route"] for r in by_route][:2] == ["/r050/", "/r051/"]


def test_the_json_documents_have_the_documented_keys(client_for, traffic):
    """docs/admin.rst lists every key of both documents."""
    client = client_for("viewer")
    overview = client.get(DATA).json()
    assert set(overview) == {
        "schema", "generated_at", "window", "window_seconds", "step", "store", "sort", "order",
        "totals", "cache", "database", "pools", "hosts", "series", "routes", "routes_total",
        "slow", "html",
    }  # fmt: skip
    assert "memory" in overview["series"]
    route = client.get(DATA + "?route=" + quote(overview["routes"][0]["route"], safe="")).json()
    assert set(route) == {
        "schema", "generated_at", "window", "window_seconds", "step", "store", "route",
        "totals", "cache", "database", "series", "latency_histogram", "query_counts",
        "status_codes", "slow", "html",
    }  # fmt: skip


def test_gaps_in_traffic_are_gaps_in_the_charts(client_for):
    now = int(time.time())
    store = get_store()
    store.write({Key(now - now % 60 - 40 * 60, "/a/", "GET", "2xx"): series(4)})
    store.write({Key(now - now % 60 - 39 * 60, "/a/", "GET", "2xx"): series(2)})
    store.write({Key(now - now % 60 - 10 * 60, "/a/", "GET", "5xx"): series(1)})
    html = client_for("viewer").get(DASHBOARD).content.decode()
    latency = html[html.index('id="chart-latency"') :]
    latency = latency[: latency.index("</figure>")]
    assert latency.count('class="perf-line perf-s0"') == 1  # p50: the two adjacent minutes
    assert latency.count("perf-lone") == 3  # and the minute 10 minutes ago, alone
    assert charts_in(html)["chart-errors"] == (3, 1)


def test_long_windows_chart_whole_hours(client_for):
    now = int(time.time())
    store = get_store()
    store.write({Key(now - now % 60 - 5 * 3600, "/a/", "GET", "2xx"): series(3)})
    store.write({Key(now - now % 60 - 2 * 86400, "/a/", "GET", "2xx"): series(5)})
    store.maintain(force=True)
    client = client_for("viewer")
    day = client.get(DATA + "?window=24h").json()
    assert day["step"] == 3600
    assert len(day["series"]["starts"]) in (24, 25)
    assert day["totals"]["count"] == 3
    week = client.get(DATA + "?window=7d").json()
    assert week["step"] == 3 * 3600
    assert week["totals"]["count"] == 8
    assert sum(1 for v in week["series"]["p50_ms"] if v is not None) == 2


def test_system_samples_fill_the_pool_and_host_cards_and_the_memory_chart(client_for):
    now = time.time()
    pools = {"default": {"in_use": 2, "size": 3, "max_size": 4, "waiting": 1, "errors": 0}}
    redis = {"default": {"in_use": 1, "size": 2, "max_size": 10, "waiting": 0, "errors": 0}}
    system = {"cpu_percent": 37.5, "memory_percent": 61.0, "memory_used": 5 * 2**30,
              "memory_total": 8 * 2**30}  # fmt: skip
    for pid, rss in ((11, 100 * 2**20), (12, 150 * 2**20)):
        data = {"system": system, "process": {"rss": rss}, "db_pools": pools, "redis_pools": redis}
        get_store().write({}, [Sample("web-1", pid, now - 5, data)])
    html = client_for("viewer").get(DASHBOARD).content.decode()
    cards = cards_in(html)
    assert cards["Database pool: default"] == "4 in use of 8"
    assert cards["Redis pool: default"] == "2 in use of 20"
    assert cards["web-1"] == "CPU 37.5%"
    assert "memory 61% (5 GB of 8 GB); 2 processes using 250 MB" in html
    assert "2 waiting" in html  # the pool card warns
    assert charts_in(html)["chart-memory"] == (1, 1)
    assert "250 MB" in html[html.index('id="chart-memory"') :]


def test_the_route_page_drills_down(client_for, perf_slow):
    client = Client(raise_request_exception=False)
    for n in (1, 1, 4, 30):
        client.get(f"/monitoring/queries/{n}/")
    client.get("/monitoring/slow/200/")
    flush()
    viewer = client_for("viewer")
    route = "/monitoring/queries/<int:n>/"
    html = viewer.get(ROUTE + "?route=" + quote(route, safe="")).content.decode()
    assert "<title>Route /monitoring/queries/&lt;int:n&gt;/ | " in html
    assert '&rsaquo; <a href="/admin/django_perf/dashboard/?window=1h">Dashboard</a>' in html
    drawn = charts_in(html)
    assert drawn["route-chart-histogram"] >= 1
    assert drawn["route-chart-queries"] == 3  # 1 query twice, 4 once, 30 once
    queries = html[html.index('id="route-chart-queries"') :]
    assert "<title>1: 2</title>" in queries
    assert "<title>4-5: 1</title>" in queries
    assert "<title>21-50: 1</title>" in queries
    statuses = html[html.index('id="perf-status-table"') :]
    assert re.search(r">200</th><td class=\"perf-num\">4</td>", statuses)
    assert "No request took longer than 150 ms" in html  # the slow one is another route

    slow_route = "/monitoring/slow/<int:ms>/"
    html = viewer.get(ROUTE + "?route=" + quote(slow_route, safe="")).content.decode()
    slow = html[html.index('id="perf-slow-table"') :]
    assert "GET /monitoring/slow/200/" in slow
    assert "Slow request GET /monitoring/slow/&lt;int:ms&gt;/ 200 in" in slow  # the log line

    unknown = viewer.get(ROUTE + "?route=/nothing/here/")
    assert unknown.status_code == 200
    assert set(charts_in(unknown.content.decode()).values()) == {"empty"}


@pytest.fixture
def perf_slow(perf):
    return perf(MONITORING_SLOW_REQUEST_MS=150)


def test_the_dashboard_lists_the_slowest_requests(client_for, perf_slow):
    client = Client()
    client.get("/monitoring/slow/160/")
    client.get("/monitoring/slow/260/")
    flush()
    html = client_for("viewer").get(DASHBOARD).content.decode()
    slow = html[html.index('id="perf-slow-table"') :]
    assert slow.index("/monitoring/slow/260/") < slow.index("/monitoring/slow/160/")


def test_the_json_endpoint_has_the_numbers_and_the_fragments(client_for, traffic):
    client = client_for("viewer")
    data = client.get(DATA + "?window=5m&sort=p99").json()
    assert data["window"] == "5m"
    assert (data["sort"], data["order"]) == ("p99", "desc")
    assert data["totals"]["count"] == 10
    expected = stats.overall(stats.read(300), 300).as_dict()
    # The rate divides by the span read up to now, a few milliseconds later here.
    assert data["totals"].pop("rate") == pytest.approx(expected.pop("rate"), abs=0.0002)
    assert data["totals"] == expected
    assert set(data["html"]) == {"cards", "charts", "routes", "slow"}
    assert 'id="chart-latency"' in data["html"]["charts"]
    assert [r["route"] for r in data["routes"]] == [
        r.route for r in sorted(stats.route_stats(300), key=lambda r: (-(r.p99_ms or 0), r.route))
    ]
    assert data["cache"]["memory"]["hit_ratio"] == 0.75
    route = client.get(DATA + "?route=" + quote("/monitoring/fast/", safe="")).json()
    assert route["totals"]["count"] == 5
    assert route["status_codes"] == {"200": 5}
    assert set(route["html"]) == {"cards", "charts", "slow", "statuses"}


def test_the_page_polls_its_own_endpoint_and_loads_nothing_from_elsewhere(client_for):
    html = client_for("viewer").get(DASHBOARD + "?window=5m").content.decode()
    assert (
        'data-poll-url="/admin/django_perf/dashboard/data/?window=5m&amp;sort=count&amp;order=desc"'
        in html
    )
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert not [s for s in sources if s.startswith(("http:", "https:", "//"))]
    assert "/static/django_perf/dashboard.js" in sources
    assert "/static/django_perf/dashboard.css" in sources
    assert not LogEntry.objects.exists()  # looking changes nothing
