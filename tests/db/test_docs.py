"""The examples in docs/db.rst run as written, in order, on the test database."""

from __future__ import annotations

import textwrap

import pytest

from tests.support.env import ROOT

DOC = ROOT / "docs" / "db.rst"


def runnable_blocks(text: str) -> list[str]:
    """The bodies of ``.. code-block:: python`` directives with ``:class: runnable``."""
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


def test_the_page_has_examples():
    assert len(runnable_blocks(DOC.read_text())) >= 5


@pytest.mark.django_db(transaction=True)
def test_the_examples_run():
    namespace: dict = {}
    for number, block in enumerate(runnable_blocks(DOC.read_text())):
        code = compile(block, f"{DOC.name} example {number}", "exec")
        exec(code, namespace)
