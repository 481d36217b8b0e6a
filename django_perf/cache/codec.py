"""Values to bytes and back: one serializer pass per write, compression, and an HMAC.

The shared tiers (Redis, the database) keep a *payload*::

    byte 0      FORMAT, never an ASCII digit or "-", so raw integers are told apart
    byte 1      flags: serializer id (low 4 bits), COMPRESSED (0x10)
    bytes 2-9   absolute expiry as a big-endian double (0.0: never); not signed,
                so that ``touch`` can rewrite it in place
    bytes 10-25 HMAC-SHA256 (first 16 bytes) over the cache key, the flags and the body
    bytes 26-   body: the serializer's bytes, compressed when flagged

The HMAC key is derived from ``SECRET_KEY`` (``SECRET_KEY_FALLBACKS`` still
verify), and the cache key is part of what is signed, so a payload cannot be
forged, altered or moved to another key without being rejected. A rejected
payload is never deserialized.

Exact integers within 64 bits are stored as plain ASCII decimals instead, so
that Redis ``INCRBY`` and a SQL ``UPDATE ... + delta`` can change them
atomically; integers are parsed, never unpickled.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import pickle
import struct
import sys
import weakref
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

__all__ = [
    "Codec",
    "Encoded",
    "Rejected",
    "Serializer",
    "make_serializer",
]

FORMAT = 0x9D
COMPRESSED = 0x10
SERIALIZER_MASK = 0x0F
HEADER = struct.Struct(">BBd16s")
HEADER_SIZE = HEADER.size  # 26
MAC_SIZE = 16
EXPIRY = struct.Struct(">d")
EXPIRY_SLICE = slice(2, 10)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_NONE = type(None)


class Rejected(Exception):
    """A stored payload failed verification or decoding; it must be treated as a miss."""


# --- Serializers ----------------------------------------------------------------------


class Serializer:
    """Turns values into bytes and back; ``immutable`` says when L1 may skip both."""

    id = 0  # 1-14 for the built-ins, 15 for a user's class
    name = "custom"

    def dumps(self, value: Any) -> bytes:
        raise NotImplementedError

    def loads(self, data: bytes) -> Any:
        raise NotImplementedError

    def immutable(self, value: Any) -> bool:
        """True when ``loads(dumps(value)) == value`` and the value cannot be mutated.

        L1 then keeps the object itself and hands it out without copying.
        """
        return False


class PickleSerializer(Serializer):
    id = 1
    name = "pickle"
    _immutable = frozenset({str, bytes, int, float, bool, complex, _NONE})

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol
        self.loads = pickle.loads  # type: ignore[method-assign]  (no wrapper on L1 hits)

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, self.protocol)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)

    def immutable(self, value: Any) -> bool:
        return type(value) in self._immutable


def _django_default(value: Any) -> Any:
    """orjson's fallback: what Django's JSON encoder knows (Decimal, lazy strings, ...)."""
    return DjangoJSONEncoder().default(value)


def _has_non_finite(value: Any) -> bool:
    """Whether a NaN or infinity hides in ``value`` (orjson would write it as null)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(item) for item in value)
    return False


class JSONSerializer(Serializer):
    """JSON, with orjson when installed; values come back as JSON types (lists, str dates).

    Results match the standard library's json module with or without orjson: what
    orjson refuses (integer dict keys, integers past 64 bits) or would change (NaN
    and infinities become null there) is written by the standard library instead,
    with a leading space, and bodies that start with a space are read by it too
    (orjson would read big integers as floats).
    """

    id = 2
    name = "json"

    def __init__(self) -> None:
        encoder = DjangoJSONEncoder(separators=(",", ":"))
        self._stdlib_dumps: Callable[[Any], bytes] = lambda v: b" " + encoder.encode(v).encode()
        try:
            import orjson
        except ImportError:  # orjson is part of the speedups extra
            self._orjson_dumps: Callable[[Any], bytes] | None = None
            self._loads: Callable[[bytes], Any] = json.loads
        else:
            # Dates, times, dataclasses and str/int subclasses go to Django's encoder (or the
            # standard library) as they would without orjson, not to orjson's own spellings.
            passthrough = (
                orjson.OPT_PASSTHROUGH_DATETIME
                | orjson.OPT_PASSTHROUGH_DATACLASS
                | orjson.OPT_PASSTHROUGH_SUBCLASS
            )
            self._orjson_dumps = functools.partial(
                orjson.dumps, default=_django_default, option=passthrough
            )
            self._loads = orjson.loads

    def dumps(self, value: Any) -> bytes:
        if self._orjson_dumps is None:
            return self._stdlib_dumps(value)
        try:
            data = self._orjson_dumps(value)
        except TypeError:  # a non-str key, an integer past 64 bits, or truly unserializable
            return self._stdlib_dumps(value)
        if b"null" in data and _has_non_finite(value):
            return self._stdlib_dumps(value)
        return data

    def loads(self, data: bytes) -> Any:
        if data[:1] == b" ":
            return json.loads(data)
        return self._loads(data)

    def immutable(self, value: Any) -> bool:
        kind = type(value)
        if kind is str or kind is bool or kind is _NONE:
            return True
        if kind is int:
            return INT64_MIN <= value <= INT64_MAX
        return kind is float and math.isfinite(value)


class MsgpackSerializer(Serializer):
    id = 3
    name = "msgpack"

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError as error:
            raise ImproperlyConfigured(
                'The msgpack serializer needs msgpack: pip install "django-perf[speedups]".'
            ) from error
        self._packb = msgpack.packb
        self._unpackb = msgpack.unpackb

    def dumps(self, value: Any) -> bytes:
        return self._packb(value, use_bin_type=True)

    def loads(self, data: bytes) -> Any:
        return self._unpackb(data, raw=False, strict_map_key=False)

    def immutable(self, value: Any) -> bool:
        kind = type(value)
        if kind in (str, bytes, bool, float, _NONE):
            return True
        return kind is int and INT64_MIN <= value < 2**64


class ForeignSerializer(Serializer):
    """A serializer class given by dotted path (django-redis serializers fit: ``cls(options)``)."""

    id = 15

    def __init__(self, path: str, options: dict[str, Any]) -> None:
        cls = import_string(path)
        try:
            self._inner = cls(options=options)
        except TypeError:
            self._inner = cls()
        self.name = path

    def dumps(self, value: Any) -> bytes:
        return self._inner.dumps(value)

    def loads(self, data: bytes) -> Any:
        return self._inner.loads(data)


def make_serializer(name: str, options: dict[str, Any]) -> Serializer:
    """The serializer named by the ``SERIALIZER`` option: pickle, json, msgpack or a dotted path."""
    if name == "pickle":
        protocol = options.get("PICKLE_VERSION")
        if protocol is None:
            protocol = pickle.HIGHEST_PROTOCOL
        if not isinstance(protocol, int) or not 0 <= protocol <= pickle.HIGHEST_PROTOCOL:
            raise ImproperlyConfigured(
                f"PICKLE_VERSION must be an integer from 0 to {pickle.HIGHEST_PROTOCOL}; "
                f"got {protocol!r}."
            )
        return PickleSerializer(protocol)
    if name == "json":
        return JSONSerializer()
    if name == "msgpack":
        return MsgpackSerializer()
    if "." in name:
        return ForeignSerializer(name, options)
    raise ImproperlyConfigured(
        f"SERIALIZER must be 'pickle', 'json', 'msgpack' or a dotted path to a class; got {name!r}."
    )


# --- Compression ----------------------------------------------------------------------


class _Zlib:
    def __init__(self, level: int = 6) -> None:
        self.level = level

    def compress(self, data: bytes) -> bytes:
        return zlib.compress(data, self.level)

    def decompress(self, data: bytes) -> bytes:
        return zlib.decompress(data)


class _Lzma:
    def compress(self, data: bytes) -> bytes:
        import lzma

        return lzma.compress(data)

    def decompress(self, data: bytes) -> bytes:
        import lzma

        return lzma.decompress(data)


def make_compressor(name: str | None, options: dict[str, Any]) -> Any:
    """``zlib`` (default), ``lzma``, None, or a dotted path (django-redis compressors fit)."""
    if name is None or name == "none":
        return None
    if name == "zlib":
        return _Zlib()
    if name == "lzma":
        return _Lzma()
    if "." in name:
        cls = import_string(name)
        try:
            return cls(options=options)
        except TypeError:
            return cls()
    raise ImproperlyConfigured(
        f"COMPRESSOR must be 'zlib', 'lzma', None or a dotted path to a class; got {name!r}."
    )


# --- Signing --------------------------------------------------------------------------


try:  # OpenSSL's HMAC object itself: copy/update/digest without hmac.py's wrapper calls
    from _hashlib import hmac_new as _keyed_hmac
except ImportError:  # pragma: no cover - Python built without OpenSSL
    _keyed_hmac = None


def _derive(secret: str | bytes) -> Any:
    """An HMAC-SHA256 object keyed from ``secret``, to ``copy()`` per message (cheaper)."""
    if isinstance(secret, str):
        secret = secret.encode()
    key = hashlib.sha256(b"django_perf.cache.payload-hmac:" + secret).digest()
    if _keyed_hmac is not None:
        return _keyed_hmac(key, digestmod="sha256")
    return hmac.new(key, digestmod=hashlib.sha256)


class _Keys:
    """HMAC keys from SECRET_KEY and its fallbacks, derived once and again when they change."""

    def __init__(self) -> None:
        self._derived: tuple[Any, tuple[Any, ...]] | None = None
        _all_keys.add(self)

    def current(self) -> tuple[Any, tuple[Any, ...]]:
        """(the signing key, every key that verifies)."""
        derived = self._derived
        if derived is None:
            secrets = (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ()))
            keys = tuple(_derive(secret) for secret in secrets)
            derived = self._derived = (keys[0], keys)
        return derived

    def forget(self) -> None:
        self._derived = None


_all_keys: weakref.WeakSet[_Keys] = weakref.WeakSet()


def _secret_changed(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: a test overrode SECRET_KEY (or its fallbacks)."""
    if setting in ("SECRET_KEY", "SECRET_KEY_FALLBACKS"):
        for keys in list(_all_keys):
            keys.forget()


setting_changed.connect(_secret_changed, dispatch_uid="django_perf.cache.codec")


# --- The codec ------------------------------------------------------------------------


@dataclass(slots=True)
class Encoded:
    """One value, serialized once, in the forms the tiers keep.

    ``obj`` is the value itself when it is immutable (L1 keeps and returns it);
    otherwise ``raw`` holds the serializer's bytes (L1 keeps those and
    deserializes a fresh copy per hit). ``payload`` (signed, compressed when
    large) or ``integer`` is what the shared tiers store.
    """

    obj: Any
    raw: bytes | None
    payload: bytes | None = None
    integer: int | None = None

    @property
    def size(self) -> int:
        """Approximate bytes L1 spends on the value."""
        if self.raw is not None:
            return len(self.raw)
        return sys.getsizeof(self.obj)  # immutable values are flat scalars (str, int, ...)


@dataclass(slots=True)
class Decoded:
    """A payload read back: the value, what L1 should keep, and the stamped expiry."""

    value: Any
    obj: Any
    raw: bytes | None
    expires_at: float | None  # None: never; for raw integers, unknown (see ``integer``)
    integer: bool = False


def stamp(payload: bytes, expires_at: float | None) -> bytes:
    """``payload`` with its (unsigned) expiry field set to ``expires_at``."""
    return b"".join((payload[:2], EXPIRY.pack(expires_at or 0.0), payload[10:]))


def stamped_expiry(payload: bytes) -> float | None:
    expires_at = EXPIRY.unpack_from(payload, 2)[0]
    return expires_at or None


class Codec:
    """Encodes values for every tier in one pass and decodes what a shared tier returns."""

    def __init__(
        self,
        serializer: Serializer,
        compressor: Any = None,
        compress_min_len: int = 1024,
        shared: bool = True,
    ) -> None:
        self.serializer = serializer
        self.compressor = compressor
        self.compress_min_len = compress_min_len
        self.shared = shared  # whether any tier needs payloads, not just L1
        self._keys = _Keys()

    # Encoding ---------------------------------------------------------------------

    def encode(self, key: str, value: Any, expires_at: float | None = None) -> Encoded:
        """Serialize ``value`` once; build the shared payload only when a shared tier exists.

        ``expires_at`` goes into the payload's (unsigned) expiry field.
        """
        serializer = self.serializer
        if serializer.immutable(value):
            encoded = Encoded(value, None)
            if not self.shared:
                return encoded
            if type(value) is int and INT64_MIN <= value <= INT64_MAX:
                encoded.integer = value
                return encoded
            body = serializer.dumps(value)
        else:
            body = serializer.dumps(value)
            encoded = Encoded(None, body)
            if not self.shared:
                return encoded
        encoded.payload = self.frame(key, body, expires_at)
        return encoded

    def encode_for_memory(self, value: Any) -> Encoded:
        """What L1 keeps for ``value`` (no payload), e.g. after an increment."""
        if self.serializer.immutable(value):
            return Encoded(value, None)
        return Encoded(None, self.serializer.dumps(value))

    def frame(self, key: str, body: bytes, expires_at: float | None = None) -> bytes:
        flags = self.serializer.id
        compressor = self.compressor
        if compressor is not None and len(body) >= self.compress_min_len:
            packed = compressor.compress(body)
            if len(packed) < len(body):
                body, flags = packed, flags | COMPRESSED
        mac = self._mac(self._keys.current()[0], key, flags, body)
        return HEADER.pack(FORMAT, flags, expires_at or 0.0, mac) + body

    @staticmethod
    def _mac(keyed: Any, key: str, flags: int, body: bytes) -> bytes:
        mac = keyed.copy()
        mac.update(b"".join((key.encode("utf-8", "surrogatepass"), b"\0", bytes((flags,)), body)))
        return mac.digest()[:MAC_SIZE]

    # Decoding ---------------------------------------------------------------------

    def decode(self, key: str, data: bytes) -> Decoded:
        """Verify and deserialize what a shared tier stored under ``key``; raise ``Rejected``."""
        if not isinstance(data, bytes):
            # e.g. a REAL in the table's integer column: a malformed entry is a miss.
            raise Rejected(f"a {type(data).__name__} where bytes or an integer belong")
        if not data:
            raise Rejected("empty value")
        if data[0] != FORMAT:
            return self._decode_integer(data)
        if len(data) < HEADER_SIZE:
            raise Rejected("value shorter than its header")
        _, flags, expires_at, mac = HEADER.unpack_from(data)
        body = data[HEADER_SIZE:]
        signing, verifying = self._keys.current()
        if not hmac.compare_digest(mac, self._mac(signing, key, flags, body)) and not any(
            hmac.compare_digest(mac, self._mac(secret, key, flags, body))
            for secret in verifying[1:]
        ):
            raise Rejected("signature does not match (forged, corrupted or another SECRET_KEY)")
        if flags & SERIALIZER_MASK != self.serializer.id:
            raise Rejected(f"written by another serializer (id {flags & SERIALIZER_MASK})")
        try:
            if flags & COMPRESSED:
                if self.compressor is None:
                    raise Rejected("compressed, but this cache has no COMPRESSOR")
                body = self.compressor.decompress(body)
            value = self.serializer.loads(body)
        except Rejected:
            raise
        except Exception as error:
            raise Rejected(f"signed but undecodable: {type(error).__name__}: {error}") from error
        if self.serializer.immutable(value):
            return Decoded(value, value, None, expires_at or None)
        return Decoded(value, None, body, expires_at or None)

    @staticmethod
    def _decode_integer(data: bytes) -> Decoded:
        try:
            number = int(data)
        except ValueError:
            raise Rejected("neither a signed payload nor an integer") from None
        return Decoded(number, number, None, None, integer=True)

    def loads(self, raw: bytes) -> Any:
        """Deserialize bytes L1 kept (trusted: they never left this process)."""
        return self.serializer.loads(raw)
