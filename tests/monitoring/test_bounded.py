"""Memory and label count stay bounded whatever the traffic."""

import gc
import logging

import psutil
import pytest
from django.core.handlers.wsgi import WSGIHandler

from django_perf.monitoring.buffer import OTHER_ROUTE, Buffer
from django_perf.monitoring.recorder import FOLD_AT, UNMATCHED_ROUTE
from django_perf.monitoring.series import Key
from tests.support.wsgi import get


@pytest.mark.django_db
def test_100k_requests_to_10k_unknown_urls_keep_labels_and_memory_bounded(
    recorder, settings, monitoring_urls, monkeypatch
):
    settings.MIDDLEWARE = ["django_perf.monitoring.PerformanceMiddleware"]
    monkeypatch.setattr(logging.getLogger("django.request"), "disabled", True)
    handler = WSGIHandler()
    process = psutil.Process()

    def serve(n):
        for i in range(n):
            get(handler, f"/unknown/{i % 10_000}/page")

    serve(10_000)  # warm up: every distinct URL seen once
    gc.collect()
    before = process.memory_info().rss
    serve(90_000)
    gc.collect()
    growth = process.memory_info().rss - before
    assert len(recorder.pending) < FOLD_AT  # requests fold as they queue up: bounded
    recorder.fold()
    assert {key.route for key in recorder.buffer.series} == {UNMATCHED_ROUTE}
    assert recorder.routes == {UNMATCHED_ROUTE, OTHER_ROUTE}
    assert len(recorder.buffer) <= 3  # one series per minute the run spanned
    assert sum(s.requests for s in recorder.buffer.series.values()) == 100_000
    # Unbounded growth (a label, series or histogram entry per URL) would be megabytes here.
    assert growth < 2 * 1024 * 1024, f"RSS grew by {growth} bytes over 90,000 requests"


def test_route_labels_are_capped_per_process(perf):
    recorder = perf(MONITORING_MAX_ROUTES=50)
    labels = {recorder.label(f"/route-{i}/") for i in range(1_000)}
    assert len(labels) == 51  # 50 routes and <other>
    assert OTHER_ROUTE in labels


def record(buffer, key, n=1):
    for _ in range(n):
        buffer.record(key, 1000, 1.0, 0, 10, 0, 0, False, False)


def test_the_buffer_drops_the_oldest_minutes_beyond_its_bound():
    buffer = Buffer(max_series=100)
    for minute in range(10):  # a store outage: nothing is flushed for 10 minutes
        for route in range(20):
            record(buffer, Key(minute * 60, f"/r{route}/", "GET", "2xx"))
    assert len(buffer) <= 100
    assert min(key.start for key in buffer.series) >= 5 * 60
    assert buffer.dropped == 10 * 20 - sum(s.weight for s in buffer.series.values())


def test_one_minute_with_too_many_labels_folds_into_other():
    buffer = Buffer(max_series=10)
    for route in range(50):
        record(buffer, Key(0, f"/r{route}/", "GET", "2xx"))
    assert len(buffer) == 11  # the bound, plus the <other> series for this method and status
    assert buffer.series[Key(0, OTHER_ROUTE, "GET", "2xx")].requests == 40
    assert sum(s.requests for s in buffer.series.values()) == 50


def test_put_back_merges_and_stays_bounded():
    buffer = Buffer(max_series=5)
    record(buffer, Key(60, "/a/", "GET", "2xx"), 2)
    batch = buffer.take()
    assert len(buffer) == 0
    record(buffer, Key(60, "/a/", "GET", "2xx"), 3)
    buffer.put_back(batch)
    assert buffer.series[Key(60, "/a/", "GET", "2xx")].requests == 5
    old = Buffer(max_series=5)
    for minute in range(8):
        record(old, Key(minute * 60, "/x/", "GET", "2xx"))
    buffer.put_back(old.take())
    assert len(buffer) <= 5
    assert Key(7 * 60, "/x/", "GET", "2xx") in buffer.series
