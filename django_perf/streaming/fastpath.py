"""The PostgreSQL fast path: the database writes the JSON, NDJSON or CSV text itself.

The queryset's SQL is wrapped in ``COPY (SELECT <text of each row> FROM (<query>)
...) TO STDOUT`` and the bytes PostgreSQL sends are passed through, a chunk of
rows at a time, with no Python work per row. The SQL spells every value
exactly as the Python path does (DjangoJSONEncoder's formats, floats as
``repr()``), so both paths give the same bytes for the same rows.

It applies when every selected column is a plain table column of a supported
type; :func:`why_not` says why not otherwise, and the Python path runs.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import re
from collections.abc import Callable, Iterator

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connections, transaction

from .encoders import csv_lines, encode_text
from .query import Column, QueryPlan

__all__ = ["copy_chunks", "copy_sql", "why_not"]

#: Value kinds the SQL below can spell exactly as the Python path does.
SUPPORTED_KINDS = frozenset(
    {"int", "text", "uuid", "bool", "float", "decimal", "date", "datetime", "time", "duration"}
)
#: str(Decimal) switches to exponent notation below 1e-6, which PostgreSQL never does.
MAX_DECIMAL_PLACES = 6

# Floats: PostgreSQL and Python both print the shortest text that reads back as the same
# double, but format it differently (PostgreSQL: "100", "1e+15"; Python: "100.0",
# "1000000000000000.0"), and from 2**53 up PostgreSQL may pick a longer one. Below 2**53
# the SQL reformats; from 2**53 up it marks the value with \x03 and Python rewrites it
# (rare in real data, and a byte search finds the chunks that need it).
FLOAT_MARK = "\x03"
FLOAT = (
    "CASE WHEN abs({c}) < 1e15 AND abs({c}) >= 1e-4"
    " THEN CASE WHEN {c} = trunc({c}) THEN {c}::text || '.0' ELSE {c}::text END"
    " WHEN {c} = 0 THEN {c}::text || '.0'"
    " WHEN {c} IN ('NaN', 'Infinity', '-Infinity') THEN NULL"
    " WHEN abs({c}) < 1e-4 THEN {c}::text"
    " WHEN abs({c}) >= 9007199254740992 THEN chr(3) || {c}::text || chr(3)"
    " ELSE (({c}::text)::numeric)::text || CASE WHEN {c} = trunc({c}) THEN '.0' ELSE '' END"
    " END"
)
# DjangoJSONEncoder: milliseconds only when there are microseconds, "Z" for UTC.
DATETIME = (
    "to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    " || CASE WHEN date_trunc('second', {c}) = {c} THEN ''"
    " ELSE to_char({c} AT TIME ZONE 'UTC', '.MS') END || 'Z'"
)
TIME = (
    "to_char({c}::interval, 'HH24:MI:SS')"
    " || CASE WHEN date_trunc('second', {c}::interval) = {c}::interval THEN ''"
    " ELSE to_char({c}::interval, '.MS') END"
)
DATE = "to_char({c}, 'YYYY-MM-DD')"
# django.utils.duration.duration_iso_string() of the timedelta psycopg reads (a year is
# 365 days and a month 30 there): [-]P<days>DT<hh>H<mm>M<ss>[.ffffff]S.
_SECONDS = (
    "((extract(year from {c}) * 365 + extract(month from {c}) * 30 + extract(day from {c}))"
    " * 86400 + extract(hour from {c}) * 3600 + extract(minute from {c}) * 60"
    " + extract(second from {c}))"
)
_ABS = f"abs({_SECONDS})"
DURATION = (
    f"CASE WHEN {_SECONDS} < 0 THEN '-P' ELSE 'P' END"
    f" || floor({_ABS} / 86400)::bigint::text"
    f" || 'DT' || to_char(floor(mod({_ABS}, 86400) / 3600), 'FM00')"
    f" || 'H' || to_char(floor(mod({_ABS}, 3600) / 60), 'FM00')"
    f" || 'M' || to_char(floor(mod({_ABS}, 60)), 'FM00')"
    f" || CASE WHEN mod({_ABS}, 1) = 0 THEN ''"
    f" ELSE '.' || to_char(mod({_ABS}, 1) * 1000000, 'FM000000') END || 'S'"
)
BOOL = "CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' END"

# Text of each kind; NULL for NULL (and for NaN and infinite floats, which JSON cannot hold).
TEXT: dict[str, str] = {
    "int": "{c}::text",
    "text": "{c}",
    "uuid": "{c}::text",
    "bool": BOOL,
    "float": FLOAT,
    "decimal": "{c}::text",
    "date": DATE,
    "datetime": DATETIME,
    "time": TIME,
    "duration": DURATION,
}
UNQUOTED_JSON = frozenset({"int", "float", "bool"})

# One JSON text per row, passed through COPY's CSV format with a quote and delimiter that a
# JSON text never holds (to_json escapes control characters), so nothing is quoted or escaped.
JSON_COPY_OPTIONS = "(FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
CSV_COPY_OPTIONS = "(FORMAT csv)"


def why_not(plan: QueryPlan, format: str) -> str | None:
    """Why the fast path cannot stream ``plan`` as ``format``; None when it can."""
    connection = connections[plan.alias]
    if connection.vendor != "postgresql":
        return f"the database is {connection.vendor}; the fast path needs PostgreSQL"
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    if not is_psycopg3:
        return "the fast path needs psycopg 3 (COPY TO STDOUT); psycopg2 is in use"
    if format == "csv" and len(plan.columns) == 1:
        return 'a one-column CSV writes an empty value as "" in Python and as nothing in COPY'
    for column in plan.columns:
        reason = _column_reason(column, connection)
        if reason:
            return f"column {column.name!r} {reason}"
    return None


def _column_reason(column: Column, connection) -> str | None:
    if not column.plain:
        return "is computed (an expression, or a field converted by from_db_value)"
    if column.kind not in SUPPORTED_KINDS:
        field = column.field.get_internal_type() if column.field is not None else "unknown"
        return f"is a {field}, which Python re-encodes"
    if column.kind == "decimal" and (column.field.decimal_places or 0) > MAX_DECIMAL_PLACES:
        return (
            f"has {column.field.decimal_places} decimal places; str(Decimal) writes small "
            "values in exponent notation beyond 6"
        )
    if column.kind == "datetime" and not (settings.USE_TZ and connection.timezone_name == "UTC"):
        return "is a datetime and the connection is not in UTC with USE_TZ = True"
    return None


def _key_pieces(columns: list[Column]) -> list[str]:
    """The literal text before each value: '{"name":' for the first, ',"name":' after."""
    return [
        ("{" if index == 0 else ",") + encode_text(column.name).decode() + ":"
        for index, column in enumerate(columns)
    ]


def _json_token(column: Column, c: str) -> str:
    if column.kind == "text":
        return f"coalesce(to_json({c})::text, 'null')"
    text = TEXT[column.kind].format(c=c)
    if column.kind in UNQUOTED_JSON:
        return f"coalesce({text}, 'null')"
    return f"coalesce('\"' || {text} || '\"', 'null')"


def copy_sql(plan: QueryPlan, format: str) -> tuple[str, tuple] | None:
    """The ``COPY ... TO STDOUT`` statement and its parameters; None for an empty result."""
    compiler = plan.queryset.query.get_compiler(plan.alias)
    try:
        inner, inner_params = compiler.as_sql()
    except EmptyResultSet:
        return None
    columns = plan.columns
    aliases = [f"c{index}" for index in range(len(columns))]
    source = f"FROM ({inner}) AS _streamed({', '.join(aliases)})"
    if format == "csv":
        cells = []
        for column, c in zip(columns, aliases, strict=True):
            cell = f"nullif({c}, '')" if column.kind == "text" else TEXT[column.kind].format(c=c)
            cells.append(cell)
        sql = f"COPY (SELECT {', '.join(cells)} {source}) TO STDOUT {CSV_COPY_OPTIONS}"
        return sql, tuple(inner_params)
    pieces = _key_pieces(columns)
    parts = []
    for column, c in zip(columns, aliases, strict=True):
        parts += ["%s", _json_token(column, c)]
    parts.append("'}'")
    sql = f"COPY (SELECT {' || '.join(parts)} {source}) TO STDOUT {JSON_COPY_OPTIONS}"
    return sql, (*pieces, *inner_params)


_MARKED = re.compile(rb"\x03([^\x03]*)\x03")


def _repr_float(match: re.Match) -> bytes:
    return repr(float(match[1])).encode()


def fix_json_floats(block: bytes) -> bytes:
    """Rewrite marked floats (2**53 and up) as repr() writes them."""
    if b"\x03" not in block:
        return block
    return _MARKED.sub(_repr_float, block)


def fix_csv_floats(block: bytes, float_columns: list[int]) -> bytes:
    """Rewrite marked floats in CSV rows; other cells are parsed and written back unchanged."""
    if b"\x03" not in block:
        return block
    rows = list(csv.reader(io.StringIO(block.decode())))
    for row in rows:
        for index in float_columns:
            cell = row[index]
            if cell.startswith(FLOAT_MARK) and cell.endswith(FLOAT_MARK):
                row[index] = repr(float(cell[1:-1]))
    return csv_lines(rows)


def _finisher(plan: QueryPlan, format: str) -> Callable[[bytes], bytes]:
    floats = [i for i, column in enumerate(plan.columns) if column.kind == "float"]
    if format == "csv":
        if floats:
            return functools.partial(fix_csv_floats, float_columns=floats)
        return lambda block: block
    if format == "json":
        # One JSON text per line; in an array, the same texts joined by commas.
        if floats:
            return lambda block: fix_json_floats(block).replace(b"\n", b",")[:-1]
        return lambda block: block.replace(b"\n", b",")[:-1]
    return fix_json_floats if floats else (lambda block: block)


def copy_chunks(plan: QueryPlan, format: str, chunk_size: int) -> Iterator[bytes]:
    """Yield the database's text for every ``chunk_size`` rows; closing cancels the COPY."""
    statement = copy_sql(plan, format)
    if statement is None:
        return
    sql, params = statement
    if not params:
        # psycopg only interpolates (and so un-doubles "%%") when there are parameters.
        sql = sql.replace("%%", "%")
    finish = _finisher(plan, format)
    connection = connections[plan.alias]
    # Cancelling a COPY aborts the transaction it runs in: inside the caller's atomic()
    # it runs in a savepoint of its own, which an early close rolls back, so that the
    # caller's transaction goes on (decided when iteration starts, like the Python path).
    scope = (
        transaction.atomic(using=plan.alias)
        if connection.in_atomic_block
        else contextlib.nullcontext()
    )
    with scope, connection.cursor() as cursor, connection.wrap_database_errors:
        copy_context = cursor.cursor.copy(sql, params or None)

        def start(sql, params, many, context):
            return copy_context.__enter__()

        # Run the project's execute wrappers (connection.execute_wrapper()) around the start
        # of the COPY, as Django runs them around every query, so query counters see it.
        executor = functools.reduce(
            lambda inner, wrapper: functools.partial(wrapper, inner),
            connection.execute_wrappers,
            start,
        )
        copy = executor(sql, params, False, {"connection": connection, "cursor": cursor})
        try:
            rows: list = []
            for data in copy:
                rows.append(data)
                if len(rows) == chunk_size:
                    yield finish(b"".join(rows))
                    rows = []
            if rows:
                yield finish(b"".join(rows))
        except BaseException as error:
            # Leaving early (the client went away, GeneratorExit) cancels the COPY on the
            # server and drains what was in flight, so the connection is usable again.
            if not copy_context.__exit__(type(error), error, error.__traceback__):
                raise
        else:
            copy_context.__exit__(None, None, None)
