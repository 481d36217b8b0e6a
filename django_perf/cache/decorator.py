"""``cache_result``: cache what a function returns, keyed by its arguments, without stampedes.

::

    @cache_result(ttl=300, tags=["articles"])
    def home_articles(limit: int = 20) -> list[dict]: ...

    @cache_result(ttl=60, early="probabilistic")
    async def exchange_rates(currency: str) -> dict: ...

Keys are ``djp:fn:<module>.<qualname>:<digest of the arguments>`` (see
``argkeys``), folded with the generations of the function's tags. On a miss
one caller computes: in a process, callers of the same key (threads and
asyncio tasks) share one computation (``singleflight``); across processes a
Redis lease decides which process computes while the others wait for the
value (``locks``). See docs/invalidation.rst for the options.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import inspect
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.db import close_old_connections

from .argkeys import Unkeyable, encode
from .backend import MISSING
from .locks import ERROR, HOLD, VALUE, Lease, acquire_or_wait, store_error
from .singleflight import Flights, LeaderGone, WaitedTooLong, flights
from .tags import atagged_key, check_tags, fold, generations_in

__all__ = ["AsyncCachedFunction", "CachedFunction", "cache_result"]

logger = logging.getLogger("django_perf.cache")

KEY_PREFIX = "djp:fn:"
EARLY_MODES = (None, "probabilistic", "stale")
FRESH, EARLY, STALE = "fresh", "early", "stale"
# In a process, a leader that has not finished after this many times ``wait`` is presumed
# stuck: one waiter takes over, and a waiter outlasted by two leaders raises TimeoutError.
STUCK_AFTER_WAITS = 10

_refreshers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="django-perf-refresh")
_tasks: set[asyncio.Task[Any]] = set()  # background refreshes of async functions
# Early and stale refreshes have flights of their own: a miss (after an invalidation) never
# joins one, so it never gets the old value a failed refresh keeps.
refreshes = Flights()
# Threads in which async functions wait for (or take) a Redis lease.
_lock_threads = ThreadPoolExecutor(max_workers=32, thread_name_prefix="django-perf-lock")


class Options:
    """The checked options of one ``cache_result`` decorator."""

    def __init__(
        self,
        ttl: Any,
        tags: Any,
        alias: str,
        key: Callable[..., str] | None,
        cache_none: bool,
        lock: bool,
        lease: float,
        wait: float | None,
        early: str | None,
        stale_ttl: float,
        stale_on_error: bool,
        beta: float,
    ) -> None:
        def number(name: str, value: Any, *, none: bool = False, zero: bool = False) -> None:
            if value is None and none:
                return
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"cache_result({name}=...) takes a number; got {value!r}.")
            if value < 0 or (value == 0 and not zero):
                raise ValueError(
                    f"cache_result({name}={value!r}) must be greater than 0"
                    + (" (or None)" if none else "")
                    + "."
                )

        if ttl is not DEFAULT_TIMEOUT:
            if ttl == 0 and not isinstance(ttl, bool):
                raise ValueError(
                    "cache_result(ttl=0) would cache nothing; pass a number of seconds, or "
                    "ttl=None to keep results until they are invalidated."
                )
            number("ttl", ttl, none=True)
        if callable(tags):
            self.tags: Any = tags
        else:
            self.tags = check_tags(tags or (), what="cache_result(tags=...)")
        if not isinstance(alias, str) or alias not in settings.CACHES:
            configured = ", ".join(repr(name) for name in settings.CACHES) or "none"
            raise ValueError(
                f"cache_result(alias={alias!r}): no such cache in settings.CACHES; configured "
                f"aliases: {configured}."
            )
        if key is not None and not callable(key):
            raise TypeError(
                f"cache_result(key=...) takes a function of the arguments returning a string, "
                f"e.g. key=lambda pk: f'article:{{pk}}'; got {key!r}."
            )
        number("lease", lease)
        number("wait", wait, none=True)
        number("stale_ttl", stale_ttl, zero=True)
        number("beta", beta)
        if early not in EARLY_MODES:
            raise ValueError(
                f"cache_result(early={early!r}) must be None, 'probabilistic' or 'stale'."
            )
        if (early or stale_ttl or stale_on_error) and ttl is None:
            raise ValueError(
                "cache_result(early=..., stale_ttl=..., stale_on_error=...) need a ttl: a value "
                "kept forever never gets old."
            )
        if early == "stale" and not stale_ttl:
            raise ValueError(
                "cache_result(early='stale') serves a value past its ttl while it is refreshed; "
                "say for how long with stale_ttl=<seconds>."
            )
        if stale_on_error and not stale_ttl:
            raise ValueError(
                "cache_result(stale_on_error=True) needs stale_ttl=<seconds>: how long an old "
                "value is kept to be served when the function fails."
            )
        self.ttl = ttl
        self.alias = alias
        self.key = key
        self.cache_none = bool(cache_none)
        self.lock = bool(lock)
        self.lease = float(lease)
        self.wait = wait
        # A thread cannot wait past TIMEOUT_MAX (about 292 years): a long wait means "for ever".
        self.stuck_after = (
            None if wait is None else min(STUCK_AFTER_WAITS * wait, threading.TIMEOUT_MAX)
        )
        self.early = early
        self.stale_ttl = float(stale_ttl)
        self.stale_on_error = bool(stale_on_error)
        self.beta = float(beta)
        # Values are stored as [value, fresh_until, seconds it took] when their age matters.
        self.enveloped = bool(early or stale_ttl)


def cache_result(
    ttl: Any = DEFAULT_TIMEOUT,
    *,
    tags: Iterable[str] | Callable[..., Iterable[str]] = (),
    alias: str = "default",
    key: Callable[..., str] | None = None,
    cache_none: bool = False,
    lock: bool = True,
    lease: float = 10.0,
    wait: float | None = 60.0,
    early: str | None = None,
    stale_ttl: float = 0,
    stale_on_error: bool = False,
    beta: float = 1.0,
) -> Any:
    """Cache the results of a sync or async function (or method), keyed by its arguments.

    ``ttl``: seconds (default: the cache's TIMEOUT; None: until invalidated).
    ``tags``: tag names, or a function of the arguments returning them.
    ``key``: a function of the arguments returning the cache key to use instead
    of the generated one. ``cache_none``: also cache ``None`` results.
    ``lock``/``lease``/``wait``: across processes (with a Redis tier), one
    process computes a cold key under a Redis lease of ``lease`` seconds
    (renewed while it runs); the others wait up to ``wait`` seconds for it.
    ``early``: ``"probabilistic"`` recomputes a hot value shortly before it
    expires, one caller at a time (XFetch, scaled by ``beta``); ``"stale"``
    serves a value up to ``stale_ttl`` seconds past its ttl while one caller
    refreshes it in the background. ``stale_on_error``: if the function
    raises, serve the value kept for ``stale_ttl`` seconds instead.
    """
    if callable(ttl) and not isinstance(ttl, int | float):  # @cache_result without parentheses
        return cache_result()(ttl)
    options = Options(
        ttl, tags, alias, key, cache_none, lock, lease, wait, early, stale_ttl, stale_on_error, beta
    )

    def decorate(fn: Callable[..., Any]) -> Any:
        if isinstance(fn, staticmethod | classmethod):
            raise TypeError(
                "Put @cache_result below @staticmethod/@classmethod, so it wraps the function."
            )
        if not callable(fn):
            raise TypeError(f"cache_result decorates a function; got {fn!r}.")
        qualname = getattr(fn, "__qualname__", "")
        if options.key is None and ("<lambda>" in qualname or "<locals>" in qualname):
            # Keys are built from module + qualname: every lambda of a scope, and every closure
            # a factory returns, has the same one, so they would share (and swap) results.
            raise TypeError(
                f"cache_result cannot build keys for {fn.__module__}.{qualname}: a lambda or "
                "a function defined inside another function has no name unique to it, so its "
                "results would share keys with its siblings. Pass key=lambda ...: '...' (a "
                "key that tells them apart), or define it at module or class level."
            )
        if inspect.iscoroutinefunction(fn):
            return AsyncCachedFunction(fn, options)
        return CachedFunction(fn, options)

    return decorate


class CachedFunction:
    """A function whose results are cached; ``.invalidate()``, ``.refresh()``, ``.key()``."""

    def __init__(self, fn: Callable[..., Any], options: Options) -> None:
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._options = options
        self.name = f"{fn.__module__}.{fn.__qualname__}"
        self._prefix = f"{KEY_PREFIX}{self.name}:"
        self._signature = inspect.signature(fn)
        params = list(self._signature.parameters.values())
        self._names = [p.name for p in params]
        self._simple = all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
        # Positional calls that leave trailing defaults out skip Signature.bind().
        self._defaults = tuple(p.default for p in params)
        required = [i for i, p in enumerate(params) if p.default is p.empty]
        self._required = required[-1] + 1 if required else 0

    def __repr__(self) -> str:
        return f"<cached function {self.name}>"

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        return BoundCachedFunction(self, instance)

    # Keys ---------------------------------------------------------------------------------

    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterable[Any]:
        """(name, value) of every parameter, defaults applied: one key per distinct call."""
        if not kwargs and self._simple and self._required <= len(args) <= len(self._names):
            if len(args) < len(self._names):
                args = args + self._defaults[len(args) :]
            return zip(self._names, args, strict=True)
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{self.name}(): {error}") from None
        bound.apply_defaults()
        return bound.arguments.items()

    def key(self, *args: Any, **kwargs: Any) -> str:
        """The cache key for these arguments (before tags are folded in)."""
        custom = self._options.key
        if custom is not None:
            made = custom(*args, **kwargs)
            if not isinstance(made, str) or not made:
                raise TypeError(
                    f"cache_result(key=...) of {self.name} must return a non-empty string; "
                    f"got {made!r}."
                )
            return made
        out: list[bytes] = []
        for name, value in self._arguments(args, kwargs):
            try:
                encode(value, out, name)
            except Unkeyable as error:
                raise TypeError(
                    f"cache_result cannot build a key for {self.name}(): argument "
                    f"{error.path!r} is {error.reason}. Pass key=lambda ...: '...' to "
                    "cache_result, give the class a __cache_key__() method returning a "
                    "value, or pass a value (such as an id) instead."
                ) from None
        return self._prefix + hashlib.blake2b(b"".join(out), digest_size=16).hexdigest()

    def _tags(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
        tags = self._options.tags
        if callable(tags):
            return check_tags(tags(*args, **kwargs), what=f"the tags of {self.name}")
        return tags

    def _full_key(self, cache: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The key with the current generations of the function's tags folded in."""
        key = self.key(*args, **kwargs)
        tags = self._tags(args, kwargs)
        return fold(key, generations_in(cache, tags)) if tags else key

    # Stored values ------------------------------------------------------------------------

    def _ttl(self, cache: Any) -> float | None:
        ttl = self._options.ttl
        return cache.default_timeout if ttl is DEFAULT_TIMEOUT else ttl

    def _pack(self, cache: Any, value: Any, took: float) -> tuple[Any, Any]:
        """What to store for ``value`` and for how long."""
        ttl = self._ttl(cache)
        if not self._options.enveloped:
            return value, ttl
        if ttl is None:  # the cache's TIMEOUT is None: fresh until invalidated
            # Still an envelope: _state reads every 3-item list as one, so a bare value such as
            # (a, b, c) would be misread. None, not inf: JSON serializers turn inf into null.
            return [value, None, took], None
        return [value, time.time() + ttl, took], ttl + self._options.stale_ttl

    def _state(self, found: Any) -> tuple[str, Any]:
        """(FRESH | EARLY | STALE, value) for what the cache holds."""
        options = self._options
        if not options.enveloped:
            return FRESH, found
        if not (isinstance(found, list | tuple) and len(found) == 3):
            return FRESH, found  # stored by other code under a custom key
        value, fresh_until, took = found
        if fresh_until is None:  # stored with no ttl: never old
            return FRESH, value
        now = time.time()
        if now >= fresh_until:
            return STALE, value
        # XFetch: recompute early, with a probability that grows as expiry nears.
        if (
            options.early == "probabilistic"
            and took > 0
            and now - took * options.beta * math.log(1.0 - random.random()) >= fresh_until
        ):
            return EARLY, value
        return FRESH, value

    def _fresh(self, found: Any) -> Any:
        if found is MISSING:
            return MISSING
        state, value = self._state(found)
        return MISSING if state == STALE else value

    def _failed(self, error: BaseException, stale: Any) -> Any:
        if self._options.stale_on_error and stale is not MISSING:
            logger.warning(
                "%s raised %s: %s; serving the value kept past its ttl (stale_on_error).",
                self.name,
                type(error).__name__,
                error,
            )
            return stale
        raise error

    # Calls --------------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        cache = caches[self._options.alias]
        key = self._full_key(cache, args, kwargs)
        found = cache.get(key, MISSING)
        stale = MISSING
        if found is not MISSING:
            state, value = self._state(found)
            if state == FRESH:
                return value
            if state == EARLY:
                return self._refresh_quietly(cache, key, args, kwargs, value)
            stale = value
            if self._options.early == "stale":
                if not refreshes.running(key):
                    _refreshers.submit(self._refresh_in_background, cache, key, args, kwargs, value)
                return value
        return self._miss(cache, key, args, kwargs, stale)

    def _miss(self, cache: Any, key: str, args: Any, kwargs: Any, stale: Any) -> Any:
        flight, leader = flights.join(key)
        patience = 2  # leaders a waiter outlasts before it gives up
        while not leader:
            stuck = False
            try:
                return flight.wait(self._options.stuck_after)
            except LeaderGone:
                pass
            except WaitedTooLong:
                patience -= 1
                if not patience:
                    raise
                stuck = True
            flight, leader = flights.take_over(flight)
            if leader and stuck:
                self._presume_stuck(key)
        try:
            value = self._lead(cache, key, args, kwargs, stale)
        except BaseException as error:
            flight.fail(error)
            raise
        else:
            flight.succeed(value)
            return value
        finally:
            flights.leave(flight)

    def _presume_stuck(self, key: str) -> None:
        """Log a leader that outlasted its waiters: this one computes instead."""
        logger.warning(
            "%s: the caller computing %r has not finished in %g s; computing it again.",
            self.name,
            key,
            self._options.stuck_after,
        )

    def _lead(self, cache: Any, key: str, args: Any, kwargs: Any, stale: Any) -> Any:
        holding = None
        if self._options.lock:
            outcome, found = acquire_or_wait(
                cache,
                key,
                lambda: self._fresh(cache.get(key, MISSING)),
                lease=self._options.lease,
                wait=self._options.wait,
            )
            if outcome == VALUE:
                return found
            if outcome == ERROR:
                return self._failed(found, stale)
            if outcome == HOLD:
                holding = found
        if holding is None:  # no lock taken: another thread may have stored it meanwhile
            value = self._fresh(cache.get(key, MISSING))
            if value is not MISSING:
                return value
        try:
            return self._compute(cache, key, args, kwargs)
        except Exception as error:
            if holding is not None:
                store_error(cache, key, holding, error)
            return self._failed(error, stale)
        finally:
            if holding is not None:
                holding.release()

    def _compute(self, cache: Any, key: str, args: Any, kwargs: Any) -> Any:
        started = time.monotonic()
        value = self._fn(*args, **kwargs)
        if value is not None or self._options.cache_none:
            stored, timeout = self._pack(cache, value, time.monotonic() - started)
            cache.set(key, stored, timeout)
        return value

    def _refresh_quietly(self, cache: Any, key: str, args: Any, kwargs: Any, current: Any) -> Any:
        """Recompute ahead of expiry unless another caller (or process) already does."""
        flight, leader = refreshes.join(key)
        if not leader:
            return current
        try:
            lease = _try_lease(cache, key, self._options.lease)
            if lease is False:
                flight.succeed(current)
                return current
            try:
                value = self._compute(cache, key, args, kwargs)
            except Exception as error:
                self._keep_current(error)
                value = current
            finally:
                if lease is not None:
                    lease.release()
            flight.succeed(value)
            return value
        except BaseException as error:
            flight.fail(error)
            raise
        finally:
            refreshes.leave(flight)

    def _keep_current(self, error: Exception) -> None:
        """Log an early refresh that failed: the caller keeps the value it has."""
        logger.warning(
            "%s raised %s: %s while refreshing early; the current value stays.",
            self.name,
            type(error).__name__,
            error,
        )

    def _refresh_in_background(
        self, cache: Any, key: str, args: Any, kwargs: Any, stale: Any
    ) -> None:
        try:
            self._refresh_quietly(cache, key, args, kwargs, stale)
        finally:
            close_old_connections()

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Drop the cached result for these arguments; True if there was one."""
        cache = caches[self._options.alias]
        return cache.delete(self._full_key(cache, args, kwargs))

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function now, store its result for these arguments, and return it."""
        cache = caches[self._options.alias]
        return self._compute(cache, self._full_key(cache, args, kwargs), args, kwargs)


def _try_lease(cache: Any, key: str, seconds: float) -> Lease | bool | None:
    """A lease on ``key`` (None: no Redis tier; False: another process holds it)."""
    store = getattr(cache, "_store", None)
    redis = getattr(store, "redis", None)
    if redis is None:
        return None
    try:
        lease = Lease(redis.writer(), cache.make_key(key) + "|lock", seconds)
        return lease if lease.acquire() else False
    except Exception:
        return None


async def _leasing_in_thread(call: Callable[[threading.Event], Any]) -> Any:
    """Await ``call(stop)`` in a worker thread, which may take a Lease for this task.

    If the task is cancelled meanwhile (a request timeout, a client gone), ``stop``
    tells the thread to stop waiting, and a Lease it still returns is released:
    otherwise nobody would, and its renewals would keep the lock for good.
    """
    stop = threading.Event()
    future = _lock_threads.submit(contextvars.copy_context().run, call, stop)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        stop.set()
        future.add_done_callback(_release_unclaimed)
        raise


def _release_unclaimed(future: Future[Any]) -> None:
    """Release the Lease a worker thread took for a task that was cancelled meanwhile."""
    if future.cancelled() or future.exception() is not None:
        return
    result = future.result()
    lease = result[1] if isinstance(result, tuple) and result and result[0] == HOLD else result
    if isinstance(lease, Lease):  # released in a thread: this may run on the event loop
        threading.Thread(target=lease.release, name="django-perf-release", daemon=True).start()


class AsyncCachedFunction(CachedFunction):
    """``cache_result`` on an ``async def``; ``.invalidate()`` and ``.refresh()`` are async."""

    def __init__(self, fn: Callable[..., Any], options: Options) -> None:
        super().__init__(fn, options)
        markcoroutinefunction(self)

    async def _afull_key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        key = self.key(*args, **kwargs)
        tags = self._tags(args, kwargs)
        return await atagged_key(key, tags, alias=self._options.alias) if tags else key

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key = await self._afull_key(args, kwargs)
        cache = caches[self._options.alias]
        found = await cache.aget(key, MISSING)
        stale = MISSING
        if found is not MISSING:
            state, value = self._state(found)
            if state == FRESH:
                return value
            if state == EARLY:
                return await self._arefresh_quietly(cache, key, args, kwargs, value)
            stale = value
            if self._options.early == "stale":
                if not refreshes.running(key):
                    task = asyncio.get_running_loop().create_task(
                        self._arefresh_quietly(cache, key, args, kwargs, value)
                    )
                    _tasks.add(task)
                    task.add_done_callback(_tasks.discard)
                return value
        return await self._amiss(cache, key, args, kwargs, stale)

    async def _amiss(self, cache: Any, key: str, args: Any, kwargs: Any, stale: Any) -> Any:
        flight, leader = flights.join(key)
        patience = 2  # leaders a waiter outlasts before it gives up
        while not leader:
            stuck = False
            try:
                return await flight.await_(self._options.stuck_after)
            except LeaderGone:
                pass
            except WaitedTooLong:
                patience -= 1
                if not patience:
                    raise
                stuck = True
            flight, leader = flights.take_over(flight)
            if leader and stuck:
                self._presume_stuck(key)
        try:
            value = await self._alead(cache, key, args, kwargs, stale)
        except BaseException as error:
            flight.fail(error)
            raise
        else:
            flight.succeed(value)
            return value
        finally:
            flights.leave(flight)

    async def _alead(self, cache: Any, key: str, args: Any, kwargs: Any, stale: Any) -> Any:
        holding = None
        if self._options.lock and getattr(getattr(cache, "_store", None), "redis", None):

            def wait_for_lock(stop: threading.Event) -> tuple[str, Any]:
                try:
                    return acquire_or_wait(
                        cache,
                        key,
                        lambda: self._fresh(cache.get(key, MISSING)),
                        lease=self._options.lease,
                        wait=self._options.wait,
                        stop=stop,
                    )
                finally:
                    close_old_connections()

            outcome, found = await _leasing_in_thread(wait_for_lock)
            if outcome == VALUE:
                return found
            if outcome == ERROR:
                return self._failed(found, stale)
            if outcome == HOLD:
                holding = found
        if holding is None:
            value = self._fresh(await cache.aget(key, MISSING))
            if value is not MISSING:
                return value
        try:
            return await self._acompute(cache, key, args, kwargs)
        except Exception as error:
            if holding is not None:
                await sync_to_async(store_error, thread_sensitive=False)(cache, key, holding, error)
            return self._failed(error, stale)
        finally:
            if holding is not None:
                await sync_to_async(holding.release, thread_sensitive=False)()

    async def _acompute(self, cache: Any, key: str, args: Any, kwargs: Any) -> Any:
        started = time.monotonic()
        value = await self._fn(*args, **kwargs)
        if value is not None or self._options.cache_none:
            stored, timeout = self._pack(cache, value, time.monotonic() - started)
            await cache.aset(key, stored, timeout)
        return value

    async def _arefresh_quietly(
        self, cache: Any, key: str, args: Any, kwargs: Any, current: Any
    ) -> Any:
        flight, leader = refreshes.join(key)
        if not leader:
            return current
        try:
            lease = await _leasing_in_thread(
                lambda stop: _try_lease(cache, key, self._options.lease)
            )
            if lease is False:
                flight.succeed(current)
                return current
            try:
                value = await self._acompute(cache, key, args, kwargs)
            except Exception as error:
                self._keep_current(error)
                value = current
            finally:
                if lease is not None:
                    await sync_to_async(lease.release, thread_sensitive=False)()
            flight.succeed(value)
            return value
        except BaseException as error:
            flight.fail(error)
            raise
        finally:
            refreshes.leave(flight)

    async def invalidate(self, *args: Any, **kwargs: Any) -> bool:  # type: ignore[override]
        """Drop the cached result for these arguments; True if there was one."""
        return await caches[self._options.alias].adelete(await self._afull_key(args, kwargs))

    async def refresh(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Await the function now, store its result for these arguments, and return it."""
        key = await self._afull_key(args, kwargs)
        return await self._acompute(caches[self._options.alias], key, args, kwargs)


class BoundCachedFunction:
    """A cached method looked up on an instance: the instance is its first argument."""

    __slots__ = ("__dict__", "__func__", "__self__")

    def __init__(self, function: CachedFunction, instance: Any) -> None:
        self.__func__ = function
        self.__self__ = instance
        if isinstance(function, AsyncCachedFunction):
            markcoroutinefunction(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__func__(self.__self__, *args, **kwargs)

    def key(self, *args: Any, **kwargs: Any) -> str:
        return self.__func__.key(self.__self__, *args, **kwargs)

    def invalidate(self, *args: Any, **kwargs: Any) -> Any:
        return self.__func__.invalidate(self.__self__, *args, **kwargs)

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        return self.__func__.refresh(self.__self__, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<bound cached method {self.__func__.name} of {self.__self__!r}>"
