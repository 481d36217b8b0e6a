"""Streaming responses that send large querysets with flat memory under WSGI and ASGI.

``stream_queryset()`` streams a queryset as JSON, NDJSON or CSV; ``stream_json()``,
``stream_ndjson()`` and ``stream_csv()`` stream any sync or async iterable;
``QuerysetStreamConsumer`` does the same from a Channels ``AsyncHttpConsumer``
(import it from ``django_perf.streaming.consumers``; it needs the channels extra).
"""

from .responses import PATH_HEADER, stream_csv, stream_json, stream_ndjson, stream_queryset

__all__ = ["PATH_HEADER", "stream_csv", "stream_json", "stream_ndjson", "stream_queryset"]
