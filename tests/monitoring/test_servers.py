"""Real servers, several workers: every request of every worker reaches perf_stats exactly once.

gunicorn (WSGI) and uvicorn (ASGI) serve the test project with 2 workers on
127.0.0.1; a known number of requests goes to several routes over fresh
connections (so they spread over the workers); ``manage.py perf_stats --json``,
run as a separate process, must then report exactly those counts, on the
database store and on the Redis store, and after a graceful restart of the
workers too (with a flush interval too long to matter: only the exit flush can
have delivered the numbers).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.env import ROOT
from tests.support.http import serve

# route label -> (paths to request, expected status class)
TRAFFIC = {
    "/monitoring/fast/": ["/monitoring/fast/"] * 24,
    "/monitoring/async/": ["/monitoring/async/"] * 16,
    "/articles/<slug:slug>/": [f"/articles/missing-{i}/" for i in range(9)],
    "<unmatched>": [f"/no/such/page/{i}" for i in range(7)],
    "/monitoring/stream/<int:chunks>/": ["/monitoring/stream/40/"] * 5,
    "/monitoring/queries/<int:n>/": ["/monitoring/queries/6/"] * 4,
    "/monitoring/fail/": ["/monitoring/fail/"] * 3,
}
EXPECTED = {route: len(paths) for route, paths in TRAFFIC.items()}


def send_traffic(url: str) -> None:
    paths = [path for paths in TRAFFIC.values() for path in paths]

    def get(path: str) -> int:
        # A fresh connection per request, so the kernel spreads them over the workers.
        with httpx.Client(timeout=20) as client:
            return client.get(url + path).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(get, paths))
    assert statuses.count(200) == 24 + 16 + 5 + 4
    assert statuses.count(500) == 3


def perf_stats(env: dict[str, str], *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "manage.py", "perf_stats", "--json", "--window", "5m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def counts(report: dict) -> dict[str, int]:
    return {row["route"]: row["count"] for row in report["routes"]}


def wait_for_counts(env: dict[str, str], expected: dict[str, int], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        report = perf_stats(env, "--limit", "100")
        if report["totals"]["count"] >= sum(expected.values()) or time.monotonic() > deadline:
            return report
        time.sleep(0.5)


TOKEN = "a-test-token-for-the-metrics-endpoint"


def scraped_requests(url: str) -> dict[str, int]:
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(url + "/perf/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    found: dict[str, int] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "django_perf_http_requests_total":
                route = sample.labels["route"]
                found[route] = found.get(route, 0) + int(sample.value)
    return found


def environment(server_env: dict[str, str], store: str, redis_url: str | None, **extra) -> dict:
    env = {**server_env, "METRICS_SYSTEM_INTERVAL": "1", "METRICS_TOKEN": TOKEN, **extra}
    if store == "redis":
        env["METRICS_REDIS_URL"] = redis_url
    return env


STORES = ["database", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture
def store_env(request, server_env):
    store = request.param
    redis_url = request.getfixturevalue("redis_url") if store == "redis" else None
    return store, lambda **extra: environment(server_env, store, redis_url, **extra)


@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
@pytest.mark.parametrize("store_env", STORES, indirect=True)
def test_every_workers_requests_reach_perf_stats_exactly_once(kind, store_env):
    store, make_env = store_env
    env = make_env(METRICS_FLUSH_INTERVAL="0.5")
    with serve(kind, env, workers=2) as server:
        send_traffic(server.url)
        report = wait_for_counts(env, EXPECTED)
        time.sleep(1.5)  # a few more flush intervals: nothing may be counted twice
        report = perf_stats(env, "--limit", "100")
        assert report["store"] == store
        assert counts(report) == EXPECTED
        rows = {row["route"]: row for row in report["routes"]}
        assert rows["/monitoring/fail/"]["error_rate"] == 1.0
        assert rows["/monitoring/fail/"]["status_classes"] == {"5xx": 3}
        assert rows["/articles/<slug:slug>/"]["status_classes"] == {"4xx": 9}
        assert rows["/monitoring/stream/<int:chunks>/"]["avg_response_bytes"] == 400
        assert rows["/monitoring/queries/<int:n>/"]["avg_queries"] == 6
        assert rows["/monitoring/queries/<int:n>/"]["n_plus_one"] == 4
        assert report["database"]["default"]["queries"] >= 24
        # One Prometheus scrape, answered by whichever worker, sees every worker's requests.
        assert scraped_requests(server.url) == EXPECTED
        # Both workers sample their process in the background.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pids = {p["pid"] for h in report["hosts"] for p in h["processes"]}
            if len(pids) >= 2:
                break
            time.sleep(0.5)
            report = perf_stats(env)
        assert len(pids) >= 2
        process = report["hosts"][0]["processes"][0]
        assert process["db_pools"]["default"]["kind"] == "database"  # django_perf.db.pool_stats()
        assert process["rss"] > 0
        assert process["threads"] >= 2  # the flusher runs beside the server
        assert report["hosts"][0]["system"]["memory_total"] > 0


@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
@pytest.mark.parametrize("store_env", STORES, indirect=True)
def test_a_graceful_worker_restart_loses_nothing(kind, store_env):
    _, make_env = store_env
    # A flush interval far beyond the test: only the flush at worker exit can deliver.
    env = make_env(METRICS_FLUSH_INTERVAL="600")
    with serve(kind, env, workers=2) as server:
        send_traffic(server.url)
        assert perf_stats(env)["totals"]["count"] == 0  # still buffered in the workers
        server.process.send_signal(signal.SIGHUP)  # graceful restart of every worker
        report = wait_for_counts(env, EXPECTED)
        assert counts(report) == EXPECTED, server.log()
        # The restarted workers serve again.
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(server.url + "/monitoring/fast/", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_forked_after_the_masters_flushes_do_not_share_its_pooled_connections(
    server_env,
):
    """With --preload the master's flusher leaves a connection idle in Django's native pool;
    workers forked later (recycled here every 10 requests) must open their own."""
    env = {**server_env, "METRICS_FLUSH_INTERVAL": "0.2", "METRICS_SYSTEM_INTERVAL": "0.2"}
    assert env.get("DATABASE_POOL", "1") != "0"  # the test project pools on PostgreSQL
    args = ["--preload", "--max-requests", "10", "--max-requests-jitter", "0"]
    with serve("gunicorn", env, workers=2, extra_args=args) as server:
        time.sleep(1)  # the master's flusher has ticked: its pool holds an idle connection

        def get(_: int) -> int | str:
            try:
                return httpx.get(f"{server.url}/monitoring/queries/6/", timeout=10).status_code
            except httpx.HTTPError as error:
                return type(error).__name__

        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(get, range(120)))
        log = server.log()
    assert [s for s in statuses if s != 200] == [], log[-4000:]
    assert "Traceback" not in log, log[-4000:]


@pytest.mark.django_db(transaction=True)
def test_a_preloaded_app_forks_into_workers_that_each_flush_their_own(server_env):
    """gunicorn --preload builds the middleware (and its flusher) in the master before forking:
    each worker must start with an empty buffer and a flusher of its own."""
    env = environment(server_env, "database", None, METRICS_FLUSH_INTERVAL="0.5")
    with serve("gunicorn", env, workers=2, extra_args=["--preload"]) as server:
        send_traffic(server.url)
        wait_for_counts(env, EXPECTED)
        time.sleep(1.5)
        assert counts(perf_stats(env, "--limit", "100")) == EXPECTED
