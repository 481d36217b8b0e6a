"""What a streamed queryset selects: each output column's name, value kind and SQL expression.

The plan is made without touching the database, so that a view (sync or async)
can decide the response's headers before any row is read. The Python path
uses the kinds to prepare values for the encoders; the PostgreSQL fast path
uses them to decide whether the database can write the text itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import FieldError
from django.db import connections
from django.db.models import Field, QuerySet
from django.db.models.expressions import Col

__all__ = ["Column", "QueryPlan", "plan_query"]

#: Django's internal field types, by the kind of value they hold.
KINDS = {
    "AutoField": "int",
    "BigAutoField": "int",
    "SmallAutoField": "int",
    "IntegerField": "int",
    "BigIntegerField": "int",
    "SmallIntegerField": "int",
    "PositiveIntegerField": "int",
    "PositiveBigIntegerField": "int",
    "PositiveSmallIntegerField": "int",
    "CharField": "text",
    "TextField": "text",
    "SlugField": "text",
    "EmailField": "text",
    "URLField": "text",
    "FilePathField": "text",
    "FileField": "text",
    "UUIDField": "uuid",
    "BooleanField": "bool",
    "FloatField": "float",
    "DecimalField": "decimal",
    "DateField": "date",
    "DateTimeField": "datetime",
    "TimeField": "time",
    "DurationField": "duration",
    "JSONField": "json",
    "BinaryField": "binary",
}


@dataclass(frozen=True)
class Column:
    """One output column: its key in each row, what it holds, and how it is computed."""

    name: str
    kind: str  # a value of KINDS, or "other" (an expression or a field type not listed)
    field: Field | None
    expression: Any
    #: A table column read as the database stores it: no expression, no from_db_value.
    plain: bool


@dataclass
class QueryPlan:
    """A ``values()`` queryset ready to stream, and its columns in row order."""

    queryset: QuerySet
    alias: str
    columns: list[Column]

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def vendor(self) -> str:
        return connections[self.alias].vendor


def _value_field(field: Field | None) -> Field | None:
    """The field whose values a column holds: a foreign key holds its target's."""
    while field is not None and field.is_relation and getattr(field, "target_field", None):
        if field.target_field is field:
            break
        field = field.target_field
    return field


def _kind(field: Field | None) -> str:
    field = _value_field(field)
    if field is None:
        return "other"
    return KINDS.get(field.get_internal_type(), "other")


def selected_names(queryset: QuerySet) -> list[str]:
    """The row keys of a ``values()`` queryset, in column order (as ``ValuesIterable``)."""
    query = queryset.query
    if getattr(query, "selected", None):
        return list(query.selected)
    return [*query.extra_select, *query.values_select, *query.annotation_select]


def plan_query(queryset: QuerySet, fields: list[str] | tuple[str, ...] | None) -> QueryPlan:
    """Turn ``queryset`` into ``queryset.values(*fields)`` and describe its columns.

    Without ``fields`` the queryset's own ``values()``/``values_list()`` fields
    are kept, else every concrete field (as ``values()`` gives them).
    """
    if not isinstance(queryset, QuerySet):
        raise TypeError(
            f"stream_queryset() needs a QuerySet, got {type(queryset).__name__}; "
            "use stream_json(), stream_ndjson() or stream_csv() for other iterables."
        )
    if fields is not None:
        if isinstance(fields, str) or not all(isinstance(f, str) for f in fields):
            raise TypeError(
                f"fields must be a list of field names, got {fields!r}; e.g. fields=['id', 'name']."
            )
        names = tuple(fields)
    else:
        names = tuple(getattr(queryset, "_fields", None) or ())
        if names:
            # values("kind").annotate(n=Count("id")): the annotation is selected but not in
            # _fields, and values(*_fields) alone would mask it out (keeping the GROUP BY).
            selected = queryset.query.annotation_select
            names += tuple(name for name in selected if name not in names)
    values = queryset.values(*names)  # raises FieldError for an unknown name, before any SQL
    alias = values.db
    compiler = values.query.get_compiler(alias)
    compiler.setup_query()
    keys = selected_names(values)
    columns = []
    for name, (expression, _sql, _alias) in zip(keys, compiler.select, strict=True):
        try:
            field = expression.output_field
        except (AttributeError, FieldError):
            field = None
        kind = _kind(field)
        if kind == "binary":
            raise ValueError(
                f"Column {name!r} is a BinaryField, which JSON and CSV cannot hold; "
                "leave it out of fields, or annotate an encoded text version of it."
            )
        plain = isinstance(expression, Col) and not compiler.get_converters([expression])
        columns.append(Column(name, kind, _value_field(field), expression, plain))
    return QueryPlan(values, alias, columns)
