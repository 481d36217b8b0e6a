"""Encoders: DjangoJSONEncoder's value formats, one output from orjson and json, CSV rules."""

import csv
import datetime as dt
import io
import json
import math
import random
import struct
import sys
import uuid
from decimal import Decimal

import orjson
import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.test import override_settings
from django.utils.functional import lazy

from django_perf import checks
from django_perf.streaming import encoders
from django_perf.streaming.encoders import (
    OrjsonBackend,
    StdlibBackend,
    csv_cell,
    csv_lines,
    json_backend,
)
from django_perf.streaming.formats import Framing, check_options, framing, row_encoder
from django_perf.streaming.query import Column

UTC = dt.UTC
BACKENDS = [OrjsonBackend(), StdlibBackend()]


def reference_json(value):
    """What Django's own encoder writes, compact and in UTF-8: the format we promise."""
    return json.dumps(
        value, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False
    ).encode()


VALUES = [
    dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    dt.datetime(2024, 1, 2, 3, 4, 5, 500, tzinfo=UTC),  # microseconds below one millisecond
    dt.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    dt.datetime(2024, 1, 2, 3, 4, 5),
    dt.date(999, 12, 31),
    dt.time(23, 59, 59, 999999),
    dt.time(0, 0),
    dt.timedelta(days=-1, seconds=5),
    dt.timedelta(days=3, microseconds=7),
    Decimal("1234.5600"),
    Decimal("-0.0001"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    lazy(lambda: "lazy text", str)(),
    'naïve "quoted" \\ back\nslash\t\x00\x1f\x7f\u2028 ☃',
    {"nested": [1, 2.5, None, True, "x"]},
    -(2**63),
    2**64 - 1,
]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_values_are_written_as_django_json_encoder_writes_them(backend, value):
    assert backend.dumps(value) == reference_json(value)
    assert backend.items([value, value]) == reference_json([value, value])[1:-1]
    assert backend.lines([value, value]) == (reference_json(value) + b"\n") * 2


def random_floats(count, seed=7):
    rng = random.Random(seed)
    values = [0.0, -0.0, 100.0, 1e15, 1e16, 1e-4, 1e-5, 1e-7, 5e-324, 1.7976931348623157e308]
    values += [2.0**53 + 2, 123456789.125, 0.1 + 0.2]
    for _ in range(count):
        values.append(struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0])
        values.append(10 ** rng.uniform(-10, 25))
    return [v for v in values if math.isfinite(v)]


def test_query_rows_encode_to_the_same_bytes_with_orjson_and_json():
    """Floats are written as repr() writes them by both libraries (orjson alone would not)."""
    floats = random_floats(2000)
    assert orjson.dumps(1e-05) != json.dumps(1e-05).encode()  # why the conversion exists
    columns = [Column("f", "float", None, None, True), Column("d", "datetime", None, None, True)]
    rows = [(value, dt.datetime(2024, 1, 1, 0, 0, i % 60, i, tzinfo=UTC)) for i, value in
            enumerate([*floats, math.nan, math.inf, -math.inf, None])]  # fmt: skip
    expected = reference_json(
        [{"f": r[0] if r[0] is None or math.isfinite(r[0]) else None, "d": r[1]} for r in rows]
    )
    for format, wrap in (("json", lambda b: b"[" + b + b"]"), ("ndjson", lambda b: b)):
        outputs = [wrap(row_encoder(format, columns, backend)(rows)) for backend in BACKENDS]
        assert outputs[0] == outputs[1]
        if format == "json":
            assert outputs[0] == expected
        else:
            assert outputs[0].splitlines() == [
                reference_json(item) for item in json.loads(expected)
            ]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_nan_and_infinity_become_null(backend):
    assert backend.items([{"a": math.nan, "b": [math.inf, 1.5]}]) == b'{"a":null,"b":[null,1.5]}'
    assert backend.lines([-math.inf]) == b"null\n"


def test_orjson_hands_integers_beyond_64_bits_to_json():
    assert OrjsonBackend().items([2**70, 1]) == b"1180591620717411303424,1"
    assert OrjsonBackend().lines([{"big": -(2**80)}]) == b'{"big":-1208925819614629174706176}\n'


def test_a_json_column_with_a_huge_integer_and_a_float_encodes_with_orjson_too():
    """The floats are orjson fragments by the time it meets the integer: no fallback needed."""
    columns = [Column("f", "float", None, None, True), Column("j", "json", None, None, True)]
    rows = [(0.5, {"big": 2**64, "f": 0.1, "n": [-(2**70), 1e-05]})]
    row = b'{"f":0.5,"j":{"big":18446744073709551616,"f":0.1,"n":[-1180591620717411303424,1e-05]}}'
    for format, expected in (("json", row), ("ndjson", row + b"\n")):
        for backend in BACKENDS:
            assert row_encoder(format, columns, backend)(rows) == expected, backend.name


def test_objects_no_encoder_knows_are_refused_with_their_type():
    for backend in BACKENDS:
        with pytest.raises(TypeError, match="object"):
            backend.items([object()])


def test_json_backend_choice(monkeypatch):
    assert json_backend("auto").name == "orjson"
    assert json_backend("json").name == "json"
    with pytest.raises(ValueError, match="must be one of auto, orjson, json"):
        json_backend("ujson")
    monkeypatch.setattr(encoders, "orjson", None)
    monkeypatch.setattr(encoders, "_backends", {})
    assert json_backend("auto").name == "json"
    with pytest.raises(ImportError, match=r"django-perf\[speedups\]"):
        json_backend("orjson")


def test_e301_when_orjson_is_chosen_but_missing(monkeypatch):
    with override_settings(DJANGO_PERF={"STREAMING_JSON_ENCODER": "orjson"}):
        assert checks.check_streaming_json_encoder() == []
        monkeypatch.setitem(sys.modules, "orjson", None)
        errors = checks.check_streaming_json_encoder()
    assert [e.id for e in errors] == ["django_perf.E301"]
    with override_settings(DJANGO_PERF={"STREAMING_JSON_ENCODER": "auto"}):
        assert checks.check_streaming_json_encoder() == []


# --- CSV --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([["a", "b"], [1, None]], "a,b\n1,\n"),
        ([["", None, "x"]], ",,x\n"),  # empty and None are both an empty field
        ([[None]], '""\n'),  # ...except alone on a line, which would read as a blank line
        ([['say "hi"', "a,b", "two\nlines"]], '"say ""hi""","a,b","two\nlines"\n'),
        ([["carriage\rreturn", "plain"]], '"carriage\rreturn",plain\n'),
        ([["ünïcödé ☃", " spaced "]], "ünïcödé ☃, spaced \n"),
    ],
)
def test_csv_lines_quote_like_postgresql_copy(rows, expected):
    assert csv_lines(rows) == expected.encode()


def test_csv_lines_read_back_with_the_csv_module():
    rows = [["a\rb", 'q"', "x,y", "", "line\nbreak"], ["1", "2", "3", "4", "5"]]
    assert list(csv.reader(io.StringIO(csv_lines(rows).decode()))) == rows


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (None, None),
        ("text", "text"),
        (7, 7),
        (True, "true"),
        (False, "false"),
        (0.1, "0.1"),
        (1e16, "1e+16"),
        (math.nan, None),
        (Decimal("1.50"), "1.50"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC), "2024-01-02T03:04:05.006Z"),
        (dt.date(2024, 1, 2), "2024-01-02"),
        (dt.time(1, 2, 3), "01:02:03"),
        (dt.timedelta(hours=1), "P0DT01H00M00S"),
        ({"k": [1, "v"]}, '{"k":[1,"v"]}'),
    ],
)
def test_csv_cells_hold_the_json_text_of_each_value(value, cell):
    assert csv_cell(value) == cell


@pytest.mark.parametrize("value", [b"\x00ab", bytearray(b"ab"), memoryview(b"ab")])
def test_csv_cells_refuse_bytes_as_json_does(value):
    with pytest.raises(TypeError, match=f"cannot hold {type(value).__name__}.*base64"):
        csv_cell(value)


# --- framing and options ----------------------------------------------------------------------


def test_framing_of_each_format():
    assert framing("json") == Framing(b"[", b",", b"]")
    assert framing("json", envelope='us"ers') == Framing(b'{"us\\"ers":[', b",", b"]}")
    assert framing("ndjson") == Framing()
    assert framing("csv", header=["id", "a,b"]) == Framing(b'id,"a,b"\n')


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"format": "xml"}, ValueError, "format must be one of 'json', 'ndjson', 'csv'"),
        ({"format": "csv", "envelope": "rows"}, ValueError, "envelope only applies"),
        ({"envelope": 3}, TypeError, "envelope must be a string"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be a positive integer"),
        ({"chunk_size": 2.5}, ValueError, "chunk_size must be a positive integer"),
    ],
)
def test_bad_options_are_refused_with_what_to_pass(kwargs, error, message):
    options = {"format": "json", "envelope": None, "chunk_size": 10, **kwargs}
    with pytest.raises(error, match=message):
        check_options(**options)
