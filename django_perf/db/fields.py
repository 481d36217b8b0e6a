"""How a model field's values are checked and converted for a bulk write, a column at a time.

Every value goes through its field's own conversion (``to_python``, then on
PostgreSQL ``get_db_prep_save``), so a bulk write stores what ``save()`` would.
Calling those per value costs more than the COPY itself, so a column whose
values already have the exact Python type the field produces (``int`` for an
``IntegerField``, aware ``datetime`` for a ``DateTimeField``, ...) is checked
as a whole with C-speed passes (a set of types, ``min``/``max``, lengths) and
passed through unchanged. Any other column is converted value by value; the
first value that cannot be converted raises an error naming its row and field.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from .errors import RowTypeError, RowValueError

__all__ = ["MISSING", "OMIT", "Converter", "Missing", "Omit", "is_native"]

NoneType = type(None)


class Missing:
    """The type of MISSING."""

    def __repr__(self) -> str:
        return "MISSING"


class Omit:
    """The type of OMIT."""

    def __repr__(self) -> str:
        return "OMIT"


#: A row gives no value for the field (the helper applies the field's default).
MISSING: Any = Missing()
#: Leave the column out for this row so that the database applies its default.
OMIT: Any = Omit()

_CONVERSION_METHODS = ("to_python", "get_prep_value", "get_db_prep_value", "get_db_prep_save")

# Field classes whose PostgreSQL conversion leaves values of these exact types as they are
# (or wraps them in something psycopg dumps identically), so such columns need no per-value work.
_PASS_THROUGH: dict[type[models.Field], frozenset[type]] = {
    models.SmallIntegerField: frozenset({int}),
    models.IntegerField: frozenset({int}),
    models.BigIntegerField: frozenset({int}),
    models.PositiveSmallIntegerField: frozenset({int}),
    models.PositiveIntegerField: frozenset({int}),
    models.PositiveBigIntegerField: frozenset({int}),
    models.SmallAutoField: frozenset({int}),
    models.AutoField: frozenset({int}),
    models.BigAutoField: frozenset({int}),
    models.CharField: frozenset({str}),
    models.TextField: frozenset({str}),
    models.BooleanField: frozenset({bool}),
    models.FloatField: frozenset({float}),
    models.DecimalField: frozenset({decimal.Decimal}),
    models.DateTimeField: frozenset({datetime.datetime}),
    models.DateField: frozenset({datetime.date}),
    models.TimeField: frozenset({datetime.time}),
    models.DurationField: frozenset({datetime.timedelta}),
    models.UUIDField: frozenset({uuid.UUID}),
    models.BinaryField: frozenset({bytes}),
}


def is_native(connection: BaseDatabaseWrapper) -> bool:
    """Whether ``connection`` is PostgreSQL through psycopg 3 (COPY, unnest, server binding)."""
    if connection.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3


def _known_base(field: models.Field) -> type[models.Field] | None:
    """The nearest Django field class in ``_PASS_THROUGH``, if ``field`` converts like it."""
    cls = type(field)
    for base in cls.__mro__:
        if base in _PASS_THROUGH:
            same = all(getattr(cls, m) is getattr(base, m) for m in _CONVERSION_METHODS)
            return base if same else None
    return None


def _identity(value: Any) -> Any:
    return value


class Converter:
    """Checks and converts the values of one field for writing through one connection.

    ``native`` (PostgreSQL with psycopg 3) converts all the way to what the driver
    dumps; elsewhere values stop at ``to_python`` and the fallback writer (the ORM)
    prepares them for its backend.
    """

    def __init__(self, field: models.Field, connection: BaseDatabaseWrapper) -> None:
        self.field = field
        self.name = field.name
        self.connection = connection
        self.native = is_native(connection)
        self.nullable = field.null
        self.related = bool(field.is_relation and (field.many_to_one or field.one_to_one))
        target = field.target_field if self.related else field
        self.target = target
        self.internal_type = target.get_internal_type()
        self.use_tz = settings.USE_TZ
        base = _known_base(target)
        if self.related and any(
            getattr(type(field), m) is not getattr(models.ForeignKey, m)
            for m in _CONVERSION_METHODS
        ):
            base = None
        self.base = base
        self.fast_types: frozenset[type] = _PASS_THROUGH[base] if base else frozenset()
        if self.fast_types and self.nullable:
            self.fast_types = self.fast_types | {NoneType}
        self.bounds: tuple[int, int] | None = None
        if self.fast_types & {int}:
            self.bounds = connection.ops.integer_field_range(self.internal_type)
        self.max_length: int | None = (
            target.max_length if base is models.CharField and target.max_length else None
        )
        self.decimal_limit: decimal.Decimal | None = None
        if isinstance(target, models.DecimalField) and target.max_digits is not None:
            places = target.decimal_places or 0
            # Values that PostgreSQL would round up to 10 ** (max_digits - places) overflow.
            self.decimal_limit = decimal.Decimal(10) ** (
                target.max_digits - places
            ) - decimal.Decimal(5).scaleb(-(places + 1))
        self.is_json = isinstance(field, models.JSONField)

    # --- whole columns --------------------------------------------------------

    def column(
        self,
        values: list,
        where: Callable[[int], str],
        positions: Sequence[int],
        types: set[type] | None = None,
    ) -> list:
        """Return ``values`` ready to write (the same list if nothing needed converting).

        ``positions[i]`` is the input row index of ``values[i]``; ``where(index)``
        says where that row is, for error messages; ``types`` is the set of the
        values' types, if the caller has it already.
        """
        if self.native and self.fast_types:
            if types is None:
                types = set(map(type, values))
            if types <= self.fast_types and self._fast_check(values, types):
                return values
        return [self.value(v, where, positions[i]) for i, v in enumerate(values)]

    def _fast_check(self, values: list, types: set[type]) -> bool:
        present = [v for v in values if v is not None] if NoneType in types else values
        if not present:
            return True
        try:
            if self.bounds is not None:
                low, high = self.bounds
                return low <= min(present) and max(present) <= high
            if self.max_length is not None:
                return max(map(len, present)) <= self.max_length
            if self.decimal_limit is not None:
                limit = self.decimal_limit
                return -limit < min(present) and max(present) < limit
            if self.base is models.DateTimeField and self.use_tz:
                return None not in map(attrgetter("tzinfo"), present)
        except (ArithmeticError, TypeError):  # NaN and other oddities: check value by value
            return False
        return True

    # --- one value ------------------------------------------------------------

    def value(self, value: Any, where: Callable[[int], str], index: int) -> Any:
        """Convert one value, raising ``RowValueError``/``RowTypeError`` that name its place."""
        try:
            return self._convert(value)
        except ValidationError as error:
            message = f"{where(index)}: {'; '.join(error.messages)}"
            raise RowValueError(message, index=index, field=self.name) from None
        except TypeError as error:
            raise RowTypeError(f"{where(index)}: {error}", index=index, field=self.name) from None
        except (ValueError, ArithmeticError) as error:
            raise RowValueError(f"{where(index)}: {error}", index=index, field=self.name) from None

    def _convert(self, value: Any) -> Any:
        if hasattr(value, "resolve_expression"):
            raise TypeError(
                f"{value!r} is an expression; bulk writes take plain values "
                "(use QuerySet.update() for expressions)"
            )
        if self.related and isinstance(value, models.Model):
            value = self._related_key(value)
        field = self.field
        value = field.to_python(value)
        if value is None:
            if not self.nullable:
                raise ValueError(f"None is not allowed: {self.name!r} is NOT NULL")
            return None
        self._check(value)
        if self.is_json:
            # Serialize now (with the field's encoder), so that a value JSON cannot encode
            # fails before any SQL; the native path sends this very text.
            text = _json_text(value, field.encoder)
            if not self.native:
                return value
            from psycopg.types.json import Jsonb

            return Jsonb(text, dumps=_identity)
        if not self.native:
            return value
        if isinstance(value, str) and type(value) is not str:
            value = str.__str__(value)  # str enums and lazy strings: their text, not their name
        return field.get_db_prep_save(value, self.connection)

    def _related_key(self, obj: models.Model) -> Any:
        related_model = self.field.related_model
        if not isinstance(obj, related_model):
            raise TypeError(
                f"{obj!r} is a {type(obj).__name__}; {self.name!r} takes "
                f"{related_model.__name__} instances or their keys"
            )
        key = getattr(obj, self.target.attname)
        if key is None:
            raise ValueError(f"the related {related_model.__name__} is not saved yet")
        return key

    def _check(self, value: Any) -> None:
        if self.bounds is not None and isinstance(value, int):
            low, high = self.bounds
            if not low <= value <= high:
                raise ValueError(
                    f"{value} is out of range for {self.internal_type} ({low} to {high})"
                )
        elif self.max_length is not None and isinstance(value, str):
            if len(value) > self.max_length:
                raise ValueError(
                    f"the value has {len(value)} characters; "
                    f"the column holds at most {self.max_length}"
                )
        elif self.decimal_limit is not None and isinstance(value, decimal.Decimal):
            if not value.is_finite():
                raise ValueError(f"{value} is not a finite number")
            if abs(value) >= self.decimal_limit:
                target = self.target
                raise ValueError(
                    f"{value} does not fit numeric({target.max_digits}, "
                    f"{target.decimal_places}): at most "
                    f"{target.max_digits - target.decimal_places} digits before the point"
                )


def _json_text(value: Any, encoder: type[json.JSONEncoder] | None) -> str:
    """``value`` as JSON text, refusing NaN and Infinity (not JSON: the databases refuse them)."""
    try:
        return json.dumps(value, cls=encoder, allow_nan=False)
    except ValueError as error:  # "Out of range float values are not JSON compliant"
        raise ValueError(f"{error}: NaN and Infinity have no JSON form") from None
