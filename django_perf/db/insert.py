"""``bulk_insert``: rows into one table with COPY on PostgreSQL, the ORM's INSERT elsewhere."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import NotSupportedError, models, transaction

from . import fallback, postgres
from .fields import OMIT, is_native
from .notify import listening, rows_written
from .rows import RowSet, Target, extract, resolve_fields, resolve_target
from .staging import insert_select

__all__ = ["bulk_insert"]


def bulk_insert(
    model: type[models.Model] | models.QuerySet | models.Manager,
    rows: Iterable[models.Model | dict[str, Any]],
    fields: Sequence[str] | None = None,
    returning: bool = False,
    *,
    using: str | None = None,
) -> int | list[Any]:
    """Insert ``rows`` (instances or dicts) in one transaction; all of them or none.

    ``fields`` limits what is read from each row; every other column gets its
    default, as if the row did not give it (Python ``default``, ``auto_now``,
    ``db_default``, auto primary key). On PostgreSQL the rows go through
    COPY, binary when psycopg can dump every column type in binary.

    Returns the number of rows inserted, or with ``returning=True`` their primary
    keys in the order of ``rows`` (and sets them on instances, as
    ``bulk_create`` does). Bad input raises ``RowValueError``/``RowTypeError``
    (``ValueError``/``TypeError``) naming the row and field, before any SQL.
    """
    target = resolve_target("bulk_insert", model, using)
    writable = resolve_fields(target, None)
    read = None if fields is None else resolve_fields(target, fields)
    rowset = extract(target, rows, writable, insert=True, read=read)
    if not rowset.size:
        return [] if returning else 0
    with transaction.atomic(using=target.using):
        if is_native(target.connection):
            pks = _copy(rowset, need_pks=returning or listening(target.model))
        else:
            pks = _create(rowset, returning)
        rows_written(target.model, [pk for pk in pks if pk is not None], "insert", target.using)
    if returning:
        _mark_saved(rowset, pks)
        return pks
    return rowset.size


def _copy(rowset: RowSet, need_pks: bool) -> list[Any]:
    """COPY the rows; take auto primary keys from the sequence first if they are needed.

    A key the database makes without a sequence (a ``db_default``) cannot be
    taken beforehand: those rows are inserted with ``RETURNING`` instead.
    """
    target = rowset.target
    connection = target.connection
    opts = target.model._meta
    table = opts.db_table
    columns = postgres.table_columns(connection, table)
    with postgres.cursor(connection) as (wrapped, raw):
        pk_index = rowset.fields.index(opts.pk)
        if need_pks and (pk_index in rowset.omittable or pk_index in rowset.left_out):
            sequence = postgres.serial_sequence(wrapped, connection, table, opts.pk.column)
            if sequence is None:
                return _insert_returning(rowset, wrapped, raw)
            _allocate_pks(rowset, pk_index, wrapped, sequence)
        for column_indexes, row_indexes in rowset.groups():
            table_columns = [columns[rowset.fields[j].column] for j in column_indexes]
            values = [rowset.columns[j] for j in column_indexes]
            if len(row_indexes) == rowset.size:
                data = zip(*values, strict=False)  # equal lengths by construction
            else:
                data = (tuple(column[i] for column in values) for i in row_indexes)
            postgres.copy_rows(connection, raw, table, table_columns, data)
    return rowset.columns[pk_index] if need_pks else []


def _allocate_pks(rowset: RowSet, pk_index: int, wrapped: Any, sequence: str) -> None:
    """Fill the rows' missing auto primary keys with values from the table's sequence."""
    if pk_index in rowset.left_out:
        rowset.columns[pk_index] = postgres.allocate_ids(wrapped, sequence, rowset.size)
        rowset.left_out.discard(pk_index)
        return
    pk_values = rowset.columns[pk_index]
    missing = [i for i, v in enumerate(pk_values) if v is OMIT]
    ids = postgres.allocate_ids(wrapped, sequence, len(missing))
    for i, pk in zip(missing, ids, strict=True):
        pk_values[i] = pk
    rowset.omittable.remove(pk_index)


def _insert_returning(rowset: RowSet, wrapped: Any, raw: Any) -> list[Any]:
    """``INSERT ... SELECT ... RETURNING pk`` per chunk; the keys in the order of the rows.

    The rows are staged as ``bulk_upsert`` stages them (``unnest()``, or COPY into
    a temporary table from ``BULK_COPY_MIN_ROWS`` rows); PostgreSQL inserts and
    returns them in the order they are read, as Django's ``bulk_create`` relies on.
    """
    target = rowset.target
    connection = target.connection
    opts = target.model._meta
    returning = f"RETURNING {connection.ops.quote_name(opts.pk.column)}"
    pks: list[Any] = [None] * rowset.size
    for chunk, returned in insert_select(rowset, wrapped, raw, "", returning):
        for i, (pk,) in zip(chunk, returned, strict=True):
            pks[i] = _from_db(opts.pk, pk, connection)
    return pks


def _from_db(model_field: models.Field, value: Any, connection: Any) -> Any:
    """A returned key as the field gives it (its ``from_db_value``, as ``bulk_create`` does)."""
    from_db_value = getattr(model_field, "from_db_value", None)
    return value if from_db_value is None else from_db_value(value, None, connection)


def _create(rowset: RowSet, returning: bool) -> list[Any]:
    """Off PostgreSQL: the ORM's bulk INSERT of the checked values (see ``insert_rows``)."""
    target = rowset.target
    pks = fallback.insert_rows(rowset, range(rowset.size))
    if returning and None in pks:
        raise NotSupportedError(
            f"{target.label}: the {target.connection.vendor} backend does not return the "
            "primary keys of inserted rows."
        )
    return pks


def _mark_saved(rowset: RowSet, pks: list[Any]) -> None:
    """Give inserted instances their keys and mark them saved, as ``bulk_create`` does."""
    if rowset.instances is None:
        return
    target: Target = rowset.target
    attname = target.model._meta.pk.attname
    for obj, pk in zip(rowset.instances, pks, strict=True):
        if not isinstance(obj, models.Model):
            continue  # a dict row among instances
        setattr(obj, attname, pk)
        obj._state.adding = False
        obj._state.db = target.using
