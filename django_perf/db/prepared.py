"""``PreparedQuery``: a hot SQL statement planned once per database connection, not per call.

PostgreSQL parses and plans every statement it receives; for a join run
thousands of times a second the planning costs more than the execution.
Django never prepares statements unless ``OPTIONS`` sets both
``server_side_binding`` and ``prepare_threshold`` (and then it prepares
everything). A ``PreparedQuery`` prepares one statement, by name, on each
connection it runs on (``PREPARE``), then runs it with ``EXECUTE``; it keeps
track of which connections have it, so a new connection (a reconnect, another
pooled connection) prepares it again, and a statement dropped behind its back
(``DISCARD ALL`` by a pooler) is prepared again and retried outside a
transaction. Off PostgreSQL, or with ``DJANGO_PERF["PREPARED_STATEMENTS"] =
False``, it runs the statement as it is.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import DEFAULT_DB_ALIAS, ProgrammingError

from ..conf import perf_settings

__all__ = ["PreparedQuery", "to_dollar_params"]

#: SQLSTATE of "prepared statement ... does not exist".
INVALID_STATEMENT_NAME = "26000"
DUPLICATE_PREPARED_STATEMENT = "42P05"
#: PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes: longer names would collide.
MAX_NAME_BYTES = 63

# psycopg connection -> {name: the PREPARE statement that made it}. Weak keys: a closed
# connection that Django drops takes its entry with it; a new one starts empty.
_prepared: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _names_on(raw: Any) -> dict[str, str]:
    """The statements prepared on a psycopg connection, by name (each with its PREPARE text)."""
    with _lock:
        names = _prepared.get(raw)
        if names is None:
            names = _prepared[raw] = {}
        return names


def _in_transaction(connection: BaseDatabaseWrapper) -> bool:
    """Inside ``atomic()`` or with autocommit off: a failed statement has aborted the
    transaction, so nothing more may run in it (no retry)."""
    return connection.in_atomic_block or not connection.get_autocommit()


def to_dollar_params(sql: str) -> tuple[str, int]:
    """Turn ``%s`` placeholders into ``$1, $2, ...`` (``%%`` is a literal ``%``); count them."""
    out: list[str] = []
    count = 0
    i = 0
    while i < len(sql):
        char = sql[i]
        if char == "%":
            following = sql[i + 1 : i + 2]
            if following == "s":
                count += 1
                out.append(f"${count}")
                i += 2
                continue
            if following == "%":
                out.append("%")
                i += 2
                continue
            raise ValueError(
                f"PreparedQuery takes %s placeholders only (and %% for a literal %); "
                f"found {sql[i : i + 3]!r} at position {i}."
            )
        out.append(char)
        i += 1
    return "".join(out), count


class PreparedQuery:
    """One SQL statement with ``%s`` placeholders, prepared on each connection that runs it.

    ``types`` gives the parameters' PostgreSQL types when they cannot be inferred
    from the statement (``["bigint", "text"]``); a parameter used only as an output
    value (``SELECT %s``) is otherwise prepared as text. Results are rows as tuples.
    """

    def __init__(
        self,
        sql: str,
        *,
        types: Sequence[str] | None = None,
        name: str | None = None,
        using: str = DEFAULT_DB_ALIAS,
    ) -> None:
        self.sql = sql
        self.types = list(types) if types is not None else None
        self.using = using
        self.dollar_sql, self.param_count = to_dollar_params(sql)
        if self.types is not None and len(self.types) != self.param_count:
            raise ValueError(
                f"PreparedQuery: {len(self.types)} types for {self.param_count} placeholders."
            )
        digest = hashlib.sha1(f"{sql}\0{self.types}".encode(), usedforsecurity=False).hexdigest()
        self.name = name or f"django_perf_{digest[:20]}"
        if not self.name.isidentifier():
            raise ValueError(f"PreparedQuery: name {self.name!r} is not an SQL identifier.")
        if len(self.name.encode()) > MAX_NAME_BYTES:
            raise ValueError(
                f"PreparedQuery: name {self.name!r} is longer than {MAX_NAME_BYTES} bytes; "
                "PostgreSQL would truncate it, and names that start alike would collide."
            )

    def __repr__(self) -> str:
        return f"<PreparedQuery {self.name}: {self.sql[:60]!r}>"

    # --- running it -----------------------------------------------------------------

    def execute(self, params: Sequence[Any] = (), *, using: str | None = None) -> int:
        """Run the statement; return the number of rows it affected."""
        return self._run(params, using, lambda cursor: cursor.rowcount)

    def fetchall(self, params: Sequence[Any] = (), *, using: str | None = None) -> list[tuple]:
        """Run the statement and return every row."""
        return self._run(params, using, lambda cursor: cursor.fetchall())

    def fetchone(self, params: Sequence[Any] = (), *, using: str | None = None) -> tuple | None:
        """Run the statement and return the first row, or None."""
        return self._run(params, using, lambda cursor: cursor.fetchone())

    async def aexecute(self, params: Sequence[Any] = (), *, using: str | None = None) -> int:
        return await sync_to_async(self.execute)(params, using=using)

    async def afetchall(
        self, params: Sequence[Any] = (), *, using: str | None = None
    ) -> list[tuple]:
        return await sync_to_async(self.fetchall)(params, using=using)

    async def afetchone(
        self, params: Sequence[Any] = (), *, using: str | None = None
    ) -> tuple | None:
        return await sync_to_async(self.fetchone)(params, using=using)

    def is_prepared(self, using: str | None = None) -> bool:
        """Whether the statement is prepared on the current connection of ``using``."""
        raw = connections[using or self.using].connection
        return raw is not None and self.name in _names_on(raw)

    # --- the work -------------------------------------------------------------------

    def _run(self, params: Sequence[Any], using: str | None, read: Any) -> Any:
        params = list(params)
        if len(params) != self.param_count:
            raise ValueError(f"{self!r} takes {self.param_count} parameters, got {len(params)}.")
        connection = connections[using or self.using]
        if connection.vendor != "postgresql" or not perf_settings.PREPARED_STATEMENTS:
            with connection.cursor() as cursor:
                cursor.execute(self.sql, params)
                return read(cursor)
        connection.ensure_connection()
        try:
            return self._execute_prepared(connection, params, read)
        except ProgrammingError as error:
            if not self._statement_lost(error) or _in_transaction(connection):
                raise
            # This statement was dropped behind our back (DISCARD ALL, DEALLOCATE): prepare
            # it again and retry once. Others find out for themselves when they next run
            # (forgetting them all here would PREPARE live ones again: "already exists").
            _names_on(connection.connection).pop(self.name, None)
            return self._execute_prepared(connection, params, read)

    def _execute_prepared(self, connection: BaseDatabaseWrapper, params: list, read: Any) -> Any:
        names = _names_on(connection.connection)
        prepare = self._prepare_sql(connection)
        with connection.cursor() as cursor:
            known = names.get(self.name)
            if known is None:
                try:
                    cursor.execute(prepare)
                except ProgrammingError as error:
                    # Prepared already (by an earlier copy of this query): use it, if it is
                    # this statement. Not in a transaction, though: the failed PREPARE has
                    # aborted that.
                    if not self._already_prepared(error) or _in_transaction(connection):
                        raise
                    known = self._server_statement(cursor)
                    if known != prepare:
                        raise self._name_taken(known) from error
                names[self.name] = prepare
            elif known != prepare:
                raise self._name_taken(known)
            quote = connection.ops.quote_name
            execute = f"EXECUTE {quote(self.name)}"
            if params:
                execute += "(" + ", ".join(["%s"] * len(params)) + ")"
                execute = connection.ops.compose_sql(execute, params)
            cursor.execute(execute)
            return read(cursor)

    def _prepare_sql(self, connection: BaseDatabaseWrapper) -> str:
        types = f" ({', '.join(self.types)})" if self.types else ""
        return f"PREPARE {connection.ops.quote_name(self.name)}{types} AS {self.dollar_sql}"

    def _server_statement(self, cursor: Any) -> str | None:
        """The PREPARE text of the statement the server holds under this name."""
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE name = %s", [self.name])
        row = cursor.fetchone()
        return row[0] if row else None

    def _name_taken(self, other: str | None) -> ProgrammingError:
        return ProgrammingError(
            f"PreparedQuery name {self.name!r} is already used on this connection by another "
            f"statement ({other!r}); give each statement a name of its own, or let "
            "PreparedQuery derive one from the SQL (name=None)."
        )

    @staticmethod
    def _statement_lost(error: ProgrammingError) -> bool:
        cause = error.__cause__
        return getattr(cause, "sqlstate", None) == INVALID_STATEMENT_NAME

    @staticmethod
    def _already_prepared(error: ProgrammingError) -> bool:
        return getattr(error.__cause__, "sqlstate", None) == DUPLICATE_PREPARED_STATEMENT
