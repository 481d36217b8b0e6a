"""An async psycopg pool per Django database alias, for raw async SQL in ASGI views.

Django's ORM is sync underneath: every async ORM call hops to a thread. Raw
SQL on a ``psycopg.AsyncConnection`` stays on the event loop. These pools are
built from a ``DATABASES`` alias (same server, credentials, time zone, role
and adapters), opened on first use, one per alias and event loop, and closed
by :func:`close_async_pools`, which runs when an ASGI server shuts down if the
application is wrapped in :func:`django_perf.lifespan.with_lifespan`, or else
when their event loop ends (``asyncio.run()`` returning; a loop merely closed
has its pools dropped at the next look-up). Their connections
are not Django's: they do not take part in ``transaction.atomic()``; use
``async with conn.transaction():``.

From sync code (``async_to_sync`` in a WSGI view or a management command),
every call runs on a new event loop that ends with it: there
:func:`async_connection` opens one connection for the block and closes it, as
Django does for a thread's connection without ``CONN_MAX_AGE``; no pool is
started.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from asgiref.sync import AsyncToSync
from django.db import connections
from django.db.utils import DEFAULT_DB_ALIAS

from ..conf import perf_settings
from ..lifespan import on_shutdown
from .pools import PoolStats, psycopg_pool_stats

__all__ = [
    "async_connection",
    "async_pool",
    "async_pool_stats",
    "close_async_pools",
]

logger = logging.getLogger("django_perf.db")

# event loop -> alias -> pool. A pool belongs to the loop that opened it.
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)
# event loop -> the task that closes its pools when the loop ends (see _close_at_loop_end).
_closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


async def async_pool(alias: str = DEFAULT_DB_ALIAS) -> Any:
    """The open ``psycopg_pool.AsyncConnectionPool`` for ``alias`` on this event loop.

    It stays open until :func:`close_async_pools` runs on this loop, or the loop ends.
    """
    loop = asyncio.get_running_loop()
    _drop_closed_loops()
    pools = _pools.setdefault(loop, {})
    pool = pools.get(alias)
    if pool is None:
        pool = pools[alias] = _build(alias)
        on_shutdown(close_async_pools)
        if loop not in _closers:
            _closers[loop] = loop.create_task(
                _close_at_loop_end(loop), name="django_perf: close async pools at loop end"
            )
    await pool.open()
    return pool


@asynccontextmanager
async def async_connection(alias: str = DEFAULT_DB_ALIAS) -> AsyncIterator[Any]:
    """A ``psycopg.AsyncConnection`` (autocommit) for ``alias``.

    Borrowed from the alias's async pool; on asgiref's one-call loop (``async_to_sync``
    from sync code) a connection of its own, closed when the block ends.
    """
    if asyncio.get_running_loop() in AsyncToSync.loop_thread_executors:
        async with _own_connection(alias) as connection:
            yield connection
        return
    pool = await async_pool(alias)
    async with pool.connection() as connection:
        yield connection


async def close_async_pools() -> None:
    """Close this event loop's async pools (waiting for borrowed connections to come back)."""
    loop = asyncio.get_running_loop()
    pools = _pools.pop(loop, {})
    for alias, pool in pools.items():
        await pool.close()
        logger.info("Closed the async database pool for %r.", alias)


def async_pool_stats() -> list[PoolStats]:
    """Stats of every open async pool of this process."""
    _drop_closed_loops()
    stats = []
    for pools in list(_pools.values()):
        for alias, pool in list(pools.items()):
            if not pool.closed:
                stats.append(psycopg_pool_stats("async", alias, pool))
    return stats


async def _close_at_loop_end(loop: asyncio.AbstractEventLoop) -> None:
    """Wait until the loop ends, then close its pools.

    ``asyncio.run()`` (which asgiref's ``async_to_sync`` and servers use) ends by
    cancelling the tasks left and waiting for them. A pool worker busy connecting
    swallows that cancellation (psycopg_pool's tasks catch ``CancelledError`` to keep
    the pool consistent) and waits for more work, so the loop would wait forever
    unless the pool is closed, which tells its workers to stop.
    """
    try:
        await loop.create_future()  # never done: only the loop's end cancels this
    except asyncio.CancelledError:
        _closers.pop(loop, None)
        for alias, pool in _pools.pop(loop, {}).items():
            # close() waits for the pool's workers and gives up at the first one the loop
            # cancelled: the pool is closed and its workers told to stop by then, but its
            # idle connections are left to garbage collection (close_async_pools() first
            # closes them cleanly).
            with suppress(asyncio.CancelledError):
                await pool.close()
            logger.info("Closed the async database pool for %r as its event loop ended.", alias)
        raise


def _drop_closed_loops() -> None:
    """Forget the pools of event loops closed without ending them (no ``asyncio.run()``).

    ``loop.run_until_complete()`` then ``loop.close()`` never cancels the task that closes
    the loop's pools, and the pools keep the loop alive (so its weak entry stays): close
    them here as far as a dead loop allows.
    """
    for loop in [loop for loop in list(_pools) if loop.is_closed()]:
        _closers.pop(loop, None)
        for alias, pool in _pools.pop(loop, {}).items():
            _abandon(pool)
            logger.info("Closed the async database pool for %r: its event loop was closed.", alias)


def _abandon(pool: Any) -> None:
    """End the idle connections of a pool whose loop is closed (nothing can be awaited there).

    Best effort, on psycopg_pool's internals: a connection borrowed when the loop closed,
    or anything the pool's version keeps elsewhere, is left to garbage collection.
    """
    for connection in list(getattr(pool, "_pool", ())):
        with suppress(Exception):
            connection.pgconn.finish()


@asynccontextmanager
async def _own_connection(alias: str) -> AsyncIterator[Any]:
    from psycopg import AsyncConnection

    params, configure, _ = _connection_settings(alias)
    connection = await AsyncConnection.connect(**params)
    try:
        await configure(connection)
        yield connection
    finally:
        await connection.close()


def _build(alias: str) -> Any:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    params, configure, wrapper = _connection_settings(alias)
    options = perf_settings.ASYNC_POOL  # checked and merged over the defaults by conf
    check = AsyncConnectionPool.check_connection if wrapper.settings_dict.get(
        "CONN_HEALTH_CHECKS"
    ) else None  # fmt: skip
    return AsyncConnectionPool(
        connection_class=AsyncConnection,
        kwargs=params,
        open=False,
        configure=configure,
        check=check,
        name=f"django_perf:{alias}",
        **options,
    )


def _connection_settings(alias: str) -> tuple[dict[str, Any], Callable[[Any], Any], Any]:
    """The alias's connection parameters, its per-connection setup, and its Django wrapper."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as error:
        raise ImportError(
            'async_connection() needs psycopg 3 with its pool: pip install "django-perf[postgres]"'
        ) from error
    wrapper = connections[alias]
    if wrapper.vendor != "postgresql":
        raise ValueError(
            f"async_connection({alias!r}): the alias uses {wrapper.vendor}; async pools are "
            "for PostgreSQL."
        )
    params = wrapper.get_connection_params()
    params.pop("cursor_factory", None)  # Django's is a sync client-side-binding cursor
    params["autocommit"] = True
    return params, _configurer(wrapper), wrapper


def _configurer(wrapper: Any) -> Callable[[Any], Any]:
    """Give each new connection the alias's time zone, role and isolation level, as Django does."""
    timezone_name = wrapper.timezone_name
    options = wrapper.settings_dict.get("OPTIONS") or {}
    role = options.get("assume_role")
    isolation_level = options.get("isolation_level")

    async def configure(connection: Any) -> None:
        if timezone_name and connection.info.parameter_status("TimeZone") != timezone_name:
            await connection.execute("SELECT set_config('TimeZone', %s, false)", [timezone_name])
        if role:
            from psycopg import sql

            await connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        if isolation_level is not None:
            await connection.set_isolation_level(isolation_level)

    return configure
