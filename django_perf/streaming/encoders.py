"""Encode rows as JSON, NDJSON and CSV bytes, a chunk of rows per call.

Values are written the way Django's ``DjangoJSONEncoder`` writes them
(datetimes with milliseconds and ``Z``, ``Decimal`` and ``UUID`` as strings,
durations in ISO 8601), compactly (no spaces) and in UTF-8. orjson does the
work when it is installed, the standard library otherwise; for rows read from
a queryset both give the same bytes, because floats are written with
Python's ``repr`` (as ``json`` and ``JsonResponse`` write them) rather than
orjson's own spelling. Floats that JSON cannot hold (NaN, infinities) become
``null``. CSV cells hold the same text as the JSON values, without quotes.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.core.serializers.json import DjangoJSONEncoder

try:
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is not installed
    orjson = None

__all__ = [
    "JSON_ENCODERS",
    "JSONBackend",
    "OrjsonBackend",
    "StdlibBackend",
    "csv_cell",
    "csv_lines",
    "json_backend",
    "pg_utc_timestamp",
]

JSON_ENCODERS = ("auto", "orjson", "json")

#: DjangoJSONEncoder's rules for datetime, date, time, timedelta, Decimal, UUID and lazy strings.
django_default = DjangoJSONEncoder().default

Convert = Callable[[Any], Any]


def finite_or_none(value: Any) -> Any:
    """Replace NaN and infinities, which JSON cannot represent, by None (recursively)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(item) for item in value]
    return value


class JSONBackend:
    """One JSON library, used through the three calls the streams need."""

    name = ""

    def dumps(self, value: Any) -> bytes:
        """One value as JSON bytes."""
        raise NotImplementedError

    def items(self, rows: Sequence[Any]) -> bytes:
        """Rows as JSON array items joined by commas, without the brackets."""
        raise NotImplementedError

    def lines(self, rows: Sequence[Any]) -> bytes:
        """Rows as JSON lines, each ending with a newline."""
        raise NotImplementedError

    def float_converter(self) -> Convert | None:
        """How to prepare a float before encoding so it comes out as ``repr()`` spells it."""
        return None

    def deep_float_converter(self) -> Convert | None:
        """``float_converter`` for floats anywhere inside dicts and lists (JSON columns)."""
        return None


class StdlibBackend(JSONBackend):
    """The standard library's ``json`` with ``DjangoJSONEncoder``, compact and in UTF-8."""

    name = "json"

    def __init__(self) -> None:
        self._encoder = DjangoJSONEncoder(
            separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )

    def _encode(self, value: Any) -> str:
        try:
            return self._encoder.encode(value)
        except ValueError:
            # allow_nan=False raised on NaN or an infinity: write those as null instead.
            return self._encoder.encode(finite_or_none(value))

    def dumps(self, value: Any) -> bytes:
        return self._encode(value).encode()

    def items(self, rows: Sequence[Any]) -> bytes:
        if not isinstance(rows, list):
            rows = list(rows)
        return self._encode(rows)[1:-1].encode()

    def lines(self, rows: Sequence[Any]) -> bytes:
        return "".join([self._encode(row) + "\n" for row in rows]).encode()


ORJSON_INT_MIN, ORJSON_INT_MAX = -(2**63), 2**64 - 1  # the integers orjson writes


class OrjsonBackend(JSONBackend):
    """orjson with DjangoJSONEncoder's formats for the types it would spell differently."""

    name = "orjson"

    def __init__(self) -> None:
        if orjson is None:
            raise ImportError(
                'orjson is not installed; install it with pip install "django-perf[speedups]" '
                "or set DJANGO_PERF['STREAMING_JSON_ENCODER'] to 'json'."
            )
        self._dumps = orjson.dumps
        self._fragment = orjson.Fragment
        # orjson writes datetimes with microseconds and "+00:00"; Django writes milliseconds
        # and "Z". Passing them through to the default keeps Django's format.
        self._option = orjson.OPT_PASSTHROUGH_DATETIME
        self._line_option = self._option | orjson.OPT_APPEND_NEWLINE
        self._fallback = StdlibBackend()

    def dumps(self, value: Any) -> bytes:
        try:
            return self._dumps(value, default=django_default, option=self._option)
        except orjson.JSONEncodeError:
            return self._fallback.dumps(value)

    def items(self, rows: Sequence[Any]) -> bytes:
        try:
            return self._dumps(rows, default=django_default, option=self._option)[1:-1]
        except orjson.JSONEncodeError:
            # e.g. an integer beyond 64 bits, which orjson refuses and json writes.
            return self._fallback.items(rows)

    def lines(self, rows: Sequence[Any]) -> bytes:
        dumps, option = self._dumps, self._line_option
        try:
            return b"".join([dumps(row, default=django_default, option=option) for row in rows])
        except orjson.JSONEncodeError:
            return self._fallback.lines(rows)

    def float_converter(self) -> Convert:
        fragment = self._fragment

        def convert(value: Any) -> Any:
            if type(value) is not float:
                return value
            if not math.isfinite(value):
                return None
            return fragment(repr(value).encode())

        return convert

    def deep_float_converter(self) -> Convert:
        convert_float = self.float_converter()
        fragment = self._fragment

        def convert(value: Any) -> Any:
            if isinstance(value, dict):
                return {key: convert(item) for key, item in value.items()}
            if isinstance(value, list | tuple):
                return [convert(item) for item in value]
            if type(value) is int and not ORJSON_INT_MIN <= value <= ORJSON_INT_MAX:
                # orjson refuses it, and the stdlib fallback cannot read the fragments made
                # for the row's floats: write its digits here (JSON numbers have no limit).
                return fragment(str(value).encode())
            return convert_float(value)

        return convert


_backends: dict[str, JSONBackend] = {}


def json_backend(name: str = "auto") -> JSONBackend:
    """The JSON backend for ``name`` ("auto": orjson when installed, else json)."""
    if name not in JSON_ENCODERS:
        raise ValueError(f"JSON encoder must be one of {', '.join(JSON_ENCODERS)}, not {name!r}.")
    if name == "auto":
        name = "orjson" if orjson is not None else "json"
    backend = _backends.get(name)
    if backend is None:
        backend = _backends[name] = OrjsonBackend() if name == "orjson" else StdlibBackend()
    return backend


def pg_utc_timestamp(value: str | None) -> str | None:
    """PostgreSQL's ISO text of a UTC timestamptz, as DjangoJSONEncoder writes the datetime.

    ``2024-01-02 03:04:05.6+00`` becomes ``2024-01-02T03:04:05.600Z``: milliseconds
    (truncated) only when there are microseconds, ``Z`` for UTC.
    """
    if value is None:
        return None
    if len(value) == 22:  # no fraction
        return value[:10] + "T" + value[11:19] + "Z"
    return value[:10] + "T" + value[11:19] + "." + value[20:-3].ljust(3, "0")[:3] + "Z"


# --- CSV -------------------------------------------------------------------------------------

_CSV_QUOTE_CHARS = frozenset(',"\r\n')


def csv_float(value: Any) -> Any:
    """A float cell: ``repr()`` as JSON writes it, empty for NaN and infinities."""
    if type(value) is not float:
        return value
    return repr(value) if math.isfinite(value) else None


def csv_bool(value: Any) -> Any:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value


def csv_temporal(value: Any) -> Any:
    """A datetime, date, time or timedelta cell, spelled as DjangoJSONEncoder spells it."""
    if isinstance(value, datetime.date | datetime.time | datetime.timedelta):
        return django_default(value)
    return value


def csv_json(value: Any) -> Any:
    """A structured value (a JSONField's dict or list) as compact JSON text."""
    if value is None or isinstance(value, str | int | float):
        return csv_cell(value)
    return json_backend("json").dumps(value).decode()


def csv_cell(value: Any) -> Any:
    """Any value as a CSV cell: the same text as its JSON value, strings unquoted."""
    if value is None or type(value) is str or type(value) is int:
        return value
    if value is True or value is False:
        return csv_bool(value)
    if isinstance(value, float):
        return csv_float(float(value))
    if isinstance(value, datetime.date | datetime.time | datetime.timedelta):
        return django_default(value)
    if isinstance(value, Decimal | UUID | str | int):
        return str(value)
    if isinstance(value, dict | list | tuple):
        return json_backend("json").dumps(value).decode()
    if isinstance(value, bytes | bytearray | memoryview):
        # str() would write the repr (b'...'), text no reader can turn back into the bytes.
        raise TypeError(
            f"A CSV cell cannot hold {type(value).__name__} (JSON refuses it too); "
            "decode it, or encode it as text (base64, hex) before streaming."
        )
    return str(value)


def _quoted(cell: Any) -> str:
    if cell is None:
        return ""
    text = cell if isinstance(cell, str) else str(cell)
    if _CSV_QUOTE_CHARS.isdisjoint(text):
        return text
    return '"' + text.replace('"', '""') + '"'


def _csv_by_hand(rows: Iterable[Sequence[Any]]) -> str:
    """The csv module's output, quoting carriage returns too (Python 3.11 does not)."""
    lines = []
    for row in rows:
        if len(row) == 1 and row[0] in (None, ""):
            lines.append('""\n')  # as csv.writer: a lone empty field must not be a blank line
        else:
            lines.append(",".join([_quoted(cell) for cell in row]) + "\n")
    return "".join(lines)


def csv_lines(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows of cells (str, int or None) as CSV lines ending in ``\\n``, minimal quoting.

    Fields holding a comma, a double quote, a carriage return or a line feed are
    quoted, as PostgreSQL's ``COPY ... (FORMAT csv)`` quotes them; None and the
    empty string are both an empty field.
    """
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    text = buffer.getvalue()
    if "\r" in text:
        # Rare: a value holds a carriage return, which csv.writer leaves unquoted before 3.12
        # when the line terminator is "\n". Redo this chunk by hand.
        text = _csv_by_hand(rows)
    return text.encode()


def encode_text(value: Any) -> bytes:
    """A JSON string for ``value`` (used for envelope keys and CSV headers)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
