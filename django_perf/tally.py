"""Per-request tallies: capabilities count events, monitoring reads them for the current request.

The cache counts ``cache.<tier>.hit`` and the like with :func:`count`; the
monitoring middleware opens a :func:`tallying` scope around each request and
reads what was counted inside it. Neither imports the other. Outside a scope
:func:`count` is a single context-variable read, so counting is free when no
one is listening. Scopes follow ``contextvars``, so concurrent requests on
threads or asyncio tasks never see each other's counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["Tally", "count", "current", "tallying"]


class Tally(defaultdict[str, float]):
    """Event name -> amount counted in one scope (missing events read as 0)."""

    def __init__(self) -> None:
        super().__init__(float)


_current: ContextVar[Tally | None] = ContextVar("django_perf_tally", default=None)


def count(event: str, amount: float = 1) -> None:
    """Add ``amount`` to ``event`` in the current scope; do nothing outside one."""
    tally = _current.get()
    if tally is not None:
        tally[event] += amount


def current() -> Tally | None:
    """The innermost open scope's tally, or None."""
    return _current.get()


@contextmanager
def tallying() -> Iterator[Tally]:
    """Open a scope: events counted inside it (in this context) land in the yielded tally."""
    tally = Tally()
    token = _current.set(tally)
    try:
        yield tally
    finally:
        _current.reset(token)
