"""Flush at ASGI lifespan shutdown, for servers that do not run ``atexit`` handlers.

uvicorn shuts a worker down gracefully on SIGTERM (finishing its requests) and
then re-raises the signal, so the process dies without running ``atexit``
handlers, where the flusher's last flush lives. Wrapping the application
answers the ASGI lifespan protocol (which Django does not) and runs that last
flush at ``lifespan.shutdown``, after the last request::

    # asgi.py
    from django.core.asgi import get_asgi_application
    from django_perf.monitoring.asgi import with_lifespan

    application = with_lifespan(get_asgi_application())
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["shutdown", "with_lifespan"]

logger = logging.getLogger("django_perf.monitoring")

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Any]


def shutdown() -> None:
    """Stop this process's flusher and flush what is left (blocking; call it from a thread)."""
    from .flusher import flush
    from .recorder import get_recorder

    recorder = get_recorder()
    if recorder.flusher is not None:
        recorder.flusher.stop()
    else:
        flush(recorder)


def with_lifespan(app: ASGIApp) -> ASGIApp:
    """``app`` plus the ASGI lifespan protocol: the last metrics flush runs at shutdown."""

    async def application(scope: Scope, receive: Any, send: Any) -> Any:
        if scope["type"] != "lifespan":
            return await app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await asyncio.to_thread(shutdown)
                except Exception:
                    logger.exception("Last metrics flush at shutdown failed")
                await send({"type": "lifespan.shutdown.complete"})
                return

    return application
