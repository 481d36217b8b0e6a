"""The examples in docs/invalidation.rst run as written, in order, on the test database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from django_perf.cache.invalidation import registry
from tests.support.docs import run_examples, runnable_blocks
from tests.support.env import ROOT

DOC = ROOT / "docs" / "invalidation.rst"
EXAMPLES = 11


@pytest.fixture
def registrations_restored() -> Iterator[None]:
    """The examples register models; leave the registry as the test project set it up."""
    before = registry.registrations()
    yield
    for registration in registry.registrations():
        if not any(registration is kept for kept in before):
            registry.remove(registration)


def test_the_page_has_examples():
    assert len(runnable_blocks(DOC.read_text())) >= EXAMPLES


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_examples_run(configure_cache, registrations_restored):
    configure_cache("memory", "redis", "database")  # the tiers the page's reports show
    try:
        assert run_examples(DOC) == EXAMPLES
    finally:
        # The async example ran the database tier on asgiref's executor thread: close that
        # thread's connection there, or the session outlives the test.
        asyncio.run(sync_to_async(connections.close_all)())
