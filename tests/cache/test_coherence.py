"""L1 coherence: real OS processes sharing Redis drop each other's changed keys from their L1."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings

from django_perf.cache.models import CacheEntry
from tests.cache.conftest import DATABASE, MEMORY, redis_tier
from tests.cache.worker import Worker

pytestmark = pytest.mark.redis


@pytest.fixture
def workers(request, redis_url) -> Iterator[list[Worker]]:
    location = f"coherence-{request.node.name}"
    started = [Worker(location, redis_url, settings.SECRET_KEY) for _ in range(2)]
    yield started
    for worker in started:
        worker.close()


@pytest.fixture
def here(workers, make_cache, coherent, redis_url):
    """This test process's cache, on the same store name (so the same channel) as the workers."""
    location = f"coherence-{os.environ.get('PYTEST_CURRENT_TEST', '').split(':')[-1].split(' ')[0]}"
    return coherent(make_cache(MEMORY, redis_tier(redis_url), location=location, STRICT=True))


def test_other_processes_see_deletes_sets_incrs_touches_and_clears_through_l1(workers, here):
    a, b = workers
    seen_after: list[float] = []

    def changes(worker: Worker, key: str, old: Any, started: float) -> Any:
        change = worker("watch", key=key, value=old)
        assert change["at"] is not None, f"{key}: the old value was still served after 10 s"
        seen_after.append(change["at"] - started)
        return change["value"]

    def holds_in_l1(worker: Worker, key: str, value: Any) -> None:
        """Read until a read is an L1 hit (the write's own announcement may land just after)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            hits = worker.l1_hits()
            assert worker("get", key=key) == value
            if worker.l1_hits() == hits + 1:
                return
        raise AssertionError(f"{key} never became an L1 hit")

    # Both workers hold k in L1 (a read is an L1 hit).
    here.set("k", "v1")
    for worker in (a, b):
        holds_in_l1(worker, "k", "v1")

    started = time.time()
    assert here.delete("k") is True
    assert changes(a, "k", "v1", started) == "<missing>"
    assert changes(b, "k", "v1", started) == "<missing>"

    # A set by one worker replaces the other's L1 copy.
    a("set", key="k", value="v2")
    holds_in_l1(b, "k", "v2")
    started = time.time()
    a("set", key="k", value="v3")
    assert changes(b, "k", "v2", started) == "v3"

    # incr in one worker, the other's L1 drops the old count.
    here.set("n", 1)
    holds_in_l1(a, "n", 1)
    started = time.time()
    assert b("incr", key="n") == 2
    assert changes(a, "n", 1, started) == 2

    # touch shortening a lifetime: the L1 copy must not outlive it.
    here.set("t", "x", timeout=100)
    holds_in_l1(a, "t", "x")
    started = time.time()
    here.touch("t", 1)
    assert changes(a, "t", "x", started) == "<missing>"
    assert seen_after[-1] >= 0.9  # it stayed exactly as long as the new lifetime

    # clear() drops everything everywhere.
    holds_in_l1(b, "k", "v3")
    started = time.time()
    here.clear()
    assert changes(b, "k", "v3", started) == "<missing>"
    assert max(seen_after[:-2] + seen_after[-1:]) < 5


def test_a_lost_channel_flushes_l1_and_no_missed_message_leaves_it_stale(
    make_cache, coherent, redis_url
):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url), STRICT=True))
    memory = cache._store.memory
    cache.set("k", "v1")
    assert cache.get("k") == "v1"
    assert memory.contains(cache.make_key("k"))
    admin = redis.Redis.from_url(redis_url)
    # Cut the listener's connection, and change k while no message can arrive.
    admin.client_kill_filter(_type="pubsub")
    admin.set(cache.make_key("k"), b"2")  # as another process would, unheard
    deadline = time.monotonic() + 5
    while cache.stats()["coherence"]["losses"] == 0 and time.monotonic() < deadline:
        time.sleep(0.005)  # a closed connection is noticed at once, not within a round trip
    assert cache.wait_for_coherence(10)
    assert cache.get("k") == 2  # not the old L1 copy
    coherence = cache.stats()["coherence"]
    assert (coherence["state"], coherence["losses"]) == ("up", 1)
    assert memory.flushes >= 2  # on loss, and again on resubscribing
    admin.close()


def test_a_channel_that_stops_answering_pings_is_treated_as_lost(make_cache, coherent, redis_url):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url, HEALTH_INTERVAL=0.1)))
    memory = cache._store.memory
    cache.set("k", "v")
    assert memory.contains(cache.make_key("k"))
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("CLIENT", "PAUSE", 1500, "ALL")  # Redis goes silent, sockets stay open
    deadline = time.monotonic() + 1.4
    while memory.coherent and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not memory.coherent, "a silent channel was not noticed within 3 health intervals"
    assert not memory.contains(cache.make_key("k"))
    assert cache.wait_for_coherence(10)
    admin.close()


def test_pattern_and_clear_messages_reach_other_stores(make_cache, coherent, redis_url):
    """The channel carries issue 4's messages: drop keys matching a glob, drop everything."""
    tier = redis_tier(redis_url, CHANNEL="django_perf:test-patterns")
    sender = coherent(make_cache(MEMORY, tier))
    receiver = coherent(make_cache(MEMORY, tier))
    memory, channel = receiver._store.memory, sender._store.channel
    receiver.set_many({"user:1": 1, "user:2": 2, "post:1": 3})
    assert len(memory) == 3
    sender._store.redis.publish(channel.channel, channel.pattern_message(":1:user:*"))
    deadline = time.monotonic() + 5
    while len(memory) != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert memory.contains(":1:post:1")
    assert len(memory) == 1
    sender._store.redis.publish(channel.channel, channel.clear_message())
    while len(memory) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(memory) == 0


def test_a_burst_of_writes_is_announced_in_few_messages_after_redis_has_it(
    make_cache, coherent, redis_url
):
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url, CHANNEL="django_perf:burst")))
    listener = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    listener.subscribe("django_perf:burst")
    keys = [f"k{i}" for i in range(300)]
    for key in keys:
        cache.set(key, key)
    assert cache.add("k0", "again") is False
    assert cache._store.channel.flush_announcements(5)
    announced: list[str] = []
    messages = 0
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        message = listener.get_message(timeout=0.1)  # None for the subscribe confirmation too
        if message is None:
            continue
        body = json.loads(message["data"])
        assert body["o"] == cache._store.channel.origin
        announced += body.get("k", [])
        messages += 1
    assert sorted(set(announced)) == sorted(cache.make_key(k) for k in keys)
    assert messages < len(keys)  # batched
    listener.close()


@pytest.mark.parametrize("operation", ["set", "delete"])
def test_a_forked_child_that_ends_at_once_still_announces_its_write(
    make_cache, coherent, redis_url, operation
):
    # multiprocessing's fork children leave by os._exit: atexit never runs there.
    cache = coherent(make_cache(MEMORY, redis_tier(redis_url), STRICT=True))
    cache.set("k", "v1")
    assert cache._store.memory.contains(cache.make_key("k"))

    def child() -> None:
        cache.set_many({f"other{i}": i for i in range(50)})  # the publisher batches from here
        cache.set("k", "v2") if operation == "set" else cache.delete("k")

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(20)
    assert process.exitcode == 0
    expected = "v2" if operation == "set" else None
    deadline = time.monotonic() + 2
    while cache.get("k") != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.get("k") == expected  # not L1's stale "v1"


@pytest.mark.django_db
def test_without_redis_staleness_is_bounded_by_the_l1_lifetime_cap(make_cache):
    # Two L1 stores over the same table rows, as two worker processes would have.
    first = make_cache({"KIND": "memory", "MAX_TIMEOUT": 2}, DATABASE, location="shared")
    second = make_cache(
        {"KIND": "memory", "MAX_TIMEOUT": 2, "MAX_ENTRIES": 999}, DATABASE, location="shared"
    )
    assert first._store is not second._store
    first.set("k", "v1")
    assert second.get("k") == "v1"
    first.set("k", "v2")
    assert CacheEntry.objects.count() == 1
    assert second.get("k") == "v1"  # stale: nothing told this process
    time.sleep(2.05)
    assert second.get("k") == "v2"  # but never for longer than its MAX_TIMEOUT
