"""The bytes an export must produce, computed independently of django_perf.streaming.

JSON is what ``json.dumps(rows, cls=DjangoJSONEncoder)`` writes, compact and
UTF-8, with NaN and infinities as null; CSV cells hold the same text unquoted,
quoted where they contain a comma, a double quote, CR or LF.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from uuid import UUID

from django.core.serializers.json import DjangoJSONEncoder

from testproject.blog.models import Event

FORMATS = ("json", "ndjson", "csv")
ALL_FIELDS = [field.attname for field in Event._meta.concrete_fields]
#: Every field the PostgreSQL fast path can write (JSONField payload is re-encoded by Python).
PLAIN_FIELDS = [name for name in ALL_FIELDS if name != "payload"]


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json(value) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)


def rows(fields: list[str], queryset=None) -> list[dict]:
    """``queryset.values(*fields)`` (all events by id by default), NaN and infinities as None."""
    queryset = Event.objects.order_by("id") if queryset is None else queryset
    return [{key: _finite(value) for key, value in row.items()} for row in queryset.values(*fields)]


def json_body(rows: list[dict], envelope: str | None = None) -> bytes:
    text = _json(rows)
    if envelope is not None:
        text = "{" + _json(envelope) + ":" + text + "}"
    return text.encode()


def ndjson_body(rows: list[dict]) -> bytes:
    return "".join(_json(row) + "\n" for row in rows).encode()


def _cell(value) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.date | dt.time | dt.timedelta):
        return DjangoJSONEncoder().default(value)
    if isinstance(value, Decimal | UUID | int):
        return str(value)
    if isinstance(value, dict | list):
        return _json(value)
    return value


def _quote(text: str) -> str:
    if any(char in text for char in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_body(rows: list[dict], fields: list[str]) -> bytes:
    lines = [",".join(_quote(name) for name in fields)]
    lines += [",".join(_quote(_cell(row[name])) for name in fields) for row in rows]
    return "".join(line + "\n" for line in lines).encode()


def body(format: str, fields: list[str], envelope: str | None = None, queryset=None) -> bytes:
    data = rows(fields, queryset)
    if format == "json":
        return json_body(data, envelope)
    if format == "ndjson":
        return ndjson_body(data)
    return csv_body(data, fields)
