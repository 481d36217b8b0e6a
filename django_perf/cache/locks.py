"""Stampede protection across processes: a Redis lease per cold key; waiters woken when it lands.

The process that misses a key first takes a lock in Redis (``SET NX PX``
through redis-py's ``Lock``, whose release and renewal are Lua scripts that
check the holder's token, so a holder whose lease ran out can never release
or extend someone else's). While it computes, a background thread renews
the lease every third of it; if the process dies, renewals stop and the
lease expires. Other processes wait: they are woken when the coherence
channel announces the key (the holder's ``set``), and poll as a fallback;
when the lock is gone and no value landed, one of them takes the lock over.
If the holder's function raised, it leaves a short-lived marker with the
exception (signed, like every cache entry) so that waiters raise it too
instead of all retrying.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from .backend import FAILED, MISSING

__all__ = ["HOLD", "TIMEOUT", "UNAVAILABLE", "VALUE", "Lease", "RemoteError", "acquire_or_wait"]

logger = logging.getLogger("django_perf.cache")

LOCK_SUFFIX = "|lock"
ERROR_SUFFIX = "|error"
ERROR_TTL = 5  # seconds an exception marker is kept for waiters
HOLD, VALUE, ERROR, TIMEOUT, UNAVAILABLE = "hold", "value", "error", "timeout", "unavailable"


class RemoteError(RuntimeError):
    """The function raised in another process, with an exception that could not be stored."""


class Lease:
    """A Redis lock on one key, renewed by a background thread until released."""

    def __init__(self, client: Any, name: str, lease: float) -> None:
        from redis.lock import Lock

        self.name = name
        self.lease = lease
        self._client = client
        self._lock = Lock(client, name, timeout=lease, blocking=False, thread_local=False)
        self.token: bytes | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> bool:
        token = uuid.uuid4().hex.encode()
        if not self._lock.acquire(blocking=False, token=token):
            return False
        self.token = token
        self._stop.clear()
        self._renewer = threading.Thread(
            target=self._renew, name=f"django-perf-lease[{self.name}]", daemon=True
        )
        self._renewer.start()
        return True

    def holder(self) -> bytes | None:
        """The token of the lock's current holder (None: nobody holds it)."""
        return self._client.get(self.name)

    def _renew(self) -> None:
        from redis.exceptions import LockError

        while not self._stop.wait(self.lease / 3):
            try:
                self._lock.reacquire()
            except LockError:
                logger.warning(
                    "Cache lock %r: the lease ran out before it could be renewed; another "
                    "process may compute the same value.",
                    self.name,
                )
                return
            except Exception as error:  # Redis unreachable: try again next time
                logger.debug("Cache lock %r: renewal failed: %s", self.name, error)

    def release(self) -> None:
        from redis.exceptions import LockError

        self._stop.set()
        if self.token is None:
            return
        try:
            self._lock.release()
        except LockError:
            pass  # the lease ran out (someone else may hold the lock now): leave theirs alone
        except Exception as error:
            logger.debug("Cache lock %r: release failed (it expires): %s", self.name, error)
        finally:
            self.token = None


class _Wakers:
    """Events to set when the coherence channel announces a key (one per channel)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, set[threading.Event]] = {}

    def add(self, keys: list[str], event: threading.Event) -> None:
        with self._lock:
            for key in keys:
                self._events.setdefault(key, set()).add(event)

    def remove(self, keys: list[str], event: threading.Event) -> None:
        with self._lock:
            for key in keys:
                found = self._events.get(key)
                if found is not None:
                    found.discard(event)
                    if not found:
                        del self._events[key]

    def __call__(self, message: dict[str, Any]) -> None:
        events = self._events
        if not events:
            return
        for key in message.get("k", ()):
            for event in events.get(key, ()):
                event.set()


_wakers: weakref.WeakKeyDictionary[Any, _Wakers] = weakref.WeakKeyDictionary()
_wakers_lock = threading.Lock()


def _wakers_for(channel: Any) -> _Wakers | None:
    if channel is None:
        return None
    with _wakers_lock:
        wakers = _wakers.get(channel)
        if wakers is None:
            wakers = _wakers[channel] = _Wakers()
            channel.hooks.append(wakers)
        return wakers


def store_error(cache: Any, key: str, lease: Lease, error: BaseException) -> None:
    """Leave ``error`` for the processes waiting on ``lease`` (a few seconds)."""
    token = (lease.token or b"").decode()
    try:
        pickle.loads(pickle.dumps(error))  # an exception that cannot come back is described
        marker: Any = [token, error]
        cache.set(key + ERROR_SUFFIX, marker, ERROR_TTL)
    except Exception:
        description = f"{type(error).__module__}.{type(error).__qualname__}: {error}"
        try:
            cache.set(key + ERROR_SUFFIX, [token, description], ERROR_TTL)
        except Exception as failure:
            logger.debug("Cache key %r: could not leave the error for waiters: %s", key, failure)


def _stored_error(cache: Any, key: str, token: bytes | None) -> BaseException | None:
    marker = cache.get(key + ERROR_SUFFIX)
    if not isinstance(marker, list | tuple) or len(marker) != 2 or token is None:
        return None
    holder, error = marker
    if holder != token.decode():
        return None
    if isinstance(error, BaseException):
        return error
    return RemoteError(f"the function raised in another process: {error}")


def acquire_or_wait(
    cache: Any,
    key: str,
    read: Callable[[], Any],
    *,
    lease: float,
    wait: float | None,
    poll: float = 0.05,
    stop: threading.Event | None = None,
) -> tuple[str, Any]:
    """Take the lock on ``key`` or wait for the process that holds it.

    Returns ``(HOLD, Lease)``: compute, store, then ``release()``;
    ``(VALUE, value)``: another process stored it (``read()`` returned it);
    ``(ERROR, exception)``: the holder's function raised it;
    ``(TIMEOUT, None)``: waited ``wait`` seconds; ``(UNAVAILABLE, None)``: no
    Redis tier, or it failed (compute without the lock). Once ``stop`` is set
    (the caller is gone) it returns ``(TIMEOUT, None)`` without taking the lock.
    """
    store = getattr(cache, "_store", None)
    redis = getattr(store, "redis", None)
    if redis is None:
        return UNAVAILABLE, None
    made = cache.make_key(key)
    try:
        holding = Lease(redis.writer(), made + LOCK_SUFFIX, lease)
    except Exception:
        return UNAVAILABLE, None
    deadline = None if wait is None else time.monotonic() + wait
    wakers = _wakers_for(store.channel)
    event = threading.Event()
    watched = [made, cache.make_key(key + ERROR_SUFFIX)]
    if wakers is not None:
        wakers.add(watched, event)
    try:
        while True:
            if stop is not None and stop.is_set():
                return TIMEOUT, None
            acquired = cache._call(redis, "lock", holding.acquire)
            if acquired is FAILED:
                return UNAVAILABLE, None
            if acquired:
                value = read()  # it may have landed between the caller's miss and now
                if value is not MISSING:
                    holding.release()
                    return VALUE, value
                return HOLD, holding
            holder = cache._call(redis, "lock", holding.holder)
            while True:
                if holder is FAILED:
                    return UNAVAILABLE, None
                event.wait(poll)
                event.clear()
                if stop is not None and stop.is_set():
                    return TIMEOUT, None
                value = read()
                if value is not MISSING:
                    return VALUE, value
                current = cache._call(redis, "lock", holding.holder)
                if current is None:
                    error = _stored_error(cache, key, holder)
                    if error is not None:
                        return ERROR, error
                    break  # the holder is gone without a value: take over
                holder = current
                if deadline is not None and time.monotonic() >= deadline:
                    return TIMEOUT, None
    finally:
        if wakers is not None:
            wakers.remove(watched, event)
