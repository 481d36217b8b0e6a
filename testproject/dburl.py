"""Turn ``DATABASE_URL`` into a Django ``DATABASES`` entry (a tiny dj-database-url)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

ENGINES = {
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "sqlite": "django.db.backends.sqlite3",
}


SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
}


def database_from_url(url: str, base_dir: Path) -> dict[str, Any]:
    """``postgresql://user:pass@host:port/name?opt=v`` or ``sqlite:///path`` -> DATABASES entry.

    A Unix-socket host may be given as ``?host=/path/to/dir``. Relative SQLite
    paths are taken from ``base_dir``. SQLite files run in WAL mode with
    immediate transactions, so the metrics flusher's writes and long reads (a
    streamed export) do not lock each other out ("database is locked").
    """
    parts = urlsplit(url)
    engine = ENGINES.get(parts.scheme)
    if engine is None:
        raise ImproperlyConfigured(
            f"DATABASE_URL scheme {parts.scheme!r} is not supported; "
            "use postgresql://user:password@host:port/name or sqlite:///path/to/db.sqlite3."
        )
    if engine.endswith("sqlite3"):
        path = unquote(parts.path)
        if path in ("", "/", "/:memory:") or parts.netloc == ":memory:":
            return {"ENGINE": engine, "NAME": ":memory:"}
        # sqlite:///relative.db -> "relative.db"; sqlite:////abs/path.db -> "/abs/path.db"
        name = Path(path[1:]) if path.startswith("/") else Path(path)
        return {
            "ENGINE": engine,
            "NAME": str(name if name.is_absolute() else base_dir / name),
            "OPTIONS": SQLITE_OPTIONS,
        }
    options = dict(parse_qsl(parts.query))
    host = options.pop("host", None) or unquote(parts.hostname or "")
    return {
        "ENGINE": engine,
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
    }
