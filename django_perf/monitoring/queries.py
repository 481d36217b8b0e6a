"""Database queries of the current request: count and time per alias, repeated SQL for N+1.

One execute wrapper (Django's ``connection.execute_wrappers``) is put on every
database connection when it opens; it times each query into the
:class:`QueryLog` of the request being served, and does nothing but one
context-variable read outside a recorded request. The log rides on the
request's tally (:class:`RequestTally`), so a request sets one context
variable, not two: each set makes every context-variable read after it slower.
"""

from __future__ import annotations

from collections import defaultdict
from time import perf_counter_ns
from typing import Any

from django.db import connections
from django.db.backends.signals import connection_created

from ..tally import Tally
from ..tally import _current as _tally_var

__all__ = ["QueryLog", "RequestTally", "current_log", "install"]


class QueryLog:
    """What one request asked of the databases.

    Made for every recorded request, so making one is free: the class
    attributes stand in until the first query gives the instance its own.
    """

    count = 0
    ns = 0
    by_alias: dict[str, list[int]] = {}  # alias -> [queries, nanoseconds]; shared until a query
    statements: dict[str, int] = {}  # SQL -> times run in this request

    def add(self, alias: str, sql: str, ns: int) -> None:
        if not self.count:
            self.by_alias = {}
            self.statements = {}
        self.count += 1
        self.ns += ns
        entry = self.by_alias.get(alias)
        if entry is None:
            self.by_alias[alias] = [1, ns]
        else:
            entry[0] += 1
            entry[1] += ns
        statements = self.statements
        statements[sql] = statements.get(sql, 0) + 1

    def repeated(self, threshold: int) -> list[tuple[str, int]]:
        """SQL run ``threshold`` times or more, most repeated first (the N+1 suspects)."""
        if self.count < threshold:
            return []
        found = [(sql, n) for sql, n in self.statements.items() if n >= threshold]
        return sorted(found, key=lambda item: -item[1])


class RequestTally(Tally):
    """The tally scope of a request the middleware records, carrying its query log.

    ``RequestTally(float)`` is one C call (defaultdict's own ``__init__``), and the
    query log is made by the request's first query: requests without one pay nothing.
    """

    queries: QueryLog | None = None
    __init__ = defaultdict.__init__  # type: ignore[assignment]


def current_log() -> QueryLog | None:
    """The query log of the request being recorded in this context, if any."""
    tally = _tally_var.get()
    return tally.queries if tally.__class__ is RequestTally else None  # type: ignore[union-attr]


def _wrapper(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    tally = _tally_var.get()
    if tally.__class__ is not RequestTally:
        return execute(sql, params, many, context)
    log = tally.queries  # type: ignore[union-attr]
    if log is None:
        log = tally.queries = QueryLog()  # type: ignore[union-attr]
    start = perf_counter_ns()
    try:
        return execute(sql, params, many, context)
    finally:
        log.add(context["connection"].alias, sql, perf_counter_ns() - start)


def _install_on(connection: Any) -> None:
    wrappers = connection.execute_wrappers
    if _wrapper not in wrappers:
        # First in the list = outermost, and out of the way of wrappers that others push/pop.
        wrappers.insert(0, _wrapper)


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    _install_on(connection)


def install() -> None:
    """Time queries on every connection: those open in this thread now, and all opened later."""
    connection_created.connect(_on_connection_created, dispatch_uid="django_perf.monitoring")
    for connection in connections.all(initialized_only=True):
        _install_on(connection)
