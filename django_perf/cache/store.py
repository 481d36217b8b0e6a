"""What every TieredCache instance with one configuration shares inside a process.

Django creates a cache instance per alias per thread; like ``LocMemCache``,
they share one store (L1's dict, the tiers' connections, the coherence
listener, breakers and counters), found by the configuration's fingerprint.
"""

from __future__ import annotations

import threading
from typing import Any

from .codec import Codec, make_compressor, make_serializer
from .coherence import Channel
from .config import CacheConfig
from .faults import CLOSED, Breaker, ErrorLog
from .tiers.database import DatabaseTier
from .tiers.memory import MemoryTier
from .tiers.redis import RedisTier

__all__ = [
    "Counters",
    "Pending",
    "Store",
    "existing_store",
    "forget_store",
    "get_store",
    "reset_stores",
]

PENDING_LIMIT = 10_000


class Counters:
    """Event counts of one shared tier (L1 keeps its own, under its lock)."""

    FIELDS = ("hits", "misses", "errors", "rejected", "skipped", "promotions")

    def __init__(self, kind: str) -> None:
        self._lock = threading.Lock()
        self.hits = self.misses = self.errors = self.rejected = self.skipped = 0
        self.promotions = 0
        # The per-request tally names the monitoring middleware reads.
        self.hit_event = f"cache.{kind}.hit"
        self.miss_event = f"cache.{kind}.miss"
        self.error_event = f"cache.{kind}.error"

    def add(self, field: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, field, getattr(self, field) + amount)

    def as_dict(self) -> dict[str, int]:
        return {field: getattr(self, field) for field in self.FIELDS}


class Pending:
    """Keys a tier missed writes for while failing; deleted there before it serves again.

    Past ``PENDING_LIMIT`` keys (or after a missed ``clear``) the whole tier is
    cleared instead, so a recovered tier never serves a value that changed
    while it was unreachable.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.keys: set[str] = set()
        self.everything = False
        self.dirty = False

    def add(self, keys: list[str] | None) -> None:
        with self._lock:
            self.dirty = True
            if self.everything:
                return
            if keys is None:
                self.everything = True
                self.keys = set()
                return
            self.keys.update(keys)
            if len(self.keys) > PENDING_LIMIT:
                self.everything, self.keys = True, set()

    def take(self) -> tuple[bool, list[str]]:
        with self._lock:
            taken = self.everything, list(self.keys)
            self.keys, self.everything, self.dirty = set(), False, False
            return taken

    def put_back(self, everything: bool, keys: list[str]) -> None:
        self.add(None if everything else keys)


class Store:
    """Tiers, codec, breakers, counters and coherence of one cache configuration."""

    def __init__(self, config: CacheConfig) -> None:
        options = config.options
        self.config = config
        self.name = config.name or "default"
        self.memory: MemoryTier | None = None
        self.redis: RedisTier | None = None
        self.database: DatabaseTier | None = None
        shared = any(spec.kind != "memory" for spec in config.tiers)
        serializer = make_serializer(options["SERIALIZER"], options)
        self.codec = Codec(
            serializer,
            make_compressor(options["COMPRESSOR"], options),
            options["COMPRESS_MIN_LEN"],
            shared=shared,
        )
        self.errors = ErrorLog(options["LOG_INTERVAL"])
        self.tiers: list[Any] = []
        self.max_timeout: dict[str, float | None] = {}
        for spec in config.tiers:
            if spec.kind == "memory":
                tier: Any = MemoryTier(
                    loads=serializer.loads,
                    max_entries=spec["MAX_ENTRIES"],
                    max_bytes=spec["MAX_BYTES"],
                    cull_frequency=spec["CULL_FREQUENCY"],
                    max_timeout=spec["MAX_TIMEOUT"],
                )
                self.memory = tier
            elif spec.kind == "redis":
                tier = RedisTier(spec["LOCATION"], spec["OPTIONS"])
                tier.scan_count = spec["SCAN_COUNT"]
                self.redis = tier
            else:
                tier = DatabaseTier(
                    config.name,
                    database=spec["DATABASE"],
                    max_entries=spec["MAX_ENTRIES"],
                    cull_batch=spec["CULL_BATCH"],
                    cull_interval=spec["CULL_INTERVAL"],
                )
                self.database = tier
            self.max_timeout[spec.kind] = spec["MAX_TIMEOUT"]
            self.tiers.append(tier)
        self.shared = [tier for tier in self.tiers if tier.shared]
        self.breakers = {
            tier.kind: Breaker(
                options["BREAKER_FAILURES"],
                options["BREAKER_COOLDOWN"],
                options["BREAKER_MAX_COOLDOWN"],
            )
            for tier in self.shared
        }
        self.counters = {tier.kind: Counters(tier.kind) for tier in self.shared}
        self.pending = {tier.kind: Pending() for tier in self.shared}
        self.channel: Channel | None = None
        redis_spec = config.tier("redis")
        if self.memory is not None and self.redis is not None and redis_spec["CHANNEL"]:
            self.channel = Channel(
                name=self.name,
                channel=redis_spec["CHANNEL"],
                memory=self.memory,
                connect=self.redis.writer,
                publish=self.redis.publish,
                health_interval=redis_spec["HEALTH_INTERVAL"],
                errors=self.errors,
                on_publish_error=self._publish_failed,
                can_publish=lambda: self.breakers["redis"].state == CLOSED,
            )
            # Subscribed again means Redis answers: probe its breaker now rather than
            # after the cooldown, so writes publish their invalidations again at once.
            self.channel.on_up.append(self.breakers["redis"].probe_now)
            self.channel.ensure_running()
        # Async calls run lower tiers in a worker thread; the ORM needs Django's own.
        self.needs_db_thread = self.database is not None

    def _publish_failed(self, error: BaseException) -> None:
        """A failed invalidation message counts as an error of the Redis tier."""
        self.counters["redis"].add("errors")
        breaker = self.breakers["redis"]
        if breaker.failure():
            self.errors.event(
                self.name,
                "redis",
                "%d failures in a row; circuit breaker open: the tier is skipped and probed "
                "again in %.1f s",
                breaker.failures,
                breaker.retry_in(),
            )

    def close(self) -> None:
        """Stop the listener. Redis pools stay: django-redis shares them per URL in the process."""
        if self.channel is not None:
            self.channel.stop()


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def get_store(config: CacheConfig) -> Store:
    """The process's store for ``config``, created on first use."""
    key = config.fingerprint
    store = _stores.get(key)
    if store is None:
        with _stores_lock:
            store = _stores.get(key)
            if store is None:
                store = _stores[key] = Store(config)
    return store


def existing_store(config: CacheConfig) -> Store | None:
    """The process's store for ``config`` if a cache already made it; never creates one."""
    return _stores.get(config.fingerprint)


def reset_stores() -> None:
    """Close and forget every store (tests; a process that wants a clean slate)."""
    with _stores_lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        store.close()


def forget_store(store: Store) -> None:
    """Close ``store`` and forget it; the next cache with its configuration starts afresh."""
    with _stores_lock:
        for key, value in list(_stores.items()):
            if value is store:
                del _stores[key]
    store.close()
