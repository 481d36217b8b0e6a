"""Count a streaming response's bytes as they pass, without buffering them.

The middleware swaps ``response.streaming_content`` for one of these
wrappers. Each chunk is counted and handed on at once; the request is recorded
when the stream ends, whichever way it ends: exhausted, closed by the server
(``response.close()``), or dropped after a client disconnect. While a chunk is
produced the request's query log and tally are current again, so queries run
by a streaming generator count toward its request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from typing import Any

__all__ = ["CountingAsyncIterator", "CountingIterator"]

Finish = Callable[[int], None]


class _Counting:
    __slots__ = ("_finish", "_inner", "_value", "_var", "sent")

    def __init__(self, inner: Any, finish: Finish, var: ContextVar, value: Any) -> None:
        self._inner = inner
        self._finish: Finish | None = finish
        self._var = var  # made current again while each chunk is produced
        self._value = value
        self.sent = 0

    def _done(self) -> None:
        finish, self._finish = self._finish, None
        if finish is not None:
            finish(self.sent)

    def __del__(self) -> None:  # a stream dropped without close() (e.g. ASGI disconnect)
        self._done()


class CountingIterator(_Counting):
    """Wraps a sync iterator of bytes; records the request when it ends."""

    __slots__ = ()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        token = self._var.set(self._value)
        try:
            chunk = next(self._inner)
        except BaseException:  # StopIteration included: the stream ended either way
            self._done()
            raise
        finally:
            self._var.reset(token)
        self.sent += len(chunk)
        return chunk

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        try:
            if close is not None:
                close()
        finally:
            self._done()


class CountingAsyncIterator(_Counting):
    """Wraps an async iterator of bytes; records the request when it ends."""

    __slots__ = ()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        token = self._var.set(self._value)
        try:
            chunk = await self._inner.__anext__()
        except BaseException:  # StopAsyncIteration included: the stream ended either way
            self._done()
            raise
        finally:
            self._var.reset(token)
        self.sent += len(chunk)
        return chunk

    async def aclose(self) -> None:
        aclose = getattr(self._inner, "aclose", None)
        try:
            if aclose is not None:
                await aclose()
        finally:
            self._done()

    def close(self) -> None:  # Django calls response.close() (sync) at the end of a request
        self._done()
