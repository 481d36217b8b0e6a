"""The invalidation engine: drop entries by key, pattern, tag, model rows or all, tier by tier.

``invalidate()`` is what ``manage.py invalidate_cache`` and the admin page
call, and what the model registry uses underneath. On a ``TieredCache`` it
works tier by tier, lowest first and L1 last (so no other reader can copy an
old value back up meanwhile), counts what each tier dropped, and tells the
other processes to drop their L1 copies through the coherence channel. Other
Django cache backends get the same calls through the plain cache API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import caches

from .backend import FAILED, TieredCache
from .config import KINDS
from .patterns import check_pattern, key_frame, stored_pattern
from .tags import check_tags, invalidate_tags, tag_key
from .tiers.memory import glob_to_regex

__all__ = ["InvalidationReport", "Progress", "invalidate", "pattern_problem"]

#: ``progress(tier, scanned, total, matched)``: called while a pattern scan runs;
#: ``total`` is None where the size is not known up front.
Progress = Callable[[str, int, "int | None", int], None]

MESSAGE_KEYS = 1000  # keys per invalidation message
PLAIN = "cache"  # the per_tier name of a backend that has no tiers


@dataclass
class InvalidationReport:
    """What an ``invalidate()`` call dropped (or, in a dry run, would drop).

    ``per_tier`` maps each tier kind touched (in read order) to the entries it
    dropped; ``memory`` counts this process's L1 only, other processes drop
    theirs when the channel tells them (``notified``: how many were reached,
    None without a channel). A backend that is not a TieredCache reports under
    ``"cache"``. ``tags``: tag generations advanced (entries under them are not
    counted: they become unreachable without being visited). ``errors`` maps a
    tier that failed to what went wrong; the other tiers were still done.
    """

    alias: str
    dry_run: bool = False
    per_tier: dict[str, int] = field(default_factory=dict)
    tags: int = 0
    notified: int | None = None
    rows: int | None = None
    missing_pks: list[Any] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Entries dropped (or matched, in a dry run) over every tier."""
        return sum(self.per_tier.values())

    def add(self, tier: str, count: int) -> None:
        self.per_tier[tier] = self.per_tier.get(tier, 0) + count

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-serializable data (what ``invalidate_cache --json`` prints)."""
        return {
            "alias": self.alias,
            "dry_run": self.dry_run,
            "per_tier": dict(self.per_tier),
            "total": self.total,
            "tags": self.tags,
            "notified": self.notified,
            "rows": self.rows,
            "missing_pks": [
                pk if isinstance(pk, int | str) else str(pk) for pk in self.missing_pks
            ],
            "errors": dict(self.errors),
            "notes": list(self.notes),
        }


# --- Checking the arguments ------------------------------------------------------------


def _strings(name: str, values: Any, *, empty: bool = False) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str | bytes):
        raise ValueError(
            f"{name} must be a list of strings, not one string; write {name}=[{values!r}]."
        )
    try:
        items = list(values)
    except TypeError:
        raise ValueError(
            f"{name} must be a list of strings; got {values!r} ({type(values).__name__})."
        ) from None
    for item in items:
        if not isinstance(item, str) or not (item or empty):
            raise ValueError(
                f"{name} must hold non-empty strings; got {item!r} ({type(item).__name__})."
            )
    return list(dict.fromkeys(items))


def get_cache(alias: str) -> Any:
    """``caches[alias]``; LookupError naming the configured aliases if there is no such cache."""
    if not isinstance(alias, str) or alias not in settings.CACHES:
        configured = ", ".join(repr(name) for name in settings.CACHES) or "none"
        raise LookupError(
            f"No cache alias {alias!r} in settings.CACHES; configured aliases: {configured}."
        )
    return caches[alias]


def tier_kinds(cache: Any) -> list[str]:
    """The tier kinds of ``cache`` in read order (``["cache"]`` for another backend)."""
    if isinstance(cache, TieredCache):
        return [tier.kind for tier in cache._store.tiers]
    return [PLAIN]


def deletes_patterns(backend: Any) -> bool:
    """Whether a cache, or a cache backend class, can delete by glob pattern."""
    klass = backend if isinstance(backend, type) else type(backend)
    return issubclass(klass, TieredCache) or hasattr(klass, "delete_pattern")


def pattern_problem(cache: Any, alias: str) -> str | None:
    """Why ``cache`` cannot delete by pattern (None: it can)."""
    if not deletes_patterns(cache):
        return (
            f"The cache {alias!r} ({type(cache).__name__}) cannot delete by pattern; use "
            "django_perf.cache.TieredCache or django-redis, or invalidate by key or tag."
        )
    try:
        key_frame(cache)
    except ValueError as error:
        return f"The cache {alias!r}: {error}"
    return None


def _select_tiers(cache: Any, alias: str, tiers: Iterable[str] | None) -> list[str]:
    kinds = tier_kinds(cache)
    if tiers is None:
        return kinds
    if isinstance(tiers, str):
        raise ValueError(f"tiers must be a list of tier names; write tiers=[{tiers!r}].")
    chosen = list(dict.fromkeys(tiers))
    if not chosen:
        raise ValueError(
            f"tiers is empty; name some of {', '.join(kinds)}, or pass None for every tier."
        )
    if kinds == [PLAIN]:
        raise ValueError(
            f"The cache {alias!r} ({type(cache).__name__}) has no tiers; leave tiers out."
        )
    for kind in chosen:
        if kind not in KINDS:
            raise ValueError(f"Unknown tier {kind!r}; tiers are named {', '.join(KINDS)}.")
        if kind not in kinds:
            raise ValueError(
                f"The cache {alias!r} has no {kind} tier; its tiers are {', '.join(kinds)}."
            )
    return [kind for kind in kinds if kind in chosen]


# --- The entry point ---------------------------------------------------------------------


def invalidate(
    *,
    keys: Iterable[str] = (),
    patterns: Iterable[str] = (),
    tags: Iterable[str] = (),
    model: Any = None,
    pks: Sequence[Any] | None = None,
    everything: bool = False,
    alias: str = "default",
    tiers: Iterable[str] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> InvalidationReport:
    """Drop cache entries of the cache ``alias`` and report how many each tier dropped.

    ``keys``: cache keys as given to ``cache.set()``; ``patterns``: globs over
    those keys (``"article:*"``), within the cache's key prefix and version;
    ``tags``: tag names (see ``django_perf.cache.tags``); ``model`` (a model
    class or ``"app_label.Model"``) with ``pks`` (None: every row): what the
    model's registrations name for those rows; ``everything``: the whole cache,
    like ``cache.clear()``. ``tiers`` limits the work to some tier kinds
    (``"memory"``, ``"redis"``, ``"database"``). ``dry_run`` counts what would
    be dropped and changes nothing. ``progress`` is called during pattern scans.

    Raises ValueError for bad arguments and LookupError for an unknown model or
    cache alias, with a message that says what to pass instead.
    """
    keys = _strings("keys", keys)
    patterns = [check_pattern(p) for p in _strings("patterns", patterns, empty=True)]
    tag_names = check_tags(tags or ())
    cache = get_cache(alias)
    kinds = _select_tiers(cache, alias, tiers)
    if everything and (keys or patterns or tag_names or model is not None):
        raise ValueError(
            "everything=True already drops every entry; pass it alone, without keys, "
            "patterns, tags or model."
        )
    if pks is not None and model is None:
        raise ValueError(
            "pks need a model: pass model='app_label.Model' (e.g. model='blog.Article') with them."
        )
    report = InvalidationReport(alias=alias, dry_run=bool(dry_run))
    if model is not None:
        from .registry import registry, resolve_model

        found = registry.collect(resolve_model(model), pks, alias)
        keys = list(dict.fromkeys([*keys, *found.keys]))
        patterns = list(dict.fromkeys([*patterns, *found.patterns]))
        tag_names = sorted({*tag_names, *found.tags})
        report.rows = found.rows
        report.missing_pks = found.missing
    elif not (keys or patterns or tag_names or everything):
        raise ValueError(
            "Nothing to invalidate: pass keys=[...], patterns=[...], tags=[...], "
            "model='app_label.Model' (with pks=[...]) or everything=True."
        )
    if tag_names and len(kinds) < len(tier_kinds(cache)):
        raise ValueError(
            "Tags are invalidated in every tier at once (one new generation per tag); leave "
            "tiers out when passing tags."
        )
    problem = pattern_problem(cache, alias) if patterns else None
    if problem:
        raise ValueError(problem)  # before anything is dropped, not after the keys
    for kind in kinds:
        report.per_tier[kind] = 0
    run(
        cache, report, kinds, keys, patterns, tag_names, everything,
        progress=progress, sync=True, again_on_commit=True,
    )  # fmt: skip
    return report


def run(
    cache: Any,
    report: InvalidationReport,
    kinds: list[str],
    keys: list[str],
    patterns: list[str],
    tags: list[str],
    everything: bool = False,
    *,
    progress: Progress | None = None,
    sync: bool = False,
    again_on_commit: bool = False,
) -> InvalidationReport:
    """Do checked work on ``cache``. ``sync``: publish invalidation messages before returning.

    ``again_on_commit``: inside ``atomic()``, drop the keys above the table once more when
    it commits, as ``cache.delete()`` does (the registry runs its own second pass instead).
    """
    target: Any
    if isinstance(cache, TieredCache):
        target = Tiered(cache, kinds, report, sync=sync, again_on_commit=again_on_commit)
    else:
        target = Plain(cache, report)
    if everything:
        target.everything()
    if keys:
        target.keys(keys)
    for pattern in patterns:
        target.pattern(pattern, progress)
    if tags:
        target.tags(tags)
    return report


# --- A TieredCache, tier by tier -----------------------------------------------------------

_NO_KEYS = object()


class Tiered:
    """Invalidation work on the chosen tiers of one TieredCache."""

    def __init__(
        self,
        cache: TieredCache,
        kinds: list[str],
        report: InvalidationReport,
        *,
        sync: bool,
        again_on_commit: bool = False,
    ) -> None:
        store = cache._store
        self.cache = cache
        self.store = store
        self.report = report
        self.sync = sync
        self.again_on_commit = again_on_commit
        self.dry_run = report.dry_run
        self.memory = store.memory if "memory" in kinds else None
        self.shared = [tier for tier in store.shared if tier.kind in kinds]
        self.announced = False
        if store.memory is not None and self.memory is None:
            report.note(
                "The memory tier was left out: L1 copies in this and other processes stay "
                "until they expire (at most the memory tier's MAX_TIMEOUT)."
            )
        elif self.memory is not None and store.shared and store.channel is None:
            limit = store.max_timeout.get("memory")
            report.note(
                "There is no Redis invalidation channel, so only this process's L1 was "
                "cleared; other processes keep their L1 copies until they expire"
                + (f" (at most {limit:g} s, the memory tier's MAX_TIMEOUT)." if limit else ".")
            )

    # Plumbing ------------------------------------------------------------------------

    def _call(self, tier: Any, operation: str, fn: Callable[..., Any], *args: Any, **kw: Any):
        """Run a tier call through the cache's breaker; FAILED (and an error noted) if it failed."""
        errors: list[BaseException] = []

        def call(*a: Any, **k: Any) -> Any:
            try:
                return fn(*a, **k)
            except Exception as error:
                errors.append(error)
                raise

        result = self.cache._call(tier, operation, call, *args, **kw)
        if result is FAILED:
            self.report.errors.setdefault(
                tier.kind,
                f"{type(errors[0]).__name__}: {errors[0]}"
                if errors
                else "skipped: its circuit breaker is open after repeated failures",
            )
        return result

    def _publish(self, messages: list[bytes]) -> None:
        """Send invalidation messages now and count the other processes that heard them."""
        store = self.store
        channel = store.channel
        if channel is None or self.memory is None or not messages:
            return
        if not self.sync:
            return  # the caller queued them on the channel's batching publisher
        for message in messages:
            redis = store.redis
            heard = self._call(redis, "publish", redis.publish, channel.channel, message)
            if heard is FAILED:
                return
            own = 1 if channel.state == "up" else 0  # this process's own listener
            self.report.notified = max(self.report.notified or 0, heard - own)

    # Operations ----------------------------------------------------------------------

    def keys(self, keys: list[str]) -> None:
        made = [self.cache.make_key(key) for key in keys]
        store, memory, report = self.store, self.memory, self.report
        if self.dry_run:
            for tier in self.shared:
                found = self._call(tier, "count", _count_keys, tier, made)
                report.add(tier.kind, _number(found))
            if memory is not None:
                report.add("memory", sum(1 for key in made if memory.contains(key)))
            return
        if not store.shared:
            if memory is not None:
                report.add("memory", sum(1 for key in made if memory.delete(key)))
            return
        tokens = [memory.begin_write(key) for key in made] if memory is not None else []
        dropped = 0
        try:
            for tier in reversed(self.shared):
                deleted = self._call(tier, "delete", tier.delete_many, made, keys=made)
                report.add(tier.kind, _number(deleted))
            if memory is not None and store.channel is not None:
                if self.sync:
                    channel = store.channel
                    self._publish(
                        [
                            channel.keys_message(made[start : start + MESSAGE_KEYS])
                            for start in range(0, len(made), MESSAGE_KEYS)
                        ]
                    )
                else:
                    store.channel.announce_keys(made)
        finally:
            for key, token in zip(made, tokens, strict=False):
                dropped += memory.end_write(key, token)
        if memory is not None:
            report.add("memory", dropped)
        if self.again_on_commit and store.database in self.shared:
            self.cache._drop_again_on_commit(made)  # as cache.delete() does inside atomic()

    def pattern(self, pattern: str, progress: Progress | None) -> None:
        full = stored_pattern(self.cache, pattern)
        regex = glob_to_regex(full)
        store, memory, report = self.store, self.memory, self.report
        for tier in reversed(self.shared):
            report_progress = None if progress is None else _tier_progress(progress, tier.kind)

            if tier.kind == "redis":
                args: tuple[Any, ...] = (full,)
            else:
                args = (full, regex)
            matched = self._call(
                tier,
                "delete_pattern",
                tier.delete_pattern,
                *args,
                dry_run=self.dry_run,
                progress=report_progress,
            )
            report.add(tier.kind, _number(matched))
        if memory is None:
            return
        if self.dry_run:
            report.add("memory", memory.count_pattern(regex))
            return
        # L1 last: a read that began before this sees its promotion refused.
        report.add("memory", memory.invalidate_pattern(regex))
        if store.channel is not None:
            if self.sync:
                self._publish([store.channel.pattern_message(full)])
            else:
                store.channel.announce_pattern(full)

    def everything(self) -> None:
        store, memory, report = self.store, self.memory, self.report
        for tier in reversed(self.shared):
            if self.dry_run:
                report.add(tier.kind, _number(self._call(tier, "count", tier.count)))
                continue
            if tier.kind == "redis":
                report.note("Redis was cleared with FLUSHDB: every key of its database went.")
            counted = self._call(tier, "count", tier.count)
            cleared = self._call(tier, "clear", tier.clear, keys=None)
            report.add(tier.kind, 0 if cleared is FAILED else _number(counted))
        if memory is None:
            return
        report.add("memory", len(memory))
        if self.dry_run:
            return
        memory.clear()
        if store.channel is not None:
            if self.sync:
                self._publish([store.channel.clear_message()])
            else:
                store.channel.announce_clear()

    def tags(self, tags: list[str]) -> None:
        """A new generation per tag, in every tier (``set_many``), announced to every process."""
        self.report.tags += len(tags)
        if self.dry_run:
            return
        invalidate_tags(tags, alias=self.report.alias)
        channel = self.store.channel
        if self.sync and channel is not None:
            # set_many queued the announcement; publish it now, and count who heard it.
            self._publish([channel.keys_message([self.cache.make_key(tag_key(t)) for t in tags])])


def _number(result: Any) -> int:
    return 0 if result is FAILED or result is None else int(result)


def _tier_progress(progress: Progress, kind: str) -> Callable[[int, int | None, int], None]:
    def report(scanned: int, total: int | None, matched: int) -> None:
        progress(kind, scanned, total, matched)

    return report


def _count_keys(tier: Any, keys: list[str]) -> int:
    if tier.kind == "redis":
        client = tier.writer()
        return sum(
            client.exists(*keys[start : start + MESSAGE_KEYS])
            for start in range(0, len(keys), MESSAGE_KEYS)
        )
    return len(tier.get_many(keys))


# --- Any other Django cache backend ------------------------------------------------------------


class Plain:
    """Invalidation through the plain Django cache API (LocMemCache, RedisCache, django-redis)."""

    def __init__(self, cache: Any, report: InvalidationReport) -> None:
        self.cache = cache
        self.report = report
        report.note(
            f"{type(cache).__name__} is not a TieredCache: counts are of its own entries, and "
            "other processes' memory (a LocMemCache's) cannot be reached."
        )

    def keys(self, keys: list[str]) -> None:
        cache = self.cache
        if self.report.dry_run:
            count = sum(1 for key in keys if cache.has_key(key))
        else:
            count = sum(1 for key in keys if cache.delete(key))
        self.report.add(PLAIN, count)

    def pattern(self, pattern: str, progress: Progress | None) -> None:
        cache = self.cache
        problem = pattern_problem(cache, self.report.alias)
        if problem:
            raise ValueError(problem)
        if self.report.dry_run:
            count = sum(1 for _ in cache.iter_keys(pattern))
        else:
            count = cache.delete_pattern(pattern)
        self.report.add(PLAIN, int(count or 0))

    def everything(self) -> None:
        if not self.report.dry_run:
            self.cache.clear()
        self.report.note(f"{type(self.cache).__name__} does not say how many entries it held.")

    def tags(self, tags: list[str]) -> None:
        self.report.tags += len(tags)
        if not self.report.dry_run:
            invalidate_tags(tags, alias=self.report.alias)
