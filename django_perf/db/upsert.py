"""``bulk_upsert``: insert rows, or update the ones whose unique key already exists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction
from django.db.models.constants import OnConflict

from . import fallback, postgres
from .fields import is_native
from .notify import rows_written
from .rows import RowSet, extract, key_values, resolve_fields, resolve_key, resolve_target
from .staging import insert_select

__all__ = ["UpsertResult", "bulk_upsert"]


@dataclass(frozen=True)
class UpsertResult:
    """What ``bulk_upsert`` did: rows inserted, rows updated, conflicting rows left alone."""

    inserted: int
    updated: int
    skipped: int = 0  # only with update_fields=[] (ON CONFLICT DO NOTHING)
    inserted_pks: list[Any] = field(default_factory=list, repr=False, compare=False)
    updated_pks: list[Any] = field(default_factory=list, repr=False, compare=False)

    @property
    def total(self) -> int:
        """Rows written (inserted or updated)."""
        return self.inserted + self.updated


def bulk_upsert(
    model: type[models.Model] | models.QuerySet | models.Manager,
    rows: Iterable[models.Model | dict[str, Any]],
    unique_fields: str | Sequence[str],
    update_fields: Sequence[str],
    *,
    using: str | None = None,
) -> UpsertResult:
    """Insert ``rows``; where ``unique_fields`` match an existing row, set ``update_fields``.

    ``unique_fields`` must be the primary key, a unique field or the fields of a
    unique constraint; every row gives them, once per call. New rows get defaults
    as in :func:`bulk_insert`. ``update_fields=[]`` leaves conflicting rows alone
    (``DO NOTHING``; they are counted as ``skipped``). One transaction. A queryset's
    filters do not bound an upsert (a conflict is with any row of the table); a row
    that leaves out an updated column with a ``db_default`` sets it to that default.

    PostgreSQL runs ``INSERT ... SELECT ... ON CONFLICT ... DO UPDATE`` per chunk,
    from ``unnest()`` or a COPY-filled temporary table (as ``bulk_update``), and
    tells inserted from updated rows with ``RETURNING (xmax = 0)``. Other
    databases look the keys up first, update the existing rows and insert the
    others (``INSERT ... ON CONFLICT`` where the backend has it).
    """
    target = resolve_target("bulk_upsert", model, using)
    key_fields = resolve_key(target, unique_fields, role="unique_fields")
    set_fields = resolve_fields(target, update_fields, role="update_fields")
    for model_field in set_fields:
        if model_field in key_fields or model_field.primary_key:
            raise ValueError(
                f"{target.label}: {model_field.name!r} is part of the key; update_fields "
                "holds the fields to change on rows that already exist."
            )
    writable = resolve_fields(target, None)
    rowset = extract(target, rows, writable, insert=True, keys=key_fields)
    keys = key_values(rowset, key_fields, role="unique_fields")
    if not rowset.size:
        return UpsertResult(0, 0)
    with transaction.atomic(using=target.using):
        if is_native(target.connection):
            result = _upsert_native(rowset, key_fields, set_fields)
        else:
            result = _upsert_fallback(rowset, key_fields, set_fields, keys)
        rows_written(target.model, result.inserted_pks + result.updated_pks, "upsert", target.using)
    return result


def _upsert_native(rowset: RowSet, key_fields: list, set_fields: list) -> UpsertResult:
    target = rowset.target
    connection = target.connection
    opts = target.model._meta
    quote = connection.ops.quote_name
    conflict = ", ".join(quote(f.column) for f in key_fields)
    if set_fields:
        assignments = ", ".join(
            f"{quote(f.column)} = EXCLUDED.{quote(f.column)}" for f in set_fields
        )
        action = f"DO UPDATE SET {assignments}"
    else:
        action = "DO NOTHING"
    returning = f"RETURNING t.{quote(opts.pk.column)}, (t.xmax = 0)"
    inserted, updated = [], []
    with postgres.cursor(connection) as (wrapped, raw):
        tail = f"ON CONFLICT ({conflict}) {action} {returning}"
        for _, returned in insert_select(rowset, wrapped, raw, "AS t", tail):
            for pk, was_inserted in returned:
                (inserted if was_inserted else updated).append(pk)
    skipped = rowset.size - len(inserted) - len(updated)
    return UpsertResult(len(inserted), len(updated), skipped, inserted, updated)


def _upsert_fallback(
    rowset: RowSet, key_fields: list, set_fields: list, keys: list
) -> UpsertResult:
    """Off PostgreSQL: update the rows whose key exists, insert the others.

    With ``set_fields`` the insert still handles conflicts on the key, for a row
    another transaction inserted after the lookup. Without, the new rows are
    inserted plainly: the backends' "ignore" (``INSERT OR IGNORE``, ``INSERT
    IGNORE``, a target-less ``DO NOTHING``) would also drop rows that break
    another constraint, where PostgreSQL's ``ON CONFLICT (key) DO NOTHING`` raises.
    """
    found = fallback.existing(rowset, key_fields, keys, whole_table=True)  # as ON CONFLICT
    updated_pks = fallback.update_rows(rowset, set_fields, found) if set_fields else []
    known = {index for index, _ in found}
    new = [i for i in range(rowset.size) if i not in known]
    if set_fields:
        inserted_pks = fallback.insert_rows(
            rowset,
            new,
            on_conflict=OnConflict.UPDATE,
            unique_fields=key_fields,
            update_fields=set_fields,
        )
    else:
        inserted_pks = fallback.insert_rows(rowset, new)
    if None in inserted_pks:  # a backend that returns no keys: look them up
        now = dict(fallback.existing(rowset, key_fields, keys, whole_table=True))
        inserted_pks = [now[i] for i in new if i in now]
    skipped = 0 if set_fields else len(found)
    return UpsertResult(len(inserted_pks), len(updated_pks), skipped, inserted_pks, updated_pks)
