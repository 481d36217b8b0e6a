"""The examples in docs/cache.rst run as written, in order, on the test database and Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.core.cache import caches

from django_perf.cache.store import forget_store
from tests.support.docs import run_examples, runnable_blocks
from tests.support.env import ROOT

DOC = ROOT / "docs" / "cache.rst"
EXAMPLES = 2


@pytest.fixture
def three_tiers(settings, redis_url: str) -> Iterator[None]:
    """The default cache with memory, Redis and database tiers, as the page's counters show.

    A LOCATION of its own gives it a fresh L1 and counters; its store is closed afterwards.
    """
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django_perf.cache.TieredCache",
            "LOCATION": f"docs-{os.getpid()}",
            "OPTIONS": {
                "TIERS": [
                    {"KIND": "memory"},
                    {"KIND": "redis", "LOCATION": redis_url},
                    {"KIND": "database"},
                ],
                "STRICT": True,
            },
        },
    }
    cache = caches["default"]
    assert cache.wait_for_coherence(10), "the invalidation channel did not come up"
    yield
    forget_store(cache._store)


def test_the_page_has_examples():
    assert len(runnable_blocks(DOC.read_text())) >= EXAMPLES


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_examples_run(three_tiers):
    assert run_examples(DOC) == EXAMPLES
