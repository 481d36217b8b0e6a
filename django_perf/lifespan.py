"""The ASGI lifespan protocol for django-perf: work that must run when a worker shuts down.

Django's ASGI handler does not answer lifespan events, and uvicorn workers
exit without running ``atexit`` handlers. Wrap the application once; each
capability registers what must happen after the last request (monitoring's
last metrics flush, closing async database pools) with :func:`on_shutdown`
when it first creates something that needs it::

    # asgi.py
    from django.core.asgi import get_asgi_application
    from django_perf.lifespan import with_lifespan

    application = with_lifespan(get_asgi_application())
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["on_shutdown", "run_shutdown_hooks", "with_lifespan"]

logger = logging.getLogger("django_perf")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Hook = Callable[[], Any]

_hooks: list[Hook] = []
_hooks_lock = threading.Lock()


def on_shutdown(hook: Hook) -> Hook:
    """Run ``hook`` at lifespan shutdown (once, however often it is registered).

    A coroutine function is awaited on the server's event loop (where async
    pools live); a plain function runs in a thread, since it may block.
    """
    with _hooks_lock:
        if hook not in _hooks:
            _hooks.append(hook)
    return hook


async def run_shutdown_hooks() -> list[str]:
    """Run every registered hook, newest first; return the errors' messages (all hooks run)."""
    with _hooks_lock:
        hooks = list(reversed(_hooks))
    errors = []
    for hook in hooks:
        try:
            if inspect.iscoroutinefunction(hook):
                await hook()
            else:
                await asyncio.to_thread(hook)
        except Exception as error:
            logger.exception("django-perf shutdown hook %r failed", hook)
            errors.append(f"{getattr(hook, '__qualname__', hook)}: {error}")
    return errors


def with_lifespan(app: ASGIApp) -> ASGIApp:
    """``app`` answering the lifespan protocol; other scopes pass through untouched."""

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                errors = await run_shutdown_hooks()
                if errors:
                    await send({"type": "lifespan.shutdown.failed", "message": "; ".join(errors)})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    return application
