"""``TieredCache``: a Django cache backend layering process memory, Redis and a database table.

Reads go down the tiers in their configured order and promote a hit into the
tiers above it with the lifetime it has left. Writes go to the lowest tier
first and to L1 last, then other processes drop their L1 copy. ``add`` and
``incr`` are decided by one shared tier (Redis ``SET NX`` / ``INCRBY`` when
Redis is configured). A tier that fails is skipped and its error logged and
counted; see docs/cache.rst for the whole model.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache.backends.base import DEFAULT_TIMEOUT, MEMCACHE_MAX_KEY_LENGTH, BaseCache
from django.db import connections, transaction

from django_perf.conf import perf_settings
from django_perf.tally import count

from .codec import EXPIRY, INT64_MAX, INT64_MIN, Decoded, Encoded, Rejected, stamp
from .config import parse_config
from .faults import CLOSED
from .store import Store, existing_store, get_store
from .tiers import NOT_INTEGER

__all__ = ["TieredCache"]

MISSING = object()  # "no value" (None is a value)
FAILED = object()  # a tier call that raised or was skipped
EXPIRED = object()  # a timeout of 0 or less: do not store
_NO_PENDING = object()


def _holds_any(key: str) -> bool:
    return True


_memcached_unsafe = re.compile(r"[\x00-\x20\x7f]").search  # what Django warns about

Found = tuple[Decoded, Any]  # a decoded value and the bytes (or int) the tier held


class TieredCache(BaseCache):
    """A cache backend whose tiers (memory, redis, database) are listed in ``OPTIONS["TIERS"]``."""

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._store: Store = get_store(parse_config(location or "", params))
        store = self._store
        tiers = store.tiers
        # Fast path: a memory tier in front is read without leaving the calling thread.
        self._front = store.memory if tiers[0] is store.memory else None
        self._rest = tiers[1:] if self._front is not None else list(tiers)

    @classmethod
    def existing(cls, alias: str) -> TieredCache | None:
        """``caches[alias]`` if this process already uses its store, else None.

        For readers on other threads (the monitoring flusher, pool stats): a new
        instance on an existing store shares it and starts nothing, where the
        process's first one would connect and start the invalidation listener.
        """
        from django.conf import settings
        from django.core.cache import caches

        params = settings.CACHES.get(alias)
        if not isinstance(params, dict):
            return None
        try:
            config = parse_config(params.get("LOCATION") or "", params)
        except Exception:  # a configuration that cannot build a cache has no store either
            return None
        if existing_store(config) is None:
            return None
        return caches[alias]

    # --- Plumbing --------------------------------------------------------------------

    def validate_key(self, key: str) -> None:
        """Django's portability warnings, checked with one precompiled search first."""
        if len(key) > MEMCACHE_MAX_KEY_LENGTH or _memcached_unsafe(key):
            super().validate_key(key)

    @property
    def _strict(self) -> bool:
        option = self._store.config.options["STRICT"]
        return perf_settings.STRICT if option is None else option

    def _expiry(self, timeout: Any) -> Any:
        """Absolute expiry (None: never; EXPIRED: do not store) for a Django timeout."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        if timeout <= 0:
            return EXPIRED
        return time.time() + timeout

    def _cap(self, kind: str, expires_at: float | None, now: float) -> float | None:
        """``expires_at`` limited by the tier's MAX_TIMEOUT."""
        limit = self._store.max_timeout[kind]
        if limit is None:
            return expires_at
        cap = now + limit
        return cap if expires_at is None or expires_at > cap else expires_at

    def _call(
        self,
        tier: Any,
        operation: str,
        fn: Callable[..., Any],
        *args: Any,
        keys: Any = _NO_PENDING,
        **kwargs: Any,
    ) -> Any:
        """Run one tier operation; return FAILED if the tier raised or its breaker is open.

        ``keys``: what a failed write leaves stale in the tier (None: everything);
        those keys are deleted there before the tier serves again.
        """
        store = self._store
        kind = tier.kind
        breaker = store.breakers[kind]
        pending = store.pending[kind]
        if breaker.state == CLOSED and not breaker.failures and not pending.dirty:
            # The common case: a healthy tier with nothing to replay.
            try:
                return fn(*args, **kwargs)
            except Exception as error:
                if keys is not _NO_PENDING:
                    pending.add(keys)
                self._fault(tier, operation, error)
                if self._strict:
                    raise
                return FAILED
        strict = self._strict
        if not strict and breaker.allow() is None:
            store.counters[kind].add("skipped")
            if keys is not _NO_PENDING:
                store.pending[kind].add(keys)
            return FAILED
        try:
            if pending.dirty:
                self._replay(tier, pending)
            result = fn(*args, **kwargs)
        except Exception as error:
            if keys is not _NO_PENDING:
                store.pending[kind].add(keys)
            self._fault(tier, operation, error)
            if strict:
                raise
            return FAILED
        if (breaker.state != CLOSED or breaker.failures) and breaker.success():
            store.errors.event(store.name, kind, "back; circuit breaker closed, tier in use again")
        return result

    def _fault(self, tier: Any, operation: str, error: BaseException) -> None:
        store = self._store
        counters = store.counters[tier.kind]
        counters.add("errors")
        count(counters.error_event)
        breaker = store.breakers[tier.kind]
        opened = breaker.failure()
        store.errors.report(
            store.name, f"the {tier.kind} tier", operation, error, "skipped for this call"
        )
        if opened:
            store.errors.event(
                store.name,
                tier.kind,
                "%d failures in a row; circuit breaker open: the tier is skipped and probed "
                "again in %.1f s",
                breaker.failures,
                breaker.retry_in(),
            )

    def _replay(self, tier: Any, pending: Any) -> None:
        """Delete what changed while ``tier`` was failing (or clear it) before it serves."""
        everything, keys = pending.take()
        try:
            if everything:
                tier.clear()
            elif keys:
                tier.delete_many(keys)
        except Exception:
            pending.put_back(everything, keys)
            raise
        store = self._store
        what = "cleared it" if everything else f"deleted {len(keys)} key(s)"
        store.errors.event(store.name, tier.kind, "writes were missed while failing; %s", what)

    def _reject(self, tier: Any, key: str, rejected: Rejected) -> None:
        """A stored entry failed verification: count it, log it, delete it; never decode it."""
        store = self._store
        counters = store.counters[tier.kind]
        counters.add("rejected")
        counters.add("errors")
        count(counters.error_event)
        store.errors.report(
            store.name,
            f"an entry of the {tier.kind} tier",
            f"reading {key!r}",
            rejected,
            "the entry was deleted, never deserialized",
        )
        self._call(tier, "delete", tier.delete_many, [key])

    def _announce(self, keys: list[str] | None) -> None:
        """Tell other processes to drop ``keys`` (None: everything) from their L1.

        Called once every shared tier has the change, so that a process which drops
        its copy and reads again finds the new value.
        """
        channel = self._store.channel
        if channel is None:
            return
        if keys is None:
            channel.announce_clear()
        else:
            channel.announce_keys(keys)

    def _ensure_channel(self) -> None:
        store = self._store
        if store.channel is not None and not store.memory.coherent:
            store.channel.ensure_running()

    # --- Tier adapters ---------------------------------------------------------------

    def _read(self, tier: Any, key: str, want_expiry: bool) -> Found | None:
        """Read and decode ``key`` from a shared tier; None on a miss, failure or rejection."""
        counters = self._store.counters[tier.kind]
        row = self._call(tier, "get", tier.get, key)
        if row is FAILED:
            return None
        if row is None:
            counters.add("misses")
            count(counters.miss_event)
            return None
        found = self._decode(tier, key, row, want_expiry)
        if found is None:
            counters.add("misses")
            count(counters.miss_event)
            return None
        counters.add("hits")
        count(counters.hit_event)
        return found

    def _decode(self, tier: Any, key: str, row: Any, want_expiry: bool) -> Found | None:
        if tier.kind == "database":
            data, expires_at = row
            if type(data) is int:  # anything else (a REAL) is rejected by decode()
                return Decoded(data, data, None, expires_at, integer=True), data
        else:
            data, expires_at = row, MISSING
        try:
            decoded = self._store.codec.decode(key, data)
        except Rejected as rejected:
            self._reject(tier, key, rejected)
            return None
        if expires_at is not MISSING:
            decoded.expires_at = expires_at
        elif decoded.integer:
            # Raw integers in Redis carry no expiry; ask for it only to promote.
            decoded.expires_at = MISSING
            if want_expiry:
                ttl = self._call(tier, "pttl", tier.pttl, key)
                if ttl is not FAILED:
                    decoded.expires_at = None if ttl is None else time.time() + ttl
        return decoded, data

    def _read_many(self, tier: Any, keys: list[str]) -> dict[str, Found]:
        counters = self._store.counters[tier.kind]
        if tier.kind == "redis":
            values = self._call(tier, "get_many", tier.get_many, keys)
            rows = (
                {}
                if values is FAILED
                else {k: v for k, v in zip(keys, values, strict=True) if v is not None}
            )
        else:
            rows = self._call(tier, "get_many", tier.get_many, keys)
        if rows is FAILED:
            return {}
        found = {}
        for key, row in rows.items():
            item = self._decode(tier, key, row, want_expiry=True)
            if item is not None:
                found[key] = item
        if found:
            counters.add("hits", len(found))
            count(counters.hit_event, len(found))
        if len(found) < len(keys):
            counters.add("misses", len(keys) - len(found))
            count(counters.miss_event, len(keys) - len(found))
        return found

    @staticmethod
    def _data_for(encoded: Encoded) -> Any:
        """What a shared tier stores for ``encoded``.

        A payload carries the expiry the value was set with, never a tier's capped one:
        Redis applies its MAX_TIMEOUT with PX, and a value read back from there (to be
        promoted, or incremented) keeps its whole lifetime in the other tiers.
        """
        return encoded.payload if encoded.integer is None else encoded.integer

    def _put(
        self,
        tier: Any,
        key: str,
        data: Any,
        expires_at: float | None,
        now: float,
        *,
        nx: bool = False,
    ) -> bool:
        """Write ``data`` (already capped) to one shared tier; False if NX found a value."""
        if tier.kind == "redis":
            ttl = None if expires_at is None else expires_at - now
            if ttl is not None and ttl <= 0:
                if nx:
                    return False
                # Already expired (e.g. a slow lower tier used up the lifetime): the value
                # written is gone at once, so the one it replaces must not stay behind.
                tier.delete_many([key])
                return True
            return tier.set(key, data, ttl, nx=nx)
        if nx:
            return tier.add(key, data, expires_at)
        tier.set(key, data, expires_at)
        return True

    def _maybe_cull(self) -> None:
        database = self._store.database
        if database is not None and database.cull_due():
            self._call(database, "cull", database.cull)

    # --- Promotion -------------------------------------------------------------------

    def _promote(
        self, key: str, found: Found, above: list[Any], token: int, source: Any = None
    ) -> None:
        """Copy a lower-tier hit (read from ``source``) into the tiers above it, with the
        lifetime it has left."""
        decoded, data = found
        expires_at = decoded.expires_at
        now = time.time()
        if expires_at is MISSING or (expires_at is not None and expires_at <= now):
            return
        store = self._store
        for tier in reversed(above):  # lowest first, L1 last
            if tier is store.memory:
                tier.promote(key, Encoded(decoded.obj, decoded.raw), expires_at, token)
                continue
            capped = self._cap(tier.kind, expires_at, now)
            payload = (
                data if isinstance(data, int) or tier.kind != "redis" else stamp(data, expires_at)
            )
            if (
                self._call(tier, "promote", self._put, tier, key, payload, capped, now, nx=True)
                is True
            ):
                store.counters[tier.kind].add("promotions")
                if self._needs_confirming(source, tier) and not self._confirm(
                    source, tier, {key: (data, payload)}
                ):
                    return  # deleted meanwhile: taken back, and not copied higher

    def _promote_many(
        self, found: dict[str, Found], above: list[Any], token: int, source: Any = None
    ) -> None:
        store = self._store
        now = time.time()
        live = {
            key: item
            for key, item in found.items()
            if item[0].expires_at is not MISSING
            and (item[0].expires_at is None or item[0].expires_at > now)
        }
        for tier in reversed(above):
            if tier is store.memory:
                for key, (decoded, _) in live.items():
                    tier.promote(key, Encoded(decoded.obj, decoded.raw), decoded.expires_at, token)
            elif tier.kind == "redis":
                items = []
                for key, (decoded, data) in live.items():
                    capped = self._cap("redis", decoded.expires_at, now)
                    ttl = None if capped is None else capped - now
                    if ttl is None or ttl > 0:
                        items.append(
                            (
                                key,
                                data if isinstance(data, int) else stamp(data, decoded.expires_at),
                                ttl,
                            )
                        )
                if items:
                    results = self._call(tier, "promote", tier.promote_many, items)
                    if results is not FAILED:
                        store.counters["redis"].add("promotions", sum(results))
                        if self._needs_confirming(source, tier):
                            promoted = {
                                key: (live[key][1], payload)
                                for (key, payload, _), done in zip(items, results, strict=True)
                                if done
                            }
                            kept = self._confirm(source, tier, promoted) if promoted else set()
                            live = {
                                key: item
                                for key, item in live.items()
                                if key not in promoted or key in kept
                            }
            else:
                for key, item in live.items():
                    self._promote(key, item, [tier], token)

    def _needs_confirming(self, source: Any, target: Any) -> bool:
        return target.kind == "redis" and source is not None and source is self._store.database

    def _confirm(self, source: Any, target: Any, promoted: dict[str, tuple[Any, Any]]) -> set[str]:
        """The keys of ``promoted`` whose row ``source`` (the table) still holds; the copies
        of the others are taken back from ``target`` (Redis).

        ``promoted`` maps a key to (the data read from the table, the payload SET NX in
        Redis). A read that found a row just before another process deleted it would
        otherwise put it back into Redis after that delete, for Redis's whole lifetime.
        """
        rows = self._call(source, "get", source.get_many, list(promoted))
        if rows is FAILED:
            return set(promoted)  # cannot tell; Redis's MAX_TIMEOUT bounds the copy
        gone = [
            (key, payload)
            for key, (data, payload) in promoted.items()
            if key not in rows or rows[key][0] != data
        ]
        if gone:
            self._call(target, "retract", target.retract, gone)
        return set(promoted).difference(key for key, _ in gone)

    # --- Reads -----------------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        front = self._front
        if front is not None:
            value = front.get(key, MISSING)
            if value is not MISSING:
                return value
            if not self._rest:
                return default
        value = self._read_through(key)
        return default if value is MISSING else value

    def _get(self, key: str, default: Any) -> Any:
        front = self._front
        if front is not None:
            value = front.get(key, MISSING)
            if value is not MISSING or not self._rest:
                return default if value is MISSING else value
        value = self._read_through(key)
        return default if value is MISSING else value

    def _read_through(self, key: str) -> Any:
        """Read the tiers after the front one, promoting a hit; MISSING if none has it."""
        self._ensure_channel()
        store = self._store
        memory = store.memory
        token = memory.read_token() if memory is not None else 0
        above: list[Any] = [self._front] if self._front is not None else []
        for tier in self._rest:
            if tier is memory:
                value = memory.get(key, MISSING)
                if value is not MISSING:
                    expires_at = memory.expires_at(key) if above else None
                    encoded = store.codec.encode(key, value, expires_at) if above else None
                    for upper in reversed(above):
                        now = time.time()
                        capped = self._cap(upper.kind, expires_at, now)
                        data = self._data_for(encoded)
                        self._call(
                            upper, "promote", self._put, upper, key, data, capped, now, nx=True
                        )
                    return value
                above.append(tier)
                continue
            found = self._read(tier, key, want_expiry=bool(above))
            if found is not None:
                if above:
                    self._promote(key, found, above, token, source=tier)
                return found[0].value
            above.append(tier)
        return MISSING

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        made = {self.make_and_validate_key(key, version=version): key for key in keys}
        return {made[key]: value for key, value in self._get_many(list(made)).items()}

    def _get_many(self, keys: list[str]) -> dict[str, Any]:
        if not keys:
            return {}
        result: dict[str, Any] = {}
        front = self._front
        if front is not None:
            result = front.get_many(keys, MISSING)
            keys = [key for key in keys if key not in result]
        if keys and self._rest:
            result.update(self._get_many_lower(keys))
        return result

    def _get_many_lower(self, keys: list[str]) -> dict[str, Any]:
        """Read ``keys`` (already missed by the front tier) from the tiers after it."""
        result: dict[str, Any] = {}
        self._ensure_channel()
        store = self._store
        memory = store.memory
        token = memory.read_token() if memory is not None else 0
        above: list[Any] = [self._front] if self._front is not None else []
        for tier in self._rest:
            if not keys:
                break
            if tier is memory:
                hits = memory.get_many(keys, MISSING)
                result.update(hits)
                keys = [key for key in keys if key not in hits]
                above.append(tier)
                continue
            found = self._read_many(tier, keys)
            if found:
                if above:
                    self._promote_many(found, above, token, source=tier)
                for key, (decoded, _) in found.items():
                    result[key] = decoded.value
                keys = [key for key in keys if key not in found]
            above.append(tier)
        return result

    def has_key(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._get(key, MISSING) is not MISSING

    # --- Writes ----------------------------------------------------------------------

    def set(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        key = self.make_and_validate_key(key, version=version)
        self._set(key, value, timeout)

    def _set(self, key: str, value: Any, timeout: Any) -> None:
        expires_at = self._expiry(timeout)
        if expires_at is EXPIRED:
            self._delete([key])
            return
        store = self._store
        encoded = store.codec.encode(key, value, expires_at)  # raises before any tier is touched
        memory = store.memory
        if not store.shared:
            memory.set(key, encoded, expires_at)
            return
        token = memory.begin_write(key) if memory is not None else 0
        written = False
        try:
            self._write_shared(key, encoded, expires_at)
            written = True
        finally:
            if memory is not None:
                memory.end_write(key, token, encoded if written else None, expires_at)

    def _write_shared(self, key: str, encoded: Encoded, expires_at: float | None) -> None:
        for tier in reversed(self._store.shared):
            now = time.time()
            capped = self._cap(tier.kind, expires_at, now)
            data = self._data_for(encoded)
            self._call(tier, "set", self._put, tier, key, data, capped, now, keys=[key])
        self._announce([key])
        self._maybe_cull()

    def set_many(
        self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        made = {
            self.make_and_validate_key(key, version=version): value for key, value in data.items()
        }
        self._set_many(made, timeout)
        return []

    def _set_many(self, data: dict[str, Any], timeout: Any) -> None:
        if not data:
            return
        expires_at = self._expiry(timeout)
        if expires_at is EXPIRED:
            self._delete(list(data))
            return
        store = self._store
        codec = store.codec
        encoded = {key: codec.encode(key, value, expires_at) for key, value in data.items()}
        memory = store.memory
        if not store.shared:
            for key, item in encoded.items():
                memory.set(key, item, expires_at)
            return
        keys = list(encoded)
        tokens = [memory.begin_write(key) for key in keys] if memory is not None else []
        written = False
        try:
            for tier in reversed(store.shared):
                now = time.time()
                capped = self._cap(tier.kind, expires_at, now)
                lifetime = capped - now if tier.kind == "redis" and capped is not None else capped
                items = [(key, self._data_for(item), lifetime) for key, item in encoded.items()]
                self._call(tier, "set_many", tier.set_many, items, keys=keys)
            self._announce(keys)
            self._maybe_cull()
            written = True
        finally:
            for key, token in zip(keys, tokens, strict=False):
                memory.end_write(key, token, encoded[key] if written else None, expires_at)

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._add(key, value, timeout)

    def _add(self, key: str, value: Any, timeout: Any) -> bool:
        expires_at = self._expiry(timeout)
        if expires_at is EXPIRED:
            return self._get(key, MISSING) is MISSING
        store = self._store
        encoded = store.codec.encode(key, value, expires_at)
        memory = store.memory
        if not store.shared:
            return memory.add(key, encoded, expires_at)
        if memory is not None and memory.contains(key):
            return False
        token = memory.begin_write(key) if memory is not None else 0
        stored = keep = False
        try:
            result = self._add_shared(key, encoded, expires_at)
            if result is FAILED:  # every shared tier is down: L1 decides alone
                keep = True
                return memory.add(key, encoded, expires_at) if memory is not None else False
            stored = result
            return result
        finally:
            if memory is not None:
                memory.end_write(key, token, encoded if stored else None, expires_at, keep=keep)

    def _add_shared(self, key: str, encoded: Encoded, expires_at: float | None) -> Any:
        """SET NX (or INSERT) on the first shared tier that answers; then confirm below it."""
        shared = self._store.shared
        for index, tier in enumerate(shared):
            now = time.time()
            capped = self._cap(tier.kind, expires_at, now)
            data = self._data_for(encoded)
            added = self._call(
                tier, "add", self._put, tier, key, data, capped, now, nx=True, keys=[key]
            )
            if added is FAILED:
                continue
            if not added:
                return False
            for lower in shared[index + 1 :]:
                now = time.time()
                capped = self._cap(lower.kind, expires_at, now)
                data = self._data_for(encoded)
                confirmed = self._call(
                    lower, "add", self._put, lower, key, data, capped, now, nx=True, keys=[key]
                )
                if confirmed is False:
                    # A live value hid in a lower tier: the key existed after all.
                    found = self._read(lower, key, want_expiry=True)
                    if found is not None:
                        self._copy_up(key, found, shared[: shared.index(lower)])
                    self._announce([key])
                    return False
            self._announce([key])
            self._maybe_cull()
            return True
        return FAILED

    def _copy_up(self, key: str, found: Found, tiers: list[Any]) -> None:
        """Overwrite ``tiers`` with a value found below them (keeping its lifetime)."""
        decoded, data = found
        if decoded.expires_at is MISSING:
            return
        for tier in reversed(tiers):
            now = time.time()
            capped = self._cap(tier.kind, decoded.expires_at, now)
            payload = (
                data
                if isinstance(data, int) or tier.kind != "redis"
                else stamp(data, decoded.expires_at)
            )
            self._call(tier, "set", self._put, tier, key, payload, capped, now, keys=[key])

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._touch(key, timeout)

    def _touch(self, key: str, timeout: Any) -> bool:
        expires_at = self._expiry(timeout)
        if expires_at is EXPIRED:
            return self._delete([key])
        store = self._store
        memory = store.memory
        if not store.shared:
            return memory.touch(key, expires_at)
        token = memory.begin_write(key) if memory is not None else 0
        keep = False
        try:
            touched = answered = False
            for tier in reversed(self._holders(key)):
                now = time.time()
                capped = self._cap(tier.kind, expires_at, now)
                if tier.kind == "redis":
                    ttl = None if capped is None else capped - now
                    header = EXPIRY.pack(expires_at or 0.0)  # the whole lifetime, as in set()
                    result = self._call(tier, "touch", tier.touch, key, ttl, header, keys=[key])
                else:
                    result = self._call(tier, "touch", tier.touch, key, capped, keys=[key])
                if result is not FAILED:
                    answered = True
                    touched = touched or bool(result)
            self._announce([key])
            if not answered and memory is not None:
                keep = True
                return memory.touch(key, expires_at)
            return touched
        finally:
            if memory is not None:
                memory.end_write(key, token, keep=keep)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        return self._incr(key, delta)

    def _holders(self, key: str) -> list[Any]:
        """The shared tiers that can store ``key`` (the table cannot hold a NUL on PostgreSQL).

        A key no shared tier can hold lives in L1 only, so L1 answers for it.
        """
        shared = self._store.shared
        if key.isascii() and "\0" not in key:
            return shared  # nearly every key: every tier holds it
        return [tier for tier in shared if getattr(tier, "holds", _holds_any)(key)]

    def _incr(self, key: str, delta: int) -> Any:
        store = self._store
        memory = store.memory
        if not store.shared:
            return memory.incr(key, delta, store.codec.encode_for_memory)
        token = memory.begin_write(key) if memory is not None else 0
        keep = False
        try:
            result = self._incr_shared(key, delta)
            if result is FAILED:  # every shared tier is down: L1 decides alone
                if memory is None:
                    raise ValueError(f"Key '{key}' not found")
                keep = True
                return memory.incr(key, delta, store.codec.encode_for_memory)
            return result
        finally:
            if memory is not None:
                memory.end_write(key, token, keep=keep)

    def _incr_shared(self, key: str, delta: int) -> Any:
        """INCRBY (or UPDATE ... + delta) on the first shared tier that answers.

        FAILED if none answers, or none can hold the key: L1 then decides alone.
        """
        shared = self._holders(key)
        if not shared:
            return FAILED
        if type(delta) is not int or not INT64_MIN <= delta <= INT64_MAX:
            # INCRBY and the integer column take 64-bit whole numbers only (SQLite would
            # store a REAL, or fail to bind a bigger int): add anything else (1.5, a bool,
            # 2**70, ...) in Python, as LocMemCache does.
            return self._incr_slow(key, delta, shared)
        for index, tier in enumerate(shared):
            result = self._call(tier, "incr", tier.incr, key, delta, keys=[key])
            if result is FAILED:
                continue
            lower = shared[index + 1 :]
            if result is None:
                # Absent here; a lower tier may still hold it (e.g. a shorter MAX_TIMEOUT).
                found = next(filter(None, (self._read(t, key, True) for t in lower)), None)
                if found is None:
                    raise ValueError(f"Key '{key}' not found")
                self._copy_up(key, found, [tier])
                result = self._call(tier, "incr", tier.incr, key, delta, keys=[key])
                if result is None or result is FAILED:
                    raise ValueError(f"Key '{key}' not found")
            if result is NOT_INTEGER:
                return self._incr_slow(key, delta, shared[index:])
            for other in reversed(lower):
                # Apply the same delta below (commutes with concurrent increments)...
                done = self._call(other, "incr", other.incr, key, delta, keys=[key])
                if done is NOT_INTEGER:
                    # ...or drop a value there that cannot take it.
                    self._call(other, "delete", other.delete_many, [key], keys=[key])
            self._announce([key])
            return result
        return FAILED

    def _incr_slow(self, key: str, delta: int, tiers: list[Any]) -> Any:
        """Read, add, write: for values a tier cannot add to (floats, big ints, ...)."""
        found = next(filter(None, (self._read(t, key, True) for t in tiers)), None)
        if found is None:
            raise ValueError(f"Key '{key}' not found")
        decoded = found[0]
        new = decoded.value + delta
        expires_at = decoded.expires_at
        if expires_at is MISSING:
            expires_at = self._expiry(DEFAULT_TIMEOUT)
        self._write_shared(key, self._store.codec.encode(key, new, expires_at), expires_at)
        return new

    def delete(self, key: Any, version: int | None = None) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return self._delete([key])

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        made = [self.make_and_validate_key(key, version=version) for key in keys]
        if made:
            self._delete(made)

    def _delete(self, keys: list[str]) -> bool:
        store = self._store
        memory = store.memory
        if not store.shared:
            deleted = [memory.delete(key) for key in keys]
            return any(deleted)
        tokens = [memory.begin_write(key) for key in keys] if memory is not None else []
        deleted = False
        try:
            for tier in reversed(store.shared):
                result = self._call(tier, "delete", tier.delete_many, keys, keys=keys)
                if result is not FAILED and result:
                    deleted = True
            self._announce(keys)
        finally:
            for key, token in zip(keys, tokens, strict=False):
                deleted = memory.end_write(key, token) or deleted
        self._drop_again_on_commit(keys)
        return deleted

    def _drop_again_on_commit(self, keys: list[str]) -> None:
        """Inside ``atomic()`` on the table's database, drop ``keys`` above the table again
        once the delete commits: until then other connections still see the rows, and a
        read there copies them into Redis and L1."""
        store = self._store
        database = store.database
        if database is None or database is store.tiers[0]:
            return
        if not connections[database.alias].in_atomic_block:
            return
        transaction.on_commit(
            functools.partial(self._drop_above_table, keys), using=database.alias, robust=True
        )

    def _drop_above_table(self, keys: list[str]) -> None:
        store = self._store
        above = store.tiers[: store.tiers.index(store.database)]
        for tier in reversed(above):
            if tier is store.memory:
                for key in keys:
                    tier.delete(key)
            else:
                self._call(tier, "delete", tier.delete_many, keys, keys=keys)
        self._announce(keys)

    def clear(self) -> None:
        store = self._store
        for tier in reversed(store.shared):
            self._call(tier, "clear", tier.clear, keys=None)
        self._announce(None)
        if store.memory is not None:
            store.memory.clear()

    def close(self, **kwargs: Any) -> None:
        """Nothing to do per request: connections and the L1 store live for the process."""

    # --- Async: L1 in the event loop, lower tiers in one worker-thread hop -------------

    def _hop(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return sync_to_async(fn, thread_sensitive=self._store.needs_db_thread)

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        front = self._front
        if front is not None:
            value = front.get(key, MISSING)
            if value is not MISSING:
                return value
            if not self._rest:
                return default
        value = await self._hop(self._read_through)(key)
        return default if value is MISSING else value

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        made = {self.make_and_validate_key(key, version=version): key for key in keys}
        if not made:
            return {}
        front = self._front
        found: dict[str, Any] = {}
        rest = list(made)
        if front is not None:
            found = front.get_many(rest, MISSING)
            rest = [key for key in rest if key not in found]
        if rest and self._rest:
            found.update(await self._hop(self._get_many_lower)(rest))
        return {made[key]: value for key, value in found.items()}

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        return await self.aget(key, MISSING, version=version) is not MISSING

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._store.shared:
            return await self._hop(fn)(*args)
        return fn(*args)  # L1 only: no I/O, no thread hop

    async def aset(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        await self._run(self._set, self.make_and_validate_key(key, version=version), value, timeout)

    async def aadd(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return await self._run(self._add, key, value, timeout)

    async def aset_many(
        self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        made = {
            self.make_and_validate_key(key, version=version): value for key, value in data.items()
        }
        await self._run(self._set_many, made, timeout)
        return []

    async def atouch(
        self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        key = self.make_and_validate_key(key, version=version)
        return await self._run(self._touch, key, timeout)

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        return await self._run(self._incr, key, delta)

    async def adecr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        return await self.aincr(key, -delta, version=version)

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        return await self._run(self._delete, [self.make_and_validate_key(key, version=version)])

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        made = [self.make_and_validate_key(key, version=version) for key in keys]
        if made:
            await self._run(self._delete, made)

    async def aclear(self) -> None:
        await self._run(self.clear)

    async def aclose(self, **kwargs: Any) -> None:
        """Nothing to do per request (see close())."""

    # --- Introspection -------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters per tier, in tier order, plus the coherence channel's state.

        ``memory``: hits, misses, promotions (values copied up into L1), evictions
        (LRU or size), expirations, entries, bytes, coherent (L1 in use). Shared
        tiers: hits, misses, errors, rejected (entries that failed verification),
        skipped (calls not made while the breaker was open), promotions,
        evictions, and the breaker's state. Counts are for this process and
        this cache configuration, since the process started.
        """
        store = self._store
        out: dict[str, Any] = {}
        for tier in store.tiers:
            if tier is store.memory:
                out["memory"] = {
                    "hits": tier.hits,
                    "misses": tier.misses,
                    "errors": 0,
                    "promotions": tier.promotions,
                    "evictions": tier.evictions,
                    "expirations": tier.expirations,
                    "entries": len(tier),
                    "bytes": tier.bytes,
                    "max_entries": tier.max_entries,
                    "max_bytes": tier.max_bytes,
                    "coherent": tier.coherent,
                }
                continue
            stats: dict[str, Any] = store.counters[tier.kind].as_dict()
            breaker = store.breakers[tier.kind]
            stats["evictions"] = getattr(tier, "evictions", 0)
            stats["expirations"] = getattr(tier, "expirations", 0)
            stats["breaker"] = breaker.state
            stats["breaker_opened"] = breaker.opened
            out[tier.kind] = stats
        if store.channel is not None:
            out["coherence"] = store.channel.stats()
        return out

    def connection_pools(self) -> list[Any]:
        """The Redis tier's redis-py connection pools (none without one), for pool stats."""
        redis = self._store.redis
        return [] if redis is None else redis.connection_pools()

    def wait_for_coherence(self, timeout: float | None = 5.0) -> bool:
        """Block until L1 is in use (its invalidation channel subscribed); True if it is.

        Without a Redis tier there is no channel and L1 is always in use.
        """
        channel = self._store.channel
        return True if channel is None else channel.wait_up(timeout)
