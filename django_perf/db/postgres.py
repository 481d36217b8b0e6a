"""PostgreSQL building blocks of the bulk helpers: column types, COPY, unnest, temp tables.

Statements run on Django's own connection (so inside its transaction) through a
server-binding psycopg cursor, wrapped in Django's cursor wrapper so that
``connection.queries``, ``CaptureQueriesContext`` and ``execute_wrapper`` see them.
COPY goes straight to psycopg and is logged in ``connection.queries`` by hand.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Container, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

__all__ = [
    "Column",
    "cast_type",
    "copy_rows",
    "cursor",
    "table_columns",
    "temp_table",
]


@dataclass(frozen=True)
class Column:
    """A table column as PostgreSQL sees it."""

    name: str
    oid: int
    type_name: str  # to cast values to (see cast_type), e.g. "character varying", "bpchar"
    is_array: bool


_TYPE_MODIFIERS = re.compile(r"\s*\([^)]*\)")

# Names the SQL grammar reads as length 1 when bare (``'abc'::character`` is
# ``'a'``), and the same types without a length, which keep every value. The
# quoted ``"bit"`` is the type itself, not the keyword (``varbit`` would be
# another type, and no index on a ``bit`` column would serve a comparison).
_LENGTH_ONE_NAMES = {"character": "bpchar", "char": "bpchar", "bit": '"bit"'}


def cast_type(type_name: str) -> str:
    """``type_name`` as a cast that keeps values: no size or precision, and no length 1.

    A cast to the column's full type truncates or rounds silently
    (``'acme...x'::varchar(20)``, ``1.001::numeric(12,2)``), so a key would
    match another row and a value be cut where an INSERT would have refused it.
    Without modifiers the values reach the column as given, and the column's own
    assignment rules apply. ``varchar(20)`` -> ``varchar``, ``character(10)[]``
    -> ``bpchar[]``.
    """
    base = _TYPE_MODIFIERS.sub("", type_name).strip()
    element = base.rstrip("[]")
    return _LENGTH_ONE_NAMES.get(element, element) + base[len(element) :]


_columns_cache: dict[tuple[str, str, str], dict[str, Column]] = {}


@contextmanager
def cursor(connection: BaseDatabaseWrapper) -> Iterator[tuple[CursorWrapper, Any]]:
    """A server-binding cursor on ``connection``: (Django's wrapper, the psycopg cursor)."""
    import psycopg

    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    wrapped = (
        connection.make_debug_cursor(raw)
        if connection.queries_logged
        else connection.make_cursor(raw)
    )
    try:
        yield wrapped, raw
    finally:
        raw.close()


def table_columns(connection: BaseDatabaseWrapper, table: str) -> dict[str, Column]:
    """Name -> Column for ``table``, read from the catalog once per database and table."""
    key = (connection.alias, str(connection.settings_dict.get("NAME")), table)
    columns = _columns_cache.get(key)
    if columns is None:
        with cursor(connection) as (wrapped, _):
            wrapped.execute(
                "SELECT a.attname, a.atttypid, format_type(a.atttypid, NULL), t.typcategory = 'A'"
                " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
                " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                [connection.ops.quote_name(table)],
            )
            columns = {
                name: Column(name, oid, cast_type(type_name), is_array)
                for name, oid, type_name, is_array in wrapped.fetchall()
            }
        _columns_cache[key] = columns
    return columns


def forget_columns() -> None:
    """Drop cached column types (after a migration changed a table in this process)."""
    _columns_cache.clear()


def copy_format(raw: Any, columns: Sequence[Column]) -> str:
    """``binary`` if psycopg can dump every column's type in binary, else ``text``."""
    from psycopg import ProgrammingError
    from psycopg.pq import Format

    try:
        for column in columns:
            raw.adapters.get_dumper_by_oid(column.oid, Format.BINARY)
    except ProgrammingError:
        return "text"
    return "binary"


def copy_rows(
    connection: BaseDatabaseWrapper,
    raw: Any,
    table: str,
    columns: Sequence[Column],
    rows: Iterable[Sequence[Any]],
) -> None:
    """COPY ``rows`` into ``table``: binary when the column types allow, text otherwise."""
    quote = connection.ops.quote_name
    fmt = copy_format(raw, columns)
    names = ", ".join(quote(c.name) for c in columns)
    sql = f"COPY {quote(table)} ({names}) FROM STDIN (FORMAT {fmt.upper()})"
    start = time.monotonic()
    with connection.wrap_database_errors, raw.copy(sql) as copy:
        if fmt == "binary":
            copy.set_types([c.oid for c in columns])
        write = copy.write_row
        for row in rows:
            write(row)
    if connection.queries_logged:
        connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - start:.3f}"})


@contextmanager
def temp_table(
    connection: BaseDatabaseWrapper,
    wrapped: CursorWrapper,
    table: str,
    columns: Sequence[str],
    as_text: Container[str] = (),
) -> Iterator[str]:
    """A temporary table with the types of ``table``'s ``columns``, gone after the transaction.

    Columns named in ``as_text`` are ``text`` instead. ``ON COMMIT DROP`` drops
    the table when the transaction ends; inside a caller's transaction (a
    savepoint is active) it is dropped right after use instead, so that many
    calls in one long transaction do not pile tables up.
    """
    quote = connection.ops.quote_name
    name = f"django_perf_{uuid.uuid4().hex[:16]}"
    names = ", ".join(
        f"{quote(c)}::text AS {quote(c)}" if c in as_text else quote(c) for c in columns
    )
    wrapped.execute(
        f"CREATE TEMPORARY TABLE {quote(name)} ON COMMIT DROP AS "
        f"SELECT {names} FROM {quote(table)} WITH NO DATA"
    )
    yield name
    if connection.savepoint_ids:
        wrapped.execute(f"DROP TABLE {quote(name)}")


def unnest(connection: BaseDatabaseWrapper, columns: Sequence[Column], alias: str = "s") -> str:
    """``unnest(%b::t1[], %b::t2[], ...) AS alias(c1, c2, ...)``: one array parameter per column.

    The arrays are sent in binary (``%b``): psycopg's text form escapes every
    element with a regular expression, which was a third of a 1,000-row update.
    """
    quote = connection.ops.quote_name
    arrays = ", ".join(f"%b::{c.type_name}[]" for c in columns)
    names = ", ".join(quote(c.name) for c in columns)
    return f"unnest({arrays}) AS {alias}({names})"


def serial_sequence(wrapped: CursorWrapper, connection: BaseDatabaseWrapper, table: str,
                    column: str) -> str | None:  # fmt: skip
    """The sequence behind ``table.column`` (serial or identity); None for, say, a db_default."""
    wrapped.execute("SELECT pg_get_serial_sequence(%s, %s)", [connection.ops.quote_name(table),
                                                              column])  # fmt: skip
    return wrapped.fetchone()[0]


def allocate_ids(wrapped: CursorWrapper, sequence: str, count: int) -> list[int]:
    """Take ``count`` values from ``sequence``, in ascending order."""
    wrapped.execute(
        "SELECT array_agg(nextval(%s::regclass)) FROM generate_series(1, %s)", [sequence, count]
    )
    return sorted(wrapped.fetchone()[0])


# Types staged as text and cast back in SQL: psycopg's binary ``numeric`` dumper
# takes ~1.3 us a Decimal (two thirds of a 100,000-row COPY); ``str()`` plus a
# server-side cast gives PostgreSQL the same exact digits for a fraction of that.
STAGED_AS_TEXT = frozenset({"numeric"})
TEXT_OID = 25


def _as_text(value: Any) -> Any:
    return value if value is None else str(value)


@contextmanager
def staged(
    connection: BaseDatabaseWrapper,
    wrapped: CursorWrapper,
    raw: Any,
    table: str,
    columns: Sequence[Column],
    values: Sequence[Sequence[Any]],
    use_copy: bool,
    order_by: Sequence[str] = (),
) -> Iterator[tuple[str, list[Any]]]:
    """Make rows available to one set-based statement as a FROM item named ``s``.

    Yields ``(from_item, params)``: a temporary table filled by COPY when
    ``use_copy`` (or when a column is an array, which ``unnest`` would flatten),
    else ``unnest()`` of one array parameter per column. ``order_by`` names
    columns to read the temporary table in: an UPDATE that meets its rows in
    key order writes the table's pages in order too. Columns of the types in
    ``STAGED_AS_TEXT`` travel as text and are cast back, with the same result.
    """
    as_text = {c.name for c in columns if c.type_name in STAGED_AS_TEXT}
    if as_text:
        values = [
            list(map(_as_text, v)) if c.name in as_text else v
            for c, v in zip(columns, values, strict=True)
        ]
    if use_copy or any(c.is_array for c in columns):
        quote = connection.ops.quote_name
        names = [c.name for c in columns]
        with temp_table(connection, wrapped, table, names, as_text) as name:
            sent = [
                Column(c.name, TEXT_OID, "text", False) if c.name in as_text else c for c in columns
            ]
            copy_rows(connection, raw, name, sent, zip(*values, strict=True))
            if order_by or as_text:
                selected = ", ".join(
                    f"{quote(c.name)}::{c.type_name} AS {quote(c.name)}"
                    if c.name in as_text
                    else quote(c.name)
                    for c in columns
                )
                order = ", ".join(quote(column) for column in order_by)
                order = f" ORDER BY {order}" if order else ""
                yield f"(SELECT {selected} FROM {quote(name)}{order}) AS s", []
            else:
                yield f"{quote(name)} AS s", []
    else:
        yield unnest(connection, columns), [list(v) for v in values]
