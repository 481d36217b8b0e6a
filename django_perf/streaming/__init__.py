"""Streaming responses that send large querysets with flat memory under WSGI and ASGI.

``stream_queryset()`` streams a queryset as JSON, NDJSON or CSV; ``stream_json()``,
``stream_ndjson()`` and ``stream_csv()`` stream any sync or async iterable;
``QuerysetStreamConsumer`` does the same from a Channels ``AsyncHttpConsumer``
(it needs the channels extra, so it is imported on first use).
"""

from typing import Any

from .responses import PATH_HEADER, stream_csv, stream_json, stream_ndjson, stream_queryset

__all__ = [
    "PATH_HEADER",
    "QuerysetStreamConsumer",
    "stream_csv",
    "stream_json",
    "stream_ndjson",
    "stream_queryset",
]


def __getattr__(name: str) -> Any:
    if name == "QuerysetStreamConsumer":
        from .consumers import QuerysetStreamConsumer

        return QuerysetStreamConsumer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
