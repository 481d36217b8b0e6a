"""The Python path: read a queryset a chunk at a time and encode each chunk.

On PostgreSQL the rows come through a server-side cursor declared inside a
transaction of its own. Outside a transaction Django would declare it ``WITH
HOLD``, and PostgreSQL materialises the whole result of such a cursor before
the first ``FETCH`` returns (seconds for a million rows); inside one, each
``FETCH`` only computes the next chunk. A cursor that lives inside one
transaction is also safe behind PgBouncer's transaction pooling, which a held
cursor is not. The transaction is read-only in practice and ends (rolled
back or committed) as soon as the stream ends or is closed.

Plain ``DateTimeField`` columns are read as PostgreSQL's text on that cursor and
respelled in DjangoJSONEncoder's format: Django reads ``timestamptz`` through a
loader written in Python, and parsing then formatting each value again is most
of the Python path's cost per row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models.sql.constants import MULTI

from .formats import ChunkEncoder
from .query import Column, QueryPlan

__all__ = ["python_chunks"]

#: Builds the chunk encoder, told which columns hold timestamps as PostgreSQL text.
EncoderFactory = Callable[[list[int]], ChunkEncoder]


def _text_timestamp_columns(plan: QueryPlan, connection: Any) -> list[int]:
    """Indexes of the columns to read as timestamp text; [] when that would not be exact."""
    if connection.vendor != "postgresql" or not settings.USE_TZ:
        return []
    # The loader applies to every timestamptz of the query: only when all of them are plain.
    if any(c.kind in ("datetime", "other") and not c.plain for c in plan.columns):
        return []
    # It reaches timestamptz inside arrays too (ArrayField(DateTimeField)): not respelled.
    if any(c.kind == "other" and _holds_timestamps(c, connection) for c in plan.columns):
        return []
    indexes = [i for i, column in enumerate(plan.columns) if column.kind == "datetime"]
    if not indexes:
        return []
    info = connection.connection.info
    if info.parameter_status("TimeZone") != "UTC":
        return []
    if not (info.parameter_status("DateStyle") or "").startswith("ISO"):
        return []
    return indexes


def _holds_timestamps(column: Column, connection: Any) -> bool:
    """Whether a column of another type (an array, a custom field) may hold a timestamptz."""
    if column.field is None:
        return True
    return "timestamp with time zone" in (column.field.db_type(connection) or "")


@contextlib.contextmanager
def _timestamps_as_text(connection: Any, enabled: bool) -> Iterator[None]:
    """Cursors created inside read timestamptz as text (the connection is restored after)."""
    if not enabled:
        yield
        return
    from psycopg import pq
    from psycopg.types.string import TextLoader

    class TimestampText(TextLoader):
        # Django re-registers its own loader on a new cursor unless the connection's
        # loader carries the connection's timezone.
        timezone = connection.timezone

    adapters = connection.connection.adapters
    oid = adapters.types["timestamptz"].oid
    previous = adapters.get_loader(oid, pq.Format.TEXT)
    adapters.register_loader("timestamptz", TimestampText)
    try:
        yield  # a cursor copies the connection's loaders when it is created
    finally:
        adapters.register_loader("timestamptz", previous)


def python_chunks(
    plan: QueryPlan, make_encoder: EncoderFactory, chunk_size: int
) -> Iterator[bytes]:
    """Yield one encoded chunk per ``chunk_size`` rows; closing the generator closes the cursor."""
    connection = connections[plan.alias]
    # Decided when iteration starts, in the thread that reads, not when the response is built.
    own_transaction = connection.vendor == "postgresql" and not connection.in_atomic_block
    scope = transaction.atomic(using=plan.alias) if own_transaction else contextlib.nullcontext()
    with scope:
        connection.ensure_connection()
        text_timestamps = _text_timestamp_columns(plan, connection)
        encode = make_encoder(text_timestamps)
        compiler = plan.queryset.query.get_compiler(plan.alias)
        # chunked_fetch uses a named (server-side) cursor on PostgreSQL, fetchmany() elsewhere.
        # Called directly, it does so even with DISABLE_SERVER_SIDE_CURSORS, which exists for
        # held cursors behind transaction pooling; this cursor lives inside one transaction.
        with _timestamps_as_text(connection, bool(text_timestamps)):
            results = compiler.execute_sql(MULTI, chunked_fetch=True, chunk_size=chunk_size)
        try:
            fields = [select[0] for select in compiler.select[0 : compiler.col_count]]
            converters = compiler.get_converters(fields)
            composite = compiler.has_composite_fields(fields)
            for rows in results:
                if converters:
                    rows = compiler.apply_converters(rows, converters)
                if composite:
                    rows = compiler.composite_fields_to_tuples(rows, fields)
                if not isinstance(rows, list):
                    rows = list(rows)
                yield encode(rows)
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()  # cursor_iter's finally closes the cursor
