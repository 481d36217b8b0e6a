"""Shared metrics stores: the project's database (default) or Redis (``MONITORING_REDIS_URL``)."""

from __future__ import annotations

import threading

from ...conf import perf_settings
from .base import MetricsStore, Row, Sample, SlowRequest

__all__ = ["MetricsStore", "Row", "Sample", "SlowRequest", "get_store"]

_stores: dict[tuple, MetricsStore] = {}
_lock = threading.Lock()


def get_store() -> MetricsStore:
    """The store the settings name, made once per process per configuration."""
    url = perf_settings.MONITORING_REDIS_URL
    if url:
        config: tuple = ("redis", url, perf_settings.MONITORING_REDIS_PREFIX)
    else:
        config = ("database", perf_settings.MONITORING_DATABASE)
    config += (perf_settings.MONITORING_MINUTE_RETENTION, perf_settings.MONITORING_HOUR_RETENTION)
    store = _stores.get(config)
    if store is None:
        with _lock:
            store = _stores.get(config)
            if store is None:
                store = _stores[config] = _make(config)
    return store


def _make(config: tuple) -> MetricsStore:
    kind, *rest = config
    if kind == "redis":
        from .redis import RedisStore

        url, prefix, minute_retention, hour_retention = rest
        return RedisStore(url, prefix, minute_retention, hour_retention)
    from .database import DatabaseStore

    alias, minute_retention, hour_retention = rest
    return DatabaseStore(alias, minute_retention, hour_retention)
