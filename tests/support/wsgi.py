"""Call a Django WSGI handler in process, without a server: a minimal environ per request."""

from __future__ import annotations

import io
from collections.abc import Callable


def environ(path: str) -> dict:
    """The WSGI environ of a bodiless GET of ``path`` (a fresh one per request)."""
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
    }


def start_response(status: str, headers: list) -> None:
    """A WSGI ``start_response`` that ignores what it is given."""


def get(handler: Callable, path: str) -> None:
    """Serve one GET of ``path`` through ``handler`` and close the response."""
    handler(environ(path), start_response).close()
