"""Payloads: serialized once, compressed above a threshold, signed and bound to their key."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import pickle
import sys
import zlib

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_perf.cache.codec import (
    COMPRESSED,
    HEADER_SIZE,
    Codec,
    Rejected,
    make_compressor,
    make_serializer,
    stamp,
    stamped_expiry,
)
from tests.cache.conftest import DATABASE, MEMORY

EXPLOITED = []


class Exploit:
    """Unpickling this records that it happened: a stand-in for ``os.system``."""

    def __reduce__(self):
        return (EXPLOITED.append, ("unpickled",))


def codec(serializer: str = "pickle", **options) -> Codec:
    return Codec(make_serializer(serializer, options), make_compressor("zlib", {}), 100)


def test_a_payload_round_trips_and_keeps_the_serializer_bytes_for_l1():
    c = codec()
    encoded = c.encode(":1:k", {"a": [1, 2]})
    assert encoded.raw == pickle.dumps({"a": [1, 2]}, pickle.HIGHEST_PROTOCOL)
    decoded = c.decode(":1:k", encoded.payload)
    assert decoded.value == {"a": [1, 2]}
    assert decoded.raw == encoded.raw


def test_immutable_values_are_kept_as_objects_and_integers_stay_integers():
    c = codec()
    assert c.encode("k", "text").obj == "text"
    assert c.encode("k", "text").raw is None
    number = c.encode("k", 12)
    assert (number.integer, number.payload) == (12, None)
    assert c.decode("k", b"12").value == 12
    assert c.decode("k", b"-3").value == -3
    big = c.encode("k", 2**64)
    assert big.integer is None
    assert c.decode("k", big.payload).value == 2**64
    assert c.encode("k", True).integer is None  # a bool is not stored as 1


def test_a_forged_payload_is_rejected_without_being_unpickled():
    c = codec()
    body = pickle.dumps(Exploit())
    forged = bytearray(c.encode("k", "placeholder").payload[:HEADER_SIZE]) + body
    with pytest.raises(Rejected, match="signature"):
        c.decode("k", bytes(forged))
    assert EXPLOITED == []


def test_a_payload_signed_with_another_secret_key_is_rejected():
    with override_settings(SECRET_KEY="attacker"):
        payload = codec().encode("k", Exploit()).payload
    with pytest.raises(Rejected, match="signature"):
        codec().decode("k", payload)
    assert EXPLOITED == []


def test_an_old_secret_key_in_fallbacks_still_verifies():
    with override_settings(SECRET_KEY="old-secret"):
        payload = codec().encode("k", [1]).payload
    with override_settings(SECRET_KEY="new-secret", SECRET_KEY_FALLBACKS=["old-secret"]):
        assert codec().decode("k", payload).value == [1]


def test_a_payload_cannot_be_moved_to_another_key():
    c = codec()
    payload = c.encode(":1:user:1:is_admin", False).payload
    with pytest.raises(Rejected):
        c.decode(":1:user:2:is_admin", payload)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p[:-1] + bytes([p[-1] ^ 1]),  # a flipped bit in the body
        lambda p: p[:12] + bytes([p[12] ^ 1]) + p[13:],  # in the MAC
        lambda p: p[:1] + bytes([p[1] ^ 2]) + p[2:],  # in the flags
        lambda p: p[:10],  # truncated
        lambda p: b"",
        lambda p: b"not an integer",
    ],
)
def test_corrupted_payloads_are_rejected(damage):
    c = codec()
    payload = c.encode("k", ["value"] * 3).payload
    with pytest.raises(Rejected):
        c.decode("k", damage(payload))


@pytest.mark.parametrize("stored", [2.5, None, "text", memoryview(b"12")], ids=repr)
def test_what_is_not_bytes_is_rejected_never_raised(stored):
    with pytest.raises(Rejected, match="where bytes or an integer belong"):
        codec().decode(":1:k", stored)


def test_the_expiry_field_can_be_rewritten_without_breaking_the_signature():
    c = codec()
    payload = c.encode("k", [1]).payload
    assert stamped_expiry(payload) is None
    restamped = stamp(payload, 1234.5)
    assert stamped_expiry(restamped) == 1234.5
    assert c.decode("k", restamped).expires_at == 1234.5


def test_bodies_above_the_threshold_are_compressed_once():
    c = codec()
    small = c.encode("k", "x" * 10 + "!")
    large = c.encode("k", ["x" * 1000])
    assert not small.payload or small.payload[1] & COMPRESSED == 0
    assert large.payload[1] & COMPRESSED
    assert len(large.payload) < 200
    assert zlib.decompress(large.payload[HEADER_SIZE:]) == large.raw
    assert c.decode("k", large.payload).value == ["x" * 1000]


def test_a_django_redis_compressor_can_be_named():
    c = Codec(
        make_serializer("pickle", {}),
        make_compressor("django_redis.compressors.lzma.LzmaCompressor", {}),
        100,
    )
    payload = c.encode("k", ["y" * 5000]).payload
    assert payload[1] & COMPRESSED
    assert c.decode("k", payload).value == ["y" * 5000]


@pytest.mark.parametrize("name", ["json", "msgpack"])
def test_json_and_msgpack_give_back_their_own_types(name):
    c = codec(name)
    value = {"a": [1, 2.5, None, True], "b": "✓"}
    assert c.decode("k", c.encode("k", value).payload).value == value
    assert c.decode("k", c.encode("k", (1, 2)).payload).value == [1, 2]
    assert c.encode("k", "text").raw is None  # immutable: L1 keeps the object


@pytest.fixture(params=["orjson", "stdlib"])
def json_codec(request, monkeypatch) -> Codec:
    """A "json" codec with orjson and one without it (its import then fails)."""
    if request.param == "stdlib":
        monkeypatch.setitem(sys.modules, "orjson", None)
    return codec("json")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({1: "a", None: "b", 2.5: "c"}, {"1": "a", "null": "b", "2.5": "c"}),
        ([2**64, -(2**70)], [2**64, -(2**70)]),
        ({"n": [2**64 - 1]}, {"n": [2**64 - 1]}),
        ([None, 1.5], [None, 1.5]),
    ],
)
def test_json_gives_what_the_standard_library_gives_with_or_without_orjson(
    json_codec, value, expected
):
    assert json_codec.decode("k", json_codec.encode("k", value).payload).value == expected
    assert json.loads(json.dumps(value)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.UTC),
            "2024-01-02T03:04:05.123Z",  # Django's encoder, not orjson's "+00:00" spelling
        ),
        (datetime.time(1, 2, 3, 456789), "01:02:03.456"),
        (datetime.date(2024, 1, 2), "2024-01-02"),
    ],
)
def test_json_spells_dates_and_times_as_djangos_encoder_with_or_without_orjson(
    json_codec, value, expected
):
    assert json_codec.decode("k", json_codec.encode("k", [value]).payload).value == [expected]


def test_json_refuses_a_dataclass_with_or_without_orjson(json_codec):
    @dataclasses.dataclass
    class Point:
        x: int

    with pytest.raises(TypeError):
        json_codec.encode("k", Point(1))


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_json_keeps_nan_and_infinities_with_or_without_orjson(json_codec, number):
    decoded = json_codec.decode("k", json_codec.encode("k", {"x": [number, None]}).payload).value
    assert decoded["x"][1] is None
    assert repr(decoded["x"][0]) == repr(number)  # not turned into None (a "missing" value)


def test_json_big_integers_written_without_orjson_are_read_exactly_with_it(monkeypatch):
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "orjson", None)
        payload = codec("json").encode("k", [2**64 + 1]).payload
    assert codec("json").decode("k", payload).value == [2**64 + 1]  # orjson would give a float


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("tiers", [[MEMORY], [MEMORY, DATABASE]], ids=["memory", "table"])
def test_incr_past_64_bits_with_json(make_cache, tiers):
    cache = make_cache(*tiers, SERIALIZER="json", STRICT=True)
    cache.set("n", 2**64 - 1)
    assert cache.incr("n") == 2**64
    assert cache.get("n") == 2**64


def test_an_entry_written_by_another_serializer_is_a_miss():
    payload = codec("json").encode("k", [1]).payload
    with pytest.raises(Rejected, match="another serializer"):
        codec("pickle").decode("k", payload)


def test_a_django_redis_serializer_can_be_named():
    c = codec("django_redis.serializers.json.JSONSerializer")
    assert c.decode("k", c.encode("k", {"a": 1}).payload).value == {"a": 1}


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("yaml", {}, "SERIALIZER must be 'pickle', 'json', 'msgpack' or a dotted path"),
        ("pickle", {"PICKLE_VERSION": 99}, "PICKLE_VERSION must be an integer from 0 to"),
    ],
)
def test_bad_serializer_options_say_what_is_wrong(name, options, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        make_serializer(name, options)


def test_a_bad_compressor_name_says_what_is_wrong():
    with pytest.raises(ImproperlyConfigured, match="COMPRESSOR must be 'zlib', 'lzma', None"):
        make_compressor("brotli", {})
