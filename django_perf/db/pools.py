"""``pool_stats()``: how full every connection pool of this process is, for monitoring to read.

One :class:`PoolStats` per database alias (Django's native psycopg pool, or the
connections Django keeps per thread when there is no pool), per async pool
opened by :func:`~django_perf.db.async_connection`, and per Redis cache. Reading
stats never opens a connection, nor builds a cache backend that could (a
TieredCache's invalidation listener).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, TypedDict

from django.conf import settings
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

__all__ = ["PoolStats", "pool_stats", "track_connections"]


class PoolStats(TypedDict):
    """A snapshot of one pool, as a plain (JSON-ready) dict. ``None``: not tracked by the pool.

    ``kind`` is ``"database"`` (a ``DATABASES`` alias), ``"async"`` (an async pool
    built from an alias) or ``"cache"`` (a ``CACHES`` alias on Redis). ``pooled`` is
    False for a database alias without a pool: then ``size`` counts the connections
    Django holds open for it across this process's threads, and ``in_use`` those
    inside a transaction. ``errors`` is cumulative (failed connection attempts,
    connections found broken, requests that timed out or failed).
    """

    kind: str
    alias: str
    pooled: bool
    size: int
    in_use: int
    idle: int
    waiting: int | None
    errors: int | None
    max_size: int | None
    details: dict[str, Any]


def _stats(
    kind: str,
    alias: str,
    *,
    pooled: bool = True,
    size: int = 0,
    in_use: int = 0,
    waiting: int | None = 0,
    errors: int | None = 0,
    max_size: int | None = None,
    details: dict[str, Any] | None = None,
) -> PoolStats:
    return PoolStats(
        kind=kind,
        alias=alias,
        pooled=pooled,
        size=size,
        in_use=in_use,
        idle=size - in_use,
        waiting=waiting,
        errors=errors,
        max_size=max_size,
        details=details or {},
    )


def pool_stats() -> list[PoolStats]:
    """Stats of every database alias, every async pool and every Redis cache, in that order."""
    from .async_pools import async_pool_stats

    stats = [database_stats(alias) for alias in settings.DATABASES]
    stats += async_pool_stats()
    for alias, config in settings.CACHES.items():
        cache = cache_stats(alias, config)
        if cache is not None:
            stats.append(cache)
    return stats


# --- databases --------------------------------------------------------------------------


def psycopg_pool_stats(kind: str, alias: str, pool: Any) -> PoolStats:
    """PoolStats from a ``psycopg_pool`` pool (sync or async)."""
    raw = pool.get_stats()
    size = raw.get("pool_size", 0)
    idle = raw.get("pool_available", 0)
    errors = sum(
        raw.get(name, 0)
        for name in ("connections_errors", "connections_lost", "requests_errors", "returns_bad")
    )
    return _stats(
        kind,
        alias,
        size=size,
        in_use=max(size - idle, 0),
        waiting=raw.get("requests_waiting", 0),
        errors=errors,
        max_size=raw.get("pool_max"),
        details=dict(raw),
    )


def database_stats(alias: str) -> PoolStats:
    """Stats of one ``DATABASES`` alias: its native pool, or Django's per-thread connections."""
    options = settings.DATABASES[alias].get("OPTIONS") or {}
    if options.get("pool"):
        wrapper_class = type(connections[alias])
        pool = getattr(wrapper_class, "_connection_pools", {}).get(alias)
        if pool is not None:
            return psycopg_pool_stats("database", alias, pool)
        pool_options = options["pool"] if isinstance(options["pool"], dict) else {}
        return _stats("database", alias, max_size=pool_options.get("max_size"))
    open_wrappers = [w for w in _tracked(alias) if w.connection is not None]
    in_use = sum(1 for w in open_wrappers if w.in_atomic_block)
    return _stats("database", alias, pooled=False, size=len(open_wrappers), in_use=in_use,
                  errors=None)  # fmt: skip


_wrappers: dict[str, weakref.WeakSet[BaseDatabaseWrapper]] = {}
_wrappers_lock = threading.Lock()


def _remember(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    with _wrappers_lock:
        _wrappers.setdefault(connection.alias, weakref.WeakSet()).add(connection)


def _tracked(alias: str) -> list[BaseDatabaseWrapper]:
    with _wrappers_lock:
        return list(_wrappers.get(alias, ()))


def track_connections() -> None:
    """Count the connections Django opens (called from ``AppConfig.ready``)."""
    connection_created.connect(_remember, dispatch_uid="django_perf.db.pools")


# --- Redis caches -----------------------------------------------------------------------

#: django-redis backends: building one connects nothing, and their pools are process-wide.
DJANGO_REDIS_BACKENDS = "django_redis."
#: django-perf's backends offer ``connection_pools()``; building one may start its
#: invalidation listener, so only a backend the process already uses is asked.
DJANGO_PERF_BACKENDS = "django_perf."


def cache_stats(alias: str, config: dict[str, Any]) -> PoolStats | None:
    """Stats of a Redis cache's connection pools (summed over its servers), else None.

    Knows django-redis, whose pools are shared by the whole process, and
    django-perf's own backends, which offer a ``connection_pools()`` method and
    are read only once the process uses them (any thread). Django's own
    Redis backend is not reported: each thread's backend has pools of its own,
    so no thread sees the process's connections.
    """
    backend = config.get("BACKEND", "")
    if backend.startswith(DJANGO_REDIS_BACKENDS):
        cache = _cache(alias, build=True)
    elif backend.startswith(DJANGO_PERF_BACKENDS):
        cache = _cache(alias, build=False)
    else:
        return None
    pools = _redis_pools(cache) if cache is not None else None
    if not pools:  # a TieredCache without a Redis tier has none
        return None
    return _summed("cache", alias, pools)


def _cache(alias: str, *, build: bool) -> Any:
    """The alias's cache backend; unless ``build``, only one the process already uses.

    django-perf's backends say which through their ``existing(alias)`` class method.
    """
    from django.core.cache import caches
    from django.utils.module_loading import import_string

    try:
        if build:
            return caches[alias]
        backend = import_string(settings.CACHES[alias]["BACKEND"])
        existing = getattr(backend, "existing", None)
        return existing(alias) if callable(existing) else None
    except Exception:  # a cache that cannot even be built has no pools to report
        return None


def _summed(kind: str, alias: str, pools: list[Any]) -> PoolStats:
    in_use = idle = max_size = 0
    for pool in pools:
        pool_idle, pool_in_use = _redis_counts(pool)
        idle += pool_idle
        in_use += pool_in_use
        max_size += getattr(pool, "max_connections", 0) or 0
    return _stats(
        kind,
        alias,
        size=idle + in_use,
        in_use=in_use,
        waiting=None,
        errors=None,
        max_size=max_size or None,
        details={"servers": len(pools)},
    )


def _redis_pools(cache: Any) -> list[Any] | None:
    offered = getattr(cache, "connection_pools", None)
    if callable(offered):
        return list(offered())
    client = getattr(cache, "client", None)
    factory = getattr(client, "connection_factory", None)
    servers = getattr(client, "_server", None)
    if factory is not None and servers:
        # django-redis keeps one pool per server URL, process-wide; asking for it only
        # builds the pool object (connections open on first command).
        return [
            factory.get_or_create_connection_pool(factory.make_connection_params(url))
            for url in servers
        ]
    return None


def _redis_counts(pool: Any) -> tuple[int, int]:
    """(idle, in use) connections of a redis-py pool."""
    count = getattr(pool, "get_connection_count", None)
    if callable(count):
        (idle, _), (in_use, _) = count()
        return idle, in_use
    available = getattr(pool, "_available_connections", [])
    return len(available), len(getattr(pool, "_in_use_connections", ()))
