"""Stable cache keys for function arguments: the same values give the same key in every process.

A key must not depend on anything that changes between runs or processes:
``repr()`` of an object holds its address, ``hash()`` of a string is
randomized per process, dict order and set order are incidental. Values
are encoded by type into bytes (sets and dicts sorted by their encoding,
OrderedDicts in their order, which their equality depends on),
and the bytes hashed with BLAKE2b. A model instance is keyed by its label and
primary key; an object may define ``__cache_key__()`` returning a keyable
value; anything else is refused with a ``TypeError`` naming the argument.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["Unkeyable", "digest", "encode"]


class Unkeyable(TypeError):
    """A value that has no stable encoding; ``path`` says where it sits in the argument."""

    def __init__(self, value: Any, path: str, reason: str) -> None:
        super().__init__(reason)
        self.value = value
        self.path = path
        self.reason = reason


def _str(value: str, out: list[bytes], path: str) -> None:
    data = value.encode("utf-8", "surrogatepass")
    out.append(b"s%d:" % len(data))
    out.append(data)


def _int(value: int, out: list[bytes], path: str) -> None:
    out.append(b"i%d;" % value)


def _bytes(value: bytes, out: list[bytes], path: str) -> None:
    out.append(b"b%d:" % len(value))
    out.append(bytes(value))


def _float(value: float, out: list[bytes], path: str) -> None:
    out.append(b"f" + value.hex().encode() + b";")


def _none(value: Any, out: list[bytes], path: str) -> None:
    out.append(b"N")


def _bool(value: bool, out: list[bytes], path: str) -> None:
    out.append(b"T" if value else b"F")


def _sequence(tag: bytes) -> Callable[[Any, list[bytes], str], None]:
    def encode_items(value: Any, out: list[bytes], path: str) -> None:
        out.append(tag + b"%d(" % len(value))
        for index, item in enumerate(value):
            encode(item, out, f"{path}[{index}]")
        out.append(b")")

    return encode_items


def _set(value: Any, out: list[bytes], path: str) -> None:
    parts = []
    for item in value:
        part: list[bytes] = []
        encode(item, part, f"{path} (an element)")
        parts.append(b"".join(part))
    parts.sort()
    out.append(b"S%d(" % len(parts))
    out.extend(parts)
    out.append(b")")


def _items(value: dict[Any, Any], path: str) -> list[tuple[bytes, bytes]]:
    """The encoded (key, value) pairs of a mapping, in its iteration order."""
    items = []
    for key, item in value.items():
        encoded_key: list[bytes] = []
        encode(key, encoded_key, f"{path} (a key)")
        encoded_value: list[bytes] = []
        encode(item, encoded_value, f"{path}[{key!r}]")
        items.append((b"".join(encoded_key), b"".join(encoded_value)))
    return items


def _mapping(tag: bytes, items: list[tuple[bytes, bytes]], out: list[bytes]) -> None:
    out.append(tag + b"%d(" % len(items))
    for encoded_key, encoded_value in items:
        out.append(encoded_key)
        out.append(encoded_value)
    out.append(b")")


def _dict(value: dict[Any, Any], out: list[bytes], path: str) -> None:
    _mapping(b"d", sorted(_items(value, path)), out)


def _ordered_dict(value: OrderedDict[Any, Any], out: list[bytes], path: str) -> None:
    """In insertion order: two OrderedDicts in another order are not equal."""
    _mapping(b"o", _items(value, path), out)


def _text(tag: bytes, render: Callable[[Any], str]) -> Callable[[Any, list[bytes], str], None]:
    def encode_text(value: Any, out: list[bytes], path: str) -> None:
        data = render(value).encode()
        out.append(tag + b"%d:" % len(data))
        out.append(data)

    return encode_text


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


ENCODERS: dict[type, Callable[[Any, list[bytes], str], None]] = {
    str: _str,
    int: _int,
    bool: _bool,
    float: _float,
    bytes: _bytes,
    bytearray: _bytes,
    type(None): _none,
    tuple: _sequence(b"t"),
    list: _sequence(b"l"),
    frozenset: _set,
    set: _set,
    OrderedDict: _ordered_dict,  # before dict: its subclasses are matched in this order
    dict: _dict,
    decimal.Decimal: _text(b"D", str),
    datetime.datetime: _text(b"W", datetime.datetime.isoformat),
    datetime.date: _text(b"Y", datetime.date.isoformat),
    datetime.time: _text(b"H", datetime.time.isoformat),
    datetime.timedelta: _text(b"R", lambda d: str(d // datetime.timedelta(microseconds=1))),
    uuid.UUID: _text(b"U", lambda u: u.hex),
}


def encode(value: Any, out: list[bytes], path: str) -> None:
    """Append the stable encoding of ``value`` to ``out``; raise Unkeyable if it has none."""
    encoder = ENCODERS.get(type(value))
    if encoder is not None:
        encoder(value, out, path)
        return
    _encode_other(value, out, path)


def _encode_other(value: Any, out: list[bytes], path: str) -> None:
    cls = type(value)
    custom = getattr(value, "__cache_key__", None)
    if custom is not None and not isinstance(value, type):
        out.append(b"K")
        _str(_qualname(cls), out, path)
        encode(custom(), out, f"{path}.__cache_key__()")
        return
    if isinstance(value, enum.Enum):
        out.append(b"E")
        _str(_qualname(cls), out, path)
        encode(value.value, out, f"{path}.value")
        return
    if isinstance(value, type):
        out.append(b"C")
        _str(_qualname(value), out, path)
        return
    meta = getattr(value, "_meta", None)
    if meta is not None and hasattr(meta, "label") and hasattr(value, "pk"):  # a model instance
        if value.pk is None:
            raise Unkeyable(value, path, f"an unsaved {meta.label} (its primary key is None)")
        out.append(b"M")
        _str(meta.label, out, path)
        encode(value.pk, out, f"{path}.pk")
        return
    if dataclasses.is_dataclass(value):
        out.append(b"A")
        _str(_qualname(cls), out, path)
        fields = dataclasses.fields(value)
        out.append(b"%d(" % len(fields))
        for f in fields:
            _str(f.name, out, path)
            encode(getattr(value, f.name), out, f"{path}.{f.name}")
        out.append(b")")
        return
    for base, encoder in ENCODERS.items():  # subclasses of str, int, dict, ...
        if isinstance(value, base) and base is not type(None):
            out.append(b"<")
            _str(_qualname(cls), out, path)
            encoder(value, out, path)
            return
    if hasattr(value, "model") and hasattr(value, "query"):
        reason = "a QuerySet, which is not a value; pass the ids or the filter values it uses"
    else:
        reason = (
            f"a {_qualname(cls)}, which has no value that stays the same across processes "
            "(only its address)"
        )
    raise Unkeyable(value, path, reason)


def digest(values: Any) -> str:
    """A 32-hex-digit BLAKE2b digest of the stable encoding of ``values``."""
    out: list[bytes] = []
    encode(values, out, "")
    return hashlib.blake2b(b"".join(out), digest_size=16).hexdigest()
