"""Django's own generic cache tests (``BaseCacheTests`` from Django 5.2.19) against TieredCache.

Each class runs the whole suite on one tier layout, in strict mode so that a
tier error fails the test instead of becoming a silent miss. Deliberate
difference: culling is per tier (a key culled from L1 stays in the tiers
below it), so the ``cull`` and ``zero_cull`` caches, which check LocMem's
MAX_ENTRIES/CULL_FREQUENCY arithmetic, are L1-only caches.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import TestCase

from tests.cache.django_base import BaseCacheTests, _caches_setting_base, caches_setting_for_tests
from tests.support.servers import servers

_numbers = itertools.count()


def tiered_caches(tiers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    base = {
        "BACKEND": "django_perf.cache.TieredCache",
        "LOCATION": f"django-suite-{next(_numbers)}",
        "OPTIONS": {"TIERS": tiers, "STRICT": True},
    }
    setting = caches_setting_for_tests(base=base)
    for name in ("cull", "zero_cull"):
        setting[name]["OPTIONS"] = {
            **_caches_setting_base[name]["OPTIONS"],
            "TIERS": [{"KIND": "memory"}],
        }
    return setting


class TieredSuite(BaseCacheTests):
    """Runs BaseCacheTests with ``tiers()`` as every cache's layout."""

    tiers: ClassVar[list[str]] = []

    @classmethod
    def setUpClass(cls) -> None:
        layout = []
        for kind in cls.tiers:
            tier: dict[str, Any] = {"KIND": kind}
            if kind == "redis":
                tier["LOCATION"] = servers.redis_url()
            layout.append(tier)
        cls._overridden_settings = {"CACHES": tiered_caches(layout)}
        super().setUpClass()

    def setUp(self) -> None:
        super().setUp()
        for alias in settings.CACHES:
            caches[alias].clear()
            caches[alias].wait_for_coherence(10)

    def tearDown(self) -> None:
        for alias in settings.CACHES:
            caches[alias].clear()


class MemoryTests(TieredSuite, TestCase):
    tiers: ClassVar[list[str]] = ["memory"]


class MemoryDatabaseTests(TieredSuite, TestCase):
    tiers: ClassVar[list[str]] = ["memory", "database"]


class DatabaseTests(TieredSuite, TestCase):
    tiers: ClassVar[list[str]] = ["database"]


@pytest.mark.redis
class RedisTests(TieredSuite, TestCase):
    tiers: ClassVar[list[str]] = ["redis"]


@pytest.mark.redis
class MemoryRedisDatabaseTests(TieredSuite, TestCase):
    tiers: ClassVar[list[str]] = ["memory", "redis", "database"]
