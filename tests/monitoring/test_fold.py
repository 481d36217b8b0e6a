"""Requests queue up in the recorder and fold into series later: none lost, none counted twice."""

import random
import threading
from collections import deque

import pytest
from django.core.handlers.wsgi import WSGIHandler

from django_perf.monitoring import buffer as buffer_module
from django_perf.monitoring.buffer import Buffer
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


def test_a_batch_folds_into_the_same_series_as_one_request_at_a_time(monkeypatch):
    """The fold reuses the previous request's series when nothing of its key changed."""
    # Fixed clocks, so that both buffers place every request in the same minute.
    monkeypatch.setattr(buffer_module, "time_ns", lambda: 1_800_000_000_000_000_000)
    monkeypatch.setattr(buffer_module, "perf_counter_ns", lambda: 5_000_000_000)
    rng = random.Random(7)
    params = (1.0, 5, 2_000_000)
    entries, end = [], 0
    for _ in range(3000):
        end += rng.choice([1_000, 1_000, 1_000, 7_000_000_000, 59_000_000_000])
        method = "".join(rng.choice(["GET", "GET", "POST", "BREW"]))  # equal, not identical
        entries.append((end, rng.choice(["/a/", "/a/", "/b/", "<unmatched>"]), method,
                        rng.choice([None, "12", "x"]), rng.choice([200, 200, 404, 500]),
                        rng.randint(0, 5_000_000), rng.randint(0, 99), None, params))  # fmt: skip
    batch = Buffer()
    assert batch.fold(deque(entries)) == len(entries)
    one_at_a_time = Buffer()
    for entry in entries:
        one_at_a_time.fold(deque([entry]))

    def contents(buffer):
        return {key: series.to_payload() for key, series in buffer.series.items()}

    assert contents(batch) == contents(one_at_a_time)
    assert len({key.start for key in batch.series}) > 10  # many minutes, routes and statuses
    assert {key.route for key in batch.series} == {"/a/", "/b/", "<unmatched>"}


def test_only_a_plausible_content_length_counts_as_bytes_received():
    """The header is the client's claim: odd digits and forged sizes count 0, never raise."""
    params = (1.0, 5, 1 << 62)
    claims = {
        "1234": 1234,
        "99999999999": 99_999_999_999,  # 11 digits: counted
        "999999999999": 0,  # 12 digits: a forged size, would overflow the stores' sums
        "0" * 5000: 0,  # more digits than int() accepts
        "²": 0,  # str.isdigit() is true, int() refuses it
        "١٢": 0,  # Arabic-Indic digits: int() would take them, HTTP does not
        "12 ": 0,
        "": 0,
        None: 0,
    }
    buffer = Buffer()
    entries = [(1000, f"/{i}/", "POST", claim, 200, 5000, 0, None, params)
               for i, claim in enumerate(claims)]  # fmt: skip
    assert buffer.fold(deque(entries)) == len(claims)
    received = {key.route: series.request_bytes for key, series in buffer.series.items()}
    assert received == {f"/{i}/": n for i, n in enumerate(claims.values())}
