"""Fixtures for the tiered cache tests: caches built from tier lists, each with its own store."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from django_perf.cache import TieredCache
from django_perf.cache.store import forget_store

MEMORY = {"KIND": "memory"}
DATABASE = {"KIND": "database"}
_numbers = itertools.count()


def redis_tier(url: str, **options: Any) -> dict[str, Any]:
    return {"KIND": "redis", "LOCATION": url, **options}


MakeCache = Callable[..., TieredCache]


@pytest.fixture
def make_cache() -> Iterator[MakeCache]:
    """Build a TieredCache from tier dicts; every cache gets its own store, closed afterwards."""
    created: list[TieredCache] = []

    def make(*tiers: dict[str, Any], location: str | None = None, **options: Any) -> TieredCache:
        location = location or f"test-{next(_numbers)}"
        params: dict[str, Any] = {"OPTIONS": {"TIERS": list(tiers), **options}}
        for name in ("TIMEOUT", "KEY_PREFIX", "VERSION"):
            if name in options:
                params[name] = params["OPTIONS"].pop(name)
        cache = TieredCache(location, params)
        created.append(cache)
        return cache

    yield make
    for cache in created:
        forget_store(cache._store)


@pytest.fixture
def coherent() -> Callable[[TieredCache], TieredCache]:
    """Wait until a cache's L1 is in use (its invalidation channel is subscribed)."""

    def wait(cache: TieredCache) -> TieredCache:
        assert cache.wait_for_coherence(10), "the invalidation channel did not come up"
        return cache

    return wait


@pytest.fixture(scope="session", autouse=True)
def _close_stores_at_exit() -> Iterator[None]:
    """Stop coherence listeners before the session's Redis goes away (no noise at exit)."""
    yield
    from django_perf.cache.store import reset_stores

    reset_stores()
