"""``GZipMiddleware`` that compresses async streaming bodies as one gzip stream.

Django 5.2's ``GZipMiddleware`` compresses each chunk of an async streaming
response as a gzip member of its own. That is valid gzip, but curl and httpx
stop reading after the first member and silently return only the first chunk.
This subclass compresses an async body as one stream, flushing after each
chunk so that it leaves at once; everything else is Django's.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import AsyncIterator
from gzip import GzipFile
from io import BytesIO

from django.http import HttpRequest, HttpResponseBase
from django.middleware.gzip import GZipMiddleware as DjangoGZipMiddleware
from django.utils.cache import patch_vary_headers

__all__ = ["GZipMiddleware"]

_accepts_gzip = re.compile(r"\bgzip\b")


def _random_filename(max_random_bytes: int) -> bytes:
    """As Django does: a random-length name in the gzip header, against BREACH-style attacks."""
    length = secrets.randbelow(max_random_bytes) + 1
    return "".join(secrets.choice(string.ascii_letters) for _ in range(length)).encode()


async def compress_async(
    chunks: AsyncIterator[bytes], max_random_bytes: int | None = None
) -> AsyncIterator[bytes]:
    """Gzip an async stream of chunks as one member, each chunk flushed as it passes."""
    buffer = BytesIO()
    filename = _random_filename(max_random_bytes) if max_random_bytes else None
    with GzipFile(filename=filename, mode="wb", compresslevel=6, fileobj=buffer, mtime=0) as gzip:
        async for chunk in chunks:
            gzip.write(chunk)
            gzip.flush()  # Z_SYNC_FLUSH: this chunk's bytes leave now, not when zlib's buffer fills
            data = buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if data:
                yield data
    if data := buffer.getvalue():
        yield data


class GZipMiddleware(DjangoGZipMiddleware):
    """Django's ``GZipMiddleware``; async streaming bodies come out as a single gzip member."""

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if not (response.streaming and response.is_async):
            return super().process_response(request, response)
        if response.has_header("Content-Encoding"):
            return response
        patch_vary_headers(response, ("Accept-Encoding",))
        if not _accepts_gzip.search(request.META.get("HTTP_ACCEPT_ENCODING", "")):
            return response
        response.streaming_content = compress_async(
            response.streaming_content, max_random_bytes=self.max_random_bytes
        )
        del response.headers["Content-Length"]
        etag = response.get("ETag")
        if etag and etag.startswith('"'):
            response.headers["ETag"] = "W/" + etag
        response.headers["Content-Encoding"] = "gzip"
        return response
