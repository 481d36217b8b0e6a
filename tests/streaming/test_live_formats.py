"""Exports served by real servers (gunicorn, uvicorn, daphne) and read by httpx, byte for byte."""

import json
import os
import zlib

import pytest

from tests.streaming import expected
from tests.streaming.expected import ALL_FIELDS, FORMATS, PLAIN_FIELDS

pytestmark = pytest.mark.django_db

POSTGRES = os.environ.get("DJANGO_PERF_TEST_DB", "postgres") == "postgres"
SERVERS = ["gunicorn", "uvicorn", "daphne"]
CONTENT_TYPES = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}
BUFFERING_WARNING = "StreamingHttpResponse must consume"

_expected: dict = {}


def expected_body(format, fields=PLAIN_FIELDS, envelope=None) -> bytes:
    key = (format, tuple(fields), envelope)
    if key not in _expected:
        _expected[key] = expected.body(format, fields, envelope)
    return _expected[key]


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("kind", SERVERS)
def test_every_field_type_streams_byte_exact_on_both_paths(kind, format, exports, request):
    server = request.getfixturevalue(kind)
    params = {"fields": ",".join(PLAIN_FIELDS)}
    with exports.client(server) as client:
        python = client.get(f"/exports/events.{format}", params={**params, "path": "python"})
        auto = client.get(f"/exports/events.{format}", params=params)
    assert python.status_code == auto.status_code == 200
    assert python.headers["content-type"] == CONTENT_TYPES[format]
    assert python.headers["x-stream-path"] == "python"
    assert auto.headers["x-stream-path"] == ("copy" if POSTGRES else "python")
    assert "content-length" not in python.headers  # streamed, not buffered
    assert python.content == expected_body(format)
    assert auto.content == python.content
    assert BUFFERING_WARNING not in server.log()


@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_an_async_view_streams_the_same_bytes(kind, exports, request):
    server = request.getfixturevalue(kind)
    with exports.client(server) as client:
        response = client.get("/exports/async/events.ndjson", params={"path": "python"})
    assert response.status_code == 200
    assert response.content == expected_body("ndjson", ALL_FIELDS)
    assert BUFFERING_WARNING not in server.log()


def test_a_json_column_sends_the_queryset_down_the_python_path(exports, uvicorn):
    with exports.client(uvicorn) as client:
        response = client.get("/exports/events.json")  # every field, the JSONField included
    assert response.headers["x-stream-path"] == "python"
    assert response.content == expected_body("json", ALL_FIELDS)
    if POSTGRES:
        assert "column 'payload' is computed" in uvicorn.log()


@pytest.mark.parametrize("path", ["python", "auto"])
@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_empty_results_are_complete_documents(kind, path, exports, request):
    server = request.getfixturevalue(kind)
    params = {"empty": "1", "path": path, "fields": "id,kind,score"}
    with exports.client(server) as client:
        bodies = {
            format: client.get(f"/exports/events.{format}", params=params).content
            for format in FORMATS
        }
        enveloped = client.get("/exports/events.json", params={**params, "envelope": "events"})
    assert bodies == {"json": b"[]", "ndjson": b"", "csv": b"id,kind,score\n"}
    assert enveloped.content == b'{"events":[]}'


def test_an_envelope_wraps_the_array(exports, gunicorn):
    with exports.client(gunicorn) as client:
        response = client.get(
            "/exports/events.json", params={"envelope": "events", "fields": "id,note,score"}
        )
    assert response.content == expected_body("json", ["id", "note", "score"], "events")
    assert len(json.loads(response.content)["events"]) == exports.events


def test_a_filename_makes_a_download(exports, gunicorn):
    with exports.client(gunicorn) as client:
        response = client.get(
            "/exports/events.csv", params={"filename": "events 2024 ü.csv", "fields": "id,kind"}
        )
    assert response.headers["content-disposition"] == (
        "attachment; filename*=utf-8''events%202024%20%C3%BC.csv"
    )
    assert response.content.startswith(b"id,kind\n")


def test_small_chunks_give_the_same_bytes(exports, uvicorn):
    params = {"fields": ",".join(PLAIN_FIELDS), "chunk_size": "7"}
    with exports.client(uvicorn) as client:
        fast = client.get("/exports/events.json", params=params)
        python = client.get("/exports/events.json", params={**params, "path": "python"})
    assert fast.content == python.content == expected_body("json")


def gunzip_members(raw: bytes) -> tuple[bytes, int]:
    """Decompress every gzip member of ``raw`` (RFC 1952 allows several); return (data, count)."""
    data, members = b"", 0
    while raw:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data += decompressor.decompress(raw)
        assert decompressor.eof, "truncated gzip member"
        raw, members = decompressor.unused_data, members + 1
    return data, members


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_gzip_and_conditional_get_middleware_stream_the_same_rows(kind, format, exports, request):
    server = request.getfixturevalue(kind)
    headers = {"Accept-Encoding": "gzip", "If-None-Match": '"anything"'}
    params = {"fields": ",".join(PLAIN_FIELDS)}
    with (
        exports.client(server, headers=headers) as client,
        client.stream("GET", f"/exports/gzip/events.{format}", params=params) as response,
    ):
        raw = b"".join(response.iter_raw())
    assert response.status_code == 200  # no ETag can match a body that is not built yet
    assert response.headers["content-encoding"] == "gzip"
    assert "etag" not in response.headers
    data, members = gunzip_members(raw)
    assert data == expected_body(format)
    # Under WSGI Django compresses the stream as one gzip member; under ASGI (Django 5.2) it
    # compresses each chunk as a member of its own, which gzip allows but some clients (httpx)
    # stop reading after the first: see docs/streaming.rst.
    assert (members == 1) if kind == "gunicorn" else (members > 1)
    assert BUFFERING_WARNING not in server.log()


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_django_perf_gzip_middleware_writes_one_member_under_asgi_too(
    kind, format, exports, request
):
    server = request.getfixturevalue(kind)
    params = {"fields": ",".join(PLAIN_FIELDS)}
    with exports.client(server, headers={"Accept-Encoding": "gzip"}) as client:
        with client.stream("GET", f"/exports/gzip-one/events.{format}", params=params) as raw:
            data, members = gunzip_members(b"".join(raw.iter_raw()))
        decoded = client.get(f"/exports/gzip-one/events.{format}", params=params)
    assert raw.headers["content-encoding"] == "gzip"
    assert members == 1
    assert data == decoded.content == expected_body(format)  # httpx reads it all now


ITEMS_JSON = [{"n": n, "square": n * n, "label": f"item {n}"} for n in range(1000)]


@pytest.mark.parametrize("source", ["sync", "async"])
@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_any_iterable_streams_in_every_format(kind, source, exports, request):
    server = request.getfixturevalue(kind)
    with exports.client(server) as client:
        bodies = {
            format: client.get(f"/exports/items.{format}", params={"source": source}).content
            for format in FORMATS
        }
    assert json.loads(bodies["json"]) == ITEMS_JSON
    assert [json.loads(line) for line in bodies["ndjson"].splitlines()] == ITEMS_JSON
    lines = bodies["csv"].decode().splitlines()
    assert lines[0] == "n,square,label"
    assert lines[1:3] == ["0,0,item 0", "1,1,item 1"]
    assert len(lines) == 1001
    assert "must consume" not in server.log()


def test_exports_need_the_view_permission(exports, gunicorn):
    with exports.client(gunicorn) as client:
        client.cookies.clear()
        response = client.get("/exports/events.json")
    assert response.status_code == 403
