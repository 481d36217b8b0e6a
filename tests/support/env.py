"""What a server process started by a test needs to see the test's own database and Redis."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
CORE_ONLY = Path(__file__).resolve().parent / "core_only"


def without_extras(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` for a subprocess that cannot import the extras' packages (core_only/)."""
    path = os.pathsep.join(filter(None, [str(CORE_ONLY), environ.get("PYTHONPATH")]))
    return {**environ, "PYTHONPATH": path}


def database_url() -> str:
    """A ``DATABASE_URL`` for the live test database (after pytest-django created it)."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    auth = quote(settings["USER"] or "")
    if settings["PASSWORD"]:
        auth += ":" + quote(settings["PASSWORD"])
    port = f":{settings['PORT']}" if settings["PORT"] else ""
    return f"postgresql://{auth}@{settings['HOST']}{port}/{settings['NAME']}"


def server_env(redis_url: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for a subprocess running the test project against the test's database."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "testproject.settings",
        "DATABASE_URL": database_url(),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "DJANGO_DEBUG": "0",
        **extra,
    }
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def bin_path(name: str) -> str:
    """An executable installed next to this Python (gunicorn, uvicorn, daphne)."""
    return str(Path(sys.executable).parent / name)
