"""``bulk_update``: new values for many rows, matched by a key, in set-based statements."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import models, transaction

from ..conf import perf_settings
from . import fallback, postgres
from .errors import RowTypeError, RowValueError
from .fields import is_native
from .notify import listening, rows_written
from .rows import (
    RowSet,
    Target,
    extract,
    in_memory_order,
    key_values,
    resolve_fields,
    resolve_key,
    resolve_target,
    row_list,
)

__all__ = ["bulk_update"]


def bulk_update(
    model_or_queryset: type[models.Model] | models.QuerySet | models.Manager,
    objs_or_rows: Iterable[models.Model | dict[str, Any]],
    fields: Sequence[str],
    key: str | Sequence[str] = "pk",
    *,
    using: str | None = None,
) -> int:
    """Set ``fields`` on the rows matched by ``key``, in one transaction; return rows updated.

    ``key`` is the primary key (default), a unique field, or the fields of a unique
    constraint; rows whose key matches nothing are skipped. A queryset with
    filters bounds the update: rows outside it are left alone (and not counted).

    PostgreSQL runs one ``UPDATE ... FROM`` per chunk of ``BULK_BATCH_SIZE`` rows,
    joined to ``unnest()`` of one array per column for small chunks and to a
    temporary table filled by COPY from ``BULK_COPY_MIN_ROWS`` rows. Other
    databases look the keys up, then run one parameterized ``UPDATE`` per row with
    ``executemany()`` (correct, not fast). Bad input raises ``RowValueError`` /
    ``RowTypeError`` naming the row and field before any SQL.
    """
    target = resolve_target("bulk_update", model_or_queryset, using)
    key_fields = resolve_key(target, key)
    set_fields = resolve_fields(target, fields)
    if not set_fields:
        raise ValueError(f"{target.label}: fields names no field to update.")
    for model_field in set_fields:
        if model_field in key_fields or model_field.primary_key:
            raise ValueError(
                f"{target.label}: {model_field.name!r} is the key; a key cannot be updated "
                "by the rows it matches."
            )
    rowset, keys = _checked_rows(target, objs_or_rows, key_fields, set_fields)
    if not rowset.size:
        return 0
    with transaction.atomic(using=target.using):
        if is_native(target.connection):
            count, pks = _update_native(rowset, len(key_fields))
        else:
            count, pks = _update_fallback(rowset, key_fields, set_fields, keys)
        rows_written(target.model, pks, "update", target.using)
    return count


def _checked_rows(
    target: Target, objs_or_rows: Iterable[Any], key_fields: list, set_fields: list
) -> tuple[RowSet, list]:
    """The rows as checked columns, and their keys (refusing repeated keys).

    On PostgreSQL the rows are read in memory order (:func:`in_memory_order`):
    the order of the rows does not change what a set-based UPDATE does. Errors
    still name rows by their index in ``objs_or_rows``; elsewhere, where each
    row is its own statement, the caller's order is kept.
    """
    rows = row_list(target, objs_or_rows)
    fields = key_fields + set_fields
    if not is_native(target.connection):
        rowset = extract(target, rows, fields, insert=False, keys=key_fields)
        return rowset, key_values(rowset, key_fields)
    try:
        rowset = extract(target, in_memory_order(rows), fields, insert=False, keys=key_fields)
        return rowset, key_values(rowset, key_fields)
    except (RowValueError, RowTypeError):
        # That error counted rows in memory order: check again in the caller's order, so
        # that it names the first bad row by its index in ``objs_or_rows``.
        rowset = extract(target, rows, fields, insert=False, keys=key_fields)
        key_values(rowset, key_fields)
        raise  # not reached: the same rows fail the same checks in any order


def _update_native(rowset: RowSet, key_count: int) -> tuple[int, list[Any]]:
    target = rowset.target
    connection = target.connection
    opts = target.model._meta
    quote = connection.ops.quote_name
    table = opts.db_table
    table_columns = postgres.table_columns(connection, table)
    columns = [table_columns[f.column] for f in rowset.fields]
    key_columns, set_columns = columns[:key_count], columns[key_count:]
    assignments = ", ".join(f"{quote(c.name)} = s.{quote(c.name)}" for c in set_columns)
    join = " AND ".join(f"t.{quote(c.name)} = s.{quote(c.name)}" for c in key_columns)
    scope, scope_params = _scope(rowset)
    pk = f"t.{quote(opts.pk.column)}"
    need_pks = listening(target.model)
    returning = f" RETURNING {pk}" if need_pks else ""
    count, pks = 0, []
    size, step = rowset.size, perf_settings.BULK_BATCH_SIZE
    use_copy = min(size, step) >= perf_settings.BULK_COPY_MIN_ROWS
    with postgres.cursor(connection) as (wrapped, raw):
        for start in range(0, size, step):
            values = [column[start : start + step] for column in rowset.columns]
            with postgres.staged(connection, wrapped, raw, table, columns, values, use_copy,
                                 [c.name for c in key_columns]) as (source, params):  # fmt: skip
                wrapped.execute(
                    f"UPDATE {quote(table)} AS t SET {assignments} FROM {source} "
                    f"WHERE {join}{scope}{returning}",
                    params + scope_params,
                )
                count += wrapped.rowcount
                if need_pks:
                    pks += [row[0] for row in wrapped.fetchall()]
    return count, pks


def _scope(rowset: RowSet) -> tuple[str, list[Any]]:
    """``AND t.pk IN (the queryset)`` when the call was given a filtered queryset."""
    target = rowset.target
    if not target.filtered:
        return "", []
    assert target.queryset is not None
    query = target.queryset.values_list("pk").query
    try:
        sql, params = query.get_compiler(using=target.using).as_sql()
    except EmptyResultSet:  # .none(), pk__in=[]: no row is in scope
        return " AND FALSE", []
    pk = target.connection.ops.quote_name(target.model._meta.pk.column)
    return f" AND t.{pk} IN ({sql})", list(params)


def _update_fallback(
    rowset: RowSet, key_fields: list, set_fields: list, keys: list
) -> tuple[int, list[Any]]:
    """Off PostgreSQL: find the matching rows' primary keys, then one UPDATE per row."""
    pks = fallback.update_rows(rowset, set_fields, fallback.existing(rowset, key_fields, keys))
    return len(pks), pks
