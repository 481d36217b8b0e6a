"""One validated view of ``settings.DJANGO_PERF``: every key, its default and its type.

Code reads ``perf_settings.SOME_KEY``. The user's dict is checked once, at
startup (``AppConfig.ready``) and again whenever a test overrides it, so a
typo or a wrong type fails loudly with the key's name instead of being ignored.
The settings reference in the docs is generated from ``SETTINGS`` below.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured

__all__ = ["SETTINGS", "PerfSettings", "Setting", "perf_settings"]


@dataclass(frozen=True)
class Setting:
    """One ``DJANGO_PERF`` key: its default, what values it accepts, and what it does."""

    name: str
    default: Any
    expected: str  # what a valid value looks like, as shown in error messages and docs
    accepts: Callable[[Any], bool]
    help: str
    section: str = "General"
    #: Turns an accepted value into the one used (``clean(name, value)``), raising
    #: ``ImproperlyConfigured`` for problems ``accepts`` cannot name (a dict's keys).
    clean: Callable[[str, Any], Any] | None = None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


#: The longest background-thread interval a setting may ask for: a day (a thread's wait
#: cannot exceed threading.TIMEOUT_MAX, about 292 years, and no flush wants more).
MAX_INTERVAL = 86400


def boolean(name: str, default: bool, help: str, **kw: Any) -> Setting:
    return Setting(name, default, "True or False", lambda v: isinstance(v, bool), help, **kw)


def number(
    name: str,
    default: float | None,
    help: str,
    *,
    minimum: float = 0,
    exclusive: bool = True,
    integer: bool = False,
    allow_none: bool = False,
    unit: str = "",
    maximum: float | None = None,
    **kw: Any,
) -> Setting:
    """A finite number (or integer) above ``minimum`` (at or above it when not ``exclusive``),
    and at most ``maximum`` if given.

    Finite because these are durations, sizes and counts: an infinite interval would
    only fail later, in a background thread (``Event.wait(inf)`` overflows); intervals a
    thread waits on take a ``maximum`` for the same reason.
    """
    kind = "an integer" if integer else "a finite number"
    bound = f"greater than {minimum}" if exclusive else f"at least {minimum}"
    if maximum is not None:
        bound += f" and at most {maximum:g}"
    expected = f"{kind}{' of ' + unit if unit else ''} {bound}" + (" or None" if allow_none else "")

    def accepts(value: Any) -> bool:
        if value is None:
            return allow_none
        if not _is_number(value) or not _finite(value):
            return False
        if integer and not isinstance(value, int):
            return False
        if maximum is not None and value > maximum:
            return False
        return value > minimum if exclusive else value >= minimum

    return Setting(name, default, expected, accepts, help, **kw)


def choice(name: str, default: str, choices: Iterable[str], help: str, **kw: Any) -> Setting:
    options = tuple(choices)
    expected = "one of " + ", ".join(repr(c) for c in options)
    return Setting(name, default, expected, lambda v: v in options, help, **kw)


def text(
    name: str, default: str | None, help: str, *, allow_none: bool = False, **kw: Any
) -> Setting:
    expected = "a string" + (" or None" if allow_none else "")

    def accepts(value: Any) -> bool:
        return isinstance(value, str) or (allow_none and value is None)

    return Setting(name, default, expected, accepts, help, **kw)


def strings(name: str, default: tuple[str, ...], help: str, **kw: Any) -> Setting:
    def accepts(value: Any) -> bool:
        return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)

    return Setting(name, default, "a list of strings", accepts, help, **kw)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    """Not NaN or infinite; compared rather than converted, so a huge int is no OverflowError."""
    return -math.inf < value < math.inf


def _positive_seconds(value: Any) -> bool:
    return _is_number(value) and _finite(value) and value > 0


def _max_size(value: Any) -> bool:
    return value is None or (_is_int(value) and value >= 1)


def _callable_or_none(value: Any) -> bool:
    return value is None or callable(value)


#: The psycopg_pool.AsyncConnectionPool options ASYNC_POOL may set, with what each accepts.
#: The others (conninfo, kwargs, name, open, configure, check, connection_class) come from
#: the database alias.
ASYNC_POOL_OPTIONS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "min_size": ("an integer at least 0", lambda v: _is_int(v) and v >= 0),
    "max_size": ("an integer at least 1, or None (min_size)", _max_size),
    "timeout": ("a number of seconds greater than 0", _positive_seconds),
    "max_waiting": ("an integer at least 0 (0: no limit)", lambda v: _is_int(v) and v >= 0),
    "max_lifetime": ("a number of seconds greater than 0", _positive_seconds),
    "max_idle": ("a number of seconds greater than 0", _positive_seconds),
    "reconnect_timeout": ("a number of seconds greater than 0", _positive_seconds),
    "num_workers": ("an integer at least 1", lambda v: _is_int(v) and v >= 1),
    "reset": ("an async callable taking a connection, or None", _callable_or_none),
    "reconnect_failed": ("a callable taking the pool, or None", _callable_or_none),
}
ASYNC_POOL_DEFAULTS: dict[str, Any] = {"min_size": 1, "max_size": 10, "timeout": 10.0}


def pool_sizes_fit(min_size: int, max_size: int | None) -> bool:
    """psycopg_pool's rule: max_size (min_size when None) at least min_size and at least 1."""
    effective = min_size if max_size is None else max_size
    return effective >= max(min_size, 1)


def clean_async_pool(name: str, value: Mapping[str, Any]) -> dict[str, Any]:
    """The user's async pool options merged over the defaults, each key and size checked."""
    for key, option in value.items():
        _check_async_pool_option(name, key, option)
    options = {**ASYNC_POOL_DEFAULTS, **value}
    min_size, max_size = options["min_size"], options["max_size"]
    if not pool_sizes_fit(min_size, max_size):
        given = "" if "max_size" in value else ", the default"
        raise ImproperlyConfigured(
            f"DJANGO_PERF[{name!r}]: max_size ({max_size}{given}) must be at least min_size "
            f"({min_size}) and at least 1."
        )
    return options


def _check_async_pool_option(name: str, key: str, option: Any) -> None:
    if key not in ASYNC_POOL_OPTIONS:
        close = difflib.get_close_matches(key, ASYNC_POOL_OPTIONS, n=1)
        suggestion = f" (did you mean {close[0]!r}?)" if close else ""
        raise ImproperlyConfigured(
            f"DJANGO_PERF[{name!r}][{key!r}] is not an async pool option{suggestion}; "
            f"it accepts {', '.join(ASYNC_POOL_OPTIONS)}."
        )
    expected, accepts = ASYNC_POOL_OPTIONS[key]
    if not accepts(option):
        raise ImproperlyConfigured(
            f"DJANGO_PERF[{name!r}][{key!r}] must be {expected}; "
            f"got {option!r} ({type(option).__name__})."
        )


# Every DJANGO_PERF key. Each capability keeps its keys together in its own block.
SETTINGS: tuple[Setting, ...] = (
    # --- General -------------------------------------------------------------
    boolean(
        "STRICT",
        False,
        "Re-raise errors that django-perf otherwise absorbs (a cache tier that is down, "
        "a metrics flush that fails). Meant for development and tests; in production a "
        "cache outage should be a miss, not an error page.",
    ),
    # --- Cache ---------------------------------------------------------------
    # --- Database --------------------------------------------------------------
    number(
        "BULK_COPY_MIN_ROWS",
        10_000,
        "From this many rows, bulk_update and bulk_upsert stage the rows in a temporary "
        "table filled by COPY; below it they pass one array per column to a single "
        "statement (UPDATE ... FROM unnest(...)), which needs no DDL and wins on small sets.",
        minimum=1,
        exclusive=False,
        integer=True,
        section="Database",
    ),
    number(
        "BULK_BATCH_SIZE",
        100_000,
        "Rows per set-based statement in bulk_update and bulk_upsert; larger calls are "
        "split into chunks of this size, all in one transaction.",
        minimum=1,
        exclusive=False,
        integer=True,
        section="Database",
    ),
    boolean(
        "PREPARED_STATEMENTS",
        True,
        "Let PreparedQuery prepare its statement on each PostgreSQL connection. Turn it "
        "off behind a transaction pooler that does not track prepared statements "
        "(PgBouncer before 1.21, or without max_prepared_statements): queries then run "
        "unprepared.",
        section="Database",
    ),
    strings(
        "TRANSACTION_POOLERS",
        (),
        "Database aliases that reach PostgreSQL through a transaction pooler such as "
        "PgBouncer in transaction mode. The system checks then warn about features that "
        "need a session of their own (server-side cursors, prepared statements). Aliases "
        "on port 6432, PgBouncer's default, are treated as such without being listed.",
        section="Database",
    ),
    Setting(
        "ASYNC_POOL",
        ASYNC_POOL_DEFAULTS,
        "a dict of psycopg_pool.AsyncConnectionPool options: " + ", ".join(ASYNC_POOL_OPTIONS),
        lambda v: isinstance(v, Mapping) and all(isinstance(k, str) for k in v),
        "Options of the async psycopg pools that django_perf.db.async_connection() opens "
        "per database alias. The keys given replace the defaults one by one: "
        "``{'max_size': 20}`` keeps min_size 1 and timeout 10. Sizes are checked at startup "
        "(max_size at least min_size and 1); durations are in seconds.",
        section="Database",
        clean=clean_async_pool,
    ),
    # --- Streaming -------------------------------------------------------------
    boolean(
        "STREAMING_FAST_PATH",
        True,
        "Let PostgreSQL write the JSON, NDJSON or CSV text of a streamed queryset itself "
        "(COPY ... TO STDOUT) when every selected field is a plain column of a supported "
        "type; the output is byte for byte the Python path's. False always uses the Python "
        "path; stream_queryset(..., fast_path=False) does so for one response.",
        section="Streaming",
    ),
    choice(
        "STREAMING_JSON_ENCODER",
        "auto",
        ("auto", "orjson", "json"),
        "The JSON library of the Python path: 'orjson' (fast; install django-perf[speedups]), "
        "'json' (the standard library) or 'auto' (orjson when installed). Both write the "
        "same bytes for queryset rows.",
        section="Streaming",
    ),
    # --- Monitoring ------------------------------------------------------------
    boolean(
        "MONITORING_ENABLED",
        True,
        "Record request metrics in ``PerformanceMiddleware``. When False the middleware "
        "removes itself at startup (``MiddlewareNotUsed``) and costs nothing.",
        section="Monitoring",
    ),
    text(
        "MONITORING_REDIS_URL",
        None,
        "Where metrics are shared between worker processes. None (the default) keeps "
        "them in the project's database (``MONITORING_DATABASE``); a ``redis://`` URL "
        "keeps them in Redis (atomic increments, expiry for retention).",
        allow_none=True,
        section="Monitoring",
    ),
    text(
        "MONITORING_REDIS_PREFIX",
        "django_perf:metrics",
        "Prefix of every Redis key the metrics store writes.",
        section="Monitoring",
    ),
    text(
        "MONITORING_DATABASE",
        "default",
        "Database alias of the metrics tables when the store is the database.",
        section="Monitoring",
    ),
    number(
        "MONITORING_FLUSH_INTERVAL",
        5.0,
        "Seconds between flushes of each process's in-memory buffer to the shared store "
        "(a background thread; a last flush runs at exit). 0 turns the background thread "
        "off: metrics then reach the store only through ``django_perf.monitoring.flush()``.",
        minimum=0,
        exclusive=False,
        unit="seconds",
        maximum=MAX_INTERVAL,
        section="Monitoring",
    ),
    Setting(
        "MONITORING_SAMPLE_RATE",
        1.0,
        "a number in (0, 1]",
        lambda v: _is_number(v) and 0 < v <= 1,
        "Fraction of requests recorded. Counts are scaled back up (each recorded request "
        "stands for 1/rate requests); percentiles and averages come from the sample.",
        section="Monitoring",
    ),
    strings(
        "MONITORING_EXCLUDE_PATHS",
        ("/static/", "/media/", "/favicon.ico"),
        "Path prefixes that are not recorded at all (static files, health checks).",
        section="Monitoring",
    ),
    number(
        "MONITORING_SLOW_REQUEST_MS",
        500,
        "Requests slower than this are logged (logger ``django_perf.monitoring``) with "
        "their route and a breakdown: database, cache and the rest. None turns it off.",
        allow_none=True,
        unit="milliseconds",
        section="Monitoring",
    ),
    number(
        "MONITORING_N_PLUS_ONE_THRESHOLD",
        5,
        "A request that runs the same SQL this many times or more is flagged as an N+1 "
        "(counted per route, and named in the slow-request log line).",
        integer=True,
        minimum=2,
        exclusive=False,
        section="Monitoring",
    ),
    number(
        "MONITORING_MAX_ROUTES",
        500,
        "Most distinct route labels one process records; later ones fold into ``<other>``. "
        "Routes come from the URLconf, so this only bites on very large sites.",
        integer=True,
        minimum=1,
        exclusive=False,
        section="Monitoring",
    ),
    number(
        "MONITORING_MAX_SERIES",
        5000,
        "Most series (minute x route x method x status class) one process buffers between "
        "flushes. When the store is unreachable for long, the oldest minutes are dropped "
        "(and counted) rather than letting memory grow.",
        integer=True,
        minimum=10,
        exclusive=False,
        section="Monitoring",
    ),
    number(
        "MONITORING_MINUTE_RETENTION",
        86400,
        "Seconds that per-minute data is kept after its minute ends; hours hold it after that.",
        integer=True,
        minimum=3600,
        exclusive=False,
        unit="seconds",
        section="Monitoring",
    ),
    number(
        "MONITORING_HOUR_RETENTION",
        30 * 86400,
        "Seconds that hourly rollups are kept after their hour ends, then deleted.",
        integer=True,
        minimum=86400,
        exclusive=False,
        unit="seconds",
        section="Monitoring",
    ),
    number(
        "MONITORING_SYSTEM_INTERVAL",
        15.0,
        "Seconds between psutil samples of host and process metrics, taken by the "
        "background thread (never in a request). 0 turns system metrics off.",
        minimum=0,
        exclusive=False,
        unit="seconds",
        maximum=MAX_INTERVAL,
        section="Monitoring",
    ),
    text(
        "MONITORING_DISK_PATH",
        "/",
        "Filesystem whose usage the system metrics report.",
        section="Monitoring",
    ),
    text(
        "MONITORING_METRICS_TOKEN",
        None,
        "Bearer token that opens the Prometheus endpoint (``Authorization: Bearer <token>``). "
        "Without it only logged-in staff with the ``django_perf.view_metrics`` permission "
        "can read it.",
        allow_none=True,
        section="Monitoring",
    ),
    Setting(
        "MONITORING_MEMORY_PROFILE_RATE",
        0.0,
        "a number in [0, 1]",
        lambda v: _is_number(v) and 0 <= v <= 1,
        "Fraction of requests profiled with tracemalloc (top allocation differences "
        "logged). Off by default: a profiled request runs several times slower.",
        section="Monitoring",
    ),
)


class PerfSettings:
    """``settings.DJANGO_PERF`` merged over the defaults, validated as a whole.

    Attribute access is plain instance-attribute lookup once loaded, so reading
    a setting on a hot path costs no more than reading any attribute.
    """

    def __init__(self, specs: Iterable[Setting] = SETTINGS) -> None:
        self._specs = {spec.name: spec for spec in specs}

    def __getattr__(self, name: str) -> Any:
        # Only called when the attribute is missing: not loaded yet, or not a setting.
        if name.startswith("_") or name not in self._specs:
            raise AttributeError(f"{name!r} is not a django-perf setting")
        self.validate()
        return self.__dict__[name]

    def validate(self, user_settings: Any = None) -> None:
        """Load and check the user's settings; raise ``ImproperlyConfigured`` naming the key."""
        if user_settings is None:
            from django.conf import settings

            user_settings = getattr(settings, "DJANGO_PERF", {})
        self.__dict__.update(self.resolve(user_settings))

    def reload(self) -> None:
        """Forget loaded values; the next access reads ``settings.DJANGO_PERF`` again."""
        for name in self._specs:
            self.__dict__.pop(name, None)

    def resolve(self, user_settings: Any) -> dict[str, Any]:
        """Return every setting's value: the user's where given, else the default."""
        if not isinstance(user_settings, Mapping):
            raise ImproperlyConfigured(
                "settings.DJANGO_PERF must be a dict of django-perf settings, got "
                f"{type(user_settings).__name__}."
            )
        for key in user_settings:
            if key not in self._specs:
                raise ImproperlyConfigured(self._unknown_key_message(key))
        values = {}
        for name, spec in self._specs.items():
            value = user_settings.get(name, spec.default)
            if not spec.accepts(value):
                raise ImproperlyConfigured(
                    f"DJANGO_PERF[{name!r}] must be {spec.expected}; "
                    f"got {value!r} ({type(value).__name__})."
                )
            values[name] = value if spec.clean is None else spec.clean(name, value)
        return values

    def _unknown_key_message(self, key: Any) -> str:
        message = f"DJANGO_PERF[{key!r}] is not a django-perf setting."
        if isinstance(key, str):
            close = difflib.get_close_matches(key.upper(), self._specs, n=1)
            if close:
                message += f" Did you mean {close[0]!r}?"
        return message + " The settings reference in the docs lists every key."


perf_settings = PerfSettings()


def reload_on_change(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver: re-read and re-check DJANGO_PERF when a test overrides it."""
    if setting == "DJANGO_PERF":
        perf_settings.reload()
