"""The runnable examples of a docs page: ``.. code-block:: python`` marked ``:class: runnable``."""

from __future__ import annotations

import textwrap
from pathlib import Path


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


def run_examples(page: Path) -> int:
    """Run the page's runnable examples in order, in one namespace; return how many ran."""
    namespace: dict = {}
    blocks = runnable_blocks(page.read_text())
    for number, block in enumerate(blocks):
        exec(compile(block, f"{page.name} example {number}", "exec"), namespace)  # our own docs
    return len(blocks)
