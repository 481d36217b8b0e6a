"""The runnable examples in docs/streaming.rst run as written, in order, on the test database."""

from __future__ import annotations

import pytest

from tests.support.docs import run_examples
from tests.support.env import ROOT

DOC = ROOT / "docs" / "streaming.rst"


@pytest.mark.django_db
def test_the_runnable_examples_run():
    from testproject.blog.seed import SeedSize, seed

    seed(SeedSize(authors=2, articles=5, comments=0, events=50))
    assert run_examples(DOC) >= 2
