"""Fixtures for the invalidation tests: the default cache pointed at fresh tier layouts."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import caches

from django_perf.cache import TieredCache
from django_perf.cache.store import forget_store

_numbers = itertools.count()

LAYOUTS = [
    pytest.param(("memory",), id="memory"),
    pytest.param(("memory", "database"), id="memory+database"),
    pytest.param(("memory", "redis"), id="memory+redis", marks=pytest.mark.redis),
    pytest.param(("memory", "redis", "database"), id="all", marks=pytest.mark.redis),
]


def tiers_for(kinds: tuple[Any, ...], redis_url: str | None) -> list[dict[str, Any]]:
    """Tier dicts for kind names (or dicts with a KIND and options)."""
    tiers: list[dict[str, Any]] = []
    for kind in kinds:
        tier = dict(kind) if isinstance(kind, dict) else {"KIND": kind}
        if tier["KIND"] == "redis":
            assert redis_url, "a Redis tier needs the redis_url fixture"
            tier.setdefault("LOCATION", redis_url)
        tiers.append(tier)
    return tiers


def kind_names(kinds: tuple[Any, ...]) -> list[str]:
    return [kind["KIND"] if isinstance(kind, dict) else kind for kind in kinds]


def cache_settings(kinds: tuple[Any, ...], redis_url: str | None, location: str, **options: Any):
    params: dict[str, Any] = {
        "BACKEND": "django_perf.cache.TieredCache",
        "LOCATION": location,
        "OPTIONS": {"TIERS": tiers_for(kinds, redis_url), "STRICT": True, **options},
    }
    for name in ("TIMEOUT", "KEY_PREFIX", "VERSION", "KEY_FUNCTION"):
        if name in params["OPTIONS"]:
            params[name] = params["OPTIONS"].pop(name)
    return params


ConfigureCache = Callable[..., TieredCache]


@pytest.fixture
def configure_cache(settings, request) -> Iterator[ConfigureCache]:
    """Point ``CACHES[alias]`` at a new TieredCache with the given tier kinds; returns it.

    Each call gets its own LOCATION (so its own L1 store, table rows and channel);
    stores are closed afterwards. Redis tiers wait until L1 is coherent.
    """
    stores = []

    def configure(*kinds: Any, alias: str = "default", location: str | None = None, **options):
        names = kind_names(kinds)
        redis_url = request.getfixturevalue("redis_url") if "redis" in names else None
        if location is None:
            location = f"inv-{os.getpid()}-{next(_numbers)}"
        configured = dict(settings.CACHES)
        configured[alias] = cache_settings(kinds, redis_url, location, **options)
        settings.CACHES = configured
        cache = caches[alias]
        stores.append(cache._store)
        if "redis" in names and "memory" in names:
            assert cache.wait_for_coherence(10), "the invalidation channel did not come up"
        return cache

    yield configure
    for store in stores:
        forget_store(store)


@pytest.fixture(params=LAYOUTS)
def layout(request) -> tuple[str, ...]:
    """Each tier layout in turn (those with Redis are marked ``redis``)."""
    return request.param


@pytest.fixture(scope="session", autouse=True)
def _close_stores_at_exit() -> Iterator[None]:
    yield
    from django_perf.cache.store import reset_stores

    reset_stores()
