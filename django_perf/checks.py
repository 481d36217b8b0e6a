"""System checks for django-perf: ``django_perf.E0xx`` errors and ``django_perf.W0xx`` warnings.

Each check explains what is wrong and what to install or change; ``manage.py
check`` runs them, as does every management command that checks the project.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from .conf import perf_settings, pool_sizes_fit

REDIS_URL_SCHEMES = ("redis://", "rediss://", "unix://")


def module_available(name: str) -> bool:
    """Whether ``name`` can be imported in this environment."""
    try:
        import_module(name)
    except ImportError:
        return False
    return True


def names_class(path: Any, wanted: str) -> bool:
    """Whether the dotted ``path`` from the settings imports to class ``wanted`` or a subclass.

    Settings may spell a class by any module that has it (``django_perf.cache.TieredCache``
    or ``django_perf.cache.backend.TieredCache``) or name a subclass of it.
    """
    if path == wanted:
        return True
    if not isinstance(path, str):
        return False
    try:
        found, base = import_string(path), import_string(wanted)
    except Exception:  # an entry that does not import is another check's business (Django's)
        return False
    return isinstance(found, type) and issubclass(found, base)


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
        if not names_class(config.get("BACKEND"), TIERED_CACHE):
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
        shares = len(parsed.tiers) > 1  # an L1-only cache is per process, like LocMemCache
        if memory is not None and memory["MAX_TIMEOUT"] is None and shares and not coherent:
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

POSTGRESQL_ENGINE = "django.db.backends.postgresql"
#: Backends known to be Django's PostgreSQL backend, recognised without importing them
#: (PostGIS's needs the GDAL library just to import).
POSTGRESQL_ENGINES = (POSTGRESQL_ENGINE, "django.contrib.gis.db.backends.postgis")
PGBOUNCER_PORT = "6432"
#: Options of psycopg_pool.ConnectionPool a user may give in OPTIONS["pool"] (Django sets
#: kwargs, open, configure and check itself).
POOL_OPTIONS = (
    "min_size",
    "max_size",
    "timeout",
    "max_waiting",
    "max_lifetime",
    "max_idle",
    "reconnect_timeout",
    "reconnect_failed",
    "num_workers",
    "name",
    "reset",
    "connection_class",
)


def is_postgresql(engine: Any) -> bool:
    """Whether ``ENGINE`` is Django's PostgreSQL backend or one built on it (PostGIS, a subclass).

    Decided by the backend's ``DatabaseWrapper`` class, not the name, since the native pool
    and the server sessions the pooler checks are about come with that class.
    """
    if engine in POSTGRESQL_ENGINES:
        return True
    if not isinstance(engine, str) or not engine:
        return False
    try:
        from django.db.backends.postgresql.base import DatabaseWrapper as PostgreSQLWrapper
        from django.db.utils import load_backend

        wrapper = load_backend(engine).DatabaseWrapper
    except Exception:  # not importable here (Django's own checks say why): not one we know
        return False
    return isinstance(wrapper, type) and issubclass(wrapper, PostgreSQLWrapper)


def behind_transaction_pooler(alias: str, config: dict[str, Any]) -> bool:
    """Listed in TRANSACTION_POOLERS, or on PgBouncer's default port."""
    return alias in perf_settings.TRANSACTION_POOLERS or str(config.get("PORT")) == PGBOUNCER_PORT


def _database_error(alias: str, message: str, hint: str, id: str) -> checks.CheckMessage:
    return checks.Error(message, hint=hint, obj=f"DATABASES[{alias!r}]", id=id)


def _database_warning(alias: str, message: str, hint: str, id: str) -> checks.CheckMessage:
    return checks.Warning(message, hint=hint, obj=f"DATABASES[{alias!r}]", id=id)


@checks.register(checks.Tags.database)
def check_database_pools(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E201-E203, W201: Django's native psycopg pool configured so that it can work."""
    return pool_messages(settings.DATABASES, asgi=bool(getattr(settings, "ASGI_APPLICATION", "")))


def pool_messages(databases: dict[str, Any], asgi: bool) -> list[checks.CheckMessage]:
    """The messages of ``check_database_pools`` for a ``DATABASES`` dict."""
    messages: list[checks.CheckMessage] = []
    for alias, config in databases.items():
        options = config.get("OPTIONS") or {}
        pool = options.get("pool")
        max_age = config.get("CONN_MAX_AGE", 0)
        if not pool:
            if asgi and max_age != 0 and is_postgresql(config.get("ENGINE")):
                messages.append(
                    _database_warning(
                        alias,
                        f"CONN_MAX_AGE is {max_age!r} while the project serves ASGI: each thread "
                        "that runs ORM code keeps its own connection open, and async views run "
                        "them on many threads, so idle connections pile up.",
                        "Set CONN_MAX_AGE = 0 and use a pool: OPTIONS['pool'] = {'min_size': 2, "
                        "'max_size': 10}.",
                        "django_perf.W201",
                    )
                )
            continue
        if not is_postgresql(config.get("ENGINE")) or not module_available("psycopg_pool"):
            messages.append(
                _database_error(
                    alias,
                    "OPTIONS['pool'] needs the PostgreSQL backend with psycopg 3 and psycopg_pool.",
                    'Use ENGINE "django.db.backends.postgresql" and pip install '
                    '"django-perf[postgres]" (psycopg[binary,pool]).',
                    "django_perf.E201",
                )
            )
        if max_age != 0:
            messages.append(
                _database_error(
                    alias,
                    f"OPTIONS['pool'] is set together with CONN_MAX_AGE = {max_age!r}; Django "
                    "refuses to open a pool for persistent connections.",
                    "Set CONN_MAX_AGE = 0: the pool keeps connections open between requests.",
                    "django_perf.E202",
                )
            )
        messages += _pool_option_errors(alias, pool)
    return messages


def _pool_option_errors(alias: str, pool: Any) -> list[checks.CheckMessage]:
    if pool is True:
        return []
    if not isinstance(pool, dict):
        return [
            _database_error(
                alias,
                f"OPTIONS['pool'] must be True or a dict of pool options, not {pool!r}.",
                "For example OPTIONS['pool'] = {'min_size': 2, 'max_size': 10, 'timeout': 10}.",
                "django_perf.E203",
            )
        ]
    problems = []
    for key in pool:
        if key not in POOL_OPTIONS:
            close = difflib.get_close_matches(str(key), POOL_OPTIONS, n=1)
            problems.append(
                f"{key!r} is not a pool option"
                + (f" (did you mean {close[0]!r}?)" if close else "")
            )
    sizes = {k: pool[k] for k in ("min_size", "max_size") if k in pool}
    for key, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(f"{key} must be a non-negative integer, not {value!r}")
    min_size, max_size = pool.get("min_size", 4), pool.get("max_size")
    # psycopg_pool reads a missing max_size as min_size: min_size 0 alone is a pool of none.
    if (
        isinstance(min_size, int)
        and isinstance(max_size, int | None)
        and not pool_sizes_fit(min_size, max_size)
    ):
        shown = f"not set, so min_size: {min_size}" if max_size is None else max_size
        problems.append(f"max_size ({shown}) is below min_size ({min_size}) or zero")
    return [
        _database_error(
            alias,
            f"OPTIONS['pool']: {problem}.",
            "Pool options are those of psycopg_pool.ConnectionPool: " + ", ".join(POOL_OPTIONS),
            "django_perf.E203",
        )
        for problem in problems
    ]


@checks.register(checks.Tags.database)
def check_transaction_poolers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W202-W204: features that need a server session of their own, and a no-op option."""
    return pooler_messages(settings.DATABASES)


def pooler_messages(databases: dict[str, Any]) -> list[checks.CheckMessage]:
    """The messages of ``check_transaction_poolers`` for a ``DATABASES`` dict."""
    messages: list[checks.CheckMessage] = []
    for alias, config in databases.items():
        if not is_postgresql(config.get("ENGINE")):
            continue
        options = config.get("OPTIONS") or {}
        binding = options.get("server_side_binding") is True
        threshold = options.get("prepare_threshold")
        if threshold is not None and not binding:
            messages.append(
                _database_warning(
                    alias,
                    "OPTIONS['prepare_threshold'] has no effect without server_side_binding: "
                    "Django's default client-side-binding cursor never prepares statements.",
                    "Add OPTIONS['server_side_binding'] = True, or remove prepare_threshold.",
                    "django_perf.W204",
                )
            )
        if not behind_transaction_pooler(alias, config):
            continue
        if not config.get("DISABLE_SERVER_SIDE_CURSORS", False):
            pooled = (
                " (an application-side pool does not change that)" if options.get("pool") else ""
            )
            messages.append(
                _database_warning(
                    alias,
                    "This database is reached through a transaction pooler, but server-side "
                    "cursors are enabled: QuerySet.iterator() declares a cursor in one "
                    "transaction and may fetch from it on another server connection"
                    f"{pooled}.",
                    "Set DISABLE_SERVER_SIDE_CURSORS = True for this alias.",
                    "django_perf.W202",
                )
            )
        if (binding and threshold is not None) or perf_settings.PREPARED_STATEMENTS:
            messages.append(
                _database_warning(
                    alias,
                    "This database is reached through a transaction pooler, but prepared "
                    "statements are enabled (OPTIONS prepare_threshold with server_side_binding, "
                    "or DJANGO_PERF['PREPARED_STATEMENTS'] for PreparedQuery): a statement "
                    "prepared in one transaction may be missing in the next.",
                    "Set DJANGO_PERF['PREPARED_STATEMENTS'] = False and drop prepare_threshold, "
                    "or use PgBouncer 1.21+ with max_prepared_statements for protocol-level "
                    "prepared statements (prepare_threshold only).",
                    "django_perf.W203",
                )
            )
    return messages


@checks.register(checks.Tags.caches)
def check_redis_pools(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E204, W205-W206: django-redis connection pool options."""
    messages: list[checks.CheckMessage] = []
    for alias, config in settings.CACHES.items():
        if not config.get("BACKEND", "").startswith("django_redis."):
            continue
        options = config.get("OPTIONS") or {}
        obj = f"CACHES[{alias!r}]"
        kwargs_ = options.get("CONNECTION_POOL_KWARGS", {})
        pool_class = options.get("CONNECTION_POOL_CLASS", "redis.connection.ConnectionPool")
        if not isinstance(kwargs_, dict):
            messages.append(
                checks.Error(
                    f"OPTIONS['CONNECTION_POOL_KWARGS'] must be a dict, not {kwargs_!r}.",
                    hint="For example {'max_connections': 50}.",
                    obj=obj,
                    id="django_perf.E204",
                )
            )
            continue
        max_connections = kwargs_.get("max_connections")
        if max_connections is not None and (
            not isinstance(max_connections, int)
            or isinstance(max_connections, bool)
            or max_connections < 1
        ):
            messages.append(
                checks.Error(
                    f"CONNECTION_POOL_KWARGS['max_connections'] must be a positive integer, not "
                    f"{max_connections!r}.",
                    hint="Allow at least as many connections as threads that use the cache.",
                    obj=obj,
                    id="django_perf.E204",
                )
            )
        elif max_connections is None:
            messages.append(
                checks.Warning(
                    "The Redis connection pool has no max_connections: each process may open "
                    "an unbounded number of connections under load.",
                    hint="Set OPTIONS['CONNECTION_POOL_KWARGS'] = {'max_connections': N}, N at "
                    "least the threads per process that use the cache.",
                    obj=obj,
                    id="django_perf.W205",
                )
            )
        if "Blocking" in str(pool_class) and "timeout" in kwargs_ and kwargs_["timeout"] is None:
            messages.append(
                checks.Warning(
                    "A BlockingConnectionPool with timeout None waits forever when every "
                    "connection is in use: a Redis stall then hangs every request.",
                    hint="Give CONNECTION_POOL_KWARGS['timeout'] a number of seconds.",
                    obj=obj,
                    id="django_perf.W206",
                )
            )
    return messages


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


def performance_middleware_index() -> int | None:
    """Where ``PerformanceMiddleware`` (under any import path, or a subclass) is in MIDDLEWARE."""
    for index, path in enumerate(settings.MIDDLEWARE):
        if names_class(path, MIDDLEWARE_PATH):
            return index
    return None


@checks.register()
def check_middleware_position(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W401: PerformanceMiddleware is not first, so it does not time the middleware above it."""
    middleware = list(settings.MIDDLEWARE)
    index = performance_middleware_index()
    if index:
        return [
            checks.Warning(
                f"{middleware[index]} is not first in MIDDLEWARE: time spent in "
                f"{', '.join(middleware[:index])} is not measured, and responses those "
                "return early are not recorded.",
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


@checks.register()
def check_dashboard_has_data(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W404: the admin dashboard is installed, but nothing records the requests it shows."""
    from django.apps import apps

    if not apps.is_installed("django.contrib.admin"):
        return []
    installed = performance_middleware_index() is not None
    if installed and perf_settings.MONITORING_ENABLED:
        return []
    reason = (
        "DJANGO_PERF['MONITORING_ENABLED'] is False"
        if installed
        else f"{MIDDLEWARE_PATH} is not in MIDDLEWARE"
    )
    return [
        checks.Warning(
            f"The admin's Performance dashboard will stay empty: {reason}, so no request "
            "is recorded.",
            hint=f"Put {MIDDLEWARE_PATH} first in MIDDLEWARE and leave monitoring enabled.",
            obj="settings.MIDDLEWARE",
            id="django_perf.W404",
        )
    ]
