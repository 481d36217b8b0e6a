"""``INSERT ... SELECT`` from staged rows, a chunk at a time (bulk_upsert, keyed bulk_insert)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..conf import perf_settings
from . import postgres
from .rows import RowSet

__all__ = ["insert_select"]


def insert_select(
    rowset: RowSet, wrapped: Any, raw: Any, alias: str, tail: str
) -> Iterator[tuple[Sequence[int], list[tuple]]]:
    """Insert the rows per chunk; yield each chunk's row indexes and what it returned.

    Runs ``INSERT INTO <table> <alias> (<columns>) SELECT ... FROM <staged rows> <tail>``
    for each group of columns the rows give, ``BULK_BATCH_SIZE`` rows at a time, staged
    by ``postgres.staged()`` (``unnest()``, or COPY into a temporary table from
    ``BULK_COPY_MIN_ROWS`` rows).
    """
    connection = rowset.target.connection
    quote = connection.ops.quote_name
    table = rowset.target.model._meta.db_table
    table_columns = postgres.table_columns(connection, table)
    into = f"{quote(table)} {alias}".rstrip()
    step = perf_settings.BULK_BATCH_SIZE
    for column_indexes, row_indexes in rowset.groups():
        columns = [table_columns[rowset.fields[j].column] for j in column_indexes]
        names = ", ".join(quote(c.name) for c in columns)
        selected = ", ".join(f"s.{quote(c.name)}" for c in columns)
        use_copy = min(len(row_indexes), step) >= perf_settings.BULK_COPY_MIN_ROWS
        for start in range(0, len(row_indexes), step):
            chunk = row_indexes[start : start + step]
            whole = len(chunk) == rowset.size
            values = [
                rowset.columns[j] if whole else [rowset.columns[j][i] for i in chunk]
                for j in column_indexes
            ]
            with postgres.staged(connection, wrapped, raw, table, columns, values,
                                 use_copy) as (source, params):  # fmt: skip
                wrapped.execute(
                    f"INSERT INTO {into} ({names}) SELECT {selected} FROM {source} {tail}",
                    params,
                )
                returned = wrapped.fetchall()
            yield chunk, returned
