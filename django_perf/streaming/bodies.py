"""Response bodies: chunks framed, guarded, and served as the kind of iterator the server needs.

Django buffers a whole body when the iterator's kind does not match the server
(a sync iterator under ASGI, an async one under WSGI), so a body is built for
the server: a sync generator under WSGI, an async iterator under ASGI whose
every step runs in the request's database thread, off the event loop.

Every body is *guarded*: an error logs what was sent and re-raises, so the
server drops the connection instead of finishing a truncated document; a
client that goes away closes the generator, which closes the cursor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Generator, Iterable, Iterator
from typing import Any

from asgiref.sync import SyncToAsync, sync_to_async

from .formats import ChunkEncoder, Framing

__all__ = ["ThreadedBody", "framed", "guarded", "is_async_server"]

logger = logging.getLogger("django_perf.streaming")


def framed(chunks: Iterator[bytes], framing: Framing) -> Generator[bytes, None, None]:
    """Put the opening before the first chunk, separators between, the closing after the last."""
    opened = False
    try:
        for body in chunks:
            if body:
                yield framing.frame(body, opened)
                opened = True
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # at once, not when the garbage collector gets to it
    ending = framing.ending(opened)
    if ending:
        yield ending


def guarded(chunks: Iterator[bytes], label: str) -> Generator[bytes, None, None]:
    """Log errors and early closes; always close ``chunks`` (and so the cursor) on the way out."""
    sent = 0
    outcome = "closed early"
    try:
        for chunk in chunks:
            sent += len(chunk)
            yield chunk
        outcome = "ended"
    except Exception:
        outcome = "failed"
        _log_failure(label, sent)
        raise
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        if outcome == "closed early":
            _log_gone(label, sent, "; its cursor is closed")


def _log_failure(label: str, sent: int) -> None:
    logger.exception(
        "%s failed after %d bytes; the response ends without its closing part, "
        "so the client sees it as incomplete.",
        label,
        sent,
    )


def _log_gone(label: str, sent: int, what_closed: str = "") -> None:
    logger.debug("%s stopped after %d bytes: the client went away%s.", label, sent, what_closed)


def batched(items: Iterable[Any], size: int, encode: ChunkEncoder) -> Iterator[bytes]:
    """Encode ``items`` ``size`` at a time."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield encode(batch)
            batch = []
    if batch:
        yield encode(batch)


class ThreadedBody:
    """An async iterator over a sync chunk generator; each step runs off the event loop.

    Steps run with ``thread_sensitive=True``: under Django's ASGI handler that is
    the request's own thread, which holds its database connection. When the
    client goes away Django cancels the response; the generator is then closed
    in that thread, which closes the cursor. ``close()`` is also registered with
    the response, so Django's own cleanup closes it too.
    """

    def __init__(self, chunks: Generator[bytes, None, None]) -> None:
        self._chunks = chunks
        self._next = sync_to_async(self._step, thread_sensitive=True)
        self._close = sync_to_async(self.close, thread_sensitive=True)

    def __aiter__(self) -> ThreadedBody:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._next()
        except asyncio.CancelledError:
            # The read in the thread finishes on its own; the close queues behind it.
            await asyncio.shield(self._close())
            raise
        except Exception:
            # Django's ASGI handler lets the error propagate to the server without closing
            # the response, so request_finished (which closes the request's database
            # connection, in this thread) would never be sent: send it here.
            await sync_to_async(_finish_request, thread_sensitive=True)()
            raise
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    def _step(self) -> bytes | None:
        return next(self._chunks, None)

    def close(self) -> None:
        """Close the generator (and so the cursor); call it in the database thread."""
        self._chunks.close()

    async def aclose(self) -> None:
        await self._close()


def _finish_request() -> None:
    from django.core.handlers.asgi import ASGIHandler
    from django.core.signals import request_finished

    request_finished.send(sender=ASGIHandler)


async def abatched(items: AsyncIterable[Any], size: int, encode: ChunkEncoder):
    """Encode an async iterable's items ``size`` at a time."""
    batch: list = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield encode(batch)
            batch = []
    if batch:
        yield encode(batch)


async def aframed(chunks: AsyncIterator[bytes], framing: Framing):
    opened = False
    async for body in chunks:
        if body:
            yield framing.frame(body, opened)
            opened = True
    ending = framing.ending(opened)
    if ending:
        yield ending


async def aguarded(chunks: AsyncIterator[bytes], source: Any, label: str):
    """``guarded`` for async bodies: the source is closed when the body ends early."""
    sent = 0
    outcome = "closed early"
    try:
        async for chunk in chunks:
            sent += len(chunk)
            yield chunk
        outcome = "ended"
    except Exception:
        outcome = "failed"
        _log_failure(label, sent)
        raise
    finally:
        if outcome != "ended":
            for closable in (chunks, source):
                aclose = getattr(closable, "aclose", None)
                if aclose is not None:
                    await aclose()
        if outcome == "closed early":
            _log_gone(label, sent)


def run_on_private_loop(chunks: AsyncIterator[bytes]) -> Generator[bytes, None, None]:
    """Iterate async chunks from sync code (a WSGI server) on an event loop of our own.

    Django would collect them all first (``async_to_sync(list)``); this gets one
    chunk at a time, so memory stays flat and the first bytes leave at once.
    """
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                chunk = loop.run_until_complete(anext(chunks))
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        try:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                loop.run_until_complete(aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def is_async_server(request: Any = None) -> bool:
    """Whether the response will be served by an ASGI server.

    The request tells for sure (an ``ASGIRequest``); without one, a running event
    loop (an async view) or an asgiref worker thread (a sync view under ASGI)
    means ASGI.
    """
    if request is not None:
        from django.core.handlers.asgi import ASGIRequest

        return isinstance(request, ASGIRequest)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
        return loop is not None and loop.is_running()
    return True
