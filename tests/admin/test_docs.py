"""The examples in docs/admin.rst run as written, in order, on the test database."""

from __future__ import annotations

import pytest

from tests.support.docs import run_examples, runnable_blocks
from tests.support.env import ROOT

DOC = ROOT / "docs" / "admin.rst"
EXAMPLES = 1


def test_the_page_has_examples():
    assert len(runnable_blocks(DOC.read_text())) >= EXAMPLES


@pytest.mark.django_db(transaction=True)
def test_the_examples_run():
    assert run_examples(DOC) == EXAMPLES
