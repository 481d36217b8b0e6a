"""The examples in docs/lifespan.rst run as written, in order."""

from __future__ import annotations

import pytest

from django_perf import lifespan
from tests.support.docs import run_examples, runnable_blocks
from tests.support.env import ROOT

DOC = ROOT / "docs" / "lifespan.rst"
EXAMPLES = 3


@pytest.fixture(autouse=True)
def _no_leftover_hooks(monkeypatch):
    """The examples register a shutdown hook; no other hook runs, and none outlives the test."""
    monkeypatch.setattr(lifespan, "_hooks", [])


def test_the_page_has_examples():
    assert len(runnable_blocks(DOC.read_text())) >= EXAMPLES


def test_the_examples_run():
    assert run_examples(DOC) == EXAMPLES
