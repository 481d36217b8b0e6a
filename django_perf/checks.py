"""System checks for django-perf: ``django_perf.E0xx`` errors and ``django_perf.W0xx`` warnings.

Each check explains what is wrong and what to install or change; ``manage.py
check`` runs them, as does every management command that checks the project.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core import checks

from .conf import perf_settings

REDIS_URL_SCHEMES = ("redis://", "rediss://", "unix://")


def module_available(name: str) -> bool:
    """Whether ``name`` can be imported in this environment."""
    try:
        import_module(name)
    except ImportError:
        return False
    return True


def _strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings_in(item)


def cache_needs_django_redis(config: dict[str, Any]) -> bool:
    """A django-redis backend, or a django-perf backend with a Redis URL anywhere in its config."""
    backend = config.get("BACKEND", "")
    if backend.startswith("django_redis."):
        return True
    if backend.startswith("django_perf."):
        found = _strings_in([config.get("LOCATION"), config.get("OPTIONS")])
        return any(s.startswith(REDIS_URL_SCHEMES) for s in found)
    return False


# --- General (E001-E099, W001-W099) -------------------------------------------


@checks.register(checks.Tags.caches)
def check_redis_client(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E001: a cache talks to Redis but django-redis, which django-perf uses for it, is missing."""
    if module_available("django_redis"):
        return []
    return [
        checks.Error(
            f"The cache {alias!r} uses Redis, but django-redis is not installed.",
            hint='Install the Redis extra: pip install "django-perf[redis]".',
            obj=f"CACHES[{alias!r}]",
            id="django_perf.E001",
        )
        for alias, config in settings.CACHES.items()
        if cache_needs_django_redis(config)
    ]


@checks.register()
def check_strict_in_production(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W001: STRICT turns cache outages into server errors; it belongs in development only."""
    if perf_settings.STRICT and not settings.DEBUG:
        return [
            checks.Warning(
                "DJANGO_PERF['STRICT'] is on while DEBUG is off: a cache tier that goes down "
                "will raise in your views instead of becoming a cache miss.",
                hint="Set DJANGO_PERF['STRICT'] = False in production settings.",
                obj="settings.DJANGO_PERF",
                id="django_perf.W001",
            )
        ]
    return []


# --- Cache and invalidation (E100-E199, W100-W199) -----------------------------

TIERED_CACHE = "django_perf.cache.TieredCache"


@checks.register(checks.Tags.caches)
def check_tiered_cache_options(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E101: TieredCache OPTIONS that would fail at first use; W101: L1 that may stay stale."""
    from django.core.exceptions import ImproperlyConfigured

    from .cache.config import parse_config

    messages: list[checks.CheckMessage] = []
    for alias, config in settings.CACHES.items():
        if config.get("BACKEND") != TIERED_CACHE:
            continue
        try:
            parsed = parse_config(config.get("LOCATION", "") or "", config, alias)
        except ImproperlyConfigured as error:
            messages.append(
                checks.Error(
                    str(error),
                    hint="See the tiered cache options in the django-perf docs (cache page).",
                    obj=f"CACHES[{alias!r}]",
                    id="django_perf.E101",
                )
            )
            continue
        memory, redis = parsed.tier("memory"), parsed.tier("redis")
        coherent = redis is not None and redis["CHANNEL"]
        if memory is not None and memory["MAX_TIMEOUT"] is None and not coherent:
            messages.append(
                checks.Warning(
                    f"The cache {alias!r} keeps values in process memory with no lifetime cap "
                    "and has no Redis tier to tell other processes about changes: a worker "
                    "can serve a stale value until it expires.",
                    hint="Give the memory tier a MAX_TIMEOUT (e.g. 30), or add a Redis tier.",
                    obj=f"CACHES[{alias!r}]",
                    id="django_perf.W101",
                )
            )
    return messages


# --- Database (E200-E299, W200-W299) -------------------------------------------

# --- Streaming (E300-E399, W300-W399) ------------------------------------------

# --- Monitoring and admin (E400-E499, W400-W499) -------------------------------
