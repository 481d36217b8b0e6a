"""Read and check a TieredCache's ``OPTIONS``: which tiers, in which order, with which limits.

Everything is validated when the cache is created (and by the system check
``django_perf.E101``), so a typo fails with the option's name instead of
being ignored.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured

__all__ = ["KINDS", "LOCATION_MAX_LENGTH", "CacheConfig", "TierSpec", "parse_config"]

KINDS = ("memory", "redis", "database")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
MIB = 2**20
LOCATION_MAX_LENGTH = 200  # the cache table's location column (PostgreSQL enforces it)


def _number(minimum: float = 0, *, integer: bool = False, none: bool = False, above: bool = False):
    kind = "an integer" if integer else "a number"
    bound = f"greater than {minimum:g}" if above else f"at least {minimum:g}"
    text = f"{kind} {bound}" + (" or None" if none else "")

    def check(value: Any) -> bool:
        if value is None:
            return none
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if integer and not isinstance(value, int):
            return False
        return value > minimum if above else value >= minimum

    return check, text


def _boolean(none: bool = False):
    return (lambda v: isinstance(v, bool) or (none and v is None)), "True or False" + (
        " or None" if none else ""
    )


def _string(none: bool = False):
    return (lambda v: isinstance(v, str) or (none and v is None)), "a string" + (
        " or None" if none else ""
    )


def _mapping():
    return (lambda v: isinstance(v, Mapping)), "a dict"


def _urls():
    def check(value: Any) -> bool:
        urls = [value] if isinstance(value, str) else value
        return (
            isinstance(urls, list | tuple)
            and bool(urls)
            and all(isinstance(u, str) and u.startswith(REDIS_SCHEMES) for u in urls)
        )

    return check, "a redis://, rediss:// or unix:// URL, or a list of them (primary first)"


Rule = tuple[Callable[[Any], bool], str]

# Options of the cache itself (CACHES[alias]["OPTIONS"]), with their defaults.
CACHE_OPTIONS: dict[str, tuple[Any, Rule]] = {
    "TIERS": (None, (lambda v: isinstance(v, list | tuple) and bool(v), "a non-empty list")),
    "SERIALIZER": ("pickle", _string()),
    "PICKLE_VERSION": (None, _number(0, integer=True, none=True)),
    "COMPRESSOR": ("zlib", _string(none=True)),
    "COMPRESS_MIN_LEN": (1024, _number(0, integer=True)),
    "STRICT": (None, _boolean(none=True)),
    "BREAKER_FAILURES": (3, _number(1, integer=True)),
    "BREAKER_COOLDOWN": (2.0, _number(0, above=True)),
    "BREAKER_MAX_COOLDOWN": (30.0, _number(0, above=True)),
    "LOG_INTERVAL": (30.0, _number(0)),
    # Django's own LocMem options; they apply to the memory tier.
    "MAX_ENTRIES": (None, _number(1, integer=True, none=True)),
    "CULL_FREQUENCY": (None, _number(0, integer=True, none=True)),
}

TIER_OPTIONS: dict[str, dict[str, tuple[Any, Rule]]] = {
    "memory": {
        "MAX_ENTRIES": (10_000, _number(1, integer=True)),
        "MAX_BYTES": (64 * MIB, _number(1, integer=True)),
        "CULL_FREQUENCY": (None, _number(0, integer=True, none=True)),
        "MAX_TIMEOUT": (30, _number(0, above=True, none=True)),
    },
    "redis": {
        "LOCATION": (None, _urls()),
        "OPTIONS": ({}, _mapping()),
        "MAX_TIMEOUT": (None, _number(0, above=True, none=True)),
        "CHANNEL": ("", _string(none=True)),
        "HEALTH_INTERVAL": (1.0, _number(0, above=True)),
        "SCAN_COUNT": (1000, _number(1, integer=True)),
    },
    "database": {
        "DATABASE": ("default", _string()),
        "MAX_ENTRIES": (100_000, _number(1, integer=True, none=True)),
        "CULL_BATCH": (1000, _number(1, integer=True)),
        "CULL_INTERVAL": (60.0, _number(0)),
        "MAX_TIMEOUT": (None, _number(0, above=True, none=True)),
    },
}


@dataclass(frozen=True)
class TierSpec:
    """One configured tier: its kind and its checked options (defaults filled in)."""

    kind: str
    options: dict[str, Any] = field(hash=False, compare=True)

    def __getitem__(self, name: str) -> Any:
        return self.options[name]


@dataclass(frozen=True)
class CacheConfig:
    name: str
    tiers: tuple[TierSpec, ...]
    options: dict[str, Any] = field(hash=False, compare=True)

    def tier(self, kind: str) -> TierSpec | None:
        return next((t for t in self.tiers if t.kind == kind), None)

    @property
    def fingerprint(self) -> str:
        """Identifies the store: caches with equal fingerprints share L1 and connections."""
        return repr((self.name, self.tiers, sorted(self.options.items())))


def _unknown(key: Any, known: Mapping[str, Any], where: str) -> ImproperlyConfigured:
    message = f"{where}: {key!r} is not an option."
    if isinstance(key, str):
        close = difflib.get_close_matches(key.upper(), list(known), n=1)
        if close:
            message += f" Did you mean {close[0]!r}?"
    return ImproperlyConfigured(message + f" Valid options: {', '.join(known)}.")


def _check(values: Mapping[str, Any], rules: dict[str, tuple[Any, Rule]], where: str):
    for key in values:
        if key not in rules:
            raise _unknown(key, rules, where)
    checked = {}
    for name, (default, (accepts, expected)) in rules.items():
        value = values.get(name, default)
        if name in values and not accepts(value):
            raise ImproperlyConfigured(
                f"{where}[{name!r}] must be {expected}; got {value!r} ({type(value).__name__})."
            )
        checked[name] = value
    return checked


def _store_name(location: Any, where: str) -> str:
    """The store's name from ``LOCATION``: a string, or the primary of a list of Redis URLs."""
    if isinstance(location, str):
        return location
    accepts = _urls()[0]
    if isinstance(location, list | tuple) and accepts(location):
        return location[0]
    raise ImproperlyConfigured(
        f"{where} must be a string (the store's name, or a Redis URL) or a list of "
        f"Redis URLs (primary first); got {location!r} ({type(location).__name__})."
    )


def parse_config(
    location: str | Sequence[str], params: Mapping[str, Any], alias: str = ""
) -> CacheConfig:
    """Check ``LOCATION`` and ``OPTIONS`` of a TieredCache; raise ImproperlyConfigured naming
    what is wrong. A list of Redis URLs as ``LOCATION`` is the Redis shorthand (primary first).
    """
    where = f"CACHES[{alias!r}]['OPTIONS']" if alias else "TieredCache OPTIONS"
    location_where = f"CACHES[{alias!r}]['LOCATION']" if alias else "TieredCache LOCATION"
    name = _store_name(location, location_where)
    raw = params.get("OPTIONS") or {}
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(f"{where} must be a dict, got {type(raw).__name__}.")
    options = _check(raw, CACHE_OPTIONS, where)
    tiers = options.pop("TIERS")
    if tiers is None:
        if name.startswith(REDIS_SCHEMES):
            # Shorthand: LOCATION is a Redis URL (or a list, primary first) -> process
            # memory in front of Redis.
            redis_location = location if isinstance(location, str) else list(location)
            tiers = [{"KIND": "memory"}, {"KIND": "redis", "LOCATION": redis_location}]
        else:
            tiers = [{"KIND": "memory"}, {"KIND": "database"}]
    specs = []
    for index, tier in enumerate(tiers):
        tier_where = f"{where}['TIERS'][{index}]"
        if not isinstance(tier, Mapping):
            raise ImproperlyConfigured(f"{tier_where} must be a dict with a 'KIND' key.")
        kind = tier.get("KIND")
        if kind not in KINDS:
            raise ImproperlyConfigured(
                f"{tier_where}['KIND'] must be one of {', '.join(map(repr, KINDS))}; got {kind!r}."
            )
        if any(spec.kind == kind for spec in specs):
            raise ImproperlyConfigured(f"{where}['TIERS'] has two {kind!r} tiers; use one of each.")
        rules = TIER_OPTIONS[kind]
        tier_options = _check({k: v for k, v in tier.items() if k != "KIND"}, rules, tier_where)
        if kind == "memory" and options["MAX_ENTRIES"] is not None and "MAX_ENTRIES" not in tier:
            # Django's MAX_ENTRIES / CULL_FREQUENCY apply to L1 exactly as to LocMemCache:
            # when full, 1/CULL_FREQUENCY (default 3) of the entries go at once.
            tier_options["MAX_ENTRIES"] = options["MAX_ENTRIES"]
            if "CULL_FREQUENCY" not in tier:
                tier_options["CULL_FREQUENCY"] = (
                    3 if options["CULL_FREQUENCY"] is None else options["CULL_FREQUENCY"]
                )
        elif kind == "memory" and "CULL_FREQUENCY" not in tier:
            tier_options["CULL_FREQUENCY"] = options["CULL_FREQUENCY"]
        if kind == "memory" and len(tiers) == 1 and "MAX_TIMEOUT" not in tier:
            # The cap exists to refill L1 from a shared tier; alone, L1 is LocMemCache.
            tier_options["MAX_TIMEOUT"] = None
        if kind == "database" and len(name) > LOCATION_MAX_LENGTH:
            raise ImproperlyConfigured(
                f"{location_where} names the store in the cache table's location column, "
                f"which holds at most {LOCATION_MAX_LENGTH} characters; got {len(name)}. "
                "Use a shorter LOCATION."
            )
        if kind == "redis":
            if tier_options["LOCATION"] is None:
                raise ImproperlyConfigured(
                    f"{tier_where} needs 'LOCATION': the Redis URL, e.g. 'redis://127.0.0.1:6379/0'."
                )
            if tier_options["CHANNEL"] == "":
                tier_options["CHANNEL"] = f"django_perf:cache:{name or 'default'}"
        specs.append(TierSpec(kind, tier_options))
    return CacheConfig(name, tuple(specs), options)
