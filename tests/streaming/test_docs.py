"""The runnable examples in docs/streaming.rst run as written, in order, on the test database."""

from __future__ import annotations

import textwrap

import pytest

from tests.support.env import ROOT

DOC = ROOT / "docs" / "streaming.rst"


def runnable_blocks(text: str) -> list[str]:
    """The bodies of ``.. code-block:: python`` directives marked ``:class: runnable``."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        starts = lines[i].strip() == ".. code-block:: python"
        if starts and i + 1 < len(lines) and lines[i + 1].strip() == ":class: runnable":
            i += 2
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("   ")):
                body.append(lines[i])
                i += 1
            blocks.append(textwrap.dedent("\n".join(body)))
            continue
        i += 1
    return blocks


@pytest.mark.django_db
def test_the_runnable_examples_run():
    from testproject.blog.seed import SeedSize, seed

    seed(SeedSize(authors=2, articles=5, comments=0, events=50))
    blocks = runnable_blocks(DOC.read_text())
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # our own docs
