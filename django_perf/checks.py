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

# --- Database (E200-E299, W200-W299) -------------------------------------------

# --- Streaming (E300-E399, W300-W399) ------------------------------------------


@checks.register()
def check_streaming_json_encoder(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E301: the streaming JSON encoder is set to orjson, which is not installed."""
    if perf_settings.STREAMING_JSON_ENCODER != "orjson" or module_available("orjson"):
        return []
    return [
        checks.Error(
            "DJANGO_PERF['STREAMING_JSON_ENCODER'] is 'orjson', but orjson is not installed.",
            hint='Install the speedups extra (pip install "django-perf[speedups]"), or set it '
            "to 'auto' to use orjson only where it is installed.",
            obj="settings.DJANGO_PERF",
            id="django_perf.E301",
        )
    ]


# --- Monitoring and admin (E400-E499, W400-W499) -------------------------------

MIDDLEWARE_PATH = "django_perf.monitoring.PerformanceMiddleware"
MIN_TOKEN_LENGTH = 16


@checks.register()
def check_metrics_store(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E401: the Redis store's URL or client is wrong; E402: the store's database is unknown."""
    url = perf_settings.MONITORING_REDIS_URL
    if url:
        if not url.startswith(REDIS_URL_SCHEMES):
            return [
                checks.Error(
                    f"DJANGO_PERF['MONITORING_REDIS_URL'] is {url!r}, not a Redis URL.",
                    hint="Use redis://host:port/db, rediss://... or unix:///path/to/socket.",
                    obj="settings.DJANGO_PERF",
                    id="django_perf.E401",
                )
            ]
        if not module_available("redis"):
            return [
                checks.Error(
                    "Metrics are stored in Redis (MONITORING_REDIS_URL), but the redis client "
                    "is not installed.",
                    hint='Install the Redis extra: pip install "django-perf[redis]".',
                    obj="settings.DJANGO_PERF",
                    id="django_perf.E401",
                )
            ]
        return []
    alias = perf_settings.MONITORING_DATABASE
    if alias not in settings.DATABASES:
        return [
            checks.Error(
                f"DJANGO_PERF['MONITORING_DATABASE'] is {alias!r}, which is not in DATABASES.",
                hint=f"Use one of: {', '.join(settings.DATABASES)}.",
                obj="settings.DJANGO_PERF",
                id="django_perf.E402",
            )
        ]
    return []


@checks.register()
def check_middleware_position(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W401: PerformanceMiddleware is not first, so it does not time the middleware above it."""
    middleware = list(settings.MIDDLEWARE)
    if MIDDLEWARE_PATH in middleware and middleware.index(MIDDLEWARE_PATH) != 0:
        above = ", ".join(middleware[: middleware.index(MIDDLEWARE_PATH)])
        return [
            checks.Warning(
                f"{MIDDLEWARE_PATH} is not first in MIDDLEWARE: time spent in {above} is not "
                "measured, and responses those return early are not recorded.",
                hint="Move it to the top of MIDDLEWARE.",
                obj="settings.MIDDLEWARE",
                id="django_perf.W401",
            )
        ]
    return []


@checks.register()
def check_metrics_endpoint(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W402: the metrics token is short enough to guess; W403: prometheus-client is missing."""
    messages: list[checks.CheckMessage] = []
    token = perf_settings.MONITORING_METRICS_TOKEN
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        messages.append(
            checks.Warning(
                f"DJANGO_PERF['MONITORING_METRICS_TOKEN'] is {len(token)} characters long; "
                f"anything under {MIN_TOKEN_LENGTH} can be guessed.",
                hint="Generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))'.",
                obj="settings.DJANGO_PERF",
                id="django_perf.W402",
            )
        )
    if token is not None and not module_available("prometheus_client"):
        messages.append(
            checks.Warning(
                "A metrics token is set, but prometheus-client, which the metrics endpoint "
                "needs, is not installed: the endpoint answers 501.",
                hint='Install the Prometheus extra: pip install "django-perf[prometheus]".',
                obj="settings.DJANGO_PERF",
                id="django_perf.W403",
            )
        )
    return messages
