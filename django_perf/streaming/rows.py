"""The Python path: read a queryset a chunk at a time and encode each chunk.

On PostgreSQL the rows come through a server-side cursor declared inside a
transaction of its own. Outside a transaction Django would declare it ``WITH
HOLD``, and PostgreSQL materialises the whole result of such a cursor before
the first ``FETCH`` returns (seconds for a million rows); inside one, each
``FETCH`` only computes the next chunk. A cursor that lives inside one
transaction is also safe behind PgBouncer's transaction pooling, which a held
cursor is not. The transaction is read-only in practice and ends (rolled
back or committed) as soon as the stream ends or is closed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connections, transaction
from django.db.models.sql.constants import MULTI

from .formats import ChunkEncoder
from .query import QueryPlan

__all__ = ["python_chunks"]


def python_chunks(plan: QueryPlan, encode: ChunkEncoder, chunk_size: int) -> Iterator[bytes]:
    """Yield one encoded chunk per ``chunk_size`` rows; closing the generator closes the cursor."""
    connection = connections[plan.alias]
    # Decided when iteration starts, in the thread that reads, not when the response is built.
    own_transaction = connection.vendor == "postgresql" and not connection.in_atomic_block
    scope = transaction.atomic(using=plan.alias) if own_transaction else contextlib.nullcontext()
    with scope:
        compiler = plan.queryset.query.get_compiler(plan.alias)
        # chunked_fetch uses a named (server-side) cursor on PostgreSQL, fetchmany() elsewhere.
        # Called directly, it does so even with DISABLE_SERVER_SIDE_CURSORS, which exists for
        # held cursors behind transaction pooling; this cursor lives inside one transaction.
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
