"""The public helpers: stream a queryset, or any (async) iterable, as JSON, NDJSON or CSV."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.db.models.query import ModelIterable
from django.http import HttpRequest, StreamingHttpResponse
from django.utils.http import content_disposition_header

from ..conf import perf_settings
from .bodies import (
    ThreadedBody,
    abatched,
    aframed,
    aguarded,
    batched,
    framed,
    guarded,
    is_async_server,
    run_on_private_loop,
)
from .encoders import json_backend
from .fastpath import copy_chunks, why_not
from .formats import CONTENT_TYPES, check_options, framing, item_encoder, row_encoder
from .query import plan_query
from .rows import python_chunks

__all__ = ["PATH_HEADER", "stream_csv", "stream_json", "stream_ndjson", "stream_queryset"]

logger = logging.getLogger("django_perf.streaming")

#: Response header naming the path that produced a streamed queryset: "copy" or "python".
PATH_HEADER = "X-Stream-Path"


def _response(
    body: Any, request: HttpRequest | None, format: str, filename: str | None, asgi: bool
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        ThreadedBody(body) if asgi else body, content_type=CONTENT_TYPES[format]
    )
    if filename is not None:
        response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


@dataclass
class QueryStream:
    """A queryset's body before it becomes a response: its chunks and what to say about them."""

    chunks: Generator[bytes, None, None]  # guarded and framed; closing it closes the cursor
    path: str  # "copy" or "python"
    content_type: str
    label: str


def queryset_stream(
    queryset: QuerySet,
    fields: Sequence[str] | None = None,
    format: str = "json",
    chunk_size: int = 2000,
    envelope: str | None = None,
    *,
    fast_path: bool | None = None,
    server: str = "WSGI",
) -> QueryStream:
    """Plan ``queryset``, choose the path, and build its (sync) chunk generator."""
    check_options(format, envelope, chunk_size)
    plan = plan_query(queryset, fields)
    use_fast_path = perf_settings.STREAMING_FAST_PATH if fast_path is None else fast_path
    if use_fast_path:
        reason = why_not(plan, format)
    elif fast_path is False:
        reason = "fast_path=False"
    else:
        reason = "DJANGO_PERF['STREAMING_FAST_PATH'] is False"
    label = f"stream_queryset({plan.queryset.model.__name__}, {format})"
    if reason is None:
        path = "copy"
        chunks = copy_chunks(plan, format, chunk_size)
    else:
        path = "python"
        backend = json_backend(perf_settings.STREAMING_JSON_ENCODER)
        chunks = python_chunks(
            plan,
            functools.partial(row_encoder, format, plan.columns, backend),
            chunk_size,
        )
        label = f"{label} [{backend.name}]"
    logger.debug("%s: %s path under %s%s", label, path, server, f" ({reason})" if reason else "")
    header = plan.names if format == "csv" else None
    body = guarded(framed(chunks, framing(format, envelope, header)), label)
    return QueryStream(body, path, CONTENT_TYPES[format], label)


def stream_queryset(
    request: HttpRequest | None,
    queryset: QuerySet,
    fields: Sequence[str] | None = None,
    format: str = "json",
    chunk_size: int = 2000,
    envelope: str | None = None,
    filename: str | None = None,
    *,
    fast_path: bool | None = None,
) -> StreamingHttpResponse:
    """Stream ``queryset.values(*fields)`` as a JSON array, NDJSON or CSV, with flat memory.

    ``request`` tells the server kind: the body is a sync iterator under WSGI and
    an async one under ASGI (reading each chunk off the event loop), so Django
    never buffers it. Rows are read ``chunk_size`` at a time through a server-side
    cursor on PostgreSQL, where the database may write the text itself (the fast
    path, see ``fast_path``); the ``X-Stream-Path`` header says which path ran.
    ``envelope`` wraps a JSON array in an object (``{"envelope": [...]}``);
    ``filename`` makes the response a download (``Content-Disposition``).
    """
    asgi = is_async_server(request)
    stream = queryset_stream(
        queryset,
        fields,
        format,
        chunk_size,
        envelope,
        fast_path=fast_path,
        server="ASGI" if asgi else "WSGI",
    )
    response = _response(stream.chunks, request, format, filename, asgi)
    response[PATH_HEADER] = stream.path
    return response


def _stream_items(
    items: Iterable[Any] | AsyncIterable[Any],
    format: str,
    *,
    request: HttpRequest | None,
    envelope: str | None = None,
    header: Sequence[str] | None = None,
    chunk_size: int,
    filename: str | None,
) -> StreamingHttpResponse:
    check_options(format, envelope, chunk_size)
    if isinstance(items, str | bytes | dict):
        raise TypeError(
            f"stream_{format}() needs an iterable of rows, not a single {type(items).__name__}."
        )
    if isinstance(items, QuerySet) and issubclass(items._iterable_class, ModelIterable):
        # Found now, not after the status line went out when the first row fails to encode.
        raise TypeError(
            f"stream_{format}() got a queryset of {items.model.__name__} instances, which it "
            "cannot encode: use stream_queryset(request, queryset, ...) for model rows, or "
            "pass queryset.values(...) / .values_list(...)."
        )
    backend = json_backend(perf_settings.STREAMING_JSON_ENCODER)
    encode = item_encoder(format, backend, header)
    frame = framing(format, envelope, header)
    label = f"stream_{format}()"
    asgi = is_async_server(request)
    if isinstance(items, Iterable):
        body = guarded(framed(batched(items, chunk_size, encode), frame), label)
        return _response(body, request, format, filename, asgi)
    if isinstance(items, AsyncIterable):
        abody = aguarded(aframed(abatched(items, chunk_size, encode), frame), items, label)
        content = abody if asgi else run_on_private_loop(abody)
        response = StreamingHttpResponse(content, content_type=CONTENT_TYPES[format])
        if filename is not None:
            response["Content-Disposition"] = content_disposition_header(True, filename)
        return response
    raise TypeError(
        f"stream_{format}() needs an iterable or an async iterable of rows, "
        f"not {type(items).__name__}."
    )


def stream_json(
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    request: HttpRequest | None = None,
    envelope: str | None = None,
    chunk_size: int = 2000,
    filename: str | None = None,
) -> StreamingHttpResponse:
    """Stream the items of a sync or async iterable as one JSON array.

    Items are encoded ``chunk_size`` at a time (use 1 for a live feed, where each
    item should leave as soon as it exists). Pass ``request`` so the body is the
    iterator kind the server needs; without it an event loop in this thread (an
    async view) or an asgiref worker thread (a sync view under ASGI) means ASGI.
    """
    return _stream_items(
        items,
        "json",
        request=request,
        envelope=envelope,
        chunk_size=chunk_size,
        filename=filename,
    )


def stream_ndjson(
    items: Iterable[Any] | AsyncIterable[Any],
    *,
    request: HttpRequest | None = None,
    chunk_size: int = 2000,
    filename: str | None = None,
) -> StreamingHttpResponse:
    """Stream the items of a sync or async iterable as JSON lines (one JSON text per line)."""
    return _stream_items(items, "ndjson", request=request, chunk_size=chunk_size, filename=filename)


def stream_csv(
    rows: Iterable[Any] | AsyncIterable[Any],
    *,
    header: Sequence[str] | None = None,
    request: HttpRequest | None = None,
    chunk_size: int = 2000,
    filename: str | None = None,
) -> StreamingHttpResponse:
    """Stream rows as CSV with a header line: dicts (their keys are the header unless
    ``header`` is given) or sequences (``header`` required)."""
    return _stream_items(
        rows,
        "csv",
        request=request,
        header=header,
        chunk_size=chunk_size,
        filename=filename,
    )
