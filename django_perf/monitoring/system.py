"""Host and process metrics from psutil, sampled by the flusher thread, never in a request.

CPU percentages use ``cpu_percent(interval=None)``: the share of CPU since the
previous call, returned at once, so sampling never sleeps. The sampler primes
the counters when it is made (the flusher makes it when its thread starts, a
tick before the first sample), and reports ``None`` rather than a share of
less than ``MIN_CPU_INTERVAL`` seconds, which would be noise (0 % or over
1000 %). psutil keeps the host's reference point per thread: sample from the
thread that made the sampler. Each sample also carries what other capabilities
expose, when they are installed: database, async and Redis pool stats
(``django_perf.db.pool_stats()``) and cache totals (``caches[alias].stats()``).
"""

from __future__ import annotations

import gc
import os
import socket
import time
from typing import Any

import psutil

from .store.base import Sample

__all__ = ["MIN_CPU_INTERVAL", "SystemSampler"]

MIN_CPU_INTERVAL = 0.1  # seconds: a CPU share measured over less is reported as None


def _safe(fn: Any, default: Any = None) -> Any:
    try:
        return fn()
    except (psutil.Error, OSError, AttributeError, NotImplementedError):
        return default


class SystemSampler:
    """Takes :class:`Sample` objects of this process and its host."""

    def __init__(self, disk_path: str = "/") -> None:
        self.disk_path = disk_path
        self.host = socket.gethostname()
        self.process = psutil.Process()
        self._cpu_since = 0.0  # monotonic time of the CPU counters' reference point
        self.prime()

    def prime(self) -> None:
        """Set the CPU counters' reference point: the next CPU share is measured from now.

        The first ``cpu_percent(interval=None)`` call only sets that point; its value is noise.
        """
        psutil.cpu_percent(interval=None)
        _safe(lambda: self.process.cpu_percent(interval=None))
        self._cpu_since = time.monotonic()

    def sample(self) -> Sample:
        measured = time.monotonic() - self._cpu_since >= MIN_CPU_INTERVAL
        system, process = self.host_metrics(cpu=measured), self.process_metrics(cpu=measured)
        if measured:
            self._cpu_since = time.monotonic()
        return Sample(
            self.host, os.getpid(), time.time(), {"system": system, "process": process, **extras()}
        )

    def host_metrics(self, *, cpu: bool = True) -> dict[str, Any]:
        """The host's CPU, memory, disk and network; ``cpu=False`` leaves CPU unread (None)."""
        memory = psutil.virtual_memory()
        disk = _safe(lambda: psutil.disk_usage(self.disk_path))
        io = _safe(psutil.disk_io_counters)
        net = _safe(psutil.net_io_counters)
        return {
            "cpu_percent": psutil.cpu_percent(interval=None) if cpu else None,
            "cpu_count": psutil.cpu_count(),
            "load": list(_safe(os.getloadavg, (0.0, 0.0, 0.0))),
            "memory_total": memory.total,
            "memory_available": memory.available,
            "memory_used": memory.used,
            "memory_percent": memory.percent,
            "swap_percent": _safe(lambda: psutil.swap_memory().percent, 0.0),
            "disk_path": self.disk_path,
            "disk_total": disk.total if disk else None,
            "disk_used": disk.used if disk else None,
            "disk_percent": disk.percent if disk else None,
            "disk_read_bytes": io.read_bytes if io else None,
            "disk_write_bytes": io.write_bytes if io else None,
            "net_bytes_sent": net.bytes_sent if net else None,
            "net_bytes_recv": net.bytes_recv if net else None,
            "net_errors": (net.errin + net.errout) if net else None,
            "boot_time": _safe(psutil.boot_time),
        }

    def process_metrics(self, *, cpu: bool = True) -> dict[str, Any]:
        """This process's CPU, memory, threads, files and GC; ``cpu=False`` leaves CPU None."""
        process = self.process
        with process.oneshot():
            memory = process.memory_info()
            gc_stats = gc.get_stats()
            return {
                "cpu_percent": _safe(lambda: process.cpu_percent(interval=None)) if cpu else None,
                "rss": memory.rss,
                "vms": memory.vms,
                "threads": _safe(process.num_threads),
                "open_files": _safe(process.num_fds) or _safe(lambda: len(process.open_files())),
                "started": _safe(process.create_time),
                "gc_counts": list(gc.get_count()),
                "gc_collections": [generation["collections"] for generation in gc_stats],
                "gc_collected": sum(generation["collected"] for generation in gc_stats),
                "gc_uncollectable": sum(generation["uncollectable"] for generation in gc_stats),
            }


def extras() -> dict[str, Any]:
    """Pool and cache statistics other capabilities expose, where they are installed.

    ``db_pools``: database aliases and async pools (``"<alias>"`` or ``"async:<alias>"``),
    ``redis_pools``: Redis-backed caches, each a ``PoolStats.as_dict()`` from
    ``django_perf.db.pool_stats()``; ``caches``: ``stats()`` of each cache that has it.
    """
    found: dict[str, Any] = {}
    try:
        from django_perf.db import pool_stats  # type: ignore[attr-defined]
    except ImportError:
        pool_stats = None
    caches, redis_pools = cache_stats()
    if pool_stats is not None:
        try:
            db_pools: dict[str, Any] = {}
            redis_pools = {}
            for stats in pool_stats():
                data = stats.as_dict() if hasattr(stats, "as_dict") else dict(stats)
                data = _jsonable(data)
                kind, alias = data.get("kind"), data.get("alias")
                if kind == "cache":
                    redis_pools[alias] = data
                else:
                    db_pools[alias if kind == "database" else f"{kind}:{alias}"] = data
            found["db_pools"] = db_pools
        except Exception as error:  # a pool being down must not stop the sample
            found["db_pools"] = {"error": {"error": str(error)}}
    if caches:
        found["caches"] = caches
    if redis_pools:
        found["redis_pools"] = redis_pools
    return found


def cache_stats() -> tuple[dict[str, Any], dict[str, Any]]:
    """``stats()`` of each cache that has it, and the django-redis pools behind caches

    (the pools are read here only where ``django_perf.db.pool_stats()`` is missing)."""
    from django.conf import settings
    from django.core.cache import caches
    from django.utils.module_loading import import_string

    stats: dict[str, Any] = {}
    pools: dict[str, Any] = {}
    for alias, config in settings.CACHES.items():
        try:
            # A backend offering existing(alias) (TieredCache) is read only once the process
            # uses it: building its first instance here would start its listener.
            existing = getattr(import_string(config["BACKEND"]), "existing", None)
            cache = existing(alias) if callable(existing) else caches[alias]
        except Exception:
            continue
        if cache is None:
            continue
        method = getattr(cache, "stats", None)
        if callable(method):
            try:
                stats[alias] = _jsonable(method())
            except Exception as error:
                stats[alias] = {"error": str(error)}
        client = getattr(cache, "client", None)
        if client is not None and hasattr(client, "get_client"):
            pool = _safe(lambda client=client: client.get_client(write=True).connection_pool)
            if pool is not None:
                pools[alias] = redis_pool_stats(pool)
    return stats, pools


def redis_pool_stats(pool: Any) -> dict[str, Any]:
    """Connection counts of a redis-py pool (attributes read defensively: they are internal)."""
    available = getattr(pool, "_available_connections", None)
    in_use = getattr(pool, "_in_use_connections", None)
    return {
        "max_connections": getattr(pool, "max_connections", None),
        "created": getattr(pool, "_created_connections", None),
        "available": len(available) if available is not None else None,
        "in_use": len(in_use) if in_use is not None else None,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
