"""TieredCache against what it stands in for: LocMemCache for L1 hits, django-redis for the rest.

* an L1 hit ``get`` vs ``LocMemCache.get`` (goal: ratio <= 1.0);
* an L2 hit (L1 miss) ``get`` vs django-redis ``get`` (goal: <= 1.15);
* ``set`` through L1 + L2 vs django-redis ``set`` (goal: <= 1.3);
* a Zipf-distributed workload, 95% reads, in ops/s vs django-redis alone (goal: >= 5), with
  the L1 hit ratio printed;
* how long another OS process keeps serving a value after it changed (p99 of 40 changes per
  sample), vs a process that reads Redis directly; the issue's bound is 100 ms.

Values are a small dict (a typical cached row or fragment context) unless noted.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache

from django_perf.cache import TieredCache
from django_perf.cache.store import forget_store
from tests.benchmarks.harness import Case, Comparison, Goal, per_op
from tests.support.servers import servers

VALUE = {"id": 1234, "title": "A cached article title", "tags": ["a", "b", "c"], "score": 4.5}
NUMBER = 50_000  # calls per sample for in-memory cases
REDIS_KEYS = 2_000  # calls per sample for cases that reach Redis
ZIPF_KEYS, ZIPF_OPS, ZIPF_S = 10_000, 20_000, 1.1
ZIPF_L1_ENTRIES = 2_000  # L1 holds a fifth of the keys: the hot set, not everything


def django_redis(url: str, prefix: str) -> Any:
    from django_redis.cache import RedisCache

    return RedisCache(url, {"KEY_PREFIX": prefix})


def tiered(url: str, location: str, **memory: Any) -> TieredCache:
    tiers = [{"KIND": "memory", **memory}, {"KIND": "redis", "LOCATION": url}]
    cache = TieredCache(location, {"OPTIONS": {"TIERS": tiers}})
    assert cache.wait_for_coherence(10), "the invalidation channel did not come up"
    return cache


def l1_hit(url: str) -> list[Comparison]:
    locmem = LocMemCache("bench", {"OPTIONS": {"MAX_ENTRIES": 10_000}})
    cache = tiered(url, "bench-l1")
    comparisons = []
    for label, value in (("a small dict", VALUE), ("a short string", "a cached fragment")):
        locmem.set("key", value)
        cache.set("key", value)
        assert cache.get("key") == value == locmem.get("key")
        comparisons.append(
            Comparison(
                f"L1 hit get, {label}",
                baseline=Case("LocMemCache.get", per_op(lambda: locmem.get("key"), NUMBER)),
                candidates=[
                    Case(
                        "TieredCache.get (L1 hit)",
                        per_op(lambda: cache.get("key"), NUMBER),
                        Goal("<=", 1.0),
                    )
                ],
            )
        )
    return comparisons


def over_keys(get: Callable[[str], Any], keys: list[str], before: Callable[[], None]):
    """A sampler: seconds per call of ``get`` over ``keys``, after an untimed ``before()``."""

    def sample() -> float:
        before()
        start = time.perf_counter()
        for key in keys:
            get(key)
        return (time.perf_counter() - start) / len(keys)

    return sample


def l2_hit(url: str) -> Comparison:
    plain = django_redis(url, "plain")
    cache = tiered(url, "bench-l2")
    keys = [f"row:{i}" for i in range(REDIS_KEYS)]
    for key in keys:
        plain.set(key, VALUE, None)
        cache.set(key, VALUE, None)
    memory = cache._store.memory
    memory.flush()
    assert cache.get(keys[0]) == VALUE
    assert cache.stats()["redis"]["hits"] == 1
    return Comparison(
        "L2 hit get (L1 miss, then promoted)",
        baseline=Case("django-redis get", over_keys(plain.get, keys, lambda: None)),
        candidates=[
            Case(
                "TieredCache.get (L2 hit)",
                over_keys(cache.get, keys, memory.flush),
                Goal("<=", 1.15),
            )
        ],
    )


def set_l1_l2(url: str) -> Comparison:
    plain = django_redis(url, "plain")
    cache = tiered(url, "bench-set")
    quiet = TieredCache(
        "bench-set-quiet",
        {
            "OPTIONS": {
                "TIERS": [{"KIND": "memory"}, {"KIND": "redis", "LOCATION": url, "CHANNEL": None}]
            }
        },
    )
    return Comparison(
        "set through L1 + L2",
        baseline=Case("django-redis set", per_op(lambda: plain.set("key", VALUE), REDIS_KEYS)),
        candidates=[
            Case(
                "TieredCache.set",
                per_op(lambda: cache.set("key", VALUE), REDIS_KEYS),
                Goal("<=", 1.3),
            ),
            Case(
                "  same, without the coherence channel",
                per_op(lambda: quiet.set("key", VALUE), REDIS_KEYS),
            ),
        ],
    )


def zipf_workload(url: str) -> Comparison:
    rng = random.Random(2024)
    weights = [1 / (rank**ZIPF_S) for rank in range(1, ZIPF_KEYS + 1)]
    cumulative = list(accumulate(weights))
    keys = rng.choices(range(ZIPF_KEYS), cum_weights=cumulative, k=ZIPF_OPS)
    ops = [(f"item:{key}", rng.random() < 0.05) for key in keys]  # (key, is_write)
    plain = django_redis(url, "plain")
    roomy = tiered(url, "bench-zipf")  # L1 of the default 10,000 entries: every key fits
    small = tiered(url, "bench-zipf-small", MAX_ENTRIES=ZIPF_L1_ENTRIES)
    for key in range(ZIPF_KEYS):
        plain.set(f"item:{key}", VALUE, None)
        roomy.set(f"item:{key}", VALUE, None)
        small.set(f"item:{key}", VALUE, None)
    hit_ratios: dict[str, list[float]] = {"default L1": [], f"L1 of {ZIPF_L1_ENTRIES}": []}
    for cache in (roomy, small):
        cache._store.memory.flush()  # start cold: the first samples warm L1 up

    def run(target: Any, ratios: list[float] | None) -> Callable[[], float]:
        memory = getattr(getattr(target, "_store", None), "memory", None)

        def sample() -> float:
            hits, misses = (memory.hits, memory.misses) if memory else (0, 0)
            start = time.perf_counter()
            for key, is_write in ops:
                if is_write:
                    target.set(key, VALUE, None)
                else:
                    target.get(key)
            elapsed = time.perf_counter() - start
            if ratios is not None:
                looked = memory.hits - hits + memory.misses - misses
                ratios.append((memory.hits - hits) / max(1, looked))
            return len(ops) / elapsed

        return sample

    def report() -> None:
        for name, ratios in hit_ratios.items():
            print(
                f"  L1 hit ratio, {name}: median {statistics.median(ratios):.1%} over "
                f"{len(ratios)} samples (the first, cold: {ratios[0]:.1%})"
            )

    return Comparison(
        f"Zipf (s={ZIPF_S}) over {ZIPF_KEYS} keys, 95% reads ({ZIPF_OPS} ops per sample)",
        baseline=Case("django-redis", run(plain, None)),
        candidates=[
            Case("TieredCache, default L1", run(roomy, hit_ratios["default L1"]), Goal(">=", 5)),
            Case(
                f"  same, L1 of {ZIPF_L1_ENTRIES} entries",
                run(small, hit_ratios[f"L1 of {ZIPF_L1_ENTRIES}"]),
            ),
        ],
        unit="ops/s",
        teardown=report,
    )


def invalidation_latency(url: str) -> Comparison:
    from tests.cache.worker import Worker

    writer = tiered(url, "bench-coherence")
    watcher = Worker("bench-coherence", url, settings.SECRET_KEY)
    plain_watcher = Worker("bench-coherence", url, settings.SECRET_KEY, "--plain-redis")
    plain = django_redis(url, "")
    trials = 40

    def p99_ms(
        worker: Worker, write: Callable[[str, int], None], pause: float = 0
    ) -> Callable[[], float]:
        def sample() -> float:
            latencies = []
            for n in range(trials):
                write("watched", n)
                # The watcher holds the value (in its L1, if it has one) before it changes.
                assert worker("until", key="watched", value=n)
                worker.send("watch", key="watched", value=n, ack=True, timeout=5, pause=pause)
                assert worker.read() == {"watching": True}
                time.sleep(0.002)  # let it poll a little
                started = time.time()
                write("watched", n + 1)
                seen = worker.read()["result"]
                assert seen["value"] == n + 1, seen
                latencies.append(seen["at"] - started)
            return statistics.quantiles(latencies, n=100)[98] * 1000

        return sample

    def close() -> None:
        watcher.close()
        plain_watcher.close()
        forget_store(writer._store)

    def tiered_write(key: str, value: int) -> None:
        writer.set(key, value, None)

    return Comparison(
        "another process stops serving a changed value (p99 of 40 changes)",
        baseline=Case(
            "reader polling Redis (django-redis)",
            p99_ms(plain_watcher, lambda k, v: plain.set(k, v, None)),
        ),
        candidates=[
            Case("TieredCache reader spinning on L1 hits", p99_ms(watcher, tiered_write)),
            Case(
                "TieredCache reader, 1 ms of I/O between reads",
                p99_ms(watcher, tiered_write, pause=0.001),
            ),
        ],
        unit="ms",
        repeat=5,
        teardown=close,
    )


def comparisons() -> list[Comparison]:
    url = servers.redis_url()
    return [
        *l1_hit(url),
        l2_hit(url),
        set_l1_l2(url),
        zipf_workload(url),
        invalidation_latency(url),
    ]
