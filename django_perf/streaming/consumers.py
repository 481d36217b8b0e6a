"""A Channels ``AsyncHttpConsumer`` that streams a queryset, and stops when the client leaves.

Channels' ``AsyncHttpConsumer`` runs ``handle()`` inside the dispatch of the
``http.request`` message, so the ``http.disconnect`` that follows is only read
after ``handle()`` returns: a consumer that streams from ``handle()`` never
notices that its client went away (django/channels#1249) and reads the whole
queryset for no one. This consumer reads the connection's messages itself
while it streams, and cancels the stream on ``http.disconnect``.

Needs the channels extra: ``pip install "django-perf[channels]"``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from channels.generic.http import AsyncHttpConsumer
from django.db import connections
from django.db.models import QuerySet
from django.utils.http import content_disposition_header

from .bodies import ThreadedBody
from .responses import PATH_HEADER, queryset_stream

__all__ = ["QuerysetStreamConsumer"]

logger = logging.getLogger("django_perf.streaming")


def _close_thread_connections() -> None:
    # The stream's thread ends with the consumer; its connections must not outlive it.
    connections.close_all()


class QuerysetStreamConsumer(AsyncHttpConsumer):
    """Stream a queryset as JSON, NDJSON or CSV with ``send_body(..., more_body=True)``.

    Set ``queryset`` or override ``get_queryset()``; the other attributes are the
    arguments of :func:`~django_perf.streaming.stream_queryset`. A ``format``
    keyword in the URL route overrides ``format``. Override ``has_permission()``
    to refuse a request (403) before any query runs.
    """

    queryset: QuerySet | None = None
    fields: Sequence[str] | None = None
    format: str = "json"
    chunk_size: int = 2000
    envelope: str | None = None
    filename: str | None = None
    fast_path: bool | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        self._receive = receive  # read by _wait_for_disconnect() while handle() streams
        await super().__call__(scope, receive, send)

    def get_queryset(self) -> QuerySet:
        """The queryset to stream (``queryset`` by default); building it must not query."""
        if self.queryset is None:
            raise NotImplementedError(
                f"{type(self).__name__} needs a queryset attribute or a get_queryset() method."
            )
        return self.queryset.all()

    def get_format(self) -> str:
        return self.scope.get("url_route", {}).get("kwargs", {}).get("format", self.format)

    def get_stream_options(self) -> dict[str, Any]:
        """The other stream_queryset() arguments for this request (the attributes by default)."""
        return {
            "fields": self.fields,
            "format": self.get_format(),
            "chunk_size": self.chunk_size,
            "envelope": self.envelope,
            "filename": self.filename,
            "fast_path": self.fast_path,
        }

    async def has_permission(self) -> bool:
        """Whether this request may stream; False answers 403. Everyone may, by default."""
        return True

    async def handle(self, body: bytes) -> None:
        if not await self.has_permission():
            await self.send_response(403, b"Forbidden", headers=[(b"Content-Type", b"text/plain")])
            return
        options = self.get_stream_options()
        filename = options.pop("filename", None)
        stream = queryset_stream(self.get_queryset(), server="Channels", **options)
        headers = [
            (b"Content-Type", stream.content_type.encode()),
            (PATH_HEADER.encode(), stream.path.encode()),
        ]
        if filename is not None:
            disposition = content_disposition_header(True, filename)
            headers.append((b"Content-Disposition", disposition.encode("latin-1")))
        # Thread-sensitive calls inside this context run in one thread of its own, which
        # reads the rows with its own database connection and is discarded afterwards.
        async with ThreadSensitiveContext():
            chunks = ThreadedBody(stream.chunks)
            try:
                await self.send_headers(status=200, headers=headers)
                await self._stream_until_disconnect(chunks)
            finally:
                await sync_to_async(chunks.close, thread_sensitive=True)()
                await sync_to_async(_close_thread_connections, thread_sensitive=True)()

    async def _stream_until_disconnect(self, chunks: ThreadedBody) -> None:
        producer = asyncio.ensure_future(self._send_all(chunks))
        watcher = asyncio.ensure_future(self._wait_for_disconnect())
        try:
            await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (producer, watcher):
                if not task.done():
                    task.cancel()
            # Wait for the producer: a cancelled one closes its generator in its thread.
            await asyncio.gather(producer, watcher, return_exceptions=True)
        if producer.cancelled():
            return  # the client left
        producer.result()  # re-raise an error mid-stream: the server drops the connection

    async def _send_all(self, chunks: ThreadedBody) -> None:
        async for chunk in chunks:
            await self.send_body(chunk, more_body=True)
        await self.send_body(b"", more_body=False)

    async def _wait_for_disconnect(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return
