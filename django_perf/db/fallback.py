"""The bulk helpers' path off PostgreSQL: plain ORM and DB-API calls, correct rather than fast.

Used on SQLite, MySQL and Oracle, and on PostgreSQL through psycopg2. Values
arrive checked and converted by ``to_python``; the ORM (or ``get_db_prep_save``
here) prepares them for the backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import models
from django.db.models.constants import OnConflict

from .fields import OMIT
from .rows import RowSet

__all__ = ["existing", "insert_rows", "instances", "update_rows"]

LOOKUP_CHUNK = 500


def instances(rowset: RowSet, indexes: Sequence[int]) -> list[models.Model]:
    """Fresh model instances for rows ``indexes``; omitted columns keep the model's defaults."""
    model = rowset.target.model
    attnames = [f.attname for f in rowset.fields]
    objs = []
    for i in indexes:
        values = {
            attname: column[i]
            for attname, column in zip(attnames, rowset.columns, strict=True)
            if column[i] is not OMIT
        }
        objs.append(model(**values))
    return objs


def insert_rows(
    rowset: RowSet,
    indexes: Sequence[int],
    *,
    on_conflict: OnConflict | None = None,
    unique_fields: Sequence[models.Field] = (),
    update_fields: Sequence[models.Field] = (),
) -> list[Any]:
    """INSERT rows ``indexes`` as checked; return their primary keys (None where not known).

    What ``bulk_create`` does, but ``raw`` as ``Model.save_base(raw=True)``: no
    ``pre_save()``, which would overwrite the ``auto_now`` values a row gives
    (the checks already filled in those it does not, as on PostgreSQL). Rows are
    inserted in groups of the columns they give (an ``OMIT`` column is left out,
    so the database fills in its default).
    """
    target = rowset.target
    connection = target.connection
    queryset = target.model._base_manager.using(target.using)
    pk_field = target.model._meta.pk
    returns = connection.features.can_return_rows_from_bulk_insert and (
        on_conflict in (None, OnConflict.UPDATE)
    )
    wanted = set(indexes)
    pks: dict[int, Any] = {}
    for column_indexes, row_indexes in rowset.groups():
        rows = [i for i in row_indexes if i in wanted]
        if not rows:
            continue
        fields = [rowset.fields[j] for j in column_indexes]
        objs = instances(rowset, rows)
        step = max(connection.ops.bulk_batch_size(fields, objs), 1)
        for start in range(0, len(objs), step):
            returned = queryset._insert(
                objs[start : start + step],
                fields=fields,
                returning_fields=[pk_field] if returns else None,
                raw=True,
                using=target.using,
                on_conflict=on_conflict,
                update_fields=list(update_fields) or None,
                unique_fields=list(unique_fields) or None,
            )
            chunk = rows[start : start + step]
            if returns:
                pks.update(zip(chunk, (row[0] for row in returned), strict=True))
            elif pk_field in fields:
                pks.update((i, obj.pk) for i, obj in zip(chunk, objs[start:], strict=False))
    return [pks.get(i) for i in indexes]


def existing(
    rowset: RowSet, key_fields: Sequence[models.Field], keys: list, *, whole_table: bool = False
) -> list[tuple[int, Any]]:
    """``(row index, primary key)`` of the rows whose key exists, within the call's queryset.

    ``whole_table`` looks in the whole table instead (an upsert conflicts with any row).
    """
    target = rowset.target
    if target.queryset is None or whole_table:
        queryset = target.model._base_manager.all()
    else:
        queryset = target.queryset  # (never tested for truth: that would run it)
    queryset = queryset.using(target.using)
    names = [f.attname for f in key_fields]
    by_key = {k: i for i, k in enumerate(keys)}
    found = []
    for start in range(0, len(keys), LOOKUP_CHUNK):
        chunk = keys[start : start + LOOKUP_CHUNK]
        if len(names) == 1:
            matches = queryset.filter(**{f"{names[0]}__in": chunk})
        else:
            condition = models.Q()
            for values in chunk:
                condition |= models.Q(**dict(zip(names, values, strict=True)))
            matches = queryset.filter(condition)
        for row in matches.values_list("pk", *names):
            index = by_key.get(row[1] if len(names) == 1 else tuple(row[1:]))
            if index is not None:
                found.append((index, row[0]))
    found.sort()
    return found


def update_rows(
    rowset: RowSet, set_fields: Sequence[models.Field], found: list[tuple[int, Any]]
) -> list[Any]:
    """``UPDATE ... WHERE pk = %s`` for each ``(row index, pk)`` in ``found``; return the pks.

    A row that leaves a column to its database default (``OMIT``) sets it to that
    default, as PostgreSQL's upsert does (``EXCLUDED`` holds the default there).
    """
    if not found:
        return []
    target = rowset.target
    connection = target.connection
    opts = target.model._meta
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in set_fields)
    sql = f"UPDATE {quote(opts.db_table)} SET {assignments} WHERE {quote(opts.pk.column)} = %s"
    columns = [rowset.column(f) for f in set_fields]
    omitting = [(i, pk) for i, pk in found if any(column[i] is OMIT for column in columns)]
    if omitting:
        _update_with_defaults(rowset, set_fields, columns, omitting)
        skip = {i for i, _ in omitting}
        plain = [(i, pk) for i, pk in found if i not in skip]
    else:
        plain = found
    params = []
    for index, pk in plain:
        row = [
            model_field.get_db_prep_save(column[index], connection)
            for model_field, column in zip(set_fields, columns, strict=True)
        ]
        row.append(opts.pk.get_db_prep_value(pk, connection))
        params.append(row)
    if params:
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)
    return [pk for _, pk in found]


def _update_with_defaults(
    rowset: RowSet,
    set_fields: Sequence[models.Field],
    columns: list[list[Any]],
    found: list[tuple[int, Any]],
) -> None:
    """One ORM update per row, the ``OMIT`` columns set to their ``db_default`` expression."""
    target = rowset.target
    manager = target.model._base_manager.using(target.using)
    for index, pk in found:
        values = {
            f.attname: f.db_default if column[index] is OMIT else column[index]
            for f, column in zip(set_fields, columns, strict=True)
        }
        manager.filter(pk=pk).update(**values)
