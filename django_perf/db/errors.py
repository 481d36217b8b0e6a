"""Errors the bulk helpers raise for bad input, before any SQL runs."""

from __future__ import annotations

__all__ = ["RowTypeError", "RowValueError"]


class _RowError:
    """Mixin: where in the input the problem is (row index and field), for code that handles it."""

    def __init__(self, message: str, *, index: int | None = None, field: str | None = None):
        super().__init__(message)  # type: ignore[call-arg]
        self.index = index
        self.field = field


class RowValueError(_RowError, ValueError):
    """A row or value is wrong (unknown field, missing key, duplicate key, bad value)."""


class RowTypeError(_RowError, TypeError):
    """A row or value has a type the helper cannot write (a tuple row, an expression, ...)."""
