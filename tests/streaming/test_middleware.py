"""django-perf's GZipMiddleware: one gzip member for async streams, each chunk flushed at once."""

import gzip
import zlib

import pytest
from asgiref.sync import async_to_sync
from django.http import HttpResponse, StreamingHttpResponse
from django.test import AsyncRequestFactory, RequestFactory

from django_perf.streaming.middleware import GZipMiddleware

pytestmark = pytest.mark.django_db  # closing a response closes database connections

CHUNKS = [b'[{"n":%d}' % 0, *(b',{"n":%d}' % n for n in range(1, 50)), b"]"]


def gzip_request(factory):
    return factory.get("/", headers={"accept-encoding": "gzip, deflate"})


def apply(request, response):
    return GZipMiddleware(lambda request: response).process_response(request, response)


def test_an_async_stream_is_one_member_and_each_chunk_can_be_read_as_it_arrives():
    async def chunks():
        for chunk in CHUNKS:
            yield chunk

    response = apply(gzip_request(AsyncRequestFactory()), StreamingHttpResponse(chunks()))
    assert response.is_async
    assert response["Content-Encoding"] == "gzip"
    assert response["Vary"] == "Accept-Encoding"

    async def read():
        return [part async for part in response]

    parts = async_to_sync(read)()
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    readable = [decompressor.decompress(part) for part in parts]
    assert readable[: len(CHUNKS)] == CHUNKS  # each chunk readable as soon as its part arrives
    assert b"".join(readable) == b"".join(CHUNKS)
    assert decompressor.eof
    assert decompressor.unused_data == b""  # one member: nothing after it


def test_everything_else_is_left_to_djangos_middleware():
    sync_stream = apply(gzip_request(RequestFactory()), StreamingHttpResponse(iter(CHUNKS)))
    assert gzip.decompress(b"".join(sync_stream)) == b"".join(CHUNKS)
    plain = apply(gzip_request(RequestFactory()), HttpResponse(b"x" * 500))
    assert gzip.decompress(plain.content) == b"x" * 500


def test_no_compression_unless_the_client_asks():
    async def chunks():
        yield b"data"

    response = apply(AsyncRequestFactory().get("/"), StreamingHttpResponse(chunks()))
    assert not response.has_header("Content-Encoding")
    assert response["Vary"] == "Accept-Encoding"
