"""``manage.py perf_stats``: the report, its options, and clear errors for bad arguments."""

import io
import json
import signal
import subprocess
import sys
import time

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from django_perf.monitoring import flush, stats
from django_perf.monitoring.series import Key, Series
from django_perf.monitoring.store import get_store
from tests.support.env import ROOT

pytestmark = pytest.mark.django_db


def run(*args):
    out = io.StringIO()
    call_command("perf_stats", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def traffic(recorder):
    client = Client(raise_request_exception=False)
    for _ in range(6):
        client.get("/monitoring/fast/")
    for _ in range(3):
        b"".join(client.get("/monitoring/stream/10/").streaming_content)
    client.get("/monitoring/fail/")
    client.get("/monitoring/queries/2/")
    flush()


def test_json_report_follows_the_documented_schema(traffic):
    data = json.loads(run("--json", "--window", "5m"))
    assert data["schema"] == stats.SCHEMA
    assert set(data) == {
        "schema", "generated_at", "window", "window_seconds", "since", "until", "store",
        "route_filter", "sort", "totals", "routes", "routes_total", "cache", "database", "hosts",
    }  # fmt: skip
    assert data["window_seconds"] == 300
    assert data["store"] == "database"
    routes = {r["route"]: r for r in data["routes"]}
    assert routes["/monitoring/fast/"]["count"] == 6
    assert routes["/monitoring/fail/"]["error_rate"] == 1.0
    assert routes["/monitoring/stream/<int:chunks>/"]["avg_response_bytes"] == 100
    assert routes["/monitoring/queries/<int:n>/"]["avg_queries"] == 2
    assert data["totals"]["count"] == 11
    # Read from the start of the window's first minute: the rate is over what was read.
    assert data["since"] % 60 == 0
    assert 300 <= data["until"] - data["since"] < 360
    assert data["totals"]["rate"] == stats.rounded_rate(11 / (data["until"] - data["since"]))
    assert set(routes["/monitoring/fast/"]) == {
        "route", "count", "rate", "error_rate", "p50_ms", "p90_ms", "p95_ms", "p99_ms",
        "avg_ms", "avg_queries", "avg_db_ms", "avg_request_bytes", "avg_response_bytes",
        "slow", "n_plus_one", "status_classes", "methods",
    }  # fmt: skip
    assert data["database"]["default"]["queries"] == 2


def test_route_sort_and_limit(traffic):
    data = json.loads(run("--json", "--route", "/monitoring/fast/"))
    assert [r["route"] for r in data["routes"]] == ["/monitoring/fast/"]
    assert data["totals"]["count"] == 6
    data = json.loads(run("--json", "--sort", "errors", "--limit", "1"))
    assert [r["route"] for r in data["routes"]] == ["/monitoring/fail/"]
    assert data["routes_total"] == 4
    data = json.loads(run("--json", "--sort", "route"))
    assert [r["route"] for r in data["routes"]] == sorted(r["route"] for r in data["routes"])


def test_text_report(traffic):
    text = run("--window", "5m")
    assert "last 5m from the database store" in text
    lines = text.splitlines()
    fast = next(line for line in lines if line.startswith("/monitoring/fast/"))
    assert fast.split()[1] == "6"
    assert any(line.startswith("<all>") and line.split()[1] == "11" for line in lines)
    assert "database (during requests)" in text


def test_an_empty_store_says_so():
    assert "No metrics in this window yet" in run()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "2h"], "--window '2h' is not accepted; use one of 5m, 1h, 24h, 7d."),
        (["--sort", "speed"], "--sort 'speed' is not accepted; use one of count, rate, errors"),
        (["--limit", "0"], "--limit '0' is not accepted; use a whole number above 0."),
        (["--limit", "ten"], "--limit 'ten' is not accepted; use a whole number above 0."),
        (["--limit", "nan"], "--limit 'nan' is not accepted; use a whole number above 0."),
        (["--limit", "\u0661"], "--limit '\u0661' is not accepted; use a whole number above 0."),
        (["--watch", "\u0661.5"], "--watch '\u0661.5' is not accepted; use a number of seconds"),
        (["--watch", "-1"], "--watch '-1' is not accepted; use a number of seconds above 0 and"),
        (["--watch", "nan"], "--watch 'nan' is not accepted; use a number of seconds above 0 and"),
        (["--watch", "inf"], "--watch 'inf' is not accepted; use a number of seconds above 0 and"),
        (["--watch", "1e400"], "--watch '1e400' is not accepted; use a number of seconds above"),
        (["--watch", "86401"], "use a number of seconds above 0 and at most 86400."),
    ],
)
def test_bad_arguments_say_what_is_accepted(args, message):
    with pytest.raises(CommandError) as error:
        run(*args)
    assert message in str(error.value)


@pytest.mark.django_db(transaction=True)
def test_bad_arguments_from_the_command_line_exit_with_the_message(server_env):
    result = subprocess.run(
        [sys.executable, "manage.py", "perf_stats", "--window", "1w"],
        cwd=ROOT, env=server_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert (
        "CommandError: --window '1w' is not accepted; use one of 5m, 1h, 24h, 7d." in result.stderr
    )


@pytest.mark.django_db(transaction=True)
def test_watch_refreshes_in_place_until_interrupted(server_env):
    process = subprocess.Popen(
        [sys.executable, "manage.py", "perf_stats", "--watch", "0.2"],
        cwd=ROOT, env=server_env, stdout=subprocess.PIPE, text=True,
        # A shell running the suite in the background ignores SIGINT, and children
        # inherit that: give the command Python's usual Ctrl-C handling back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        output = ""
        deadline = time.monotonic() + 30
        while output.count("\x1b[H\x1b[2J") < 3 and time.monotonic() < deadline:
            output += process.stdout.read(1)
        assert output.count("\x1b[H\x1b[2J") >= 3  # the screen was redrawn
        assert output.count("django-perf: last 1h") >= 2
    finally:
        process.send_signal(signal.SIGINT)
        # Read what is left: a command blocked writing to a full pipe cannot exit.
        process.communicate(timeout=10)
    assert process.returncode == 0


def test_sampled_counts_are_scaled_to_the_traffic_they_stand_for(recorder):
    """At a 10% sample, each recorded request's cache events and queries count ten times."""
    series = Series()
    series.buckets[200] = series.requests = 10
    series.weight = 100.0
    series.duration_us = 2000
    series.extra.update(
        {"cache.memory.hit": 6.0, "cache.memory.miss": 2.0, "queries.default": 40.0,
         "query_us.default": 4000.0}
    )  # fmt: skip
    get_store().write({Key(int(time.time()) // 60 * 60, "/s/", "GET", "2xx"): series})
    report = json.loads(run("--json"))
    assert report["cache"]["memory"] == {"hits": 60, "misses": 20, "errors": 0, "hit_ratio": 0.75}
    assert report["database"]["default"] == {"queries": 400, "time_ms": 40.0, "avg_query_ms": 0.1}
    [route] = report["routes"]
    assert route["count"] == 100


def test_a_route_with_a_nul_character_is_a_command_error():
    with pytest.raises(CommandError, match="holds a NUL character"):
        run("--route", "/a\x00")


@pytest.mark.parametrize(
    ("per_second", "shown"),
    [(0.5111234, 0.5111), (0.001, 0.001), (1 / 604800, 1.65e-06), (0.0, 0.0), (2.5e-9, 2.5e-09)],
)
def test_a_slow_rate_keeps_three_significant_digits_instead_of_rounding_to_zero(per_second, shown):
    # One request in a 7-day window is 1.65e-06/s: four decimals made it 0.0 beside a count of 1.
    assert stats.rounded_rate(per_second) == shown
