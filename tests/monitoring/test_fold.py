"""Requests queue up in the recorder and fold into series later: none lost, none counted twice."""

import threading

import pytest
from django.core.handlers.wsgi import WSGIHandler

from django_perf.monitoring.recorder import FOLD_AT
from tests.support.wsgi import get

THREADS = 4
REQUESTS = 1500  # per thread: past FOLD_AT in total, so request threads fold too


@pytest.mark.django_db(transaction=True)
def test_requests_on_many_threads_while_another_thread_folds_are_each_counted_once(
    recorder, settings
):
    settings.MIDDLEWARE = ["django_perf.monitoring.PerformanceMiddleware"]
    handler = WSGIHandler()
    done = threading.Event()
    folded_by_folder = []

    def serve():
        for i in range(REQUESTS):
            path = "/monitoring/fast/" if i % 2 else "/no/such/page/"
            get(handler, path)

    def folder():
        while not done.is_set():
            folded_by_folder.append(recorder.fold())

    folding = threading.Thread(target=folder)
    folding.start()
    servers = [threading.Thread(target=serve) for _ in range(THREADS)]
    for thread in servers:
        thread.start()
    for thread in servers:
        thread.join()
    done.set()
    folding.join()
    recorder.fold()

    by_route = {}
    for key, series in recorder.buffer.series.items():
        by_route[key.route] = by_route.get(key.route, 0) + series.requests
    assert by_route == {
        "/monitoring/fast/": THREADS * REQUESTS // 2,
        "<unmatched>": THREADS * REQUESTS // 2,
    }
    assert sum(folded_by_folder) > 0  # the folder thread did take part
    assert len(recorder.pending) == 0


@pytest.mark.django_db
def test_the_queue_never_holds_more_than_fold_at_requests(recorder, settings):
    settings.MIDDLEWARE = ["django_perf.monitoring.PerformanceMiddleware"]
    handler = WSGIHandler()
    longest = 0
    for _ in range(FOLD_AT * 3):
        get(handler, "/monitoring/fast/")
        longest = max(longest, len(recorder.pending))
    assert longest == FOLD_AT - 1  # the request that makes it FOLD_AT folds them all
    recorder.fold()
    # One series, or two when the requests straddle a minute boundary.
    series = recorder.buffer.series
    assert {(key.route, key.method, key.status) for key in series} == {
        ("/monitoring/fast/", "GET", "2xx")
    }
    assert sum(s.requests for s in series.values()) == FOLD_AT * 3
