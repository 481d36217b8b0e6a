"""System metrics: psutil samples per host and process, taken in the background, never blocking."""

import os
import threading
import time

import psutil
import pytest
from django.core.cache import caches
from django.test import Client, override_settings

from django_perf.cache import TieredCache
from django_perf.monitoring import stats
from django_perf.monitoring.flusher import Flusher
from django_perf.monitoring.system import MIN_CPU_INTERVAL, SystemSampler, cache_stats


@pytest.fixture
def busy():
    """A thread that keeps this process on one core while the test runs."""
    stop = threading.Event()

    def burn():
        while not stop.is_set():
            sum(range(10_000))

    thread = threading.Thread(target=burn, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)


@pytest.mark.django_db
def test_a_sample_covers_host_and_process():
    caches["default"].get("anything")  # the process uses its tiered cache
    sampler = SystemSampler("/")
    time.sleep(MIN_CPU_INTERVAL)
    sample = sampler.sample()
    assert sample.pid == os.getpid()
    assert sample.host
    system, process = sample.data["system"], sample.data["process"]
    for key in ("cpu_percent", "memory_total", "memory_percent", "disk_percent", "net_bytes_sent"):
        assert system[key] is not None, key
    assert len(system["load"]) == 3
    assert 0 <= system["cpu_percent"] <= 100
    assert 0 <= process["cpu_percent"] <= 100 * psutil.cpu_count()
    assert process["rss"] > 0
    assert process["threads"] >= 1
    assert process["open_files"] >= 3
    assert len(process["gc_collections"]) == 3
    # The tiered cache's stats() and the pools of django_perf.db.pool_stats() ride along.
    assert set(sample.data["caches"]["default"]) >= {"memory", "database"}
    pool = sample.data["db_pools"]["default"]
    assert pool["kind"] == "database"
    assert pool["alias"] == "default"
    assert {"size", "in_use", "idle"} <= set(pool)


@pytest.mark.redis
@pytest.mark.django_db
def test_cache_stats_build_no_tiered_cache_the_process_does_not_use(redis_url):
    # The flusher's thread reads cache stats; building a TieredCache with a Redis tier there
    # would start its invalidation listener (a Redis connection) in a process that never
    # used the cache. Once the process uses it, every thread sees its stats.
    from django_perf.cache.store import reset_stores

    config = {
        "BACKEND": "django_perf.cache.TieredCache",
        "LOCATION": "system-stats-unused",
        "OPTIONS": {"TIERS": [{"KIND": "memory"}, {"KIND": "redis", "LOCATION": redis_url}]},
    }
    try:
        with override_settings(CACHES={"default": config}):
            seen: dict = {}
            reader = threading.Thread(target=lambda: seen.update(first=cache_stats()))
            reader.start()
            reader.join(10)
            assert seen["first"] == ({}, {})
            assert TieredCache.existing("default") is None  # the read made no store
            assert not [t for t in threading.enumerate() if "coherence" in t.name]
            assert caches["default"].wait_for_coherence(10)  # L1 in use
            caches["default"].set("k", 1)
            caches["default"].get("k")
            reader = threading.Thread(target=lambda: seen.update(then=cache_stats()))
            reader.start()
            reader.join(10)
            stats_by_alias, _ = seen["then"]
            assert stats_by_alias["default"]["memory"]["hits"] == 1
    finally:
        reset_stores()


def test_cpu_percent_is_never_asked_to_wait(monkeypatch):
    intervals = []
    real_host, real_process = psutil.cpu_percent, psutil.Process.cpu_percent

    def host(interval=None, percpu=False):
        intervals.append(interval)
        return real_host(None, percpu)

    def process(self, interval=None):
        intervals.append(interval)
        return real_process(self, None)

    monkeypatch.setattr(psutil, "cpu_percent", host)
    monkeypatch.setattr(psutil.Process, "cpu_percent", process)
    sampler = SystemSampler()
    for _ in range(3):
        time.sleep(MIN_CPU_INTERVAL)  # long enough for the CPU shares to be read
        sampler.sample()
    assert intervals
    assert set(intervals) == {None}


def test_cpu_measured_over_next_to_no_time_is_none_not_noise(busy):
    sampler = SystemSampler()
    first = sampler.sample()  # microseconds after priming: 0 % or over 1000 % if read
    assert first.data["system"]["cpu_percent"] is None
    assert first.data["process"]["cpu_percent"] is None
    assert first.data["process"]["rss"] > 0  # the rest of the sample is there
    time.sleep(MIN_CPU_INTERVAL)
    second = sampler.sample()  # measured from the priming, which the first sample kept
    assert 0 < second.data["system"]["cpu_percent"] <= 100
    assert 20 < second.data["process"]["cpu_percent"] <= 100 * psutil.cpu_count()


@pytest.mark.django_db(transaction=True)
def test_a_workers_first_sample_measures_cpu_over_the_first_tick(perf, busy):
    recorder = perf(MONITORING_FLUSH_INTERVAL=0.2, MONITORING_SYSTEM_INTERVAL=60)
    flusher = Flusher(recorder)
    recorder.flusher = flusher
    flusher.start()
    try:
        deadline = time.monotonic() + 10
        while not stats.system_stats(60) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        flusher.stop()
    [host] = stats.system_stats(60)
    [process] = host["processes"]
    assert 0 < host["system"]["cpu_percent"] <= 100
    assert 20 < process["cpu_percent"] <= 100 * psutil.cpu_count()  # the busy thread's core


@pytest.mark.django_db(transaction=True)
def test_samples_are_taken_by_the_flusher_thread_never_in_a_request(perf, monkeypatch):
    recorder = perf(MONITORING_FLUSH_INTERVAL=0.05, MONITORING_SYSTEM_INTERVAL=0.05)
    callers = []
    real = psutil.virtual_memory

    def watched():
        callers.append(threading.current_thread().name)
        return real()

    monkeypatch.setattr(psutil, "virtual_memory", watched)
    flusher = Flusher(recorder)
    recorder.flusher = flusher
    flusher.start()
    try:
        client = Client()
        deadline = time.monotonic() + 10
        while len(callers) < 3 and time.monotonic() < deadline:
            client.get("/monitoring/fast/")
    finally:
        flusher.stop()
    assert len(callers) >= 3
    assert set(callers) == {"django-perf-flusher"}
    [host] = stats.system_stats(60)
    assert [p["pid"] for p in host["processes"]] == [os.getpid()]
    assert host["processes"][0]["rss"] > 0
